"""`report`: run the numbered notebooks with papermill and render the HTML report."""

from __future__ import annotations


def add(commands) -> None:
    parser = commands.add_parser(
        "report",
        help="run the notebooks with papermill and render the HTML report",
        description="Execute the numbered notebooks for a profile and render reports/report.html.",
    )
    parser.add_argument("--profile", default="default", help="smoke, default or gpu (params/<profile>.yaml)")
    parser.add_argument("--reports-dir", default="reports")
    parser.add_argument("--fresh", action="store_true", help="retrain every run instead of reusing finished ones")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.report.pipeline import run_pipeline

    path = run_pipeline(args.profile, reports_dir=args.reports_dir, fresh=args.fresh)
    print(f"report written to {path}")
    return 0
