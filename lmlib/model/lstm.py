"""The word-level LSTM language model: the original architecture plus AWD-LSTM switches.

    ids (B, T) -> embedding [word dropout] -> dropout -> LSTM layers [dropout between,
    DropConnect on W_hh] -> dropout -> linear (or adaptive softmax) -> next-word scores

With every AWD switch off this is exactly the original study's model: embedding -> dropout
-> nn.LSTM(num_layers, dropout between layers, batch_first) -> dropout -> linear.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmlib.config import RunConfig
from lmlib.model.regularize import (
    SequenceDropout,
    WeightDropLSTM,
    activation_regularization,
    embedding_dropout,
    temporal_activation_regularization,
)

Hidden = list[tuple[torch.Tensor, torch.Tensor]]  # one (h, c) per LSTM module, each (layers, B, H)


class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, config: RunConfig):
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        c = config
        self.embedding = nn.Embedding(vocab_size, c.emb_dim)
        self.drop_input = SequenceDropout(c.dropout_input, c.locked_dropout)
        self.drop_hidden = SequenceDropout(c.dropout_hidden, c.locked_dropout)
        self.drop_output = SequenceDropout(c.dropout_output, c.locked_dropout)
        self.out_dim = c.emb_dim if c.tie_weights else c.hid_dim
        self.rnns = nn.ModuleList(self._build_lstms())
        if c.adaptive_softmax:
            self.decoder = None
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
                self.out_dim, vocab_size, list(resolve_cutoffs(vocab_size, c.cutoffs)), div_value=4.0
            )
        else:
            self.adaptive = None
            self.decoder = nn.Linear(self.out_dim, vocab_size)
            if c.tie_weights:
                self.decoder.weight = self.embedding.weight  # §4.5: one matrix for input and output
        self._init_weights()

    def _build_lstms(self) -> list[WeightDropLSTM]:
        c = self.config
        if not c.uses_per_layer_lstms:
            # The original: one multi-layer nn.LSTM with (standard) dropout between layers.
            between = c.dropout_hidden if c.num_layers > 1 else 0.0
            return [
                WeightDropLSTM(
                    c.emb_dim, c.hid_dim, c.num_layers, dropout=between, batch_first=True, weight_drop=c.weight_drop
                )
            ]
        sizes = [c.emb_dim] + [c.hid_dim] * (c.num_layers - 1) + [self.out_dim]
        return [
            WeightDropLSTM(sizes[i], sizes[i + 1], 1, batch_first=True, weight_drop=c.weight_drop)
            for i in range(c.num_layers)
        ]

    def _init_weights(self) -> None:
        c = self.config
        bound = 1 / math.sqrt(c.hid_dim)
        if c.init == "uniform":
            # Zaremba et al. 2014: every parameter, biases included, U(-0.1, 0.1).
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -0.1, 0.1)
            return
        if c.init == "original":
            # The original study's init, kept as it was: the embedding bound is asymmetric,
            # U(-0.1, 1/sqrt(hidden)), most likely a typo for U(-0.1, 0.1) that we preserve
            # so the `original` preset reproduces it. Its LSTM init assigned into
            # `lstm.all_weights`, which has no effect, so the LSTM keeps PyTorch's default.
            nn.init.uniform_(self.embedding.weight, -0.1, bound)
        else:
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # AWD-LSTM
        if self.decoder is not None:
            if not c.tie_weights:
                nn.init.uniform_(self.decoder.weight, -bound, bound)
            nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Hidden:
        """Zero (h, c) states for a batch."""
        device = device or self.embedding.weight.device
        return [
            (
                torch.zeros(rnn.num_layers, batch_size, rnn.hidden_size, device=device),
                torch.zeros(rnn.num_layers, batch_size, rnn.hidden_size, device=device),
            )
            for rnn in self.rnns
        ]

    @staticmethod
    def detach_hidden(hidden: Hidden) -> Hidden:
        """Cut the graph between BPTT windows (truncated back-propagation)."""
        return [(h.detach(), c.detach()) for h, c in hidden]

    def features(self, ids: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """Run the network: (dropped last-layer output (B, T, out_dim), new hidden, raw last output)."""
        c = self.config
        x = embedding_dropout(self.embedding, ids, c.dropout_embedding, self.training)  # (B, T, E)
        x = self.drop_input(x)
        new_hidden = []
        for i, (rnn, state) in enumerate(zip(self.rnns, hidden)):
            x, state = rnn(x, state)
            new_hidden.append(state)
            if i < len(self.rnns) - 1:
                x = self.drop_hidden(x)
        raw = x
        return self.drop_output(raw), new_hidden, raw

    def forward(self, ids: torch.Tensor, hidden: Hidden, targets: torch.Tensor | None = None):
        """Returns (log-probabilities or None, loss or None, hidden).

        With `targets`, the loss is the mean cross-entropy per token (+ AR/TAR in training)
        and, to save the full softmax on CPU, log-probabilities are not returned.
        """
        out, hidden, raw = self.features(ids, hidden)
        if targets is None:
            return self.log_probs(out), None, hidden
        return None, self.nll(out, targets) + self.penalty(out, raw), hidden

    def penalty(self, out: torch.Tensor, raw: torch.Tensor) -> torch.Tensor | float:
        """AR + TAR (§4.6) in training mode; 0 in eval mode or when both are off."""
        if not self.training:
            return 0.0
        total = 0.0
        if self.config.alpha:
            total = total + activation_regularization(out, self.config.alpha)
        if self.config.beta:
            total = total + temporal_activation_regularization(raw, self.config.beta)
        return total

    def nll(self, out: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of `targets` (B, T) given features `out` (B, T, D); exact for both heads."""
        flat = out.reshape(-1, out.size(-1))
        if self.adaptive is not None:
            # AdaptiveLogSoftmaxWithLoss computes the exact log-probability of each target.
            target_logp = self.adaptive(flat, targets.reshape(-1)).output
            return -target_logp.mean() if reduction == "mean" else -target_logp.sum()
        return F.cross_entropy(self.decoder(flat).float(), targets.reshape(-1), reduction=reduction)

    def log_probs(self, out: torch.Tensor) -> torch.Tensor:
        """Full next-word log-distribution (B, T, V) from features."""
        if self.adaptive is not None:
            flat = self.adaptive.log_prob(out.reshape(-1, out.size(-1)))
            return flat.view(*out.shape[:-1], -1)
        return F.log_softmax(self.decoder(out).float(), dim=-1)


def resolve_cutoffs(vocab_size: int, cutoffs: tuple[int, ...]) -> tuple[int, ...]:
    """Adaptive-softmax cut-offs over the frequency-sorted vocabulary.

    Default: a head of the ~2,000 most frequent words (which cover most running text),
    then clusters at 10,000 and 50,000 while they fit (Grave et al. 2017, "Efficient
    softmax approximation for GPUs").
    """
    chosen = cutoffs or tuple(c for c in (2000, 10000, 50000) if c < vocab_size)
    chosen = tuple(c for c in chosen if c < vocab_size)
    return chosen or (max(1, vocab_size // 4),)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, counting a tied matrix once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
