"""`sweep`: join (or start) a hyperparameter study and train its trials; any number of workers share it."""

from __future__ import annotations

import json

from lmlib.sweep.storage import DEFAULT_STORAGE


def add(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run trials of a hyperparameter study (Optuna); workers anywhere share one study",
        description="Train trials of a search space until the study has --trials of them. Start the same "
        "command on other machines (same --storage) to add workers; a worker that dies leaves its trial to "
        "be retried. Each trial is an ordinary run directory, runs/sweeps/<study>/trial-<n>.",
    )
    parser.add_argument("--study", required=True, help="the study's name: workers with the same name share it")
    parser.add_argument("--space", required=True, help="the search space, e.g. params/sweeps/cpu.yaml")
    parser.add_argument("--trials", type=int, required=True, help="the study's total number of trials")
    parser.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"sqlite:///file.db (default {DEFAULT_STORAGE}), journal:/shared/folder/file.journal "
        "(NFS, Google Drive) or postgresql://user:password@host/db",
    )
    parser.add_argument("--worker-trials", type=int, default=None, help="this worker trains at most N trials")
    parser.add_argument("--max-minutes", type=float, default=None, help="this worker starts no trial after M minutes")
    parser.add_argument(
        "--pruner",
        choices=("median", "successive_halving", "none"),
        default=None,
        help="replace the space file's pruner",
    )
    parser.add_argument("--runs-root", default="runs/sweeps", help="trials go to RUNS_ROOT/<study>/trial-<n>")
    parser.add_argument("--heartbeat", type=int, default=60, help="seconds between a running trial's heartbeats")
    parser.add_argument(
        "--grace",
        type=int,
        default=None,
        help="seconds without heartbeat before a trial is retried (default 2 x heartbeat)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with what this worker did")
    parser.set_defaults(handler=run_sweep)


def run_sweep(args) -> int:
    from dataclasses import asdict

    from lmlib.sweep.space import load_space
    from lmlib.sweep.worker import WorkerPlan, run_worker

    space = load_space(args.space, pruner=args.pruner)
    plan = WorkerPlan(
        study=args.study,
        space=space,
        trials=args.trials,
        storage=args.storage,
        runs_root=args.runs_root,
        worker_trials=args.worker_trials,
        max_minutes=args.max_minutes,
        heartbeat=args.heartbeat,
        grace=args.grace,
    )
    report = run_worker(plan, log=(lambda *a: None) if args.json else lambda line: print(line, flush=True))
    if args.json:
        print(json.dumps(asdict(report)))
    return 0
