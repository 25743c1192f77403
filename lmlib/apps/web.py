"""The web app: the original study's generation page and API, made safe and streaming.

    python -m lmlib serve --run runs/<name> [--host 127.0.0.1] [--port 5000] [--dev]

That command is the production server (waitress, 8 threads); `--dev` uses Flask's own
server instead, still without debug mode. It binds 127.0.0.1 unless told otherwise.

Routes: `GET /` (the page), `GET /health`, `POST /generate` (JSON in, JSON out; the
original's `{prompt, max_seq_len, temperature}` still works) and `POST /generate/stream`
(the same JSON in, server-sent events out: one `token` event per word, then `done` or
`error`). The model is loaded once; each request gets its own hidden state from the
Generator, is bounded in tokens and seconds, and waits for one of a few generation slots.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lmlib.errors import LMError

STATIC = Path(__file__).resolve().parent / "static"
FIELDS = ("prompt", "max_new_tokens", "max_seq_len", "temperature", "top_k", "top_p", "seed")
# Inline scripts and other origins are refused by the browser itself, so even an escaping
# bug could not run a prompt's <script>; the page needs nothing but its own files.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; anything beyond is refused with status 400."""

    max_body_bytes: int = 16_384
    max_prompt_chars: int = 2_000
    max_new_tokens: int = 300  # the original's slider stopped at 100
    max_seconds: float = 30.0  # a generation still running after this stops early
    max_concurrent: int = 4  # generations at once; on 2 cores more only share the CPU
    queue_seconds: float = 30.0  # how long a request waits for a slot before a 503

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise LMError(f"web limit {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request: the keywords of `Generator.stream`."""

    prompt: str
    max_new_tokens: int = 50
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def keywords(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "prompt"}


def parse_request(body: bytes, limits: Limits) -> GenerationRequest:
    """Validate a JSON request body; every mistake raises LMError saying which field and why."""
    if len(body) > limits.max_body_bytes:
        raise LMError(f"the request body is over {limits.max_body_bytes} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise LMError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise LMError(f"the request body is not valid JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(data, dict):
        raise LMError('the request body must be a JSON object such as {"prompt": "it was"}')
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise LMError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise LMError("prompt is required and must be a non-empty string")
    if len(prompt) > limits.max_prompt_chars:
        raise LMError(f"prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars}")
    if "max_seq_len" in data and "max_new_tokens" in data and data["max_seq_len"] != data["max_new_tokens"]:
        raise LMError("give max_new_tokens or its old name max_seq_len, not both")
    length = data.get("max_new_tokens", data.get("max_seq_len", 50))
    seed = data.get("seed")
    return GenerationRequest(
        prompt=prompt,
        max_new_tokens=_number("max_new_tokens", length, 1, limits.max_new_tokens, whole=True),
        temperature=_number("temperature", data.get("temperature", 1.0), 0.0, 2.0),
        top_k=_number("top_k", data.get("top_k", 0), 0, 10_000, whole=True),
        top_p=_number("top_p", data.get("top_p", 1.0), 0.01, 1.0),
        # no seed means random, but the one drawn is returned so a result can be repeated
        seed=secrets.randbelow(2**31)
        if seed in (None, "", "random")
        else _number("seed", seed, 0, 2**31 - 1, whole=True),
    )


def _number(name: str, value, low: float, high: float, whole: bool = False):
    # The original page posted range-input values, which are strings: "0.7" is accepted.
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise LMError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LMError(f"{name} must be a number, got {json.dumps(value)}")
    if whole and value != int(value):
        raise LMError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise LMError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return int(value) if whole else float(value)


class Slots:
    """At most `n` generations at once; `take` waits up to `timeout` seconds for one."""

    def __init__(self, n: int, timeout: float):
        self._semaphore, self._timeout = threading.BoundedSemaphore(n), timeout

    def take(self):
        """Return a release function that is safe to call twice, or raise LMError when busy."""
        if not self._semaphore.acquire(timeout=self._timeout):
            raise Busy("the server is busy generating for others; try again in a moment")
        done = threading.Event()

        def release():
            if not done.is_set():
                done.set()
                self._semaphore.release()

        return release


class Busy(LMError):
    """Every generation slot stayed taken: the client may retry (503)."""


def run_bounded(generator, request: GenerationRequest, limits: Limits) -> Iterator[tuple[str, float] | str]:
    """Yield (token, surprisal) pairs, then one reason: "length", "eos" or "time"."""
    deadline = time.monotonic() + limits.max_seconds
    count = 0
    for item in generator.stream(request.prompt, **request.keywords()):
        count += 1
        yield item.token, float(item.surprisal)
        if time.monotonic() > deadline and count < request.max_new_tokens:
            yield "time"
            return
    yield "length" if count >= request.max_new_tokens else "eos"


def summary(request: GenerationRequest, tokens: list, surprisals: list, stopped: str, started: float) -> dict:
    """The JSON answer: the original's `generated_text` plus the tokens and how it ended."""
    from lmlib.data.detokenize import detokenize
    from lmlib.data.tokenize import basic_english  # what Generator.prompt_tokens reads the prompt with

    return {
        "generated_text": detokenize(basic_english(request.prompt) + tokens),
        "continuation": detokenize(tokens),
        "tokens": tokens,
        "surprisals": [round(s, 3) for s in surprisals],
        "seed": request.seed,
        "stopped": stopped,
        "seconds": round(time.monotonic() - started, 3),
    }


def create_app(generator, *, limits: Limits = Limits(), name: str = "model"):
    """The Flask app serving `generator` (a loaded lmlib.generate.Generator or a look-alike)."""
    from flask import Flask, Response, jsonify, request, send_from_directory
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    # Flask refuses a longer body before reading it; one byte over our own limit so that
    # parse_request gives the message.
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes + 1
    slots = Slots(limits.max_concurrent, limits.queue_seconds)

    def error(message: str, status: int = 400):
        return jsonify(error=message), status

    def read_request() -> GenerationRequest:
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise LMError(f"the request body is over {limits.max_body_bytes} bytes") from None
        return parse_request(body, limits)

    @app.errorhandler(LMError)
    def user_error(err):
        return error(str(err), 503 if isinstance(err, Busy) else 400)

    @app.errorhandler(HTTPException)
    def http_error(err):
        if isinstance(err, RequestEntityTooLarge):
            return error(f"the request body is over {limits.max_body_bytes} bytes")
        return error(f"{err.name}: {err.description}", err.code or 500)

    @app.after_request
    def harden(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/health")
    def health():
        vocab = getattr(generator, "vocab", None)
        return jsonify(
            status="ok", model=name, vocab_size=len(vocab) if vocab is not None else None, limits=asdict(limits)
        )

    @app.post("/generate")
    def generate():
        req, started = read_request(), time.monotonic()
        release = slots.take()
        try:
            tokens, surprisals, stopped = [], [], "eos"
            for item in run_bounded(generator, req, limits):
                if isinstance(item, str):
                    stopped = item
                else:
                    tokens.append(item[0])
                    surprisals.append(item[1])
        finally:
            release()
        return jsonify(summary(req, tokens, surprisals, stopped, started))

    @app.post("/generate/stream")
    def generate_stream():
        req, started = read_request(), time.monotonic()
        release = slots.take()
        items = run_bounded(generator, req, limits)
        try:
            first = next(items)  # a bad value the Generator refuses is still a plain 400 here
        except BaseException:
            release()
            raise
        response = Response(
            _events(first, items, req, started),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        # The WSGI server closes the response even when the client left before reading it,
        # so the slot always comes back (a generator's own finally would not run unstarted).
        response.call_on_close(release)
        return response

    return app


def _events(first, items, req: GenerationRequest, started: float) -> Iterator[str]:
    tokens, surprisals, stopped = [], [], "eos"
    try:
        for item in _chain(first, items):
            if isinstance(item, str):
                stopped = item
                continue
            tokens.append(item[0])
            surprisals.append(item[1])
            yield _event("token", {"token": item[0], "surprisal": round(item[1], 3)})
        yield _event("done", summary(req, tokens, surprisals, stopped, started))
    except LMError as err:
        yield _event("error", {"error": str(err)})
    except Exception:  # noqa: BLE001 - the status line is sent: the page must still hear of it
        logging.getLogger(__name__).exception("generation failed")
        yield _event("error", {"error": "the model failed while generating; see the server log"})


def _chain(first, rest):
    yield first
    yield from rest


def _event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def serve(
    run_dir,
    host: str = "127.0.0.1",
    port: int = 5000,
    production: bool = True,
    limits: Limits = Limits(),
    threads: int = 8,
) -> None:
    """Load the run once and serve it (waitress; `production=False` uses Flask's own server)."""
    from lmlib.generate import Generator

    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
    except ImportError as err:
        raise LMError(f"the web app needs {err.name}: pip install -e '.[web]'") from None
    generator = Generator.from_run(run_dir)
    app = create_app(generator, limits=limits, name=Path(run_dir).name)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this machine can use the model")
    print(f"serving {run_dir} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    if production:
        # waitress refuses absurd bodies itself; Flask answers the merely too large with JSON
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="lmlib",
            max_request_body_size=64 * limits.max_body_bytes,
            channel_timeout=60,
        )
    else:
        app.run(host=host, port=port, debug=False, threaded=True, use_reloader=False)
