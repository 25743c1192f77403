"""Time to quality: the `cpu` preset vs the original recipe at the same width and wall-clock budget.

    python benchmarks/time_to_quality.py [--minutes 10] [--threads 1]

Both train on the default corpus, back to back, each for `--minutes` of wall time
(`max_minutes`, which includes validation; training stops mid-epoch when time is up and
validates that partial epoch), then report the test perplexity of their best weights.
The original recipe keeps everything of the `original` preset (dropout 0.65, Adam 1e-3,
batch 128, BPTT 50, full softmax, fp32 as the original study trained) except its width,
set to the `cpu` preset's. The `cpu` preset trains in its `mixed` precision (bf16
autocast on a CPU with bf16 instructions); where that is not fp32 here a third run,
`cpu-fp32`, trains the same preset in fp32 so the precision's share of the gain shows. Writes
time_to_quality.json and time_to_quality.png (validation perplexity against wall time).
The load average and CPU seconds of each run are recorded: on a shared machine a run
that got less of the CPU shows it there.
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

from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.presets import get_preset
from lmlib.training.device import resolve_precision
from lmlib.training.loop import train
from lmlib.training.runs import RunPaths, read_config, read_metric_rows

TARGET_IMPROVEMENT = 0.20  # cpu preset's test perplexity at least 20% lower


def configs(minutes: float, width: int, subset_tokens: int) -> dict:
    """The recipes, at the same width and budget (cpu-fp32 only where `mixed` is not fp32 here)."""
    cpu = get_preset(
        "cpu",
        max_minutes=minutes,
        subset_tokens=subset_tokens or None,
        checkpoint_minutes=None,
        **({"emb_dim": width, "hid_dim": width} if width else {}),
    )
    original = get_preset(
        "original",
        emb_dim=cpu.model.emb_dim,
        hid_dim=cpu.model.hid_dim,
        max_minutes=minutes,
        subset_tokens=subset_tokens or None,
        checkpoint_minutes=None,
        precision="fp32",
    )
    chosen = {"original": original, "cpu": cpu}
    if resolve_precision(cpu.runtime.precision, torch.device("cpu")) != "fp32":
        chosen["cpu-fp32"] = cpu.replace(precision="fp32")
    return chosen


def run_one(name: str, config, run_dir: Path, prepared) -> dict:
    """Train one recipe; return its results, its validation curve and what the machine did."""
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = train(config, run_dir, prepared=prepared, progress=False)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    curve = [
        {
            "epoch": float(r["epoch"]),
            "wall_seconds": float(r["wall_seconds"]),
            "valid_ppl": float(r["valid_ppl"]),
            "train_tokens_per_s": float(r["train_tokens_per_s"]),
        }
        for r in read_metric_rows(RunPaths(run_dir))
    ]
    cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    print(
        f"{name}: test ppl {results['test_ppl']:.2f} after {results['epochs_run']} epochs, "
        f"{wall:.0f} s wall, {cpu_seconds:.0f} s CPU",
        flush=True,
    )
    precision = read_config(run_dir)[1]["resolved_precision"]
    return {
        "config": config.to_dict(),
        "precision": precision,
        "results": results,
        "curve": curve,
        "wall_s": wall,
        "cpu_s": cpu_seconds,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }


def plot(runs: dict, minutes: float, path: Path) -> None:
    """Validation perplexity against wall-clock minutes, one line per recipe."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    labels = {
        "original": "original recipe (fp32)",
        "cpu": f"cpu preset ({runs['cpu']['precision']})",
        "cpu-fp32": "cpu preset, fp32",
    }
    for name, run in runs.items():
        xs = [p["wall_seconds"] / 60 for p in run["curve"]]
        ys = [p["valid_ppl"] for p in run["curve"]]
        test = run["results"]["test_ppl"]
        ax.plot(xs, ys, marker="o", label=f"{labels.get(name, name)} (test {test:.0f})")
    ax.axvline(minutes, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    values = [p["valid_ppl"] for r in runs.values() for p in r["curve"]] or [1.0]
    ticks = [
        t
        for t in (20, 30, 50, 70, 100, 150, 200, 300, 500, 1000, 2000, 5000, 10000)
        if min(values) * 0.8 <= t <= max(values) * 1.25
    ]
    if ticks:
        ax.set_yticks(ticks)
    ax.set_xlabel("wall-clock minutes from the start (earlier validations included)")
    ax.set_ylabel("validation perplexity")
    width = runs["cpu"]["config"]["model"]["hid_dim"]
    ax.set_title(f"Same width ({width}), same {minutes:g}-minute budget")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--width", type=int, default=0, help="override both recipes' width (0 = the cpu preset's)")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N tokens of each split")
    parser.add_argument(
        "--order",
        default="original,cpu,cpu-fp32",
        help="which runs first (cpu-fp32 is skipped where the cpu preset already trains in fp32)",
    )
    parser.add_argument("--runs-dir", default="", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for the JSON and the PNG")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prepared = prepare(load_corpus("austen"))
    chosen = configs(args.minutes, args.width, args.subset_tokens)
    if not {"original", "cpu"} <= set(args.order.split(",")):
        raise SystemExit("--order must include original and cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs_dir or tmp)
        runs = {}
        for name in [n for n in args.order.split(",") if n in chosen]:
            run_dir = root / f"ttq-{name}"
            if run_dir.exists():
                raise SystemExit(f"{run_dir} exists: remove it or pick another --runs-dir")
            runs[name] = run_one(name, chosen[name], run_dir, prepared)
    runs = {name: runs[name] for name in chosen if name in runs}  # fixed order for the table and figure
    original, cpu = runs["original"]["results"]["test_ppl"], runs["cpu"]["results"]["test_ppl"]
    improvement = 1 - cpu / original
    rows = [
        {
            "recipe": name,
            "precision": run["precision"],
            "width": run["config"]["model"]["hid_dim"],
            "epochs": run["results"]["epochs_run"],
            "train_tokens_per_s": run["results"]["train_tokens_per_s"],
            "valid_ppl": run["results"]["valid_ppl"],
            "test_ppl": run["results"]["test_ppl"],
            "cpu_s": run["cpu_s"],
        }
        for name, run in runs.items()
    ]
    print(f"{args.minutes:g} minutes each, {torch.get_num_threads()} torch thread(s)")
    common.print_table(rows)
    print(f"cpu preset test perplexity {100 * improvement:.1f}% lower (target >= {100 * TARGET_IMPROVEMENT:.0f}%)")
    plot(runs, args.minutes, out / "time_to_quality.png")
    payload = {
        "minutes": args.minutes,
        "threads": torch.get_num_threads(),
        "vocab_size": len(prepared.vocab),
        "rows": rows,
        "improvement": improvement,
        "target_improvement": TARGET_IMPROVEMENT,
        "met": improvement >= TARGET_IMPROVEMENT,
        "runs": runs,
        "figure": "time_to_quality.png",
    }
    common.RESULTS = out
    print(f"wrote {common.write_result('time_to_quality', payload)} and time_to_quality.png")
    return payload


if __name__ == "__main__":
    main()
