"""A decoder-only Transformer language model with the LSTM's interface (the baseline of issue 15).

GPT-2's block (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"):
the Transformer of Vaswani et al. 2017 ("Attention Is All You Need") cut to its decoder,
with layer norm before each sub-layer (pre-LN), GELU in the feed-forward layer, a final
layer norm, and learned position embeddings. The blocks are PyTorch's own
nn.TransformerEncoderLayer(norm_first=True, activation="gelu") under a causal mask.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from lmlib.config import ModelConfig
from lmlib.errors import LMError
from lmlib.model.head import Hidden, LMOutput, OutputHead, check_reduction
from lmlib.model.regularize import SequenceDropout, embedding_dropout


class TransformerLanguageModel(OutputHead, nn.Module):
    """A causal Transformer over a fixed vocabulary; `forward` is the LSTM's entry point, unchanged.

        hidden = [(context (1, B, C) ids, filled (1, B, C) bool)]   C = config.context
        ids (B, T) -> read in chunks of at most C tokens; for each chunk:
          [context ; chunk] (B, C+T)        the last C tokens before it, then the chunk
          -> embedding + position (B, C+T, E)  positions count real tokens only, so < 2C
          -> dropout_input                  [word dropout `dropout_embedding`, as the LSTM]
          -> num_layers x pre-LN block      causal self-attention, n_heads; GELU MLP of hid_dim
          -> layer norm -> keep the chunk's T positions -> dropout_output -> out (B, T, E)
          -> linear (E -> V, tied or not) or adaptive softmax (model/head.py, as the LSTM)

    The "hidden state" is the text itself: the last C token ids of each row and which of them
    are real (an epoch starts with none). Carried across windows, as the LSTM carries (h, c),
    every prediction sees at least C previous tokens whatever the window, so evaluation does
    not restart at each window boundary; the keys and values of the context are recomputed
    with the current weights (no stale cache; Transformer-XL, Dai et al. 2019, caches the
    layer states instead, which needs relative positions). Cost: (C + T) positions per chunk.
    Its shape follows the library's contract for any hidden state (tensor pairs, batch in
    dim 1), so checkpoints, DDP and the loops take it unchanged. Generation feeds one token
    at a time: each step re-reads C + 1 tokens, O(C) per token, not O(length).

    Config fields: emb_dim = d_model (the embedding is the residual stream, so tying needs no
    projection), hid_dim = the feed-forward width (GPT-2: 4 x d_model), num_layers blocks,
    dropout_hidden on attention weights and each residual branch (GPT-2's attn/resid pdrop),
    dropout_input on embeddings (embd_pdrop), dropout_output before the head as in the LSTM.
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        width, self.context = config.emb_dim, config.context
        self.embedding = nn.Embedding(vocab_size, width)
        # Learned positions as GPT-2; chunking keeps every position below 2C, so the table covers
        # all a model ever sees (sinusoids, Vaswani §3.5, were chosen there to extrapolate beyond).
        self.position = nn.Embedding(2 * config.context, width)
        self.drop_input = SequenceDropout(config.dropout_input, config.locked_dropout)
        self.drop_output = SequenceDropout(config.dropout_output, config.locked_dropout)
        block = nn.TransformerEncoderLayer(
            width,
            config.n_heads,
            config.hid_dim,
            dropout=config.dropout_hidden,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(
            block, config.num_layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.out_dim = width
        self._build_head(vocab_size, width, config, self.embedding)  # model/head.py
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's: N(0, 0.02) everywhere, residual projections / sqrt(2 x layers), zero biases."""
        for name, parameter in self.named_parameters():
            if name.startswith("adaptive."):
                continue  # the adaptive softmax keeps PyTorch's init, as in the LSTM
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif "norm" in name:
                nn.init.ones_(parameter)
            elif name.endswith(("out_proj.weight", "linear2.weight")):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * self.config.num_layers))
            else:
                nn.init.normal_(parameter, std=0.02)

    def init_hidden(self, batch_size: int, device: torch.device | str | None = None) -> Hidden:
        """No context yet: C empty slots per row."""
        device = device or self.embedding.weight.device
        shape = (1, batch_size, self.context)
        return [
            (torch.zeros(shape, dtype=torch.long, device=device), torch.zeros(shape, dtype=torch.bool, device=device))
        ]

    @staticmethod
    def detach_hidden(hidden: Hidden) -> Hidden:
        """Token ids carry no graph: the context is re-read, never back-propagated into."""
        return hidden

    def forward(
        self, ids: torch.Tensor, hidden: Hidden, targets: torch.Tensor | None = None, reduction: str = "mean"
    ) -> LMOutput:
        """Run the network on `ids` (B, T) after the context in `hidden`; as LSTMLanguageModel.forward."""
        check_reduction(reduction)
        context, filled = hidden[0][0][0], hidden[0][1][0]  # (B, C) each
        outs = []
        for chunk in ids.split(self.context, dim=1):
            outs.append(self._chunk(chunk, context, filled))
            context, filled = _slide(context, filled, chunk)
        out = torch.cat(outs, dim=1)  # (B, T, E)
        hidden = [(context.unsqueeze(0), filled.unsqueeze(0))]
        if targets is None:
            return LMOutput(hidden, log_probs=self._log_probs(out), features=out)
        return LMOutput(hidden, nll=self._nll(out, targets, reduction), features=out)

    def _chunk(self, chunk: torch.Tensor, context: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
        """The output vectors (B, T, E) of `chunk` (B, T <= C) read after `context` (B, C)."""
        rows, length = chunk.shape
        tokens = torch.cat([context, chunk], dim=1)  # (B, L), L = C + T
        real = torch.cat([filled, torch.ones_like(chunk, dtype=torch.bool)], dim=1)  # (B, L)
        positions = (real.long().cumsum(1) - 1).clamp(min=0)  # real tokens 0, 1, ...; < C + T <= 2C
        x = embedding_dropout(self.embedding, tokens, self.config.dropout_embedding, self.training)
        x = self.drop_input(x + self.position(positions))  # (B, L, E)
        try:
            x = self.blocks(x, mask=self._mask(real))
        except RuntimeError as err:  # torch.OutOfMemoryError on a GPU, "can't allocate memory" on a CPU
            if not isinstance(err, torch.OutOfMemoryError) and "allocate" not in str(err):
                raise
            raise LMError(
                f"the Transformer's attention over {tokens.size(1):,} positions for {rows} rows needs about "
                f"{attention_bytes(self.config, rows, length) / 2**30:,.1f} GiB per layer, more than this device has: "
                f"choose a smaller context (now {self.context:,}) or batch_size"
            ) from None
        return self.drop_output(x[:, -length:])  # (B, T, E): the chunk's positions only

    def _mask(self, real: torch.Tensor) -> torch.Tensor:
        """(B x heads, L, L) True where attention is forbidden: the future, and empty context slots.

        Each position may always attend to itself, so an empty slot's row is never all masked
        (a softmax over nothing is NaN, and 0 x NaN would still reach the real rows)."""
        length = real.size(1)
        causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()  # (L, L)
        allowed = causal & real[:, None, :]  # (B, L, L): past keys that are real tokens
        allowed |= torch.eye(length, dtype=torch.bool, device=real.device)
        return (~allowed).repeat_interleave(self.config.n_heads, dim=0)


def _slide(context: torch.Tensor, filled: torch.Tensor, chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last C tokens after reading `chunk`, and which of them are real."""
    size = context.size(1)
    tokens = torch.cat([context, chunk], dim=1)[:, -size:]
    real = torch.cat([filled, torch.ones_like(chunk, dtype=torch.bool)], dim=1)[:, -size:]
    return tokens, real


def attention_bytes(config: ModelConfig, rows: int = 1, tokens: int | None = None) -> int:
    """Bytes one block's attention takes for `rows` rows reading `tokens` (at most C) after a C-token context.

    The (B x heads, L, L) mask (1 byte a cell) and the attention weights before and after the
    softmax (4 bytes each), L = C + tokens: quadratic in the context, and allocated at once.
    """
    length = config.context + min(config.context if tokens is None else tokens, config.context)
    return rows * config.n_heads * length * length * 9


def check_attention_fits(config: ModelConfig) -> None:
    """Refuse a context whose attention cannot fit in this machine's memory even for one row and one new token
    (the least any step reads), before allocating anything."""
    needed, memory = attention_bytes(config, rows=1, tokens=1), physical_memory()
    if memory and needed > memory:
        raise LMError(
            f"arch=transformer with context {config.context:,} needs {needed / 2**30:,.0f} GiB for the attention of a "
            f"single row ({config.n_heads} heads over {config.context + 1:,} positions), more than this machine's "
            f"{memory / 2**30:,.0f} GiB: choose a smaller context (the presets use 64 to 256)"
        )


def physical_memory() -> int | None:
    """This machine's memory in bytes, where the system says (Linux, macOS); None elsewhere."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
