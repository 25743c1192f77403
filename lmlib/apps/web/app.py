"""The Flask app of lmlib.apps.web (see the package docstring) and `serve`, which runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from lmlib.apps.web import server
from lmlib.apps.web.admission import Admission, ClientGone, never
from lmlib.apps.web.guard import LOOPBACK, HostGuard, check_json
from lmlib.apps.web.request import GenerationRequest, Limits, Refused, parse_request, too_large
from lmlib.apps.web.stream import collect, events, run_bounded, summary
from lmlib.errors import LMError

STATIC = Path(__file__).resolve().parent / "static"
# Inline scripts and other origins are refused by the browser itself, so even an escaping
# bug could not run a prompt's <script>; the page needs nothing but its own files.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
bp = Blueprint("web", __name__, static_folder=str(STATIC), static_url_path="/static")


@dataclass(frozen=True)
class WebState:
    """What every handler shares: one loaded model, the limits and the admission control."""

    generator: object  # a loaded lmlib.generate.Generator or a look-alike with .stream
    limits: Limits
    admission: Admission
    name: str
    guard: HostGuard


def create_app(
    generator, *, limits: Limits | None = None, name: str = "model", guard: HostGuard | None = None
) -> Flask:
    """The Flask app serving `generator` (a loaded lmlib.generate.Generator or a look-alike).

    `guard` says which Host and Origin headers name this server (default: loopback names at
    any port, as Flask's test client sends them); `serve` gives the bound address and port.
    """
    limits, guard = limits or Limits(), guard or HostGuard()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes  # refused before it is read
    admission = Admission(limits.max_concurrent, limits.max_queue, limits.queue_seconds)
    app.extensions["lmlib.web"] = WebState(generator, limits, admission, name, guard)
    app.register_blueprint(bp)
    return app


def _state() -> WebState:
    return current_app.extensions["lmlib.web"]


def _casing(state: WebState) -> dict | None:
    """The run's casing table, for showing words (a look-alike generator may have none)."""
    return getattr(state.generator, "casing", None)


def _error(message: str, status: int = 400):
    return jsonify(error=message), status


def _read_request() -> GenerationRequest:
    limits = _state().limits
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large(limits) from None
    return parse_request(body, limits)


@bp.app_errorhandler(LMError)
def user_error(err: LMError):
    if isinstance(err, Refused):
        return jsonify(error=str(err)), err.status, err.headers
    return _error(str(err))


@bp.app_errorhandler(ClientGone)
def client_gone(err: ClientGone):
    return _error(str(err), 499)  # nginx's "client closed request": for the log, nobody reads it


@bp.app_errorhandler(HTTPException)
def http_error(err: HTTPException):
    if isinstance(err, RequestEntityTooLarge):
        return user_error(too_large(_state().limits))
    return _error(f"{err.name}: {err.description}", err.code or 500)


@bp.before_app_request
def check_caller():
    # Before any body is read, on every route: see guard.py for the attacks this stops.
    _state().guard.check(request.headers.get("Host"), request.headers.get("Origin"))
    check_json(request.method, request.mimetype)


@bp.after_app_request
def harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/")
def index():
    return send_from_directory(STATIC, "index.html")


@bp.get("/health")
def health():
    state = _state()
    vocab = getattr(state.generator, "vocab", None)
    return jsonify(
        status="ok",
        model=state.name,
        vocab_size=len(vocab) if vocab is not None else None,
        limits=asdict(state.limits),
        load=state.admission.counts(),
    )


def _client_gone() -> Callable[[], bool]:
    """True once the client has closed its connection (waitress tells; other servers never)."""
    return request.environ.get("waitress.client_disconnected", never)


@bp.post("/generate")
def generate():
    state, req, started, gone = _state(), _read_request(), time.monotonic(), _client_gone()
    release = state.admission.admit(gone)
    try:
        tokens, surprisals, stopped = collect(run_bounded(state.generator, req, state.limits, gone))
    finally:
        release()
    return jsonify(summary(req, tokens, surprisals, stopped, started, _casing(state)))


@bp.post("/generate/stream")
def generate_stream():
    state, req, started, gone = _state(), _read_request(), time.monotonic(), _client_gone()
    release = state.admission.admit(gone)
    items = run_bounded(state.generator, req, state.limits, gone)
    try:
        first = next(items)  # a bad value the Generator refuses is still a plain 400 here
    except BaseException:
        release()
        raise
    response = Response(
        events(first, items, req, started, _casing(state)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # The WSGI server closes the response even when the client left before reading it,
    # so the slot always comes back (a generator's own finally would not run unstarted).
    response.call_on_close(release)
    return response


def serve(
    model,
    host: str = "127.0.0.1",
    port: int = 5000,
    production: bool = True,
    limits: Limits | None = None,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Load the model once and serve it (waitress; `production=False` uses Flask's own server).

    `model`: a shipped model's name, an exported folder, a run directory or a Hub id
    (Generator.from_pretrained). `allow_hosts`: names besides the bound address and loopback
    that the server answers to.
    """
    from lmlib.generate import Generator

    limits = limits or Limits()
    sock = server.listen(host, port)  # before the model loads: a busy port is said at once
    try:
        generator = Generator.from_pretrained(model)
        guard = HostGuard.for_bind(host, port, allow_hosts)
        app = create_app(generator, limits=limits, name=generator.name, guard=guard)
        if host not in LOOPBACK:
            print(f"warning: serving on {host}: anyone who can reach this machine can use the model")
        print(f"serving {model} ({generator.serving}) on {server.url(host, port)} (Ctrl-C stops)", flush=True)
        server.run(app, sock, limits, production)
    finally:
        sock.close()
