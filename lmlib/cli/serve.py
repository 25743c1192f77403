"""`serve`: the web page and JSON API over a trained run."""

from __future__ import annotations


def add(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a trained run: web page + JSON API",
        description="Serve a trained run on a web page and a JSON API (waitress).",
    )
    parser.add_argument("--run", required=True, help="a trained run folder, e.g. runs/cpu")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--dev", action="store_true", help="Flask's development server instead of waitress (never debug)"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.apps.web import serve

    serve(args.run, host=args.host, port=args.port, production=not args.dev)
    return 0
