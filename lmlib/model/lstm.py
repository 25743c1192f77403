"""The word-level LSTM language model: the original architecture plus AWD-LSTM switches.

With every AWD switch off this is exactly the original study's model: embedding -> dropout
-> nn.LSTM(num_layers, dropout between layers, batch_first) -> dropout -> linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmlib.config import ModelConfig
from lmlib.errors import LMError
from lmlib.model.regularize import (
    SequenceDropout,
    WeightDropLSTM,
    activation_regularization,
    embedding_dropout,
    temporal_activation_regularization,
)

REDUCTIONS = ("mean", "sum", "none")
Hidden = list[tuple[torch.Tensor, torch.Tensor]]  # one (h, c) per LSTM module, each (layers, B, H)


@dataclass
class LMOutput:
    """What one forward pass returns; which parts are set depends on whether targets were given."""

    hidden: Hidden  # the state after the last position, to carry into the next window
    log_probs: torch.Tensor | None = None  # (B, T, V) next-word log-probabilities, without targets
    nll: torch.Tensor | None = None  # cross-entropy of the targets: mean, sum, or (B, T) per `reduction`
    penalty: torch.Tensor | float = 0.0  # AR + TAR (§4.6), in training mode only
    # (B, T, D) the vectors the output layer reads (after output dropout): the cache pointer's
    # keys and queries (Grave et al. 2016 use the last hidden layer).
    features: torch.Tensor | None = None

    @property
    def loss(self) -> torch.Tensor:
        """What training minimises: the cross-entropy plus the activation penalties."""
        return self.nll + self.penalty


class LSTMLanguageModel(nn.Module):
    """An LSTM language model over a fixed vocabulary; `forward` is its one entry point.

        ids (B, T)
          -> embedding (B, T, E)            [embedding dropout: whole words, §4.3]
          -> dropout                        [locked: one mask per sequence, §4.2]
          -> LSTM layer 1 .. num_layers     [DropConnect on W_hh, §4.1; dropout between layers]
          -> dropout -> out (B, T, D)       D = emb_dim when tied (§4.5), else hid_dim
          -> linear (D -> V) or adaptive softmax (Grave et al. 2017)
          -> next-word log-probabilities (B, T, V), or the cross-entropy of `targets`

    Training, evaluation, generation and the tests all call `model(ids, hidden, targets)`,
    so the composition that is tested is the one that is trained. The model receives only
    its own part of the run configuration (ModelConfig).
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        self.embedding = nn.Embedding(vocab_size, config.emb_dim)
        self.drop_input = SequenceDropout(config.dropout_input, config.locked_dropout)
        self.drop_hidden = SequenceDropout(config.dropout_hidden, config.locked_dropout)
        self.drop_output = SequenceDropout(config.dropout_output, config.locked_dropout)
        self.out_dim = config.emb_dim if config.tie_weights else config.hid_dim
        self.rnns = nn.ModuleList(build_lstms(config, self.out_dim))
        # The output layer: a full linear decoder or an adaptive softmax, never both.
        self.decoder = self.adaptive = None
        if config.adaptive_softmax:
            cutoffs = list(resolve_cutoffs(vocab_size, config.cutoffs))
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(self.out_dim, vocab_size, cutoffs, div_value=4.0)
        else:
            self.decoder = nn.Linear(self.out_dim, vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight  # §4.5: one matrix for input and output
        self._init_weights()

    def _init_weights(self) -> None:
        config = self.config
        bound = 1 / math.sqrt(config.hid_dim)
        if config.init == "uniform":
            # Zaremba et al. 2014: every parameter, biases included, U(-0.1, 0.1).
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -0.1, 0.1)
            return
        if config.init == "original":
            # The original study's init, kept as it was: the embedding bound is asymmetric,
            # U(-0.1, 1/sqrt(hidden)), most likely a typo for U(-0.1, 0.1) that we preserve
            # so the `original` preset reproduces it. Its LSTM init assigned into
            # `lstm.all_weights`, which has no effect, so the LSTM keeps PyTorch's default.
            nn.init.uniform_(self.embedding.weight, -0.1, bound)
        else:
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # AWD-LSTM
        if self.decoder is not None:
            if not config.tie_weights:
                nn.init.uniform_(self.decoder.weight, -bound, bound)
            nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Hidden:
        """Zero (h, c) states for a batch."""
        device = device or self.embedding.weight.device
        shape = [(rnn.num_layers, batch_size, rnn.hidden_size) for rnn in self.rnns]
        return [(torch.zeros(s, device=device), torch.zeros(s, device=device)) for s in shape]

    @staticmethod
    def detach_hidden(hidden: Hidden) -> Hidden:
        """Cut the graph between BPTT windows (truncated back-propagation)."""
        return [(state.detach(), cell.detach()) for state, cell in hidden]

    def forward(
        self, ids: torch.Tensor, hidden: Hidden, targets: torch.Tensor | None = None, reduction: str = "mean"
    ) -> LMOutput:
        """Run the network on `ids` (B, T) from `hidden`.

        Without `targets`: next-word log-probabilities (B, T, V). With `targets` (B, T): their
        cross-entropy (`reduction` "mean" per token, "sum", or "none": one loss per target, (B, T))
        and, in training mode, the AR/TAR penalty; the full softmax is then never materialised
        (the adaptive head scores only the targets' clusters).
        """
        if reduction not in REDUCTIONS:
            raise LMError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
        out, raw, hidden = self._run(ids, hidden)
        if targets is None:
            return LMOutput(hidden, log_probs=self._log_probs(out), features=out)
        nll = self._nll(out, targets, reduction)
        return LMOutput(hidden, nll=nll, penalty=self._penalty(out, raw), features=out)

    def _run(self, ids: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, torch.Tensor, Hidden]:
        """(dropped last-layer output (B, T, D), raw last-layer output (B, T, D), new hidden)."""
        x = embedding_dropout(self.embedding, ids, self.config.dropout_embedding, self.training)  # (B, T, E)
        x = self.drop_input(x)
        new_hidden = []
        for i, (rnn, state) in enumerate(zip(self.rnns, hidden)):
            x, state = rnn(x, state)  # (B, T, H), H = out_dim for the last layer
            new_hidden.append(state)
            if i < len(self.rnns) - 1:
                x = self.drop_hidden(x)
        return self.drop_output(x), x, new_hidden

    def _penalty(self, out: torch.Tensor, raw: torch.Tensor) -> torch.Tensor | float:
        """AR + TAR (§4.6) in training mode; 0 in eval mode or when both are off."""
        if not self.training:
            return 0.0
        total = 0.0
        if self.config.alpha:
            total = total + activation_regularization(out, self.config.alpha)
        if self.config.beta:
            total = total + temporal_activation_regularization(raw, self.config.beta)
        return total

    def _nll(self, out: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
        """Cross-entropy of `targets` (B, T) given `out` (B, T, D), in fp32; exact for both heads."""
        flat = out.reshape(-1, out.size(-1))  # (B*T, D)
        if self.adaptive is not None:
            # AdaptiveLogSoftmaxWithLoss computes the exact log-probability of each target.
            losses = -self.adaptive(flat, targets.reshape(-1)).output.float()  # (B*T,)
            nll = losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses
        else:
            nll = F.cross_entropy(self.decoder(flat).float(), targets.reshape(-1), reduction=reduction)
        return nll.view(targets.shape) if reduction == "none" else nll  # "none": (B, T), one loss per target

    def _log_probs(self, out: torch.Tensor) -> torch.Tensor:
        """Full next-word log-distribution (B, T, V), in fp32."""
        if self.adaptive is not None:
            flat = self.adaptive.log_prob(out.reshape(-1, out.size(-1)))
            return flat.view(*out.shape[:-1], -1).float()
        return F.log_softmax(self.decoder(out).float(), dim=-1)


def uses_per_layer_lstms(config: ModelConfig) -> bool:
    """Locked dropout between layers, or a last layer sized for tying, need one nn.LSTM per layer."""
    return config.locked_dropout or (config.tie_weights and config.emb_dim != config.hid_dim)


def build_lstms(config: ModelConfig, out_dim: int) -> list[WeightDropLSTM]:
    """The recurrent layers: one multi-layer LSTM (the original), or one per layer when needed."""
    if not uses_per_layer_lstms(config):
        # The original: one multi-layer nn.LSTM with (standard) dropout between layers.
        between = config.dropout_hidden if config.num_layers > 1 else 0.0
        lstm = WeightDropLSTM(config.emb_dim, config.hid_dim, config.num_layers, dropout=between, batch_first=True,
                              weight_drop=config.weight_drop)  # fmt: skip
        return [lstm]
    sizes = [config.emb_dim] + [config.hid_dim] * (config.num_layers - 1) + [out_dim]
    return [
        WeightDropLSTM(sizes[i], sizes[i + 1], 1, batch_first=True, weight_drop=config.weight_drop)
        for i in range(config.num_layers)
    ]


def lstm_sizes(config: ModelConfig) -> list[tuple[int, int]]:
    """(input, hidden) size of every LSTM layer, as `build_lstms` makes them (for FLOP counts)."""
    out_dim = config.emb_dim if config.tie_weights else config.hid_dim
    sizes = [config.emb_dim] + [config.hid_dim] * (config.num_layers - 1) + [out_dim]
    return list(zip(sizes[:-1], sizes[1:]))


def resolve_cutoffs(vocab_size: int, cutoffs: tuple[int, ...] | None) -> tuple[int, ...]:
    """Adaptive-softmax cut-offs over the frequency-sorted vocabulary.

    Default: a head of the ~2,000 most frequent words (which cover most running text),
    then clusters at 10,000 and 50,000 while they fit (Grave et al. 2017, "Efficient
    softmax approximation for GPUs").
    """
    chosen = tuple(c for c in (cutoffs or (2000, 10000, 50000)) if c < vocab_size)
    return chosen or (max(1, vocab_size // 4),)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, counting a tied matrix once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
