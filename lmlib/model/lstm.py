"""The word-level LSTM language model: the original architecture plus AWD-LSTM switches.

With every AWD switch off this is exactly the original study's model: embedding -> dropout
-> nn.LSTM(num_layers, dropout between layers, batch_first) -> dropout -> linear.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lmlib.config import ModelConfig
from lmlib.model.head import (  # noqa: F401 (LMOutput, REDUCTIONS, resolve_cutoffs, count_parameters: their old home)
    REDUCTIONS,
    Hidden,
    LMOutput,
    OutputHead,
    check_reduction,
    count_parameters,
    resolve_cutoffs,
)
from lmlib.model.regularize import (
    SequenceDropout,
    WeightDropLSTM,
    activation_regularization,
    embedding_dropout,
    temporal_activation_regularization,
)


class LSTMLanguageModel(OutputHead, nn.Module):
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
        self._build_head(vocab_size, self.out_dim, config, self.embedding)  # model/head.py
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
        """Zero (h, c) states for a batch, in the embedding's dtype (bf16 when served in bf16)."""
        device = device or self.embedding.weight.device
        dtype = self.embedding.weight.dtype
        shape = [(rnn.num_layers, batch_size, rnn.hidden_size) for rnn in self.rnns]
        return [(torch.zeros(s, device=device, dtype=dtype), torch.zeros(s, device=device, dtype=dtype)) for s in shape]

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
        check_reduction(reduction)
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


def uses_per_layer_lstms(config: ModelConfig) -> bool:
    """Locked dropout between layers, or a last layer sized for tying, need one nn.LSTM per layer."""
    return config.locked_dropout or (config.tie_weights and config.emb_dim != config.hid_dim)


def build_lstms(config: ModelConfig, out_dim: int) -> list[WeightDropLSTM]:
    """The recurrent layers: one multi-layer LSTM (the original), or one per layer when needed."""
    if not uses_per_layer_lstms(config):
        # The original: one multi-layer nn.LSTM with (standard) dropout between layers.
        between = config.dropout_hidden if config.num_layers > 1 else 0.0
        lstm = WeightDropLSTM(
            config.emb_dim,
            config.hid_dim,
            config.num_layers,
            dropout=between,
            batch_first=True,
            weight_drop=config.weight_drop,
        )
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
