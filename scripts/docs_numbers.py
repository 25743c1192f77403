"""The numbers the README and docs/ quote, written from the JSON files they come from.

    python scripts/docs_numbers.py           # rewrite every generated block in README.md and docs/*.md
    python scripts/docs_numbers.py --check   # exit 1 and name the blocks that differ from their sources

A generated block is Markdown between `<!-- numbers: NAME -->` and `<!-- /numbers -->`; BLOCKS
below says, for each NAME, which committed JSON (a report's summary.json, a benchmark's
results) it is written from. Prose around the blocks names no measured number of its own
(tests/unit/test_docs.py checks both), so the text cannot drift from what was measured.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmlib.report import numbers  # noqa: E402

BLOCK = re.compile(r"(<!-- numbers: (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /numbers -->)", re.S)


def load(relative: str) -> dict:
    return json.loads((ROOT / relative).read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _arm_rows(summary: dict) -> list[list[str]]:
    runs: dict[str, list[dict]] = {}
    for run in summary["runs"]:
        runs.setdefault(run["arm"], []).append(run)
    rows = []
    for arm in summary["arms"]:
        mine = runs[arm["arm"]]
        epochs = sorted({numbers.epochs(r["epochs_run"]) for r in mine}, key=float)
        ended = sorted({str(r["stopped"]).replace("_", " ") for r in mine})
        rows.append([
            f"`{arm['arm']}`", numbers.count(mine[0]["parameters"]),
            numbers.ppl_range(arm["valid_mean"], arm["valid_min"], arm["valid_max"], arm["seeds"]),
            numbers.ppl_range(arm["test_mean"], arm["test_min"], arm["test_max"], arm["seeds"]),
            "–".join(epochs), ", ".join(ended), "/".join(sorted({str(r["resolved_precision"]) for r in mine})),
        ])  # fmt: skip
    return rows


def report_block(folder: str) -> Callable[[], str]:
    """A report's arms: parameters, valid and test perplexity (mean and range over seeds), epochs, how runs ended."""

    def render() -> str:
        summary = load(f"{folder}/summary.json")
        header = ["arm", "parameters", "valid ppl", "test ppl", "epochs", "ended by", "precision"]
        note = (
            f"\n\nFrom `{folder}/summary.json` ({summary.get('machine') or 'machine: see the report'}; "
            f"{numbers.minutes(summary['wall_seconds'])} minutes to build)."
        )
        return table(header, _arm_rows(summary)) + note

    return render


BLOCKS: dict[str, Callable[[], str]] = {
    "default-report": report_block("reports/default"),
}


def rewrite(text: str, blocks: dict[str, Callable[[], str]] = BLOCKS) -> tuple[str, list[str]]:
    """`text` with every generated block rendered again; the names of the blocks that changed."""
    changed = []

    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in blocks:
            raise SystemExit(f"unknown numbers block {name!r}: add it to BLOCKS in scripts/docs_numbers.py")
        body = blocks[name]().rstrip("\n") + "\n"
        if body != match.group("body"):
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(fill, text), changed


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        new, changed = rewrite(text)
        if changed:
            stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "rewritten"
    print("\n".join(f"{verb}: {s}" for s in stale) or "every generated block matches its source")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
