"""Test-time methods side by side: static, +cache, +dynamic evaluation, and both, tuned on valid only.

    python benchmarks/test_time_eval.py --threads 1                        # both models (trains any missing)
    python benchmarks/test_time_eval.py --only embedded --cpu-run runs/cpu-18ep

Two models: the `cpu` preset on the embedded corpus, trained for a fixed number of epochs
(`--epochs`, 18 by default: the 10-minute run of time_to_quality.json reached 18.6 epochs
on this machine; a fixed count makes the model the same however loaded the machine is; the
plateau schedule does not depend on the epoch count), and `zaremba-small` on the Penn
Treebank (`--ptb`, what ptb_reproduction.py records; published static test 114.5). A run
directory that holds a finished run is reused; a missing one is trained first (hours of
CPU for PTB on a shared 2-core machine). For each model: static evaluation, then each
method with its settings chosen on the validation split only and the test split scored
once (lmlib.evaluation.tuning); the run's test_time.json gets the same record. Writes
benchmarks/results/test_time_eval.json with the machine, threads and load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import common
import torch

from lmlib.evaluation.records import evaluate_run_methods
from lmlib.evaluation.tuning import GRIDS, METHODS
from lmlib.presets import get_preset
from lmlib.training.loop import train
from lmlib.training.runs import RunPaths, read_config, read_metric_rows, read_results

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_PTB_STATIC = 114.5  # Zaremba et al. 2014, small, test
TARGETS = {"cache_gain": 0.10, "dynamic_gain": 0.15, "cache_speed": 0.25}


def ensure_run(run_dir: Path, config, as_is: bool) -> dict:
    """A finished run in `run_dir`: reused, or trained (resumed) when missing; `as_is`: its best weights so far."""
    if as_is:
        rows = read_metric_rows(RunPaths(run_dir))
        if not rows:
            raise SystemExit(f"{run_dir} has no finished epoch to evaluate")
        return {"unfinished": read_results(run_dir) is None, "epochs_run": float(rows[-1]["epoch"])}
    if read_results(run_dir) is None:
        print(f"training {run_dir} ...", flush=True)
        train(config, run_dir, progress=False)
    return read_results(run_dir)


def evaluate(name: str, run_dir: Path, grid: str) -> dict:
    """All methods on one run; the table rows and the raw record."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    record = evaluate_run_methods(run_dir, METHODS, grid=grid, device="cpu", log=lambda line: print(f"  {line}"))
    methods = record["methods"]
    static = methods["static"]
    rows = [
        {
            "model": name, "method": method, "valid_ppl": entry["valid_ppl"], "test_ppl": entry["test_ppl"],
            "change": entry["test_ppl"] / static["test_ppl"] - 1, "seconds": entry["seconds"],
            "tokens_per_s": entry["tokens_per_s"], "cost_ratio": entry["cost_ratio"],
            "settings": entry["settings"] or "",
        }
        for method, entry in methods.items()
    ]  # fmt: skip
    config, info = read_config(run_dir)
    return {
        "run_dir": str(run_dir), "config": config.to_dict(), "results": read_results(run_dir),
        "rows": rows, "methods": methods, "rows_per_split": record["rows"],
        "wall_s": time.perf_counter() - started, "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
    }  # fmt: skip


def targets(models: dict) -> dict:
    """Each target of issue 15 against its measured value (None when that model was not run)."""
    out = {}
    embedded = models.get("embedded")
    if embedded:
        m = embedded["methods"]
        cache_gain = 1 - m["cache"]["test_ppl"] / m["static"]["test_ppl"]
        dynamic_gain = 1 - m["dynamic"]["test_ppl"] / m["static"]["test_ppl"]
        speed = 1 / m["cache"]["cost_ratio"]  # against the static pass timed just before it
        out["embedded_cache_gain"] = {"measured": cache_gain, "target": TARGETS["cache_gain"],
                                      "met": cache_gain >= TARGETS["cache_gain"]}  # fmt: skip
        out["embedded_dynamic_gain"] = {"measured": dynamic_gain, "target": TARGETS["dynamic_gain"],
                                        "met": dynamic_gain >= TARGETS["dynamic_gain"]}  # fmt: skip
        out["cache_speed_vs_static"] = {"measured": speed, "target": TARGETS["cache_speed"],
                                        "met": speed >= TARGETS["cache_speed"]}  # fmt: skip
    ptb = models.get("ptb")
    if ptb:
        m = ptb["methods"]
        out["ptb_both_improve"] = {
            "measured": {k: m[k]["test_ppl"] for k in ("static", "cache", "dynamic")},
            "published_static": PUBLISHED_PTB_STATIC,
            "met": m["cache"]["test_ppl"] < m["static"]["test_ppl"]
            and m["dynamic"]["test_ppl"] < m["static"]["test_ppl"],
        }
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-run", default="runs/cpu-18ep", help="run dir of the cpu-preset model (trained if absent)"
    )
    parser.add_argument("--ptb-run", default="runs/ptb-zaremba-small", help="run dir of zaremba-small on PTB")
    parser.add_argument("--ptb", default=str(ROOT.parent / "shared" / "bench" / "ptb"), help="the PTB folder")
    parser.add_argument("--epochs", type=int, default=18, help="epochs of the cpu-preset model when trained here")
    parser.add_argument("--only", choices=("embedded", "ptb"), help="one model only")
    parser.add_argument("--grid", choices=tuple(GRIDS), default="full", help="tuning grid")
    parser.add_argument("--subset-tokens", type=int, default=0, help="train on the first N tokens only (tests)")
    parser.add_argument("--as-is", action="store_true", help="evaluate a run's best weights so far, even unfinished")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--name", default="test_time_eval")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    subset = {"subset_tokens": args.subset_tokens} if args.subset_tokens else {}
    plan = {
        "embedded": (Path(args.cpu_run), get_preset("cpu", max_minutes=None, epochs=args.epochs, **subset)),
        "ptb": (Path(args.ptb_run), get_preset("zaremba-small", corpus=args.ptb, **subset)),
    }
    models = {}
    for name, (run_dir, config) in plan.items():
        if args.only in (None, name):
            state = ensure_run(run_dir, config, args.as_is)
            print(f"{name}: {run_dir}", flush=True)
            models[name] = evaluate(name, run_dir, args.grid)
            models[name]["trained"] = state
    rows = [row for model in models.values() for row in model["rows"]]
    common.print_table([{**r, "change": f"{r['change']:+.1%}", "settings": str(r["settings"])} for r in rows])
    checked = targets(models)
    for key, value in checked.items():
        print(f"{key}: {'met' if value['met'] else 'NOT met'} ({value.get('measured')})")
    if args.out:
        common.RESULTS = Path(args.out)
    payload = {"threads": torch.get_num_threads(), "grid": args.grid, "rows": rows, "targets": checked,
               "models": models, "load_avg_end": os.getloadavg()}  # fmt: skip
    print(f"wrote {common.write_result(args.name, payload)}")
    return payload


if __name__ == "__main__":
    main()
