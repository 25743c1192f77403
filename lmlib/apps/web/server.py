"""Running the web app: the listening socket, waitress's settings, and the server loop.

The socket is bound before the model is loaded, so a wrong or busy port is reported at
once, in one line, and both servers (waitress, Flask's own for --dev) are handed that
socket rather than binding one themselves (waitress would take port 99999 modulo 65536;
Flask's server prints and exits on a busy port).
"""

from __future__ import annotations

import errno
import logging
import socket

from lmlib.apps.web.request import Limits
from lmlib.errors import LMError

SPARE_THREADS = 4  # server threads that never generate nor wait: health, page, refusals


def waitress_options(limits: Limits) -> dict:
    """waitress's settings for these limits: enough threads that health never waits, few idle connections."""
    from lmlib.apps.web.connections import CLEANUP_SECONDS, IDLE_SECONDS, connection_limit

    return {
        "threads": limits.max_concurrent + limits.max_queue + SPARE_THREADS,
        "ident": "lmlib",
        # waitress refuses absurd bodies itself; Flask answers the merely too large with JSON
        "max_request_body_size": 64 * limits.max_body_bytes,
        # A connection that sends nothing for IDLE_SECONDS is closed (checked every
        # CLEANUP_SECONDS); at connection_limit the longest-idle ones make room
        # (connections.BoundedServer). poll(), not select(): select cannot watch past fd 1023.
        "channel_timeout": IDLE_SECONDS,
        "cleanup_interval": CLEANUP_SECONDS,
        "connection_limit": connection_limit(),
        "asyncore_use_poll": True,
        # Keep reading a connection while its request runs, so that a client that closed it
        # is noticed: waitress then skips its queued request, and environ's
        # waitress.client_disconnected tells the app to stop between tokens.
        "channel_request_lookahead": 1,
    }


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or LMError saying why not and what to do."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise LMError(f"--port must be a whole number from 1 to 65535, got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise LMError(f"cannot serve on --host {host!r} ({err.strerror}); give an address of this machine") from None
    sock = socket.socket(family, kind, proto)
    # as waitress and Flask do: a restarted server may take the port its predecessor left
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise LMError(
                f"port {port} on {host} is in use (another server?); stop it or give --port another"
            ) from None
        if err.errno == errno.EACCES:
            raise LMError(f"no permission to listen on port {port}; give --port 1024 or above") from None
        raise LMError(f"cannot listen on {host} port {port}: {err.strerror}") from None
    return sock


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(app, sock: socket.socket, limits: Limits, production: bool = True) -> None:
    """Serve `app` on the listening `sock` until interrupted (waitress, or Flask's own)."""
    if production:
        from lmlib.apps.web.connections import build_server

        logging.basicConfig()  # waitress logs its warnings, as waitress.serve would
        build_server(app, sock, waitress_options(limits)).run()
    else:
        from werkzeug.serving import make_server

        host, port = sock.getsockname()[:2]
        make_server(host, port, app, threaded=True, fd=sock.fileno()).serve_forever()
