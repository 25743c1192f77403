"""Load on the web app over loopback: N clients posting to /generate for a fixed time.

    python benchmarks/load_test.py --run runs/cpu [--clients 8] [--seconds 30] [--max-new-tokens 50]
    python benchmarks/load_test.py --seconds 2          # no --run: trains the smoke preset first

`--out DIR` writes the JSON elsewhere (tests); `--threads N` fixes the server's torch threads.

The server is the production one (`lmlib.apps.web.serve`, waitress) in its own process, so the
clients' threads here do not share its interpreter. Reports requests per second, p50/p95
latency and the number of errors (the target is zero), prints a table and writes
benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "it is a truth universally acknowledged",
    "she said",
    "mr darcy",
    "the weather was",
    "elizabeth looked at",
    "i cannot",
]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def start_server(run_dir: Path, threads: int = 0) -> tuple[subprocess.Popen, int]:
    """`lmlib.apps.web.serve` in a child process on a free loopback port, once /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = f"from lmlib.apps.web import serve; serve({str(run_dir)!r}, port={port})"
    if threads:
        code = f"import torch; torch.set_num_threads({threads}); {code}"
    server = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited:\n{server.stderr.read()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.25)
    server.terminate()
    raise SystemExit("the server did not start within 120 s")


def client(port: int, until: float, max_new_tokens: int, seed: int, out: list, lock: threading.Lock) -> None:
    """Post /generate over one keep-alive connection until `until`; append (seconds, ok, tokens)."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < until:
        body = json.dumps(
            {
                "prompt": rng.choice(PROMPTS),
                "max_new_tokens": max_new_tokens,
                "temperature": 0.8,
                "seed": rng.randrange(2**31),
            }
        )
        started = time.perf_counter()
        try:
            connection.request("POST", "/generate", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            ok, tokens = response.status == 200, len(answer.get("tokens", []))
        except (OSError, http.client.HTTPException, ValueError):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            ok, tokens = False, 0
        with lock:
            out.append((time.perf_counter() - started, ok, tokens))
    connection.close()


def load(port: int, clients: int, seconds: float, max_new_tokens: int) -> dict:
    """Run `clients` threads for `seconds` and summarise what they saw."""
    samples: list = []
    lock = threading.Lock()
    started = time.monotonic()
    threads = [
        threading.Thread(target=client, args=(port, started + seconds, max_new_tokens, i, samples, lock))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started  # includes the last requests that began before the end
    latencies = [s for s, ok, _ in samples if ok] or [float("nan")]
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(samples),
        "errors": sum(not ok for _, ok, _ in samples),
        "requests_per_s": len(samples) / elapsed,
        "tokens_per_s": sum(t for *_, t in samples) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "max_ms": 1000 * max(latencies),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run folder (default: train the smoke preset)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="the server's torch threads (0 = torch's default)")
    parser.add_argument("--name", default="load_test", help="results file name (NAME.json)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for NAME.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else train_smoke(Path(tmp) / "smoke")
        server, port = start_server(run_dir, args.threads)
        load_before = os.getloadavg()
        try:
            row = load(port, args.clients, args.seconds, args.max_new_tokens)
        finally:
            server.terminate()
            server.wait(timeout=30)
    row = {"run": run_dir.name, "max_new_tokens": args.max_new_tokens, **row}
    print(f"load average before: {load_before[0]:.1f} (other work on this machine slows every figure)")
    common.print_table([row])
    common.RESULTS = Path(args.out)
    path = common.write_result(
        args.name,
        {
            **row,
            "server": "lmlib.apps.web.serve: waitress, 8 threads, 4 generation slots",
            "threads": args.threads or "default",
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
    )
    print(f"wrote {path}")
    return row


def train_smoke(folder: Path) -> Path:
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    print("no --run given: training the smoke preset for the load test")
    train(get_preset("smoke"), folder, progress=False)
    return folder


if __name__ == "__main__":
    main()
