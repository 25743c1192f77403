"""The original recipe on a GPU: the original training loop vs lmlib, epoch for epoch.

    bash benchmarks/gpu.sh [--epochs 3]            # on a machine with a CUDA GPU
    python benchmarks/gpu_compare.py --size 16x16x2 --epochs 1 --subset-tokens 20000   # CPU smoke

The same data (the default corpus's training split, or --corpus) and the original recipe
(1024/1024/2, dropout 0.65, batch 128, BPTT 50, Adam 1e-3, clip 0.25, full softmax) for
each of:

  reference      benchmarks/reference.py, fp32, `.item()` (a device sync) every step
  lmlib fp32     the same maths through lmlib's step: no per-step sync
  lmlib auto     lmlib with mixed precision (bf16 autocast where the fused cuDNN LSTM
                 takes it, else fp16 with a grad scaler), as `lmlib train` runs on a GPU

Each variant trains `--epochs` epochs in turn; an epoch's time ends with a device sync,
the first epoch includes cuDNN's warm-up. Reports seconds per epoch (median), tokens/s,
peak GPU memory of each variant (torch.cuda.max_memory_allocated, reset in between) and
the ratio to the reference. On a machine without a GPU it runs on the CPU (GPU memory null).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path

import common
import torch
from throughput import lmlib_variant, reference_variant

from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.presets import get_preset
from lmlib.training.device import resolve_precision


def build(name: str, size, vocab_size: int, ids: torch.Tensor, device: torch.device):
    """One variant, with the precision it runs in."""
    if name == "reference":
        return reference_variant(size, vocab_size, ids, device), "fp32"
    config = get_preset("original", emb_dim=size[0], hid_dim=size[1], num_layers=size[2])
    precision = "fp32" if name == "lmlib fp32" else resolve_precision("auto", device)
    return lmlib_variant(name, config, vocab_size, ids, device, precision), precision


def run_variant(name: str, size, vocab_size: int, ids: torch.Tensor, device: torch.device, epochs: int) -> dict:
    cuda = device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(1234)
    variant, precision = build(name, size, vocab_size, ids, device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    steps = (variant.data.size(1) - 1) // variant.config.train.bptt  # full windows, as the original trimmed
    seconds = []
    for _ in range(epochs):
        variant.column = variant.data.size(1)  # start the epoch from column 0 with a fresh state
        sync()
        started = time.perf_counter()
        variant.run(steps, sync)
        seconds.append(time.perf_counter() - started)
    tokens = steps * variant.data.size(0) * variant.config.train.bptt
    row = {
        "variant": name,
        "precision": precision,
        "epochs": epochs,
        "first_epoch_s": seconds[0],
        "s_per_epoch": statistics.median(seconds[1:] or seconds),
        "tokens_per_s": tokens / statistics.median(seconds[1:] or seconds),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }
    del variant
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x1024x2", help="emb x hidden x layers")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--corpus", default="austen", help="a corpus name or path (e.g. the Harry Potter folder)")
    parser.add_argument("--subset-tokens", type=int, default=0, help="use only the first N training tokens")
    parser.add_argument("--variants", default="reference,lmlib fp32,lmlib auto")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for gpu_compare.json")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = tuple(int(n) for n in args.size.split("x"))
    prepared = prepare(load_corpus(args.corpus))
    ids = torch.as_tensor(prepared.splits["train"], dtype=torch.long)
    ids = ids[: args.subset_tokens] if args.subset_tokens else ids
    rows = [run_variant(name, size, len(prepared.vocab), ids, device, args.epochs) for name in args.variants.split(",")]
    for row in rows:
        row["ratio"] = rows[0]["s_per_epoch"] / row["s_per_epoch"]
    print(
        f"{device.type}: {common.machine()['gpu'] or common.machine()['cpu']}; model {args.size}, "
        f"vocabulary {len(prepared.vocab):,}, {ids.numel():,} training tokens"
    )
    common.print_table(rows)
    payload = {
        "device": device.type,
        "size": args.size,
        "corpus": args.corpus,
        "vocab_size": len(prepared.vocab),
        "train_tokens": int(ids.numel()),
        "load_avg": os.getloadavg(),
        "rows": rows,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
    }
    common.RESULTS = Path(args.out)
    print(f"wrote {common.write_result('gpu_compare', payload)}")
    return payload


if __name__ == "__main__":
    main()
