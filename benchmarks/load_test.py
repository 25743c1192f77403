"""Load on the web app over loopback: busy, abandoning and slow clients, and /health meanwhile.

    python benchmarks/load_test.py                      # trains the smoke preset, then 16 clients, 30 s
    python benchmarks/load_test.py --run runs/cpu [--clients 16] [--seconds 30] [--max-new-tokens 50]

For `--seconds`, on loopback only: `--clients` threads post /generate over keep-alive
connections (a 503 is counted, and its Retry-After obeyed, as a polite client would);
`--abandoned` threads post /generate and close the socket at once, again and again;
`--slow` threads send each request body a byte at a time over `--slow-seconds`; and a probe
gets /health every 100 ms. Reports completed requests per second, p50/p95 latency, the
503s, the errors other than 503 (target 0) and /health's p99 and max latency (target under
100 ms throughout), prints a table and writes benchmarks/results/<name>.json with the
machine, the threads and the load average (the machine may be shared: the load says so).

The server is the production one (`lmlib.apps.web.serve`, waitress) in its own process, so
the clients here do not share its interpreter. `--out DIR` writes the JSON elsewhere
(tests); `--threads N` sets the server's torch threads.
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

from lmlib.apps.web import Limits, waitress_options

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: this measures the server, not a network
PROBE_EVERY = 0.1  # seconds between /health probes

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
        sock.bind((HOST, 0))
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
            if health(port)["status"] == "ok":
                return server, port
        except (OSError, ValueError):
            time.sleep(0.25)
    server.terminate()
    raise SystemExit("the server did not start within 120 s")


def health(port: int, timeout: float = 2) -> dict:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    connection.request("GET", "/health")
    return json.loads(connection.getresponse().read())


def request_body(rng: random.Random, max_new_tokens: int) -> bytes:
    payload = {"prompt": rng.choice(PROMPTS), "max_new_tokens": max_new_tokens, "temperature": 0.8}
    return json.dumps({**payload, "seed": rng.randrange(2**31)}).encode()


def raw_request(body: bytes, port: int) -> bytes:
    """The bytes of POST /generate, for clients that write the socket themselves."""
    head = f"POST /generate HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()


class Recorder:
    """What the client threads saw, appended under one lock: (kind, seconds, status, tokens)."""

    def __init__(self):
        self.rows: list[tuple[str, float, int, int]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, seconds: float, status: int, tokens: int = 0) -> None:
        with self._lock:
            self.rows.append((kind, seconds, status, tokens))

    def of(self, kind: str) -> list[tuple[str, float, int, int]]:
        with self._lock:
            return [row for row in self.rows if row[0] == kind]


def busy_client(port: int, until: float, max_new_tokens: int, seed: int, out: Recorder) -> None:
    """Post /generate over one keep-alive connection until `until`; wait out each 503's Retry-After."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            connection.request(
                "POST", "/generate", request_body(rng, max_new_tokens), {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
            status, retry = response.status, float(response.getheader("Retry-After") or 0)
        except (OSError, http.client.HTTPException, ValueError):
            connection.close()  # the next request opens a new connection
            status, retry, answer = 0, 0.0, {}
        out.add("generate", time.perf_counter() - started, status, len(answer.get("tokens", [])))
        if status == 503:
            time.sleep(max(0.0, min(retry, until - time.monotonic())))
    connection.close()


def abandoning_client(port: int, until: float, seed: int, out: Recorder) -> None:
    """Post /generate and close the socket without reading, every 100 ms."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        body = request_body(rng, 50)
        try:
            with socket.create_connection((HOST, port), timeout=10) as sock:
                sock.sendall(raw_request(body, port) + body)
            out.add("abandoned", 0.0, 0)
        except OSError:
            out.add("abandoned", 0.0, -1)  # could not even connect: an error
        time.sleep(0.1)


def slow_client(port: int, until: float, send_seconds: float, seed: int, out: Recorder) -> None:
    """Send each request's body one byte at a time over `send_seconds`, then read the answer."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        body = request_body(rng, 20)
        started = time.perf_counter()
        try:
            with socket.create_connection((HOST, port), timeout=120) as sock:
                sock.sendall(raw_request(body, port))
                for i in range(len(body)):
                    sock.sendall(body[i : i + 1])
                    time.sleep(send_seconds / len(body))
                status = int(sock.makefile("rb").readline().split()[1])
        except (OSError, ValueError, IndexError):
            status = 0
        out.add("slow", time.perf_counter() - started, status)


def probe(port: int, stop: threading.Event, out: Recorder, loads: list) -> None:
    """GET /health every PROBE_EVERY seconds until `stop`; note the load average too."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            status = 0
        out.add("health", time.perf_counter() - started, status)
        loads.append(os.getloadavg()[0])
        stop.wait(PROBE_EVERY)
    connection.close()


def load(port: int, args: argparse.Namespace) -> dict:
    """Run every kind of client for `args.seconds` with the probe alongside; summarise."""
    out, loads, stop = Recorder(), [], threading.Event()
    started = time.monotonic()
    until = started + args.seconds
    workers = (
        [(busy_client, (port, until, args.max_new_tokens, i, out)) for i in range(args.clients)]
        + [(abandoning_client, (port, until, 1000 + i, out)) for i in range(args.abandoned)]
        + [(slow_client, (port, until, args.slow_seconds, 2000 + i, out)) for i in range(args.slow)]
    )
    threads = [threading.Thread(target=target, args=arguments) for target, arguments in workers]
    prober = threading.Thread(target=probe, args=(port, stop, out, loads))
    prober.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    prober.join()
    elapsed = time.monotonic() - started  # includes the last requests that began before the end
    return summarise(out, elapsed, args) | {"load_avg_max_during": max(loads, default=float("nan"))}


def summarise(out: Recorder, elapsed: float, args: argparse.Namespace) -> dict:
    generate, slow, probes = out.of("generate"), out.of("slow"), out.of("health")
    served = [row for row in generate if row[2] == 200]
    latencies = [row[1] for row in served] or [float("nan")]
    probe_ms = [1000 * row[1] for row in probes] or [float("nan")]
    failed = lambda rows, ok=(200, 503): sum(row[2] not in ok for row in rows)  # noqa: E731
    return {
        "clients": args.clients,
        "abandoning_clients": args.abandoned,
        "slow_clients": args.slow,
        "seconds": round(elapsed, 2),
        "requests": len(served),
        "requests_per_s": len(served) / elapsed,
        "tokens_per_s": sum(row[3] for row in served) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "max_ms": 1000 * max(latencies),
        "refused_503": sum(row[2] == 503 for row in generate + slow),
        "errors": failed(generate) + failed(slow) + failed(probes, ok=(200,)) + failed(out.of("abandoned"), ok=(0,)),
        "abandoned_sent": len(out.of("abandoned")),
        "slow_requests": len(slow),
        "slow_served": sum(row[2] == 200 for row in slow),
        "health_probes": len(probes),
        "health_p50_ms": percentile(probe_ms, 50),
        "health_p99_ms": percentile(probe_ms, 99),
        "health_max_ms": max(probe_ms),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run folder (default: train the smoke preset)")
    parser.add_argument("--clients", type=int, default=16, help="busy clients posting /generate (default 16)")
    parser.add_argument("--abandoned", type=int, default=4, help="clients that post and close at once (default 4)")
    parser.add_argument("--slow", type=int, default=2, help="clients that send bodies byte by byte (default 2)")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="how long a slow client takes per body")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="the server's torch threads (0 = its default)")
    parser.add_argument("--name", default="load_test", help="results file name (NAME.json)")
    parser.add_argument("--out", default=str(common.RESULTS), help="folder for NAME.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else train_smoke(Path(tmp) / "smoke")
        server, port = start_server(run_dir, args.threads)
        load_before, cpu_before = os.getloadavg(), cpu_seconds(server.pid)
        try:
            row = load(port, args)
            row["cpu_seconds"] = cpu_used(cpu_before, cpu_seconds(server.pid))
            server_load = health(port, timeout=30)["load"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    load_after = os.getloadavg()
    row = {"run": run_dir.name, "max_new_tokens": args.max_new_tokens, **row, "server_counts": server_load}
    report(row, load_before, load_after)
    common.RESULTS = Path(args.out)
    path = common.write_result(args.name, {**row, **server_description(args), "load_avg_before": load_before,
                                           "load_avg_after": load_after})  # fmt: skip
    print(f"wrote {path}")
    return row


def cpu_seconds(server_pid: int) -> dict | None:
    """CPU seconds so far: the whole machine (busy, all cores), the server and this process."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        server = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # not Linux: no /proc
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    mine = os.times()
    return {
        "machine": (user + nice + system + irq + softirq + steal) / tick,
        "server": (int(server[11]) + int(server[12])) / tick,  # utime, stime
        "clients": mine.user + mine.system,
    }


def cpu_used(before: dict | None, after: dict | None) -> dict | None:
    """CPU seconds spent during the run; `others` is what other processes on the machine used."""
    if before is None or after is None:
        return None
    used = {key: round(after[key] - before[key], 1) for key in before}
    return used | {"others": round(used["machine"] - used["server"] - used["clients"], 1)}


def server_description(args: argparse.Namespace) -> dict:
    limits, options = Limits(), waitress_options(Limits())
    return {
        "server": f"lmlib.apps.web.serve: waitress, {options['threads']} threads, "
        f"{limits.max_concurrent} generation slots + {limits.max_queue} queued",
        "threads": args.threads or "default",
    }


def report(row: dict, load_before, load_after) -> None:
    """Print the result as a two-column table, and what the load average says about it."""
    shown = {key: value for key, value in row.items() if key not in ("server_counts", "cpu_seconds")}
    common.print_table([{"measure": key, "value": value} for key, value in shown.items()])
    print(f"server's own counts: {row['server_counts']}")
    print(
        f"load average before {load_before[0]:.1f}, during at most {row['load_avg_max_during']:.1f}, "
        f"after {load_after[0]:.1f} on {os.cpu_count()} cores; CPU seconds: {row['cpu_seconds']}"
    )
    cpu = row["cpu_seconds"]
    if cpu and cpu["others"] > 0.1 * row["seconds"]:
        print(f"other processes used {cpu['others']} CPU seconds meanwhile: every figure is slower for it")


def train_smoke(folder: Path) -> Path:
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    print("no --run given: training the smoke preset for the load test")
    train(get_preset("smoke"), folder, progress=False)
    return folder


if __name__ == "__main__":
    main()
