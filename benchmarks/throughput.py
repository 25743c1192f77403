"""Training throughput of the original loop vs lmlib, and the hardware efficiency of each.

    python benchmarks/throughput.py [--sizes 256x256x2,512x512x2] [--rounds 5] [--steps 2] [--threads 1]

Three variants per model size (emb x hidden x layers), on the same token stream (the
default corpus's training split) and its vocabulary:

  reference   benchmarks/reference.py: the original's model and train step, `.item()` every step
  identical   lmlib with the `original` preset at this size: the same maths through
              LSTMLanguageModel + UpdateRule.step (loss summed on the device, no sync per step)
  cpu recipe  lmlib with the `cpu` preset's choices at this size (softmax head, dropout kind,
              regularisers, its own batch size and BPTT length), in the preset's `mixed`
              precision (bf16 autocast on a CPU with bf16 instructions) and, where that
              is not fp32, once more in fp32 to show what the precision alone buys

Every lmlib variant uses its fused Adam, as training does. A row's efficiency is its
matrix-product FLOP/s over those of a large matrix product in its own precision.

The machine is shared and noisy, so the variants are measured side by side: after one
warm-up step each, every round times `--steps` steps of each variant in turn (order
reversed every other round) plus one large float32 matrix product; a variant's speed is
its median over rounds and its ratio is the median of the per-round ratios to the
reference measured in that same round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common
import reference
import torch

from lmlib.config import RunConfig
from lmlib.data.batching import batchify
from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.model.lstm import LSTMLanguageModel, lstm_sizes, resolve_cutoffs
from lmlib.presets import get_preset
from lmlib.training.device import resolve_precision
from lmlib.training.optim import UpdateRule

TARGET_IDENTICAL, TARGET_RECIPE, TARGET_EFFICIENCY = 0.95, 2.5, 0.5


# --- FLOP counting --------------------------------------------------------------------
# Only the matrix products are counted (2 FLOPs per multiply-add); gates, softmax,
# dropout, the embedding lookup and the optimiser are the overhead the efficiency exposes.
# Per token, forward:
#   LSTM layer (input n_in, hidden h):  2 * 4h * (n_in + h)     W_ih x_t and W_hh h_{t-1}
#   full softmax (features d, vocab V): 2 * d * V
#   adaptive softmax (Grave et al. 2017): the head, 2 * d * (c_0 + clusters), for every
#       token; cluster i (projection d_i = d / 4^(i+1), s_i words) only for the fraction f_i
#       of targets that fall in it: f_i * 2 * (d * d_i + d_i * s_i)
# A training step costs 3x the forward: the backward computes one product for the input
# gradient and one for the weight gradient per forward product.


def train_flops_per_token(config: RunConfig, vocab_size: int, target_ids: torch.Tensor) -> float:
    """Matrix-product FLOPs of one training step per token (see the comment above)."""
    model = config.model
    forward = sum(2 * 4 * h * (n_in + h) for n_in, h in lstm_sizes(model))  # the sizes the model builds
    d = model.emb_dim if model.tie_weights else model.hid_dim
    if not model.adaptive_softmax:
        forward += 2 * d * vocab_size
    else:
        cutoffs = list(resolve_cutoffs(vocab_size, model.cutoffs)) + [vocab_size]
        forward += 2 * d * (cutoffs[0] + len(cutoffs) - 1)
        for i in range(len(cutoffs) - 1):
            d_i = int(d // 4 ** (i + 1))  # div_value=4, as in lmlib.model.lstm
            share = float(((target_ids >= cutoffs[i]) & (target_ids < cutoffs[i + 1])).double().mean())
            forward += share * 2 * (d * d_i + d_i * (cutoffs[i + 1] - cutoffs[i]))
    return 3.0 * forward


# --- variants -------------------------------------------------------------------------


@dataclass
class Variant:
    """A training step over consecutive windows of its own batchified copy of the stream."""

    name: str
    config: RunConfig  # the maths it runs (the reference mirrors `original`)
    data: torch.Tensor  # (batch, columns)
    step: Callable[[torch.Tensor, torch.Tensor, bool], None]  # (x, y, restart) -> None
    flops_per_token: float = 0.0
    column: int = 0
    speeds: list[float] = field(default_factory=list)  # tokens/s per round

    precision: str = "fp32"

    def run(self, steps: int, sync: Callable[[], None]) -> float:
        """Train `steps` windows; return tokens per second."""
        bptt = self.config.train.bptt
        tokens = 0
        started = time.perf_counter()
        for _ in range(steps):
            restart = self.column + bptt + 1 > self.data.size(1)
            if restart:
                self.column = 0
            x = self.data[:, self.column : self.column + bptt]
            y = self.data[:, self.column + 1 : self.column + 1 + bptt]
            self.step(x, y, restart)
            self.column += bptt
            tokens += y.numel()
        sync()
        return tokens / (time.perf_counter() - started)


def reference_variant(size: tuple[int, int, int], vocab_size: int, ids: torch.Tensor, device) -> Variant:
    config = get_preset("original", emb_dim=size[0], hid_dim=size[1], num_layers=size[2], device=device.type)
    model, optimizer, criterion = reference.make_training(vocab_size, *size, device)
    batch = config.train.batch_size
    data = reference.get_data(ids, batch)  # stays on the CPU, as the original's did
    state = {"hidden": model.init_hidden(batch, device)}

    def step(x, y, restart):
        if restart:
            state["hidden"] = model.init_hidden(batch, device)
        x, y = x.to(device), y.to(device)  # the original copied each window to the device
        _, state["hidden"] = reference.train_step(model, optimizer, criterion, x, y, state["hidden"], config.train.clip)

    model.train()
    return Variant("reference", config, data, step)


def lmlib_variant(
    name: str, config: RunConfig, vocab_size: int, ids: torch.Tensor, device, precision: str = "fp32"
) -> Variant:
    model = LSTMLanguageModel(vocab_size, config.model).to(device)
    rule = UpdateRule(config.train, model, device, precision)
    batch = config.train.batch_size
    data = batchify(ids, batch).to(device)
    state = {
        "hidden": model.init_hidden(batch, device),
        "loss": torch.zeros((), dtype=torch.float64, device=device),
    }

    def step(x, y, restart):  # as lmlib.training.loop's inner loop
        if restart:
            state["hidden"] = model.init_hidden(batch, device)
        hidden = model.detach_hidden(state["hidden"])
        nll, state["hidden"] = rule.step(x, y, hidden)
        state["loss"] += nll.detach().double() * y.numel()  # summed on the device: no sync

    model.train()
    return Variant(name, config, data, step, precision=precision)


def make_variants(size, vocab_size: int, ids: torch.Tensor, device, recipe: str = "cpu") -> list[Variant]:
    emb, hid, layers = size
    recipe_config = get_preset(recipe, emb_dim=emb, hid_dim=hid, num_layers=layers)
    precision = resolve_precision(recipe_config.runtime.precision, device)
    variants = [
        reference_variant(size, vocab_size, ids, device),
        lmlib_variant(
            "lmlib identical",
            get_preset("original", emb_dim=emb, hid_dim=hid, num_layers=layers),
            vocab_size,
            ids,
            device,
        ),
    ]
    if precision != "fp32":
        variants.append(lmlib_variant(f"lmlib {recipe} recipe, fp32", recipe_config, vocab_size, ids, device))
    variants.append(lmlib_variant(f"lmlib {recipe} recipe", recipe_config, vocab_size, ids, device, precision))
    for v in variants:
        v.flops_per_token = train_flops_per_token(v.config, vocab_size, v.data[:, 1:])
    return variants


# --- measurement ----------------------------------------------------------------------


def matmul_flops(n: int, precision: str = "fp32", repeat: int = 3) -> float:
    """FLOP/s of an n x n x n matrix product in `precision` (best of `repeat`) on this thread count."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(variants: list[Variant], rounds: int, steps: int, matmul_n: int) -> dict[str, list[float]]:
    """Warm up, then time the variants side by side; returns each precision's matmul FLOP/s per round."""
    sync = (lambda: torch.cuda.synchronize()) if torch.cuda.is_available() else (lambda: None)
    for v in variants:
        v.run(1, sync)
    peaks = {precision: [] for precision in dict.fromkeys(v.precision for v in variants)}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            v.speeds.append(v.run(steps, sync))
        for precision, values in peaks.items():
            values.append(matmul_flops(matmul_n, precision))
    return peaks


def summarise(size, variants: list[Variant], peaks: dict[str, list[float]]) -> list[dict]:
    ref = variants[0]
    rows = []
    for v in variants:
        ratios = [s / r for s, r in zip(v.speeds, ref.speeds)]
        efficiency = [s * v.flops_per_token / p for s, p in zip(v.speeds, peaks[v.precision])]
        rows.append(
            {
                "size": "x".join(map(str, size)),
                "variant": v.name,
                "precision": v.precision,
                "batch": f"{v.data.size(0)}x{v.config.train.bptt}",
                "tokens_per_s": statistics.median(v.speeds),
                "ratio": statistics.median(ratios),
                "gflop_per_token": v.flops_per_token / 1e9,
                "gflop_per_s": statistics.median(v.speeds) * v.flops_per_token / 1e9,
                "efficiency": statistics.median(efficiency),
            }
        )
    return rows


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(n) for n in part.split("x")) for part in text.split(",") if part]


def load_ids(subset_tokens: int):
    prepared = prepare(load_corpus("austen"))
    ids = torch.as_tensor(prepared.splits["train"], dtype=torch.long)
    return (ids[:subset_tokens] if subset_tokens else ids), len(prepared.vocab)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x256x2,512x512x2", help="emb x hidden x layers, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="training steps per variant per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--matmul", type=int, default=2048, help="side of the square matmul that sets the peak")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N training tokens")
    parser.add_argument("--recipe", default="cpu", help="the preset whose choices are compared")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for throughput.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    ids, vocab_size = load_ids(args.subset_tokens)
    load_before = os.getloadavg()
    rows, peaks_all = [], {}
    for size in parse_sizes(args.sizes):
        variants = make_variants(size, vocab_size, ids, device, args.recipe)
        peaks = measure(variants, args.rounds, args.steps, args.matmul)
        for precision, values in peaks.items():
            peaks_all.setdefault(precision, []).extend(values)
        rows += summarise(size, variants, peaks)
    matmul = {precision: statistics.median(values) / 1e9 for precision, values in peaks_all.items()}
    print(
        f"vocabulary {vocab_size:,}; {torch.get_num_threads()} torch thread(s); matmul peak "
        + ", ".join(f"{gflops:.1f} GFLOP/s {p}" for p, gflops in matmul.items())
        + f"; load {load_before[0]:.1f}"
    )
    common.print_table(rows)
    identical = [r["ratio"] for r in rows if r["variant"] == "lmlib identical"]
    recipe = [r["ratio"] for r in rows if r["variant"] == f"lmlib {args.recipe} recipe"]
    payload = {
        "vocab_size": vocab_size,
        "train_tokens": int(ids.numel()),
        "threads": torch.get_num_threads(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "rounds": args.rounds,
        "steps": args.steps,
        "matmul_n": args.matmul,
        "matmul_gflop_per_s": matmul,
        "rows": rows,
        "targets": {
            "identical_ratio": TARGET_IDENTICAL,
            "recipe_ratio": TARGET_RECIPE,
            "efficiency": TARGET_EFFICIENCY,
        },
        "met": {
            "identical_ratio": min(identical) >= TARGET_IDENTICAL,
            "recipe_ratio": min(recipe) >= TARGET_RECIPE,
            "efficiency": all(r["efficiency"] >= TARGET_EFFICIENCY for r in rows),
        },
    }
    common.RESULTS = Path(args.out)
    print(f"wrote {common.write_result('throughput', payload)}")
    return payload


if __name__ == "__main__":
    main()
