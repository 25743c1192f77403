"""The original study's code, re-implemented faithfully: the reference every benchmark beats.

    embedding(V, E) -> Dropout(p) -> nn.LSTM(E, H, layers, dropout=p, batch_first) -> Dropout(p)
    -> Linear(H, V) -> full softmax cross-entropy; Adam, clip 0.25, `.item()` every step.

Kept as it was, quirks included: the embedding's asymmetric init U(-0.1, 1/sqrt(H)); the
LSTM init that assigned into `lstm.all_weights` (no effect, so PyTorch's default stays);
the data trimmed so every window is full; generation that re-feeds the *whole* sequence at
every step while also carrying the hidden state (O(n^2) in the output length).
Nothing here imports lmlib: it is the other side of each comparison.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class OriginalLSTM(nn.Module):
    """The original study's model (its `LSTM` class), with its init."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, num_layers: int, dropout_rate: float):
        super().__init__()
        self.num_layers, self.hidden_dim, self.embedding_dim = num_layers, hidden_dim, embedding_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, dropout=dropout_rate, batch_first=True)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(hidden_dim, vocab_size)
        self.init_weights()

    def forward(self, src: torch.Tensor, hidden):
        embedding = self.dropout(self.embedding(src))  # (B, T, E)
        output, hidden = self.lstm(embedding, hidden)  # (B, T, H)
        output = self.dropout(output)
        prediction = self.fc(output)  # (B, T, V)
        return prediction, hidden

    def init_weights(self) -> None:
        init_range_emb = 0.1
        init_range_other = 1 / math.sqrt(self.hidden_dim)
        self.embedding.weight.data.uniform_(-init_range_emb, init_range_other)  # (sic) asymmetric
        self.fc.weight.data.uniform_(-init_range_other, init_range_other)
        self.fc.bias.data.zero_()
        # The original then assigned fresh tensors into `self.lstm.all_weights[i][j]`, a list
        # built on the fly: the parameters were never touched. Omitted for that reason.

    def init_hidden(self, batch_size: int, device):
        hidden = torch.zeros(self.num_layers, batch_size, self.hidden_dim, device=device)
        cell = torch.zeros(self.num_layers, batch_size, self.hidden_dim, device=device)
        return hidden, cell

    def detach_hidden(self, hidden):
        hidden, cell = hidden
        return hidden.detach(), cell.detach()


def get_data(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The original's batching: drop the remainder, then `view(batch_size, num_batches)`."""
    num_batches = ids.shape[0] // batch_size
    return ids[: num_batches * batch_size].view(batch_size, num_batches)


def trim(data: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The original dropped the last columns so that every window has exactly `seq_len` tokens."""
    num_batches = data.shape[-1]
    return data[:, : num_batches - (num_batches - 1) % seq_len]


def get_batch(data: torch.Tensor, seq_len: int, idx: int):
    src = data[:, idx : idx + seq_len]
    target = data[:, idx + 1 : idx + seq_len + 1]
    return src, target


def train_step(model, optimizer, criterion, src, target, hidden, clip: float):
    """One window exactly as the original's train loop ran it; returns (loss float, hidden)."""
    batch_size, seq_len = src.shape
    optimizer.zero_grad()
    hidden = model.detach_hidden(hidden)
    prediction, hidden = model(src, hidden)
    prediction = prediction.reshape(batch_size * seq_len, -1)  # (B*T, V)
    loss = criterion(prediction, target.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item(), hidden  # .item() every step: a device sync on a GPU


def train_epoch(model, data, optimizer, criterion, seq_len: int, clip: float, device, max_steps: int = 0) -> float:
    """The original's `train()`: one pass over `data` (B, columns); returns its epoch loss."""
    epoch_loss = 0.0
    model.train()
    data = trim(data, seq_len)
    num_batches = data.shape[-1]
    hidden = model.init_hidden(data.shape[0], device)
    for step, idx in enumerate(range(0, num_batches - 1, seq_len)):
        if max_steps and step >= max_steps:
            break
        src, target = get_batch(data, seq_len, idx)
        loss, hidden = train_step(model, optimizer, criterion, src.to(device), target.to(device), hidden, clip)
        epoch_loss += loss * seq_len
    return epoch_loss / num_batches


def make_training(
    vocab_size: int, emb_dim: int, hid_dim: int, num_layers: int, device, dropout: float = 0.65, lr: float = 1e-3
):
    """Model, Adam and loss as the original built them."""
    model = OriginalLSTM(vocab_size, emb_dim, hid_dim, num_layers, dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return model, optimizer, nn.CrossEntropyLoss()


@torch.no_grad()
def generate(
    prompt_ids: list[int],
    max_seq_len: int,
    temperature: float,
    model: OriginalLSTM,
    unk: int,
    eos: int,
    device,
    seed: int | None = None,
) -> list[int]:
    """The original's `generate()`: every step re-feeds the whole sequence so far."""
    if seed is not None:
        torch.manual_seed(seed)
    model.eval()
    indices = list(prompt_ids)
    hidden = model.init_hidden(1, device)
    for _ in range(max_seq_len):
        src = torch.LongTensor([indices]).to(device)  # (1, len(indices)): the whole sequence, again
        prediction, hidden = model(src, hidden)
        probs = torch.softmax(prediction[:, -1] / temperature, dim=-1)
        prediction = torch.multinomial(probs, num_samples=1).item()
        while prediction == unk:
            prediction = torch.multinomial(probs, num_samples=1).item()
        if prediction == eos:
            break
        indices.append(prediction)
    return indices
