"""`serve`: the web page and JSON API over a model (the shipped one unless --model or --run-dir names another)."""

from __future__ import annotations

from lmlib.cli import options
from lmlib.errors import LMError


def add(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a model on a web page + JSON API (default: the shipped model)",
        description="Serve a model on a web page and a JSON API (waitress): --model or --run-dir, "
        "else the model shipped with lmlib.",
    )
    options.add_model(parser, required=False)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="1..65535 (default 5000)")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer to this host name, at any port (e.g. a reverse proxy's); repeatable",
    )
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
    from lmlib.pretrained.locate import DEFAULT_MODEL

    model = options.model_source(args, default=DEFAULT_MODEL)
    serve(model, host=args.host, port=args.port, production=not args.dev, allow_hosts=args.allow_host)
    return 0
