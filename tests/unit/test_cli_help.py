"""The CLI parser is built without torch, so `python -m lmlib --help` answers at once (benchmarks/cli_help.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

HEAVY = ("torch", "numpy", "pandas", "safetensors", "lmlib.generate")


def test_building_the_parser_imports_no_torch():
    code = (
        "import json, sys\n"
        "from lmlib.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_generate_help_shows_the_one_default_temperature():
    from lmlib.cli import build_parser
    from lmlib.sampling import DEFAULT_TEMPERATURE

    args = build_parser().parse_args(["generate", "--model", "austen"])
    assert args.temperature == DEFAULT_TEMPERATURE and args.model == "austen" and args.run_dir is None
