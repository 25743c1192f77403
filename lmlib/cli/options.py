"""Options several commands share, spelled once."""

from __future__ import annotations

import argparse

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
