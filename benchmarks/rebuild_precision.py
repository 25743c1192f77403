"""What a rebuild of the default report on another CPU gives: the same arms, other kernels.

`precision: mixed` trains in bf16 where the CPU has native bf16 (AVX-512 BF16 / AMX: oneDNN's
bf16 LSTM kernel exists) and in fp32 where it does not (AVX2 only). The committed report of
one machine and a rebuild on the other therefore differ in arithmetic; this says which numbers
move and by how much, judged against the seed ranges exactly as the report judges its arms
(lmlib.report.analysis.Verdict: a change is an effect only beyond the seed range of both).

    python benchmarks/rebuild_precision.py [--before FILE] [--after reports/default]

--before defaults to the bf16 build kept in benchmarks/results/default_report_zen4_bf16.json,
--after to the committed reports/default/summary.json. Prints a table and writes
benchmarks/results/rebuild_precision.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.common import print_table, write_result  # noqa: E402
from lmlib.report.budgets import compare_budgets, from_summary, read_summary  # noqa: E402

BEFORE = ROOT / "benchmarks" / "results" / "default_report_zen4_bf16.json"


def read_build(path: Path, name: str):
    """A report's summary.json, or a benchmark file that keeps one under "summary"."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return (from_summary(data["summary"], name) if "summary" in data else read_summary(path, name)), data


def precisions(data: dict) -> dict[str, list[str]]:
    summary = data.get("summary", data)
    found: dict[str, list[str]] = {}
    for run in summary.get("runs", []):
        found.setdefault(run["arm"], []).append(str(run.get("resolved_precision", "?")))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=BEFORE)
    parser.add_argument("--after", type=Path, default=ROOT / "reports" / "default" / "summary.json")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for rebuild_precision.json")
    args = parser.parse_args(argv)
    common.RESULTS = Path(args.out)
    after_path = args.after / "summary.json" if args.after.is_dir() else args.after
    before, before_data = read_build(args.before, "before")
    after, after_data = read_build(after_path, "after")
    comparison = compare_budgets(before, after)
    kinds = precisions(before_data), precisions(after_data)
    rows = [_row(a, kinds) for a in comparison.arms]
    print_table(rows)
    conclusions = [{"arm": c.arm, "vs": c.vs, "before": c.short.text() if c.short else None,
                    "after": c.long.text() if c.long else None, "outcome": str(c.outcome)}
                   for c in comparison.conclusions]  # fmt: skip
    print()
    print_table(conclusions)
    path = write_result("rebuild_precision", {
        "command": "python benchmarks/rebuild_precision.py",
        "before": {"file": _relative(args.before), "machine": before_data.get("machine"),
                   "versions": before_data.get("summary", before_data).get("versions")},
        "after": {"file": _relative(after_path), "versions": after_data.get("versions"),
                  "build_machine": after_data.get("machine")},
        "arms": rows, "conclusions": conclusions,
    })  # fmt: skip
    print(f"\nwrote {_relative(path)}")
    return 0


def _row(arm, kinds) -> dict:
    before, after = arm.short, arm.long
    return {
        "arm": arm.arm,
        "precision before": "/".join(sorted(set(kinds[0].get(arm.arm, ["—"])))),
        "test before": before.test.text() if before else "—",
        "precision after": "/".join(sorted(set(kinds[1].get(arm.arm, ["—"])))),
        "test after": after.test.text() if after else "—",
        "change": round(after.test.mean - before.test.mean, 1) if before and after else None,
        "change %": round(100 * (after.test.mean / before.test.mean - 1), 1) if before and after else None,
        "beyond the seed ranges": arm.verdict.text() if arm.verdict else "in one build only",
        "epochs after": after.epochs_text if after else "—",
    }


def _relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


if __name__ == "__main__":
    raise SystemExit(main())
