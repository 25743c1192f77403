"""Command-line interface: `python -m lmlib COMMAND --help`, one module per command.

User errors (LMError) print one line on stderr and exit with status 2; no tracebacks.
`--json` makes prepare, train, evaluate and generate print one strict JSON object for scripts
(output.json_line: null for NaN and infinities); text is printed without terminal control
sequences (output.printable).
Heavy imports (torch, papermill, flask) happen inside the commands, so `--help` is fast.
Every parser is an options.Parser: a command's mistakes come with its own usage and a
"did you mean"; old option spellings still work and are shown nowhere (options.deprecated_alias).
"""

from __future__ import annotations

import argparse
import sys

from lmlib.cli import evaluate, export, generation, import_original, prepare, report, serve, sweep, train
from lmlib.cli.options import Parser
from lmlib.errors import LMError, ReportedElsewhere

# each adds its subcommands: add(commands)
COMMANDS = (prepare, train, evaluate, sweep, generation, serve, report, import_original, export)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m lmlib",
        description="Word-level language models (LSTM, Transformer): prepare, train, sweep, evaluate, generate, "
        "serve, report.",
        epilog="Run `python -m lmlib COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add(commands)
    for command in commands.choices.values():
        command.command = True  # its mistakes are reported with its own usage
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ReportedElsewhere:  # under torchrun: rank 0 prints the one line
        return 2
    except LMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
