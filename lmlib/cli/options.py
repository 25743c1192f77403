"""Options several commands share, spelled once."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmlib.config import DEVICES, PROTOCOLS


def add_corpus(parser: argparse.ArgumentParser) -> None:
    """--corpus, --protocol, --min-freq: the DataConfig fields, as every command names them."""
    parser.add_argument("--corpus", default="austen", help="austen (embedded, default), hpd, or a path")
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default=None,
        help="how to split and build the vocabulary (default: original; given for pre-split folders)",
    )  # fmt: skip
    parser.add_argument(
        "--min-freq", type=int, default=None,
        help="keep words seen at least N times (default: 3 under original, 1 under given)",
    )  # fmt: skip


def add_run_dir(parser: argparse.ArgumentParser, help: str, required: bool = True, default=None) -> None:
    """--run-dir, the one name for a run directory (--run, its old spelling, still works)."""
    parser.add_argument("--run-dir", "--run", dest="run_dir", required=required, default=default, help=help)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when there is one")


def add_model(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--model NAME|DIR or --run-dir DIR: the model a command reads (one of the two; `required` or not)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--model", default=None, metavar="NAME|DIR",
        help="a shipped model (austen), a folder written by `lmlib export`, a run directory, "
        "or a Hugging Face Hub id (owner/name)",
    )  # fmt: skip
    source.add_argument("--run-dir", "--run", dest="run_dir", default=None, help="a run directory, e.g. runs/cpu")


def model_source(args: argparse.Namespace, default: str | None = None) -> str | Path:
    """What --model (a name, folder or Hub id) or --run-dir (a folder: a Path) named; `default` when neither."""
    if args.run_dir is not None:
        return Path(args.run_dir)
    return args.model or default


def add_serving(parser: argparse.ArgumentParser) -> None:
    """--serving: how the weights compute (lmlib.pretrained.serving)."""
    parser.add_argument(
        "--serving", default="auto", choices=("auto", "fp32", "bf16", "int8"),
        help="how the weights compute: auto (the fastest within 1%% of fp32's perplexity on this machine), "
        "fp32, bf16, or int8 (dynamic quantisation, CPU)",
    )  # fmt: skip
