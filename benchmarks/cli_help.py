"""How long `python -m lmlib --help` takes: the first thing a newcomer runs (target: under a second).

    python benchmarks/cli_help.py [--repeat 10]

Each run is a fresh interpreter, as a user's is; the table gives the median and the slowest
of `--repeat` runs of `--help` and of `generate --help`, beside a bare `python -c pass` (the
interpreter's own start-up) and `import torch` (what the help no longer pays for). The
parser itself is checked to import no torch by tests/unit/test_cli_help.py; the time is
measured here, not asserted in a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -m lmlib --help": ["-m", "lmlib", "--help"],
    "python -m lmlib generate --help": ["-m", "lmlib", "generate", "--help"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def seconds(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for label, command in COMMANDS.items():
        seconds(command)  # warm the file cache once
        times = [seconds(command) for _ in range(args.repeat)]
        rows.append({"command": label, "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)})
    common.print_table(rows)
    path = common.write_result(
        "cli_help",
        {"command": "python benchmarks/cli_help.py " + " ".join(sys.argv[1:]), "repeat": args.repeat,
         "load_avg": os.getloadavg(), "target_s": 1.0, "rows": rows},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
