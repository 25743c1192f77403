"""`prepare`: load a corpus, build the vocabulary and splits, print statistics, optionally save them."""

from __future__ import annotations

from lmlib.cli import options
from lmlib.cli.output import json_line, printable


def add(commands) -> None:
    parser = commands.add_parser(
        "prepare",
        help="load a corpus, build vocabulary and splits, print statistics",
        description="Load a corpus, build the vocabulary and splits, and print their statistics.",
    )
    options.add_corpus(parser)
    parser.add_argument(
        "--prepared-dir",
        dest="prepared_dir",
        default=None,
        help="also write the prepared data to this folder (read by notebook 02 and `train`)",
    )
    options.deprecated_alias(parser, "--out", "--prepared-dir")  # the spelling before 0.2, in old scripts
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --prepared-dir even when it holds something other than prepared data",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.data.corpus import load_corpus
    from lmlib.data.prepared import check_prepared_target, save_prepared
    from lmlib.data.splits import prepare
    from lmlib.data.stats import format_report, summary

    if args.prepared_dir:
        check_prepared_target(args.prepared_dir, args.force)  # before the work, not only after it
    prepared = prepare(load_corpus(args.corpus), args.protocol, args.min_freq)
    if args.prepared_dir:
        save_prepared(prepared, args.prepared_dir, force=args.force)
    if args.json:
        print(json_line(summary(prepared)))
    else:
        print(printable(format_report(prepared)))  # words and book titles come from the corpus's files
        if args.prepared_dir:
            print(f"\nprepared data written to {args.prepared_dir}")
    return 0
