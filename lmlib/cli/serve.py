"""`serve`: the web page and JSON API over a trained run."""

from __future__ import annotations

from lmlib.cli import options
from lmlib.errors import LMError


def add(commands) -> None:
    parser = commands.add_parser(
        "serve", help="serve a trained run: web page + JSON API",
        description="Serve a trained run on a web page and a JSON API (waitress).",
    )  # fmt: skip
    options.add_run_dir(parser, "a trained run folder, e.g. runs/cpu")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="1..65535 (default 5000)")
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer to this host name, at any port (e.g. a reverse proxy's); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--dev", action="store_true", help="Flask's development server instead of waitress (never debug)"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    try:
        from lmlib.apps.web import serve
    except ModuleNotFoundError as err:
        if err.name not in ("flask", "werkzeug", "waitress"):
            raise
        raise LMError(f"the web app needs {err.name}: pip install -e '.[web]'") from None
    serve(args.run_dir, host=args.host, port=args.port, production=not args.dev, allow_hosts=args.allow_host)
    return 0
