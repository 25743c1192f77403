"""How long one 100-word generation takes, in the library and through the web app.

    python benchmarks/generation_latency.py --run runs/cpu [--words 100] [--repeat 10]

"library" times `Generator.generate` in this process (with torch's default threads, then
one); "web /generate" times the same request to the production server (waitress) over
loopback, one client at a time; "first word" is the time to the first streamed token. A
generation can end early at `<eos>`, so the words actually produced are reported too.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import time
from pathlib import Path

import common
from load_test import percentile, start_server

from lmlib.errors import LMError
from lmlib.generate import Generator
from lmlib.training.runs import read_config

PROMPT = "it is a truth universally acknowledged that"


def summarise(step: str, seconds: list[float], words: list[int]) -> dict:
    return {
        "step": step,
        "median_ms": 1000 * statistics.median(seconds),
        "p95_ms": 1000 * percentile(seconds, 95),
        "min_ms": 1000 * min(seconds),
        "words": statistics.mean(words),
        "ms_per_word": 1000 * sum(seconds) / max(sum(words), 1),
    }


def library(generator: Generator, words: int, repeat: int, label: str) -> list[dict]:
    """Time the whole generation and the first streamed word, in this process."""
    generator.generate(PROMPT, max_new_tokens=5, seed=0)  # warm-up: first call allocates
    whole, produced, first = [], [], []
    for seed in range(repeat):
        started = time.perf_counter()
        result = generator.generate(PROMPT, max_new_tokens=words, temperature=0.8, seed=seed)
        whole.append(time.perf_counter() - started)
        produced.append(len(result.tokens))
        started = time.perf_counter()
        next(iter(generator.stream(PROMPT, max_new_tokens=words, temperature=0.8, seed=seed)), None)
        first.append(time.perf_counter() - started)
    return [
        summarise(f"library generate, {label}", whole, produced),
        summarise(f"library first word, {label}", first, [1] * repeat),
    ]


def web(run_dir: Path, words: int, repeat: int) -> dict:
    """Time POST /generate against the production server, one request at a time."""
    server, port = start_server(run_dir)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        seconds, produced = [], []
        for seed in range(-1, repeat):  # seed -1: a warm-up request, not counted
            body = json.dumps({"prompt": PROMPT, "max_new_tokens": words, "temperature": 0.8, "seed": max(seed, 0)})
            started = time.perf_counter()
            connection.request("POST", "/generate", body, {"Content-Type": "application/json"})
            answer = json.loads(connection.getresponse().read())
            if seed >= 0:
                seconds.append(time.perf_counter() - started)
                produced.append(len(answer["tokens"]))
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return summarise("web /generate", seconds, produced)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/cpu", help="a trained run (default runs/cpu, the cpu preset)")
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-web", action="store_true", help="skip the web measurement")
    parser.add_argument("--name", default="generation_latency", help="results file name (NAME.json)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for NAME.json")
    args = parser.parse_args(argv)
    run_dir = Path(args.run)
    if not (run_dir / "model.safetensors").is_file():
        raise SystemExit(
            f"no trained run in {run_dir}: train one first, e.g. python -m lmlib train --preset cpu --run-dir {run_dir}"
        )
    try:
        generator = Generator.from_run(run_dir)
    except LMError as err:
        raise SystemExit(f"error: {err}") from None
    import torch

    threads, load_before = torch.get_num_threads(), os.getloadavg()
    rows = library(generator, args.words, args.repeat, f"{threads} torch threads")
    # One sequence of one word per step is too small to share between threads: on a busy
    # machine the second thread mostly waits for a core (measured 4.2 s vs 0.65 s here).
    torch.set_num_threads(1)
    rows += library(generator, args.words, args.repeat, "1 torch thread")
    torch.set_num_threads(threads)
    if not args.no_web:
        rows.append(web(run_dir, args.words, args.repeat))
    model = read_config(run_dir)[0].model
    print(
        f"{args.words}-word generation, run {run_dir.name} "
        f"(emb {model.emb_dim}, hidden {model.hid_dim} x {model.num_layers}), {args.repeat} repeats; "
        f"load average {load_before[0]:.1f}"
    )
    common.print_table(rows)
    common.RESULTS = Path(args.out)
    path = common.write_result(
        args.name,
        {
            "run": run_dir.name,
            "words": args.words,
            "repeat": args.repeat,
            "prompt": PROMPT,
            "rows": rows,
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
    )
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
