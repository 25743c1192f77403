"""Idle and half-open connections cannot lock the web app, and a half-closed client gets its answer (issue 20).

Against the real server process (`lmlib.apps.web.serve`, waitress with lmlib.apps.web.connections):
110 clients that connect and send nothing or half a request line used to fill waitress's 100
connections for a minute, and every /health timed out; a client that sent its request and shut
down its sending side (`nc -N`) got no answer at all.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from contextlib import ExitStack

import pytest
from lm_fixtures import start_web_server, stop

from lmlib.apps.web.connections import CLEANUP_SECONDS, IDLE_SECONDS, connection_limit


@pytest.fixture(scope="module")
def server(tiny_run):
    process, url = start_web_server(tiny_run)
    try:
        yield url
    finally:
        stop(process)


def address(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    return host, int(port)


def open_idle(url: str, count: int, stack: ExitStack) -> list[socket.socket]:
    """`count` connections that send nothing, or half a request line (every other one), and wait."""
    sockets = []
    for i in range(count):
        sock = stack.enter_context(socket.create_connection(address(url), timeout=10))
        if i % 2:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        sockets.append(sock)
    return sockets


def get(url: str, path: str = "health", timeout: float = 10) -> int:
    with urllib.request.urlopen(url + path, timeout=timeout) as response:
        response.read()
        return response.status


def half_closed(url: str, request: bytes) -> bytes:
    """Send `request`, shut down the sending side (nc -N), read until the server closes."""
    with socket.create_connection(address(url), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("count", [110, connection_limit() + 20])
def test_idle_and_half_open_connections_never_lock_out_health_and_the_page(server, count):
    with ExitStack() as stack:
        open_idle(server, count, stack)
        time.sleep(0.5)  # let the server accept them all first
        for _ in range(3):
            assert get(server) == 200 and get(server, "") == 200


def test_a_client_that_half_closes_after_its_request_gets_the_answer(server):
    host, port = address(server)
    for path in ("/health", "/", "/static/app.js"):
        answer = half_closed(server, f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), (path, answer[:200])
    body = json.dumps({"prompt": "the", "max_new_tokens": 3}).encode()
    head = f"POST /generate HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    answer = half_closed(server, head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # A half-close is the FIN of a client that left: no generation is started for it, and it is told why.
    assert answer.startswith(b"HTTP/1.1 499 ") and b"keep the connection open until the answer arrives" in answer
    assert get(server) == 200  # and the server carries on


def test_an_idle_connection_is_closed_by_the_server(server):
    with socket.create_connection(address(server), timeout=IDLE_SECONDS + 4 * CLEANUP_SECONDS + 30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # and nothing more
        assert sock.recv(1) == b""  # the server closed it (waitress: channel_timeout)
