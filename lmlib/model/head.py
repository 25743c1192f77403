"""What every language model here shares: its output, the output layer and its two losses.

Both architectures (model/lstm.py, model/transformer.py) end in the same head: a full linear
decoder (optionally tied to the embedding, Press & Wolf 2017; Merity et al. 2017 §4.5) or an
adaptive softmax (Grave et al. 2017). The head's modules stay attributes of the model itself
(`decoder`, `adaptive`), so saved weights keep the names they always had.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmlib.config import ModelConfig
from lmlib.errors import LMError

REDUCTIONS = ("mean", "sum", "none")
# The carried state, for every architecture a list of tensor pairs with the batch in dim 1: the LSTM's
# (h, c) per LSTM module, each (layers, B, H); the Transformer's (context ids, filled), each (1, B, C).
# Checkpoints, DDP (gathering rows in dim 1) and the loops rely on that shape alone.
Hidden = list[tuple[torch.Tensor, torch.Tensor]]


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


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise LMError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")


class OutputHead:
    """Mixin for an nn.Module language model: builds `decoder` or `adaptive` and scores with it."""

    decoder: nn.Linear | None
    adaptive: nn.AdaptiveLogSoftmaxWithLoss | None

    def _build_head(self, vocab_size: int, out_dim: int, config: ModelConfig, embedding: nn.Embedding) -> None:
        """The output layer: a full linear decoder or an adaptive softmax, never both."""
        self.decoder = self.adaptive = None
        if config.adaptive_softmax:
            cutoffs = list(resolve_cutoffs(vocab_size, config.cutoffs))
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(out_dim, vocab_size, cutoffs, div_value=4.0)
        else:
            self.decoder = nn.Linear(out_dim, vocab_size)
            if config.tie_weights:
                self.decoder.weight = embedding.weight  # §4.5: one matrix for input and output

    def _nll(self, out: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
        """Cross-entropy of `targets` (B, T) given `out` (B, T, D), in fp32; exact for both heads."""
        flat = out.reshape(-1, out.size(-1))  # (B*T, D)
        if self.adaptive is not None:
            kind = flat.device.type
            if torch.is_autocast_enabled(kind):
                # Its clusters' log-probabilities are written into a buffer of its input's dtype: give it
                # the autocast dtype its linear layers produce (a layer norm's output stays fp32).
                flat = flat.to(torch.get_autocast_dtype(kind))
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
