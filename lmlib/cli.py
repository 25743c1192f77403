"""Command-line interface: `python -m lmlib {prepare,...} --help`.

User errors (LMError) print one line on stderr and exit with status 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import LMError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lmlib",
        description="Word-level LSTM language models: prepare corpora, train, evaluate, generate.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_prepare(commands)
    return parser


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="austen", help="austen (embedded, default), hpd, or a path")
    parser.add_argument(
        "--protocol", choices=["original", "train-vocab", "by-book", "given"], default=None,
        help="how to split and build the vocabulary (default: original; given for pre-split folders)",
    )
    parser.add_argument("--min-freq", type=int, default=None, help="keep words seen at least N times (default 3)")


def add_prepare(commands) -> None:
    parser = commands.add_parser(
        "prepare", help="load a corpus, build vocabulary and splits, print statistics",
        description="Load a corpus, build the vocabulary and splits, and print their statistics.",
    )
    add_corpus_arguments(parser)
    parser.add_argument("--out", default=None, help="also write the prepared data to this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(handler=run_prepare)


def run_prepare(args) -> int:
    from .corpus import load_corpus
    from .prepared_io import save_prepared
    from .splits import prepare
    from .stats import format_report, summary

    prepared = prepare(load_corpus(args.corpus), args.protocol, args.min_freq)
    if args.out:
        save_prepared(prepared, args.out)
    if args.json:
        print(json.dumps(summary(prepared)))
    else:
        print(format_report(prepared))
        if args.out:
            print(f"\nprepared data written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
