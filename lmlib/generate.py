"""Text generation: incremental sampling with temperature, top-k and top-p.

Incremental: the prompt is read once, then each new token is fed once with the carried
hidden state — O(n) in the output length. (The original re-fed the whole sequence at every
step, O(n^2); benchmarks/generation.py measures the difference.)
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from lmlib.config import RunConfig
from lmlib.data.casing import load_casing
from lmlib.data.detokenize import detokenize_pieces
from lmlib.data.tokenize import basic_english
from lmlib.data.vocab import UNK_INDEX, Vocab
from lmlib.errors import LMError
from lmlib.model.build import LanguageModel
from lmlib.sampling import (  # noqa: F401 (MAX_NEW_TOKENS, INTERACTIVE_MAX_NEW_TOKENS: their old home)
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_TEMPERATURE,
    INTERACTIVE_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS,
    check_sampling,
)

LOG2E = 1 / math.log(2)


@dataclass(frozen=True)
class GeneratedToken:
    token: str
    surprisal: float  # bits: -log2 p(token | context) under the model at temperature 1
    word: str = ""  # the token in its usual casing ("darcy" -> "Darcy"); "" from look-alike generators


@dataclass(frozen=True)
class Generation:
    prompt_tokens: list[str]
    tokens: list[str]  # the new tokens only
    surprisals: list[float]
    text: str  # the prompt as given + `continuation`
    continuation: str = ""  # the new text, readable: what follows the prompt


class Generator:
    """A model and its vocabulary, ready to generate. Safe to share between threads:
    every call keeps its own hidden state and random generator.

    `casing` (token -> usual form, data/casing.py) only changes how text is shown, never an id.
    `config` and `name` say which model it is (None and "model" for one built in memory);
    `serving` how its weights compute (lmlib.pretrained.serving: fp32, bf16 or int8).
    """

    def __init__(
        self,
        model: LanguageModel,
        vocab: Vocab,
        device: str | torch.device | None = None,
        casing: dict[str, str] | None = None,
        config: RunConfig | None = None,
        name: str = "model",
        serving: str = "fp32",
    ):
        if model.vocab_size != len(vocab):
            raise LMError(f"the model has {model.vocab_size} output words but the vocabulary {len(vocab)}")
        self.device = torch.device(device) if device is not None else _device_of(model)
        self.model = model.to(self.device).eval()
        self.vocab, self.casing, self.config, self.name, self.serving = vocab, casing, config, name, serving

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str = "auto", serving: str = "auto") -> Generator:
        """The one way to load a model: a shipped model's name ("austen"), a folder written by
        `lmlib export`, a run directory, or a Hugging Face Hub id ("owner/name").

        `device`: `auto` takes the GPU when there is one, as training does. `serving`: how the
        weights compute, "fp32", "bf16", "int8" or "auto" (lmlib.pretrained.serving decides).
        """
        from lmlib.pretrained.locate import locate
        from lmlib.pretrained.serving import prepare_for_serving
        from lmlib.training.runs import RunPaths, load_model

        folder, name = locate(name_or_path)
        model, vocab, config = load_model(folder, device)
        model, serving = prepare_for_serving(model, serving)
        casing = load_casing(RunPaths(folder).casing)
        return cls(model, vocab, casing=casing, config=config, name=name, serving=serving)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: str = "auto") -> Generator:
        """A run directory's model in fp32: `from_pretrained` as earlier versions spelt it for runs."""
        return cls.from_pretrained(Path(run_dir), device, serving="fp32")

    def word(self, token: str) -> str:
        """`token` in its usual casing (itself when the run has no casing table)."""
        return self.casing.get(token, token) if self.casing else token

    def readable(self, prompt: str, tokens: list[str]) -> str:
        """`readable` with this run's casing."""
        return readable(prompt, tokens, self.casing)

    def pieces(self, prompt: str, tokens: list[str]) -> list[str]:
        """`continuation_pieces` with this run's casing."""
        return continuation_pieces(prompt, tokens, self.casing)

    def prompt_tokens(self, prompt: str) -> list[str]:
        if not isinstance(prompt, str):
            raise LMError(f"prompt must be text, got {type(prompt).__name__}")
        return basic_english(prompt)

    def _kernels(self):
        # On CPU, PyTorch's oneDNN LSTM kernel costs ~55 ms per one-token call at 1024 wide
        # against ~6 ms for the native one (benchmarks/generation.py); it only pays off on
        # long sequences. The switch is process-wide, so it is held per call, not per stream.
        return _WITHOUT_ONEDNN if self.device.type == "cpu" else nullcontext()

    @torch.inference_mode()
    def _read_prompt(self, tokens: list[str]):
        """Feed the prompt once; an empty prompt starts at a sentence boundary (<eos>)."""
        ids = self.vocab.encode(tokens) if tokens else [self.vocab.eos_index]
        x = torch.as_tensor(ids, dtype=torch.long, device=self.device).view(1, -1)
        hidden = self.model.init_hidden(1, self.device)
        with self._kernels():
            out = self.model(x, hidden)
        return out.log_probs[0, -1], out.hidden  # (V,)

    @torch.inference_mode()
    def _step(self, index: int, hidden):
        """Feed one token with the carried state; return the next log-distribution (V,)."""
        x = torch.tensor([[index]], device=self.device)
        with self._kernels():
            out = self.model(x, hidden)
        return out.log_probs[0, -1], out.hidden

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[GeneratedToken]:
        """Yield new tokens one at a time as they are produced; stops at <eos>."""
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        generator = torch.Generator(device="cpu").manual_seed(secrets.randbits(63) if seed is None else int(seed))
        with torch.inference_mode():
            log_probs, hidden = self._read_prompt(self.prompt_tokens(prompt))
            for _ in range(max_new_tokens):
                index = sample(log_probs, temperature, top_k, top_p, generator)
                if index == self.vocab.eos_index:
                    return
                token = self.vocab.itos[index]
                yield GeneratedToken(token, float(-log_probs[index]) * LOG2E, self.word(token))
                log_probs, hidden = self._step(index, hidden)  # one token, carried state

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = DEFAULT_TEMPERATURE,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Generation:
        """Generate a continuation; returns readable text and the token list."""
        produced = list(self.stream(prompt, max_new_tokens, temperature, top_k, top_p, seed))
        prompt_tokens = self.prompt_tokens(prompt)
        tokens = [t.token for t in produced]
        continuation = "".join(self.pieces(prompt, tokens))
        return Generation(prompt_tokens, tokens, [t.surprisal for t in produced], prompt + continuation, continuation)

    @torch.inference_mode()
    def next_word_distribution(self, prompt: str, k: int = 10) -> list[tuple[str, float]]:
        """The model's top-k next words for `prompt`, with probabilities (at temperature 1)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise LMError(f"k must be a whole number >= 1, got {k!r}")
        log_probs, _ = self._read_prompt(self.prompt_tokens(prompt))
        values, indices = log_probs.exp().topk(min(k, len(self.vocab)))
        return [(self.vocab.itos[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]


def readable(prompt: str, tokens: list[str], casing: dict[str, str] | None = None) -> str:
    """The prompt as given, then its continuation as readable text: `prompt + continuation`.

    The new words take their usual form with the run's `casing` ("darcy" -> "Darcy"); the
    prompt is kept as typed, so the text always starts with what the user wrote.
    """
    return prompt + "".join(continuation_pieces(prompt, tokens, casing))


def continuation_pieces(prompt: str, tokens: list[str], casing: dict[str, str] | None = None) -> list[str]:
    """The readable text each new token adds after `prompt`, with the space before it if any.

    Read in the context of the prompt's own tokens, so a continuation knows whether it starts a
    sentence (capitalised) or glues to the word before (a comma, "n't"); the join is what
    follows the prompt: `prompt + "".join(pieces)` is the generated text everywhere (Python,
    CLI, panel, web page and API), and the page colours the same pieces one by one.
    """
    context = basic_english(prompt)
    pieces = detokenize_pieces(context + list(tokens), casing)[len(context) :]
    if pieces and (not prompt or prompt[-1].isspace()):
        pieces[0] = pieces[0].lstrip(" ")  # nothing to separate from, or the prompt's own space does it
    elif pieces and not context and not pieces[0].startswith(" "):
        pieces[0] = " " + pieces[0]  # a prompt of nothing but dropped marks ('"', ';') still ends a word
    return pieces


def _device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are (a quantised model's packed weights are no parameters: the CPU)."""
    return next(iter(model.parameters()), torch.empty(0)).device


class _OneDNNOff:
    """Switch oneDNN off while any generation runs; restore the flag when the last one ends.

    torch.backends.mkldnn.enabled is one flag for the whole process. Saving and restoring it
    per call is wrong with threads (the web app, the panel): two overlapping calls could
    restore each other's "off" and leave oneDNN off for good, which changes the kernels (and
    the last bits of the numbers) of any training that runs later in the process.
    """

    def __init__(self):
        self._lock, self._users, self._saved = threading.Lock(), 0, True

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._saved = torch.backends.mkldnn.enabled
                torch.backends.mkldnn.enabled = False
            self._users += 1

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                torch.backends.mkldnn.enabled = self._saved


_WITHOUT_ONEDNN = _OneDNNOff()


def sample(log_probs: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator) -> int:
    """Draw one index from `log_probs` (V,), never `<unk>` (index 0).

    Masking `<unk>` and renormalising draws from exactly the distribution the original got
    by re-sampling until the draw was not `<unk>`.
    """
    logits = log_probs.float().clone().cpu()
    logits[UNK_INDEX] = -math.inf
    # A temperature that is 0 in float32 (below ~1e-45) would divide 0 by 0: greedy is its limit.
    if temperature < torch.finfo(torch.float32).tiny:
        return int(torch.argmax(logits))
    # Shifted so that the likeliest word's logit is exactly 0: near temperature 0 (1e-39)
    # every log-probability over the temperature overflows to -inf and the softmax is NaN.
    logits = (logits - logits.max()) / temperature
    if top_k and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits[logits < threshold] = -math.inf
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the smallest set reaching p
        logits[order[drop]] = -math.inf
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
