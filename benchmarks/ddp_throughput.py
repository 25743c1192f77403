"""Data-parallel training throughput on this CPU: two torchrun ranks against one process.

    python benchmarks/ddp_throughput.py [--sizes small,cpu] [--rounds 3] [--subset-tokens 0]

For each model size, the same global batch trained for one epoch of a slice of the default
corpus by the real `python -m lmlib train`, in three ways:

  1 process x 1 thread     the baseline
  1 process x 2 threads    the other way to use a second core (intra-op threads)
  2 ranks x 1 thread       torchrun --nproc_per_node=2, gloo, DistributedDataParallel

The speed is the epoch's training tokens per second from metrics.csv (all ranks' tokens over
rank 0's step time; validation excluded; process start-up excluded). Rounds interleave the
variants and each variant's median is reported, with the load average around every run:
the machine is shared, so the numbers are noisy. Sizes: `small` is the smoke preset
(32 wide), `cpu` the cpu preset (256 wide, adaptive softmax, its own batch and precision).

It also measures what the ranks' per-step agreement costs (lmlib.training.distributed: one
all-reduce of 3 flags per step on gloo): `--probe-agree` is run under torchrun and times it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

SIZES = {
    # preset, its global batch, a slice long enough for ~100 steps at that batch and BPTT
    "small": ("smoke", 40_000),
    "cpu": ("cpu", 60_000),
}
VARIANTS = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1)]
ROOT = Path(__file__).resolve().parents[1]


def train_command(preset: str, run_dir: Path, subset: int, processes: int) -> list[str]:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return launcher + ["-m", "lmlib", "train", "--preset", preset, "--run-dir", str(run_dir), "--samples", "0",
                       "--json", "--set", "epochs=1", "--set", f"subset_tokens={subset}", "--set", "device=cpu",
                       "--set", "max_minutes=none", "--set", "checkpoint_minutes=none"]  # fmt: skip


def measure(preset: str, subset: int, processes: int, threads: int) -> dict:
    """One run's training tokens/s, and the load average before and after it."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        before = os.getloadavg()[0]
        done = subprocess.run(train_command(preset, run_dir, subset, processes), env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=1800)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
        metrics = (run_dir / "metrics.csv").read_text().splitlines()
        row = dict(zip(metrics[0].split(","), metrics[1].split(",")))
        return {"tokens_per_s": float(row["train_tokens_per_s"]), "load": [before, os.getloadavg()[0]]}


def probe_agree(calls: int = 2000) -> None:
    """Under torchrun: time `agree(False, False, False)`, the loop's per-step all-reduce (rank 0 prints)."""
    import torch

    torch.set_num_threads(1)
    from lmlib.training.distributed import current

    dist = current()
    for _ in range(50):
        dist.agree(False, False, False)
    started = time.perf_counter()
    for _ in range(calls):
        dist.agree(False, False, False)
    seconds = (time.perf_counter() - started) / calls
    if dist.is_main:
        print(json.dumps({"agree_us_per_step": round(seconds * 1e6, 1), "calls": calls}))


def agree_cost() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(__file__).resolve()), "--probe-agree"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"the agreement probe failed:\n{done.stderr[-3000:]}")
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,cpu", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subset-tokens", type=int, default=0, help="override each size's corpus slice")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for ddp_throughput.json")
    parser.add_argument("--probe-agree", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_agree:
        return probe_agree()
    rows, load_start = [], os.getloadavg()
    for size in args.sizes.split(","):
        preset, subset = SIZES[size]
        subset = args.subset_tokens or subset
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in VARIANTS}
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]  # no variant always first or last
            for name, processes, threads in order:
                runs[name].append(measure(preset, subset, processes, threads))
        base = statistics.median(m["tokens_per_s"] for m in runs[VARIANTS[0][0]])
        for name, processes, threads in VARIANTS:
            speed = statistics.median(m["tokens_per_s"] for m in runs[name])
            loads = [x for m in runs[name] for x in m["load"]]
            rows.append({"size": size, "preset": preset, "variant": name, "processes": processes,
                         "threads_each": threads, "tokens_per_s": round(speed, 1), "vs_1x1": round(speed / base, 3),
                         "load_min": round(min(loads), 2), "load_max": round(max(loads), 2)})  # fmt: skip
    agree = agree_cost()
    common.print_table(rows)
    print(f"per-step agreement (all-reduce of 3 flags, gloo, 2 ranks): {agree['agree_us_per_step']} µs")
    print(f"load average (1 min) at start {load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    payload = {"rows": rows, "agree": agree, "rounds": args.rounds,
               "load_average": {"start": list(load_start), "end": list(os.getloadavg())}}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ddp_throughput.json").write_text(json.dumps({"machine": common.machine(), **payload}, indent=2) + "\n")


if __name__ == "__main__":
    main()
