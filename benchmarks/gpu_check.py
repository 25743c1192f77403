"""The GPU path, checked and timed in one run: `bash benchmarks/gpu.sh` (under 10 minutes on a T4).

    bash benchmarks/gpu.sh                          # on a machine with a CUDA GPU: the checks below
    python benchmarks/gpu_check.py --size 16x16x2 --steps 20 --subset-tokens 8000   # its self-check on a CPU

The original recipe (1024/1024/2, dropout 0.65, batch 128, BPTT 50, Adam 1e-3, clip 0.25, full
softmax) on the embedded corpus's training split (or --corpus):

(a) agreement  `--steps` windows in fp32 and in the precision `auto` picks there (fp16 with a
               gradient scaler on a T4, bf16 on Ampere and later), from the same initial
               weights on the same batches. Fails when the mean training loss of the last
               `--window` steps parts by more than `--tolerance` (relative), or either is not
               finite, or either did not fall. bf16 and fp16 round the activations, so the two
               runs drift apart slowly; 2% of the loss (about 0.1 nats at loss 6) is far more
               than rounding moves it in a few hundred steps, far less than a broken scaler,
               cast or kernel does (those diverge, stall or give inf/NaN).
(b) speed      seconds per epoch (a full pass over the split after `--warmup-steps` steps) of
               the reference (benchmarks/reference.py: the study's loop, fp32, `.item()` every
               step), lmlib with identical maths (fp32) and lmlib in `auto`. Targets on a GPU:
               `auto` >= 3x the reference, identical maths >= 0.95x.
(c) memory     peak GPU memory of each variant (torch.cuda.max_memory_allocated, reset between).

Prints a table and writes benchmarks/results/gpu.json (gpu_cpu.json when no GPU was found).
Exit status 1 when a check failed: the agreement anywhere; the speed targets on a GPU only
(on a CPU they do not apply and are reported as null).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

import common
import torch
from throughput import lmlib_variant, reference_variant

from lmlib.data.batching import batchify
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.errors import LMError
from lmlib.model.build import build_model
from lmlib.presets import get_preset
from lmlib.training.device import resolve_device, resolve_precision
from lmlib.training.optim import UpdateRule

TARGET_MIXED, TARGET_IDENTICAL = 3.0, 0.95  # x the reference's speed, on the same card
BUDGET_MINUTES = 10.0


def train_losses(config, vocab_size: int, ids: torch.Tensor, device, precision: str, steps: int) -> list[float]:
    """Training NLL of `steps` consecutive windows as lmlib's loop trains them (seeded: same weights, same batches)."""
    torch.manual_seed(config.train.seed)
    model = build_model(vocab_size, config.model).to(device)
    rule = UpdateRule(config.train, model, device, precision)
    data, bptt, losses = batchify(ids, config.train.batch_size).to(device), config.train.bptt, []
    hidden, column = model.init_hidden(data.size(0), device), 0
    model.train()
    for _ in range(steps):
        if column + bptt + 1 > data.size(1):
            hidden, column = model.init_hidden(data.size(0), device), 0
        x, y = data[:, column : column + bptt], data[:, column + 1 : column + 1 + bptt]
        nll, hidden = rule.step(x, y, model.detach_hidden(hidden))
        losses.append(nll.detach())  # kept on the device: no sync per step
        column += bptt
    return [float(v) for v in torch.stack(losses).cpu()]


def agreement(fp32: list[float], other: list[float], window: int, tolerance: float) -> dict:
    """Whether two loss curves of the same training agree: the mean of their last `window` steps, relatively."""
    last32, last = sum(fp32[-window:]) / window, sum(other[-window:]) / window
    start32, start = sum(fp32[:window]) / window, sum(other[:window]) / window
    relative = abs(last - last32) / abs(last32) if math.isfinite(last) and math.isfinite(last32) else math.inf
    finite = all(math.isfinite(v) for v in fp32 + other)
    learned = last32 < start32 and last < start
    return {
        "fp32_last_loss": last32, "other_last_loss": last, "fp32_first_loss": start32, "other_first_loss": start,
        "relative_difference": relative, "tolerance": tolerance, "finite": finite, "learned": learned,
        "passed": bool(finite and learned and relative <= tolerance),
    }  # fmt: skip


def time_epoch(name: str, size, vocab_size: int, ids: torch.Tensor, device, precision: str, warmup: int) -> dict:
    """Seconds for one epoch (every full window of the split) of one variant, after `warmup` steps; peak memory."""
    cuda = device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(1234)
    if name == "reference":
        variant = reference_variant(size, vocab_size, ids, device)
    else:
        config = get_preset("original", emb_dim=size[0], hid_dim=size[1], num_layers=size[2])
        variant = lmlib_variant(name, config, vocab_size, ids, device, precision)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    steps = (variant.data.size(1) - 1) // variant.config.train.bptt  # full windows, as the original trimmed
    variant.run(warmup, sync)  # cuDNN's algorithm search and the allocator's first growth
    variant.column = variant.data.size(1)  # the timed epoch starts at column 0 with a fresh state
    sync()
    started = time.perf_counter()
    variant.run(steps, sync)
    seconds = time.perf_counter() - started
    row = {
        "variant": name, "precision": precision, "s_per_epoch": seconds,
        "tokens_per_s": steps * variant.data.size(0) * variant.config.train.bptt / seconds,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }  # fmt: skip
    del variant
    return row


def speed_targets(rows: list[dict], on_gpu: bool) -> dict:
    """Each timed variant's speed against the reference; pass/fail per target on a GPU, null elsewhere."""
    reference = rows[0]["s_per_epoch"]
    targets = {}
    for row, target in zip(rows[1:], (TARGET_IDENTICAL, TARGET_MIXED)):
        row["ratio"] = reference / row["s_per_epoch"]
        targets[row["variant"]] = {"ratio": row["ratio"], "target": target,
                                   "passed": bool(row["ratio"] >= target) if on_gpu else None}  # fmt: skip
    rows[0]["ratio"] = 1.0
    return targets


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x1024x2", help="emb x hidden x layers (the original: 1024x1024x2)")
    parser.add_argument("--corpus", default="austen", help="a corpus name or path (e.g. your Harry Potter folder)")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N training tokens")
    parser.add_argument("--steps", type=int, default=300, help="(a) training windows per precision")
    parser.add_argument("--window", type=int, default=50, help="(a) compare the mean loss of the last N steps")
    parser.add_argument("--tolerance", type=float, default=0.02, help="(a) largest relative difference allowed")
    parser.add_argument("--precision", default="auto", help="(a, b) what to check against fp32 (default: auto's pick)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="(b) untimed steps before the timed epoch")
    parser.add_argument("--skip-timing", action="store_true", help="check (a) only")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for gpu.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    device = resolve_device("auto")
    precision = resolve_precision(args.precision, device)
    size = tuple(int(n) for n in args.size.split("x"))
    prepared = prepare(load_corpus(args.corpus))
    ids = torch.as_tensor(prepared.splits["train"], dtype=torch.long)
    ids = ids[: args.subset_tokens] if args.subset_tokens else ids
    vocab = len(prepared.vocab)
    config = get_preset("original", emb_dim=size[0], hid_dim=size[1], num_layers=size[2])
    window = min(args.window, max(1, args.steps // 2))
    curves = {p: train_losses(config, vocab, ids, device, p, args.steps) for p in ("fp32", precision)}
    check = agreement(curves["fp32"], curves[precision], window, args.tolerance) | {"precision": precision}
    variants = (("reference", "fp32"), ("lmlib identical", "fp32"), (f"lmlib {args.precision}", precision))
    timed = () if args.skip_timing else variants
    rows = [time_epoch(name, size, vocab, ids, device, p, args.warmup_steps) for name, p in timed]
    targets = speed_targets(rows, device.type == "cuda") if rows else {}
    wall = time.perf_counter() - started
    passed = check["passed"] and all(t["passed"] is not False for t in targets.values())
    report(device, args, vocab, ids, check, rows, targets, wall, passed)
    payload = {
        "device": device.type, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "size": args.size, "corpus": args.corpus, "vocab_size": vocab, "train_tokens": int(ids.numel()),
        "steps": args.steps, "window": window, "load_avg": os.getloadavg(), "agreement": check,
        "losses": curves, "rows": rows, "targets": targets, "wall_seconds": wall,
        "within_budget": wall <= BUDGET_MINUTES * 60, "passed": passed,
    }  # fmt: skip
    common.RESULTS = Path(args.out)
    print(f"wrote {common.write_result('gpu' if device.type == 'cuda' else 'gpu_cpu', payload)}")
    return 0 if passed else 1


def report(device, args, vocab, ids, check, rows, targets, wall, passed) -> None:
    where = common.machine()["gpu"] or common.machine()["cpu"]
    print(f"{device.type}: {where}; model {args.size}, vocabulary {vocab:,}, {ids.numel():,} training tokens")
    verdict = "PASS" if check["passed"] else "FAIL"
    print(
        f"(a) agreement over {args.steps} steps: mean loss of the last steps fp32 {check['fp32_last_loss']:.4f}, "
        f"{check['precision']} {check['other_last_loss']:.4f}: {check['relative_difference']:.2%} apart "
        f"(tolerance {check['tolerance']:.0%}; finite {check['finite']}, learned {check['learned']}): {verdict}"
    )
    if rows:
        print("(b, c) one epoch of each variant:")
        common.print_table(rows)
    for name, target in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "not applicable without a GPU"}[target["passed"]]
        print(f"    {name}: {target['ratio']:.2f}x the reference (target >= {target['target']}x): {verdict}")
    budget = "within" if wall <= BUDGET_MINUTES * 60 else "OVER"
    verdict = "all checks passed" if passed else "A CHECK FAILED"
    print(f"{verdict}; {wall / 60:.1f} minutes ({budget} the {BUDGET_MINUTES:g}-minute budget)")


def cli(argv=None) -> int:
    """main(), with a user's mistake (no bf16 LSTM kernel on this CPU, an unknown corpus) as one line, exit 2."""
    try:
        return main(argv)
    except LMError as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
