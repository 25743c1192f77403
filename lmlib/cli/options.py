"""Options several commands share, spelled once; and the parser every command uses.

`Parser` is argparse with what a user needs after a mistake: a command's own usage on its
errors (`train --hidden-dim 64` is train's mistake, not the top level's), "did you mean" for
a flag or a choice that is nearly right, and old option spellings that still work for old
commands but are shown nowhere (`deprecated_alias`).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from lmlib.config import DEVICES, PROTOCOLS


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser with "did you mean", each command's own usage on its errors, hidden old spellings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}  # an old option spelling -> today's (deprecated_alias)
        self.command = False  # a subcommand's parser: unknown arguments are its error, with its usage

    def parse_known_args(self, args=None, namespace=None):
        args = self._today(list(sys.argv[1:] if args is None else args))
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and self.command:
            self.error(self._unrecognized(extras))
        return namespace, extras

    def _today(self, args: list[str]) -> list[str]:
        """Old option spellings as today's (before a `--`, which ends the options)."""
        if not self.aliases:
            return args
        out = []
        for i, arg in enumerate(args):
            if arg == "--":
                return out + args[i:]
            flag, equals, value = arg.partition("=")
            out.append(self.aliases[flag] + equals + value if flag in self.aliases else arg)
        return out

    def _unrecognized(self, extras: list[str]) -> str:
        shown = [s for a in self._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
        hints = []
        for flag in (e.partition("=")[0] for e in extras if e.startswith("--") and e != "--"):
            close = difflib.get_close_matches(flag, shown, n=1, cutoff=0.6)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
        return f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else "")

    def _check_value(self, action, value):
        """An invalid choice (a command, a preset) names the nearest valid one."""
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            message = f"invalid choice: {value!r} (choose from {', '.join(choices)}){hint}"
            raise argparse.ArgumentError(action, message)
        super()._check_value(action, value)


def deprecated_alias(parser: Parser, old: str, new: str) -> None:
    """Accept `old` for the option `new` (old commands keep working) without showing it anywhere."""
    parser.aliases[old] = new


def add_corpus(parser: argparse.ArgumentParser) -> None:
    """--corpus, --protocol, --min-freq: the DataConfig fields, as every command names them."""
    parser.add_argument("--corpus", default="austen", help="austen (embedded, default), hpd, or a path")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=None,
        help="how to split and build the vocabulary (default: original; given for pre-split folders)",
    )
    parser.add_argument(
        "--min-freq",
        type=int,
        default=None,
        help="keep words seen at least N times (default: 3 under original, 1 under given)",
    )


def add_run_dir(parser: Parser, help: str, required: bool = True, default=None) -> None:
    """--run-dir, the one name for a run directory."""
    parser.add_argument("--run-dir", dest="run_dir", required=required, default=default, help=help)
    deprecated_alias(parser, "--run", "--run-dir")  # the spelling before 0.2, in old scripts


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: the GPU when there is one")


def add_model(parser: Parser, required: bool = True) -> None:
    """--model NAME|DIR or --run-dir DIR: the model a command reads (one of the two; `required` or not)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--model",
        default=None,
        metavar="NAME|DIR",
        help="a shipped model (austen), a folder written by `lmlib export`, a run directory, "
        "or a Hugging Face Hub id (owner/name)",
    )
    source.add_argument("--run-dir", dest="run_dir", default=None, help="a run directory, e.g. runs/cpu")
    deprecated_alias(parser, "--run", "--run-dir")  # the spelling before 0.2, in old scripts


def model_source(args: argparse.Namespace, default: str | None = None) -> str | Path:
    """What --model (a name, folder or Hub id) or --run-dir (a folder: a Path) named; `default` when neither."""
    if args.run_dir is not None:
        return Path(args.run_dir)
    return args.model or default


def add_serving(parser: argparse.ArgumentParser) -> None:
    """--serving: how the weights compute (lmlib.pretrained.serving)."""
    parser.add_argument(
        "--serving",
        default="auto",
        choices=("auto", "fp32", "bf16", "int8"),
        help="how the weights compute: auto (the fastest within 1%% of fp32's perplexity on this machine), "
        "fp32, bf16, or int8 (dynamic quantisation, CPU)",
    )
