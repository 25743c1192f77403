"""The web app: the original study's generation page and API, made safe and streaming.

    python -m lmlib serve --run runs/<name> [--host 127.0.0.1] [--port 5000] [--dev]

That command is the production server (waitress); `--dev` uses Flask's own server instead,
still without debug mode. It binds 127.0.0.1 unless told otherwise.

Routes: `GET /` (the page), `GET /health`, `POST /generate` (JSON in, JSON out; the
original's `{prompt, max_seq_len, temperature}` still works) and `POST /generate/stream`
(the same JSON in, server-sent events out: one `token` event per word, then `done` or
`error`). The model is loaded once; each request gets its own hidden state from the
Generator and is bounded in tokens and seconds.

Staying responsive under load. A generation holds one server thread from start to end;
waitress hands requests to a fixed pool of threads, and a request waiting for a generation
slot holds one too. So the app admits at most `max_concurrent` generations plus
`max_queue` waiting ones (admission.py) and answers any other generation request 503 with
Retry-After at once, without waiting; and the pool has `SPARE_THREADS` threads beyond
those, so /health, the page, static files and the refusals always find a free thread.
waitress reads request bodies (slow clients included) and buffers answers in its own
event loop, so a slow client holds no thread either. A client that has gone costs nothing
more: waitress drops its request if it has not started, a waiting request leaves the queue,
and a generation stops before its next token (`waitress.client_disconnected`). Connections
are bounded too (connections.py): an idle one is closed after a few seconds, and at the
connection limit the longest-idle ones make room, so idle or half-open sockets never lock
/health and the page out; a client that half-closes after its request still gets the answer.

The handlers are plain functions on one Blueprint; what they share (the generator, the
limits, the admission control) is one `WebState` in `app.extensions`, so `create_app` only
wires them. The pieces live next door: request (limits, validation), guard (who
may call: Host, Origin, JSON only), admission (slots and queue), stream (one
bounded generation, its JSON summary and its events), server (the socket, waitress's
settings, the server loop), connections (waitress's channel and server, bounded), and app (the Flask app and `serve`).
"""

from lmlib.apps.web.admission import Busy
from lmlib.apps.web.app import STATIC, create_app, serve
from lmlib.apps.web.request import Limits, parse_request
from lmlib.apps.web.server import SPARE_THREADS, waitress_options
from lmlib.apps.web.stream import summary

__all__ = [
    "SPARE_THREADS",
    "STATIC",
    "Busy",
    "Limits",
    "create_app",
    "parse_request",
    "serve",
    "summary",
    "waitress_options",
]
