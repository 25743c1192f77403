"""Serving on a CPU: load time, milliseconds per generated word and test perplexity, per way of computing.

    python benchmarks/serving.py [--model austen] [--run-dir runs/austen] [--original-subset 100000]
                                 [--test-tokens N] [--words 100] [--repeat 5] [--modes fp32,int8,...]
                                 [--models shipped,original]

Two models side by side, in one run: the shipped one (`--model`, any name or folder
`Generator.from_pretrained` takes; `--run-dir` gives its fp32 run, so the rows of rounded
weights are rounded from fp32) and the original study's 1024-wide architecture. For each:

    fp32          as trained
    fp16 weights  weights rounded to fp16 (what `export --dtype fp16` stores), computed in fp32
    bf16 weights  weights rounded to bf16, computed in fp32
    bf16          weights and activations in bf16 (slow where the CPU lacks native bf16)
    int8          dynamic quantisation of the LSTM and linear layers (lmlib.pretrained.serving)

Load time is `Generator.from_pretrained(..., serving=...)` in this process (torch already
imported); ms/word is the median of `--repeat` seeded generations of `--words` words, one
thread (as `lmlib generate` runs); perplexity is the test split of the model's own corpus
(its first `--test-tokens` tokens, when given) and its change from the fp32 row.

The original architecture has no trained weights here (the study's are for the Harry Potter
books): it is trained first for one epoch over the first `--original-subset` tokens of the
embedded corpus (the `original` preset, seed 1234: it ends on its data, never on the clock, so
a rerun trains the same model), or `--original-run` names a trained run. So short a training
leaves it far from converged: its perplexity itself means little; the change from fp32 is
what it shows.

The default serving choice (lmlib.pretrained.serving.default_serving) is the fastest row within
1% of fp32's perplexity; benchmarks/results/serving.json records it with the machine, the
threads and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from lmlib.data.batching import batch_splits
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.generate import Generator
from lmlib.pretrained.locate import locate
from lmlib.pretrained.serving import default_serving
from lmlib.training.evaluate import evaluate_loss, perplexity
from lmlib.training.runs import read_config

PROMPT = "it is a truth universally acknowledged that"
MODES = ("fp32", "fp16 weights", "bf16 weights", "bf16", "int8")
WITHIN = 0.01  # the default is the fastest within 1% of fp32's perplexity


def rounded(generator: Generator, dtype: torch.dtype) -> Generator:
    """A copy whose weights went through `dtype` and back: what a folder stored in `dtype` computes."""
    import copy

    model = copy.deepcopy(generator.model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).float())
    return Generator(model, generator.vocab, casing=generator.casing)


def variant(source: str, mode: str) -> tuple[Generator, float]:
    """(the generator computing as `mode`, seconds it took to load it that way)."""
    started = time.perf_counter()
    if mode in ("fp32", "bf16", "int8"):
        generator = Generator.from_pretrained(source, "cpu", serving=mode)
    else:
        generator = rounded(Generator.from_pretrained(source, "cpu", serving="fp32"), {"fp16 weights": torch.float16,
                            "bf16 weights": torch.bfloat16}[mode])  # fmt: skip
    return generator, time.perf_counter() - started


def ms_per_word(generator: Generator, words: int, repeat: int) -> float:
    generator.generate(PROMPT, 5, seed=0)  # warm-up: the first call allocates
    times = []
    for seed in range(repeat):
        started = time.perf_counter()
        result = generator.generate(PROMPT, words, seed=seed)
        times.append((time.perf_counter() - started) / max(len(result.tokens), 1))
    return 1000 * statistics.median(times)


def test_split(source: str, test_tokens: int | None) -> tuple[torch.Tensor, int]:
    """(the model's test split batched as its training evaluated it, bptt), cut to `test_tokens` when given."""
    folder, _ = locate(source)
    config, info = read_config(folder)
    prepared = prepare(load_corpus(config.data.corpus), info.get("protocol"), info.get("min_freq"))
    data = batch_splits(prepared, config.data, config.train, torch.device("cpu"), ("test",))["test"]
    if test_tokens:
        data = data[:, : max(2, test_tokens // data.size(0))]
    return data, config.train.bptt


def measure(label: str, source: str, args) -> list[dict]:
    data, bptt = test_split(source, args.test_tokens)
    rows, fp32 = [], None
    for mode in args.modes:
        generator, load_s = variant(source, mode)
        ppl = perplexity(evaluate_loss(generator.model, data, bptt))
        fp32 = fp32 or ppl
        rows.append({"model": label, "mode": mode, "load_s": round(load_s, 3),
                     "ms_per_word": round(ms_per_word(generator, args.words, args.repeat), 2),
                     "test_ppl": round(ppl, 3), "ppl_change": round(ppl / fp32 - 1, 5),
                     "test_tokens": int(data.numel())})  # fmt: skip
        print(f"  {label} {mode}: {rows[-1]['ms_per_word']} ms/word, ppl {ppl:.2f}", flush=True)
    return rows


def fastest_within(rows: list[dict]) -> str:
    """The compute mode (fp32, bf16, int8) with the lowest ms/word among those within WITHIN of fp32's perplexity."""
    fine = [r for r in rows if r["mode"] in ("fp32", "bf16", "int8") and abs(r["ppl_change"]) <= WITHIN]
    return min(fine, key=lambda r: r["ms_per_word"])["mode"]


def original_run(args) -> str:
    if args.original_run:
        return args.original_run
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    folder = Path(tempfile.mkdtemp(prefix="lmlib-serving-")) / "original"
    print(f"training the original 1024-wide architecture on {args.original_subset:,} tokens ...", flush=True)
    overrides = {"epochs": 1, "subset_tokens": args.original_subset}
    train(get_preset("original", **overrides), folder, progress=False)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="austen", help="the shipped model's name, or any folder (default austen)")
    parser.add_argument("--run-dir", default=None, help="the fp32 run the model was exported from, if at hand")
    parser.add_argument("--original-run", default=None, help="a trained run of the original architecture")
    parser.add_argument("--original-subset", type=int, default=100_000,
                        help="train it for one epoch on the first N tokens (default 100,000)")  # fmt: skip
    parser.add_argument("--test-tokens", type=int, default=None, help="score the first N test tokens (default all)")
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help=f"a comma list of {', '.join(MODES)} (fp32 first)")
    parser.add_argument("--models", default="shipped,original", help="shipped, original, or both (default)")
    parser.add_argument("--name", default="serving", help="benchmarks/results/<name>.json")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",")]
    if args.modes[0] != "fp32" or set(args.modes) - set(MODES):
        parser.error(f"--modes must start with fp32 and name only {', '.join(MODES)}")
    torch.set_num_threads(1)  # as `lmlib generate`: one word at a time is too little work to share
    load_before = os.getloadavg()
    rows = []
    if "shipped" in args.models:
        rows += measure(f"shipped ({args.model})", args.run_dir or args.model, args)
    if "original" in args.models:
        rows += measure("original 1024-wide", original_run(args), args)
    common.print_table([{**r, "ppl_change": f"{100 * r['ppl_change']:+.3f}%"} for r in rows])
    labels = dict.fromkeys(r["model"] for r in rows)
    chosen = {label: fastest_within([r for r in rows if r["model"] == label]) for label in labels}
    print(f"fastest within {WITHIN:.0%} of fp32: {chosen}; lmlib serves with {default_serving(torch.device('cpu'))}")
    path = common.write_result(args.name, {
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "threads": torch.get_num_threads(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "shipped_folder_bytes": (locate(args.model)[0] / "model.safetensors").stat().st_size,
        "rows": rows, "fastest_within_1pct": chosen, "lmlib_default": default_serving(torch.device("cpu")),
    })  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
