"""Shared by the generation tests: one tiny trained run per session, free ports, live servers.

A pytest plugin (conftest.py lists it in `pytest_plugins`), so every test module sees these
fixtures without importing them; the trained run is cached here once per session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from lmlib.report import browser as chromium_browser
from lmlib.report.browser import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]
_CACHE: dict[str, object] = {}


def train_tiny_run(folder: Path) -> Path:
    """Train the smoke preset for one epoch into `folder` (a few seconds on CPU)."""
    from lmlib.presets import get_preset
    from lmlib.training.loop import train

    train(get_preset("smoke", epochs=1, subset_tokens=5_000), folder, progress=False)
    return folder


def fit_one_batch(model, x, y, lr: float, steps: int = 150) -> float:
    """Adam on one (x, y) batch for `steps` steps; the last loss (a model that can learn gets near 0)."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(x, model.init_hidden(x.size(0)), y).loss
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The smoke run, trained once per session; $LMLIB_TEST_RUN names a trained run to use instead
    (e.g. the cpu run, for screenshots that read like Austen)."""
    if "run" not in _CACHE:
        given = os.environ.get("LMLIB_TEST_RUN")
        _CACHE["run"] = Path(given) if given else train_tiny_run(tmp_path_factory.mktemp("lm") / "smoke")
    return _CACHE["run"]


@pytest.fixture(scope="session")
def generator(tiny_run):
    if "generator" not in _CACHE:
        from lmlib.generate import Generator

        _CACHE["generator"] = Generator.from_run(tiny_run)
    return _CACHE["generator"]


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a tiny race is acceptable in tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 60.0) -> None:
    """Poll `url` until it answers 200, or fail with the server's output."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{output(process)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s:\n{output(process)}")


def launch(command: list[str], cwd: Path = ROOT) -> subprocess.Popen:
    """Start `command` in its own process group, so that stopping it also stops its children."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty server never blocks on it
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    process.log = log
    return process


def output(process: subprocess.Popen) -> str:
    """What a process started by `launch` has printed so far."""
    process.log.seek(0)
    return process.log.read()


def stop(process: subprocess.Popen) -> None:
    """Terminate `process` and everything it started (e.g. Voila's kernel); kill what lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)  # the group is this process's own (start_new_session)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.log.close()


def start_web_server(run_dir: Path) -> tuple[subprocess.Popen, str]:
    """`lmlib.apps.web.serve` (waitress) in a child process on a free loopback port; returns it and its URL."""
    port = free_port()
    code = f"from lmlib.apps.web import serve; serve({str(run_dir)!r}, port={port})"
    process = launch([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url + "health", process)
    except BaseException:
        stop(process)
        raise
    return process, url


@pytest.fixture(scope="module")
def web_server(tiny_run):
    process, url = start_web_server(tiny_run)
    try:
        yield url
    finally:
        stop(process)


def require_browser() -> None:
    """Skip when Chromium is missing, unless LMLIB_REQUIRE_BROWSER=1 (CI), where that fails."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("LMLIB_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " - LMLIB_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    pytest.importorskip("playwright", reason="playwright (Python) is not installed: pip install -e .[test]")
    with sync_playwright() as playwright:
        chromium = chromium_browser.launch(playwright, CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


PANEL_NOTEBOOK = """from lmlib.apps.panel import panel_for_runs
panel = panel_for_runs([{run!r}])
panel"""


@pytest.fixture(scope="module")
def voila_server(tiny_run, tmp_path_factory):
    """Voila serving a one-cell notebook that shows the panel over the tiny run; yields its URL."""
    folder = tmp_path_factory.mktemp("voila")
    cell = {
        "cell_type": "code",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
        "source": PANEL_NOTEBOOK.format(run=str(tiny_run)),
    }
    notebook = {
        "cells": [cell],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (folder / "panel.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    port = free_port()
    process = launch(
        [
            sys.executable,
            "-m",
            "voila",
            "panel.ipynb",
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--show_tracebacks=True",
        ],
        cwd=folder,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, process, seconds=90)
        yield url
    finally:
        stop(process)


def screenshot_dir(tmp_path: Path) -> Path:
    """Where browser tests save screenshots: $LMLIB_SCREENSHOTS (e.g. reports/screenshots) or tmp."""
    folder = Path(os.environ.get("LMLIB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def serving(app, **options):
    """`app` under the server `serve` runs (waitress, lmlib.apps.web.connections) in a thread on a free
    loopback port; yields its URL."""
    from waitress import wasyncore

    from lmlib.apps.web.connections import build_server
    from lmlib.apps.web.server import listen

    server = build_server(app, listen("127.0.0.1", free_port()), options)
    stop = threading.Event()

    def run():  # waitress's own loop, in steps, so that it closes its sockets itself
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/"
    finally:
        stop.set()
        thread.join(timeout=10)
