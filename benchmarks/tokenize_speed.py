"""How long loading and tokenizing the whole default corpus takes (target: under 2 s).

python benchmarks/tokenize_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import print_table, write_result

from lmlib.data.corpus import load_corpus
from lmlib.data.splits import prepare
from lmlib.data.tokenize import basic_english


def time_it(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    corpus = load_corpus("austen")
    text = " ".join(d.text for d in corpus.documents)
    tokens = len(basic_english(text))
    rows = [
        {"step": "load (gunzip + decode)", "seconds": time_it(lambda: load_corpus("austen"), args.repeat)},
        {"step": "tokenize (basic_english)", "seconds": time_it(lambda: basic_english(text), args.repeat)},
        {"step": "prepare (tokenize+vocab+split+encode)", "seconds": time_it(lambda: prepare(corpus), args.repeat)},
    ]
    for row in rows:
        row["target"] = "< 2 s" if row["step"].startswith("tokenize") else ""
    print(f"Austen corpus: {tokens:,} tokens, median of {args.repeat} runs")
    print_table(rows)
    path = write_result("tokenize_speed", {"tokens": tokens, "repeat": args.repeat, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
