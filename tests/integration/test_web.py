"""The Flask app: the original API still works, every bad input is a JSON 400, requests are independent."""

from __future__ import annotations

import ast
import http.client
import inspect
import json
import re
import socket
import subprocess
import sys
import threading
import time

import generation_latency  # benchmarks/ is on sys.path (pytest's pythonpath)
import load_test
import pytest
from conftest import ROOT
from lm_fixtures import free_port, launch, output, serving, stop, wait_for

from lmlib.apps import web
from lmlib.apps.web import STATIC, Busy, Limits, create_app, parse_request, serve, waitress_options
from lmlib.apps.web.admission import Admission
from lmlib.apps.web.guard import HostGuard
from lmlib.errors import LMError
from lmlib.generate import INTERACTIVE_MAX_NEW_TOKENS, GeneratedToken


@pytest.fixture(scope="module")
def client(generator):
    return create_app(generator, name="tiny").test_client()


def post(client, payload, path="/generate"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(path, data=body, content_type="application/json")


def post_as(client, headers: dict, path="/generate"):
    """POST a small valid request with these headers."""
    body = b'{"prompt": "it was", "max_new_tokens": 3}'
    return client.post(path, data=body, headers={"Content-Type": "application/json", **headers})


def events(response) -> list[tuple[str, dict]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    pairs = []
    for block in response.get_data(as_text=True).strip().split("\n\n"):
        kind = re.search(r"^event: (.*)$", block, re.M).group(1)
        data = re.search(r"^data: (.*)$", block, re.M).group(1)
        pairs.append((kind, json.loads(data)))
    return pairs


def test_original_request_fields_still_work(client):
    response = post(client, {"prompt": "it was", "max_seq_len": 30, "temperature": 0.7})
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body["generated_text"], str) and body["generated_text"].lower().startswith("it was")
    assert 1 <= len(body["tokens"]) <= 30
    assert len(body["surprisals"]) == len(body["tokens"])
    assert body["stopped"] in ("length", "eos")


def test_range_input_strings_are_numbers_as_the_original_page_sent_them():
    request = parse_request(b'{"prompt": "it", "max_seq_len": "40", "temperature": "0.5"}', Limits())
    assert (request.max_new_tokens, request.temperature) == (40, 0.5)


def test_same_seed_gives_same_text_and_the_random_seed_is_returned(client):
    first = post(client, {"prompt": "she said", "max_new_tokens": 20, "seed": 7}).get_json()
    again = post(client, {"prompt": "she said", "max_new_tokens": 20, "seed": 7}).get_json()
    assert first["tokens"] == again["tokens"] and first["seed"] == 7
    drawn = post(client, {"prompt": "she said", "max_new_tokens": 20}).get_json()
    replay = post(client, {"prompt": "she said", "max_new_tokens": 20, "seed": drawn["seed"]}).get_json()
    assert replay["tokens"] == drawn["tokens"]


BAD = [
    ({"max_seq_len": 30}, "prompt is required"),
    ({"prompt": 42}, "prompt is required"),
    ({"prompt": "   "}, "prompt is required"),
    ({"prompt": "x" * 2001}, "prompt is 2001 characters"),
    ({"prompt": "a", "temperature": "hot"}, "temperature must be a number"),
    ({"prompt": "a", "temperature": True}, "temperature must be a number"),
    ({"prompt": "a", "temperature": [1]}, "temperature must be a number"),
    ({"prompt": "a", "temperature": 3}, "temperature must be between 0 and 2"),
    ({"prompt": "a", "temperature": -0.1}, "temperature must be between"),
    ({"prompt": "a", "max_seq_len": 0}, "max_new_tokens must be between 1 and 300"),
    ({"prompt": "a", "max_seq_len": 10**6}, "max_new_tokens must be between"),
    ({"prompt": "a", "max_new_tokens": 2.5}, "must be a whole number"),
    ({"prompt": "a", "max_new_tokens": 20, "max_seq_len": 30}, "not both"),
    ({"prompt": "a", "top_k": -1}, "top_k must be between"),
    ({"prompt": "a", "top_p": 0}, "top_p must be between"),
    ({"prompt": "a", "top_p": 1.5}, "top_p must be between"),
    ({"prompt": "a", "seed": -3}, "seed must be between"),
    ({"prompt": "a", "seed": "lucky"}, "seed must be a number"),
    ({"prompt": "a", "colour": "red"}, "unknown field(s) colour"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{prompt: 'a'}", "not valid JSON"),
    (b'{"prompt": "a", "temperature": NaN}', "temperature must be a number"),
    (b'["it was"]', "must be a JSON object"),
    (b"", "not valid JSON"),
    # numbers and nesting Python itself chokes on were 500s
    ({"prompt": "a", "max_new_tokens": 10**400}, "max_new_tokens must be between 1 and 300, got a number of about 401"),
    ({"prompt": "a", "seed": -(10**400)}, "seed must be between"),
    ({"prompt": "a", "temperature": 10**400}, "temperature must be between 0 and 2"),
    (b'{"prompt": "a", "max_new_tokens": ' + b"7" * 5000 + b"}", "holds a number that is too long"),
    (b'{"prompt": "a", "top_k": "' + b"9" * 5000 + b'"}', "top_k must be a number"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b'{"prompt": ' + b'{"a":' * 2000 + b"1" + b"}" * 2001, "nested too deeply"),
]


@pytest.mark.parametrize("path", ["/generate", "/generate/stream"])
@pytest.mark.parametrize(("payload", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_is_a_json_400_that_says_what_is_wrong(client, path, payload, message):
    response = post(client, payload, path)
    assert response.status_code == 400
    assert response.is_json and message in response.get_json()["error"]


@pytest.mark.parametrize("path", ["/generate", "/generate/stream"])
def test_an_oversize_body_is_a_413_that_says_so(client, path):
    for body in (b'{"prompt": "' + b"a" * 20_000 + b'"}', b"x" * 200_000):
        response = post(client, body, path)
        assert response.status_code == 413, body[:20]
        assert "request body is over 16384 bytes" in response.get_json()["error"]


@pytest.mark.parametrize("temperature", [1e-30, 1e-39, 1e-300, 5e-324])
def test_a_temperature_just_above_zero_is_greedy_not_a_500(client, temperature):
    greedy = post(client, {"prompt": "she said", "max_new_tokens": 12, "temperature": 0}).get_json()["tokens"]
    response = post(client, {"prompt": "she said", "max_new_tokens": 12, "temperature": temperature, "seed": 1})
    assert response.status_code == 200 and response.get_json()["tokens"] == greedy


@pytest.mark.parametrize("path", ["/generate", "/generate/stream"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""])
def test_a_post_not_declared_as_json_is_a_415(client, path, content_type):
    # text/plain and forms are what another site's page may post without a CORS preflight
    headers = {"Content-Type": content_type} if content_type else {}  # "": none at all
    response = client.post(path, data=b'{"prompt": "it was"}', headers=headers)
    assert response.status_code == 415 and "Content-Type: application/json" in response.get_json()["error"]


def test_json_with_a_charset_is_json(client):
    response = client.post("/generate", data=b'{"prompt": "it was"}', content_type="application/json; charset=utf-8")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5000", "127.0.0.1.nip.io", "localhost.evil.example", "a@localhost", "x:y"]
)
def test_a_request_for_another_host_name_is_a_421(client, host):
    # DNS rebinding: evil.example resolves to 127.0.0.1, but the browser still sends its name
    for response in (client.get("/health", headers={"Host": host}), post_as(client, {"Host": host})):
        assert response.status_code == 421, host
        assert "does not answer to Host" in response.get_json()["error"]


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example", "file://", "x"])
def test_a_request_from_another_page_is_a_403(client, origin):
    response = post_as(client, {"Origin": origin})
    assert response.status_code == 403 and "other web pages" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("host", "origin"),
    [("127.0.0.1:5000", "http://127.0.0.1:5000"), ("localhost", "http://localhost"), ("[::1]:8000", None)],
)
def test_the_servers_own_names_and_page_are_served(client, host, origin):
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    assert post_as(client, headers).status_code == 200


def test_a_bound_server_checks_its_port_and_a_wildcard_bind_takes_addresses():
    from lmlib.apps.web.request import Refused

    guard = HostGuard.for_bind("127.0.0.1", 5000)
    guard.check("127.0.0.1:5000", "http://localhost:5000")
    guard.check(None, None)  # HTTP/1.0 without Host: no browser sends that
    for host, origin in [("127.0.0.1:5001", None), ("127.0.0.1", None), ("evil.example:5000", None)]:
        with pytest.raises(Refused, match="at port 5000") as refused:
            guard.check(host, origin)
        assert refused.value.status == 421
    with pytest.raises(Refused, match="other web pages") as refused:
        guard.check("127.0.0.1:5000", "http://127.0.0.1:8080")  # another local app's page
    assert refused.value.status == 403
    wide = HostGuard.for_bind("0.0.0.0", 8000, extra=["lm.example.org"])
    wide.check("192.168.1.20:8000", "http://192.168.1.20:8000")
    wide.check(f"{socket.gethostname()}:8000", None)
    wide.check("lm.example.org", "https://lm.example.org")  # behind a proxy, at its port
    with pytest.raises(Refused):
        wide.check("evil.example:8000", None)


def test_the_real_server_refuses_other_hosts_pages_and_plain_text(web_server):
    port = int(web_server.rstrip("/").rsplit(":", 1)[1])
    body = json.dumps({"prompt": "it was", "max_new_tokens": 3})

    def status(method, path, headers, data=None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, data, headers)
        return connection.getresponse().status

    assert status("GET", "/health", {"Host": f"evil.example:{port}"}) == 421
    assert status("GET", "/health", {"Host": f"127.0.0.1:{port + 1}"}) == 421
    json_type = {"Content-Type": "application/json"}
    assert status("POST", "/generate", {**json_type, "Origin": f"http://evil.example:{port}"}, body) == 403
    assert status("POST", "/generate", {"Content-Type": "text/plain"}, body) == 415
    assert status("POST", "/generate", {**json_type, "Origin": f"http://localhost:{port}"}, body) == 200


class Failing:
    """The real generator, made to fail after `after` tokens (LMError, or a bug when `bug`)."""

    def __init__(self, generator, after: int, bug: bool = False):
        self.generator, self.vocab, self.after, self.bug = generator, generator.vocab, after, bug

    def stream(self, prompt, **keywords):
        for i, item in enumerate(self.generator.stream(prompt, **keywords)):
            if i == self.after:
                raise RuntimeError("boom") if self.bug else LMError("the model refused this prompt")
            yield item


@pytest.mark.parametrize("path", ["/generate", "/generate/stream"])
def test_a_refusal_before_the_first_word_is_a_400(generator, path):
    client = create_app(Failing(generator, after=0)).test_client()
    response = post(client, {"prompt": "the", "seed": 1}, path)
    assert response.status_code == 400 and response.get_json()["error"] == "the model refused this prompt"


@pytest.mark.parametrize(("bug", "message"), [(False, "the model refused"), (True, "see the server log")])
def test_a_failure_mid_stream_ends_with_an_error_event(generator, bug, message):
    client = create_app(Failing(generator, after=2, bug=bug)).test_client()
    pairs = events(post(client, {"prompt": "the", "max_new_tokens": 20, "seed": 1}, "/generate/stream"))
    assert [kind for kind, _ in pairs] == ["token", "token", "error"] and message in pairs[-1][1]["error"]


def test_wrong_method_and_unknown_path_answer_json(client):
    assert client.get("/generate").status_code == 405
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and "error" in missing.get_json()


def test_stream_sends_each_token_then_the_same_result_as_generate(client):
    payload = {"prompt": "mr darcy", "max_new_tokens": 15, "temperature": 0.9, "seed": 3}
    pairs = events(post(client, payload, "/generate/stream"))
    kinds = [kind for kind, _ in pairs]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"}
    streamed = [data["token"] for kind, data in pairs if kind == "token"]
    done = pairs[-1][1]
    assert streamed == done["tokens"] == post(client, payload).get_json()["tokens"]


def test_concurrent_requests_share_no_hidden_state(generator):
    app = create_app(generator, limits=Limits(max_concurrent=4))
    seeds = list(range(8))
    alone = {
        s: post(app.test_client(), {"prompt": "the", "max_new_tokens": 25, "seed": s}).get_json()["tokens"]
        for s in seeds
    }
    together: dict[int, list] = {}

    def ask(seed):
        body = post(app.test_client(), {"prompt": "the", "max_new_tokens": 25, "seed": seed}).get_json()
        together[seed] = body["tokens"]

    threads = [threading.Thread(target=ask, args=(s,)) for s in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_each_request_is_bounded_in_time(generator):
    app = create_app(generator, limits=Limits(max_seconds=1e-9))
    body = post(app.test_client(), {"prompt": "the", "max_new_tokens": 100}).get_json()
    assert body["stopped"] == "time" and len(body["tokens"]) == 1


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_admission_refuses_at_once_when_every_slot_and_queue_place_is_taken():
    admission = Admission(slots=1, queue=1, queue_seconds=60)
    release = admission.admit()
    queued = threading.Thread(target=lambda: admission.admit()())
    queued.start()
    wait_until(lambda: admission.counts()["waiting"] == 1)
    with pytest.raises(Busy, match="busy: 1 generations are running and 1 waiting") as refused:
        admission.admit()  # no waiting: the queue is full
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    release()
    release()  # twice is harmless
    queued.join(timeout=10)
    assert admission.counts() == {"running": 0, "waiting": 0, "slots": 1, "queue": 1, "refused": 1, "abandoned": 0}
    admission.admit()()


def test_admission_gives_up_on_a_slot_after_queue_seconds():
    admission = Admission(slots=1, queue=1, queue_seconds=0.05)
    admission.admit()
    with pytest.raises(Busy, match="no generation slot came free in 0.05 s"):
        admission.admit()
    assert admission.counts()["waiting"] == 0


class Slow:
    """A stand-in generator: one word every `delay` seconds until `finish` is set."""

    vocab = ["<unk>", "<eos>", "word"]

    def __init__(self, delay: float = 0.05):
        self.delay, self.finish, self.produced = delay, threading.Event(), 0

    def stream(self, prompt, max_new_tokens=50, **keywords):
        for _ in range(max_new_tokens):
            self.produced += 1
            yield GeneratedToken("word", 1.0)
            self.finish.wait(self.delay)


def ask(url: str, method: str = "GET", path: str = "", payload=None, timeout: float = 30):
    """One request on its own connection: (status, headers, parsed JSON or None)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    body = json.dumps(payload) if payload is not None else None
    connection.request(method, "/" + path, body, {"Content-Type": "application/json"} if body else {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    is_json = response.getheader("Content-Type", "").startswith("application/json")
    return response.status, dict(response.getheaders()), json.loads(data) if is_json else None


def test_a_full_server_refuses_at_once_while_health_and_the_page_stay_served():
    slow, limits = Slow(), Limits(max_concurrent=2, max_queue=1)
    with serving(create_app(slow, limits=limits), **waitress_options(limits)) as url:
        answers = []
        posters = [
            threading.Thread(target=lambda: answers.append(ask(url, "POST", "generate", {"prompt": "a"})))
            for _ in range(8)
        ]
        for poster in posters:
            poster.start()
        wait_until(lambda: len(answers) >= 5)  # 8 - 2 running - 1 waiting, while they generate
        assert [status for status, *_ in answers] == [503] * 5
        assert all(headers["Retry-After"] == "1" and "busy" in body["error"] for _, headers, body in answers)
        status, _, health = ask(url, path="health", timeout=5)
        assert status == 200 and (health["load"]["running"], health["load"]["waiting"]) == (2, 1)
        assert ask(url, timeout=5)[0] == ask(url, path="static/app.js", timeout=5)[0] == 200
        slow.finish.set()
        for poster in posters:
            poster.join(timeout=30)
    assert sorted(status for status, *_ in answers) == [200] * 3 + [503] * 5


class GoneAfter:
    """A stand-in for waitress.client_disconnected: the client leaves after `checks` checks."""

    def __init__(self, checks: int):
        self.left = checks

    def __call__(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.mark.parametrize("path", ["/generate", "/generate/stream"])
@pytest.mark.parametrize("checks", [0, 3])
def test_work_stops_for_a_client_that_has_gone(path, checks):
    slow = Slow(delay=0)
    client = create_app(slow).test_client()
    environ = {"waitress.client_disconnected": GoneAfter(checks)}
    response = client.post(
        path, data=b'{"prompt": "a", "max_new_tokens": 300}', content_type="application/json", environ_base=environ
    )
    response.get_data()
    response.close()
    assert slow.produced <= checks  # 0: never took a slot; else stopped at the next token
    load = client.get("/health").get_json()["load"]
    assert (load["running"], load["waiting"], load["abandoned"]) == (0, 0, 1)


def post_and_hold(url: str, payload: dict) -> socket.socket:
    """Send a whole POST /generate and keep the socket open without reading the answer."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    body = json.dumps(payload).encode()
    sock = socket.create_connection((host, int(port)))
    head = f"POST /generate HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def load_of(url: str) -> dict:
    return ask(url, path="health", timeout=5)[2]["load"]


def test_a_real_server_stops_generating_for_a_client_that_closed_the_connection():
    slow, limits = Slow(), Limits()
    with serving(create_app(slow, limits=limits), **waitress_options(limits)) as url:
        sock = post_and_hold(url, {"prompt": "a", "max_new_tokens": 300})  # 15 s of words
        wait_until(lambda: slow.produced > 0)
        sock.close()
        wait_until(lambda: load_of(url)["running"] == 0, seconds=5)
        assert slow.produced < 100 and load_of(url)["abandoned"] == 1
        slow.finish.set()


def test_a_real_server_drops_a_queued_request_whose_client_left():
    slow, limits = Slow(), Limits(max_concurrent=1)
    with serving(create_app(slow, limits=limits), **waitress_options(limits)) as url:
        running = post_and_hold(url, {"prompt": "a", "max_new_tokens": 300})
        wait_until(lambda: slow.produced > 0)
        queued = post_and_hold(url, {"prompt": "b", "max_new_tokens": 300})
        wait_until(lambda: load_of(url)["waiting"] == 1)
        queued.close()
        wait_until(lambda: load_of(url)["waiting"] == 0, seconds=5)
        assert load_of(url) | {"slots": 0, "queue": 0} == {
            "running": 1, "waiting": 0, "refused": 0, "abandoned": 1, "slots": 0, "queue": 0
        }  # fmt: skip
        slow.finish.set()
        running.close()


def test_a_streamed_response_gives_its_slot_back(generator):
    client = create_app(generator, limits=Limits(max_concurrent=1, max_queue=0)).test_client()
    for _ in range(3):
        response = post(client, {"prompt": "the", "max_new_tokens": 3}, "/generate/stream")
        assert response.status_code == 200
        response.close()


def test_health_names_the_model_and_its_limits(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["model"] == "tiny"
    assert body["vocab_size"] > 2 and body["limits"]["max_new_tokens"] == INTERACTIVE_MAX_NEW_TOKENS


def test_page_and_assets_are_local_and_hardened(client):
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="generate"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z]", re.sub(r"^\s*//.*$", "", text, flags=re.M)), path
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script: the CSP forbids it
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML", (STATIC / "app.js").read_text())


def test_handlers_are_module_level_functions_and_create_app_only_wires(client):
    for endpoint, view in client.application.view_functions.items():
        assert "<locals>" not in view.__qualname__, f"{endpoint} is defined inside a function"
    tree = ast.parse(inspect.getsource(create_app)).body[0]
    nested = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node is not tree]
    assert nested == [] and len(inspect.getsource(create_app).splitlines()) < 25


def test_summary_builds_the_text_with_continuation_pieces_only(monkeypatch):
    calls = []
    monkeypatch.setattr(
        sys.modules[web.summary.__module__], "continuation_pieces", lambda p, t, c=None: calls.append((p, t)) or [" R"]
    )
    request = parse_request(b'{"prompt": "Mr. Darcy\'s  house", "seed": 1}', Limits())
    body = web.summary(request, ["was", "large"], [1.0, 2.0], "length", 0.0)
    assert body["generated_text"] == "Mr. Darcy's  house R" and ("Mr. Darcy's  house", ["was", "large"]) in calls
    assert body["continuation"] == " R" and body["pieces"] == [" R"]


def test_the_default_length_limit_is_the_one_interactive_cap():
    assert Limits().max_new_tokens == INTERACTIVE_MAX_NEW_TOKENS


def test_the_page_posts_max_new_tokens_and_takes_its_cap_from_health():
    script = (STATIC / "app.js").read_text()
    assert "max_new_tokens:" in script and "max_seq_len:" not in script
    assert "limits.max_new_tokens" in script
    assert 'id="max_new_tokens"' in (STATIC / "index.html").read_text()


def test_serving_is_safe_by_default(client):
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert client.application.debug is False


def serve_command(run_dir, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lmlib", "serve", "--run", str(run_dir), *flags]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("port", ["99999", "0"])
def test_serve_refuses_a_port_out_of_range_in_one_line(tiny_run, port):
    result = serve_command(tiny_run, f"--port={port}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: --port must be a whole number from 1 to 65535, got {port}"]


@pytest.mark.parametrize("port", [65536, -1, True, 80.0])
def test_only_ports_1_to_65535_are_listened_on(port):
    from lmlib.apps.web.server import listen

    with pytest.raises(LMError, match="--port must be a whole number from 1 to 65535"):
        listen("127.0.0.1", port)


@pytest.mark.parametrize("dev", [False, True])
def test_serve_reports_a_busy_port_in_one_line(tiny_run, dev):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = serve_command(tiny_run, "--port", str(port), *(["--dev"] if dev else []))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (another server?); stop it or give --port another"
    ]


def test_serve_prints_the_url_it_listens_on(tiny_run):
    port = free_port()
    process = launch([sys.executable, "-m", "lmlib", "serve", "--run", str(tiny_run), "--port", str(port)])
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process)
        assert f"on http://127.0.0.1:{port}/ (Ctrl-C stops)" in output(process)
    finally:
        stop(process)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"max_seconds": 0}, "must be a positive number"),
        ({"max_concurrent": -1}, "must be a positive number"),
        ({"max_body_bytes": True}, "must be a positive number"),
        ({"max_queue": -1}, "max_queue must be a number >= 0"),
        ({"max_concurrent": 2.5}, "must be a whole number"),
        ({"max_new_tokens": 10**6}, "at most the library's 1000"),
    ],
)
def test_limits_are_checked(bad, message):
    with pytest.raises(LMError, match=message):
        Limits(**bad)
    assert Limits(max_queue=0).max_queue == 0  # no queue: refuse whenever every slot is busy


def test_the_load_benchmark_runs_tiny(tiny_run, tmp_path):
    load_test.main(
        ["--run", str(tiny_run), "--seconds", "1.5", "--clients", "2", "--max-new-tokens", "10", "--out", str(tmp_path)]
    )
    result = json.loads((tmp_path / "load_test.json").read_text())
    assert result["errors"] == 0 and result["requests"] > 0
    assert result["p50_ms"] <= result["p95_ms"] and "cores" in result["machine"]
    assert result["abandoned_sent"] > 0 and result["slow_served"] >= 1 and result["health_probes"] > 0
    assert result["health_p99_ms"] <= result["health_max_ms"] and len(result["load_avg_before"]) == 3
    assert result["server_counts"]["running"] == 0 and "refused_503" in result


def test_the_latency_benchmark_runs_tiny(tiny_run, tmp_path):
    generation_latency.main(
        ["--run", str(tiny_run), "--words", "5", "--repeat", "1", "--no-web", "--out", str(tmp_path)]
    )
    rows = json.loads((tmp_path / "generation_latency.json").read_text())["rows"]
    assert len(rows) == 4 and rows[0]["step"].startswith("library generate, ")
    assert rows[2]["step"] == "library generate, 1 torch thread"
    assert all(1 <= row["words"] <= 5 for row in rows)


def test_the_page_files_are_packaged():
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"].get("package-data", {})
    for path in STATIC.iterdir():
        name = path.relative_to(STATIC).as_posix()
        assert any(fnmatch.fnmatch(name, p) for p in patterns.get("lmlib.apps.web.static", [])), f"{name} not packaged"


def test_the_texts_and_streamed_words_show_the_runs_casing(client, generator):
    payload = {"prompt": "mr. darcy said", "max_new_tokens": 15, "seed": 3}
    body = post(client, payload).get_json()
    assert body["generated_text"] == "mr. darcy said" + body["continuation"]  # the prompt as sent, then the new text
    assert body["generated_text"] == generator.readable("mr. darcy said", body["tokens"])
    assert body["continuation"] == "".join(body["pieces"]) and len(body["pieces"]) == len(body["tokens"])
    assert [piece.strip().lower() for piece in body["pieces"]] == body["tokens"]  # one readable piece per token
    pairs = events(post(client, payload, "/generate/stream"))
    streamed = [data for kind, data in pairs if kind == "token"]
    assert [data["token"] for data in streamed] == body["tokens"]  # the model's tokens, as before
    assert [data["word"] for data in streamed] == [generator.word(data["token"]) for data in streamed]
    assert pairs[-1][1]["generated_text"] == body["generated_text"] and pairs[-1][1]["pieces"] == body["pieces"]
    if "'" not in body["tokens"]:  # an apostrophe's spacing settles on the word after it; every other piece at once
        assert [data["text"] for data in streamed] == body["pieces"]
