"""The Transformer baseline against the `cpu` LSTM at equal parameters and equal wall-clock minutes.

    python benchmarks/transformer_vs_lstm.py [--minutes 10] [--threads 1]

Both presets (`cpu`: the LSTM; `transformer`: lmlib.model.transformer at the LSTM's parameter
count, within 1%) train on the embedded corpus one after the other, each for `--minutes` of
wall time with the same torch thread count (max_minutes, validation included; the default 10
is the budget both presets carry, so this measures the presets as a user trains them), then
report the test and validation perplexity of their best weights, training tokens/s, epochs
and parameters, and the evaluation speed of the test split (tokens/s, static evaluation as
`lmlib evaluate` runs it). The load average before and after each run and its CPU seconds are
recorded: on a shared machine a run that got less of the CPU shows it there. Writes
benchmarks/results/transformer_vs_lstm.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import common
import torch

from lmlib.data.batching import batch_splits
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.presets import get_preset
from lmlib.training.evaluate import evaluate_loss
from lmlib.training.loop import train
from lmlib.training.runs import load_model, read_config

ARMS = ("cpu", "transformer")  # preset names: the LSTM, then the Transformer


def run_one(name: str, minutes: float, run_dir: Path, prepared, subset_tokens: int | None = None) -> dict:
    """Train one preset for `minutes`; return its results, evaluation speed and what the machine did."""
    config = get_preset(name, max_minutes=minutes, checkpoint_minutes=None, subset_tokens=subset_tokens)
    load_before, cpu_before = os.getloadavg(), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = train(config, run_dir, prepared=prepared, progress=False)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    load_after = os.getloadavg()
    model, _, _ = load_model(run_dir, "cpu")
    test = batch_splits(prepared, config.data, config.train, torch.device("cpu"), ("test",))["test"]
    timed = time.perf_counter()
    evaluate_loss(model, test, config.train.bptt)
    eval_seconds = time.perf_counter() - timed
    print(f"{name}: test ppl {results['test_ppl']:.2f} after {results['epochs_run']} epochs, {wall:.0f} s", flush=True)
    return {
        "config": config.to_dict(),
        "precision": read_config(run_dir)[1]["resolved_precision"],
        "results": results,
        "wall_s": wall,
        "cpu_s": cpu_seconds,
        "eval_tokens_per_s": (test.size(1) - 1) * test.size(0) / eval_seconds,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
    }


def table(runs: dict) -> list[dict]:
    return [
        {
            "model": "LSTM (cpu)" if name == "cpu" else "Transformer",
            "parameters": run["results"]["parameters"],
            "epochs": run["results"]["epochs_run"],
            "train_tokens_per_s": run["results"]["train_tokens_per_s"],
            "eval_tokens_per_s": run["eval_tokens_per_s"],
            "valid_ppl": run["results"]["valid_ppl"],
            "test_ppl": run["results"]["test_ppl"],
            "load_before": run["load_avg_before"][0],
            "load_after": run["load_avg_after"][0],
        }
        for name, run in runs.items()
    ]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each run (the presets' 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both runs")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N tokens of each split")
    parser.add_argument("--runs-dir", default="", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for the JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    prepared = prepare(load_corpus("austen"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs_dir or tmp)
        subset = args.subset_tokens or None
        runs = {name: run_one(name, args.minutes, root / f"tvl-{name}", prepared, subset) for name in ARMS}
    rows = table(runs)
    lstm, transformer = rows
    gap = transformer["parameters"] / lstm["parameters"] - 1
    winner = "Transformer" if transformer["test_ppl"] < lstm["test_ppl"] else "LSTM"
    print(f"{args.minutes:g} minutes each, {torch.get_num_threads()} torch thread(s), one after the other")
    common.print_table(rows)
    print(f"parameters differ by {100 * gap:+.1f}%; lower test perplexity: {winner}")
    payload = {"minutes": args.minutes, "threads": torch.get_num_threads(), "vocab_size": len(prepared.vocab),
               "rows": rows, "parameter_gap": gap, "winner": winner, "runs": runs}  # fmt: skip
    common.RESULTS = Path(args.out)
    path = common.write_result("transformer_vs_lstm", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
