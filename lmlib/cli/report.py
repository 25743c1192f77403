"""`report`: run the numbered notebooks with papermill and render the HTML report."""

from __future__ import annotations

from lmlib.cli.options import add_corpus


def add(commands) -> None:
    parser = commands.add_parser(
        "report",
        help="run the notebooks with papermill and render the HTML report",
        description=(
            "Execute the numbered notebooks for a profile and render reports/<profile>/report.html. "
            "--corpus (and --protocol, --min-freq) builds the same report on other data, "
            "into reports/<profile>-<corpus>/ with its runs in runs/report-<profile>-<corpus>/."
        ),
    )
    parser.add_argument("--profile", default="default", help="smoke, default or gpu (params/<profile>.yaml)")
    add_corpus(parser)
    parser.set_defaults(corpus=None)  # None: the profile's own corpus
    parser.add_argument("--reports-dir", default="reports")
    parser.add_argument("--fresh", action="store_true", help="retrain every run instead of reusing finished ones")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.report.pipeline import run_pipeline

    path = run_pipeline(
        args.profile,
        reports_dir=args.reports_dir,
        fresh=args.fresh,
        corpus=args.corpus,
        protocol=args.protocol,
        min_freq=args.min_freq,
    )
    print(f"report written to {path}")
    return 0
