"""Peak resident memory (RSS) of training the `cpu` preset, and of the original recipe at its width.

    python benchmarks/memory.py [--minutes 1] [--threads 1]

Each recipe trains in a fresh child process for `--minutes` of wall time (then validates
and tests, which allocate too). The child reports two peaks from the kernel's own
accounting: the whole process (`ru_maxrss`: Python, torch, loading and tokenizing the
corpus, training) and training alone (the high-water mark VmHWM, reset through
/proc/self/clear_refs once the corpus is prepared; where that reset is not available
the second figure equals the first). No tracing allocator is involved.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import common


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(recipe: str, minutes: float, width: int, subset_tokens: int, threads: int) -> dict:
    """Train one recipe in this (fresh) process and measure its peaks, in MiB."""
    import torch

    from lmlib.data.corpus import load_corpus
    from lmlib.data.splits import prepare
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    if threads:
        torch.set_num_threads(threads)
    sizes = {"emb_dim": width, "hid_dim": width} if width else {}
    cpu = get_preset("cpu", **sizes)
    common_fields = dict(max_minutes=minutes, subset_tokens=subset_tokens or None, checkpoint_minutes=None)
    config = (
        cpu.replace(**common_fields)
        if recipe == "cpu"
        else get_preset("original", emb_dim=cpu.model.emb_dim, hid_dim=cpu.model.hid_dim, **common_fields)
    )
    prepared = prepare(load_corpus(config.data.corpus))
    gc.collect()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory() as tmp:
        results = train(config, Path(tmp) / recipe, prepared=prepared, progress=False)
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    training_peak = _status_kib("VmHWM") if reset else process_peak
    return {
        "recipe": recipe,
        "width": config.model.hid_dim,
        "batch": f"{config.train.batch_size}x{config.train.bptt}",
        "adaptive_softmax": config.model.adaptive_softmax,
        "rss_before_training_mib": (before or 0) / 1024,
        "peak_training_mib": (training_peak or 0) / 1024,
        "peak_process_mib": process_peak / 1024,
        "epochs": results["epochs_run"],
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget of each recipe")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--width", type=int, default=0, help="override the width (0 = the cpu preset's)")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N tokens of each split")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for memory.json")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.minutes, args.width, args.subset_tokens, args.threads)))
        return {}
    rows = []
    for recipe in ("cpu", "original"):
        command = [
            sys.executable,
            __file__,
            "--child",
            recipe,
            "--minutes",
            str(args.minutes),
            "--width",
            str(args.width),
            "--subset-tokens",
            str(args.subset_tokens),
            "--threads",
            str(args.threads),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the {recipe} child failed:\n{done.stderr}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.minutes:g} minute(s) of training each, in a fresh process")
    common.print_table(rows)
    payload = {"minutes": args.minutes, "load_avg": os.getloadavg(), "rows": rows}
    common.RESULTS = Path(args.out)
    print(f"wrote {common.write_result('memory', payload)}")
    return payload


if __name__ == "__main__":
    main()
