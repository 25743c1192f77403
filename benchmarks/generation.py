"""Generation speed: lmlib's incremental sampling vs the original's, which re-feeds everything.

    python benchmarks/generation.py [--tokens 100,300] [--size 1024x1024x2] [--vocab 13134] [--repeat 2]

The original-size model (1024/1024/2, the Harry Potter vocabulary of 13,134 words) with
random weights: speed does not depend on what the weights learned. Both sides hold the
*same* weights (copied from the reference into an lmlib model). The original feeds the
whole sequence so far at every step, O(n^2) in the output length; lmlib reads the prompt
once and then feeds one token per step with the carried state, O(n). A generation may end
early at `<eos>`, so the time is divided by the tokens actually produced. The reference and
lmlib alternate (reference, lmlib, reference, ...) so that drift hits both.

lmlib switches PyTorch's oneDNN (mkldnn) RNN kernel off while it generates on a CPU: torch
runs a no-grad LSTM through oneDNN, whose per-call set-up costs far more than a one-token
product (about 55 ms against 6 ms per token at this size, measured here before the switch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import common
import reference
import torch

from lmlib.data.vocab import SPECIALS, Vocab
from lmlib.generate import Generator
from lmlib.model.lstm import LSTMLanguageModel
from lmlib.presets import get_preset

TARGET_RATIO = 5.0  # at the longest length
PROMPT_WORDS = 10


def build_models(size: tuple[int, int, int], vocab_size: int):
    """A reference model and an lmlib model holding the same (random) weights."""
    emb, hid, layers = size
    torch.manual_seed(0)
    ref = reference.OriginalLSTM(vocab_size, emb, hid, layers, 0.65).eval()
    ours = LSTMLanguageModel(
        vocab_size, get_preset("original", emb_dim=emb, hid_dim=hid, num_layers=layers).model
    ).eval()
    state = {"embedding.weight": ref.embedding.weight, "decoder.weight": ref.fc.weight, "decoder.bias": ref.fc.bias}
    state.update({f"rnns.0.{name}": p for name, p in ref.lstm.named_parameters()})
    ours.load_state_dict(state)
    return ref, ours


def synthetic_vocab(vocab_size: int) -> Vocab:
    return Vocab(SPECIALS + tuple(f"w{i}" for i in range(len(SPECIALS), vocab_size)))


def time_reference(model, prompt_ids: list[int], tokens: int, seed: int) -> tuple[float, int]:
    started = time.perf_counter()
    out = reference.generate(prompt_ids, tokens, 1.0, model, unk=0, eos=1, device="cpu", seed=seed)
    return time.perf_counter() - started, len(out) - len(prompt_ids)


def time_lmlib(generator: Generator, prompt: str, tokens: int, seed: int) -> tuple[float, int]:
    started = time.perf_counter()
    produced = sum(1 for _ in generator.stream(prompt, max_new_tokens=tokens, temperature=1.0, seed=seed))
    return time.perf_counter() - started, produced


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="100,300", help="new tokens per generation, comma-separated")
    parser.add_argument("--size", default="1024x1024x2", help="emb x hidden x layers")
    parser.add_argument("--vocab", type=int, default=13134)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for generation.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(n) for n in args.size.split("x"))
    ref, ours = build_models(size, args.vocab)
    vocab = synthetic_vocab(args.vocab)
    generator = Generator(ours, vocab)
    prompt_ids = list(range(len(SPECIALS), len(SPECIALS) + PROMPT_WORDS))
    prompt = " ".join(vocab.itos[i] for i in prompt_ids)
    time_reference(ref, prompt_ids, 3, seed=0)  # warm-up: first calls allocate
    time_lmlib(generator, prompt, 3, seed=0)
    load_before = os.getloadavg()
    rows = []
    for n in (int(t) for t in args.tokens.split(",")):
        ref_ms, ours_ms, produced = [], [], []
        for seed in range(args.repeat):
            seconds, count = time_reference(ref, prompt_ids, n, seed)
            ref_ms.append(1000 * seconds / max(count, 1))
            produced.append(count)
            seconds, count = time_lmlib(generator, prompt, n, seed)
            ours_ms.append(1000 * seconds / max(count, 1))
            produced.append(count)
        ratio = statistics.median(r / o for r, o in zip(ref_ms, ours_ms))
        rows.append(
            {
                "new_tokens": n,
                "produced_min": min(produced),
                "reference_ms_per_token": statistics.median(ref_ms),
                "lmlib_ms_per_token": statistics.median(ours_ms),
                "ratio": ratio,
            }
        )
    print(
        f"model {args.size}, vocabulary {args.vocab:,}, prompt {PROMPT_WORDS} words, "
        f"{torch.get_num_threads()} torch thread(s), median of {args.repeat}; load {load_before[0]:.1f}"
    )
    common.print_table(rows)
    payload = {
        "size": args.size,
        "vocab_size": args.vocab,
        "prompt_tokens": PROMPT_WORDS,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "rows": rows,
        "target_ratio": TARGET_RATIO,
        "met": rows[-1]["ratio"] >= TARGET_RATIO,
    }
    common.RESULTS = Path(args.out)
    print(f"wrote {common.write_result('generation', payload)}")
    return payload


if __name__ == "__main__":
    main()
