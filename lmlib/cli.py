"""Command-line interface: `python -m lmlib COMMAND --help`.

User errors (LMError) print one line on stderr and exit with status 2; no tracebacks.
`--json` makes prepare, train, evaluate and generate print one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from lmlib.config import RunConfig, parse_value
from lmlib.errors import LMError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lmlib",
        description="Word-level LSTM language models: prepare corpora, train, evaluate, generate, serve, report.",
        epilog="Run `python -m lmlib COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_prepare(commands)
    add_train(commands)
    add_evaluate(commands)
    add_generate(commands)
    add_serve(commands)
    add_report(commands)
    return parser


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="austen", help="austen (embedded, default), hpd, or a path")
    parser.add_argument(
        "--protocol",
        choices=["original", "train-vocab", "by-book", "given"],
        default=None,
        help="how to split and build the vocabulary (default: original; given for pre-split folders)",
    )
    parser.add_argument("--min-freq", type=int, default=None, help="keep words seen at least N times (default 3)")


def add_prepare(commands) -> None:
    parser = commands.add_parser(
        "prepare",
        help="load a corpus, build vocabulary and splits, print statistics",
        description="Load a corpus, build the vocabulary and splits, and print their statistics.",
    )
    add_corpus_arguments(parser)
    parser.add_argument("--out", default=None, help="also write the prepared data to this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(handler=run_prepare)


def run_prepare(args) -> int:
    from lmlib.data.corpus import load_corpus
    from lmlib.data.prepared import save_prepared
    from lmlib.data.splits import prepare
    from lmlib.data.stats import format_report, summary

    prepared = prepare(load_corpus(args.corpus), args.protocol, args.min_freq)
    if args.out:
        save_prepared(prepared, args.out)
    if args.json:
        print(json.dumps(summary(prepared)))
    else:
        print(format_report(prepared))
        if args.out:
            print(f"\nprepared data written to {args.out}")
    return 0


def add_train(commands) -> None:
    from lmlib.presets import PRESET_NAMES

    parser = commands.add_parser(
        "train",
        help="train a model (or resume an interrupted run)",
        description="Train a preset, with any config field overridden; an interrupted run resumes "
        "from its last checkpoint when the same command is run again.",
    )
    parser.add_argument("--preset", default="cpu", choices=PRESET_NAMES, help="named recipe (default: cpu)")
    parser.add_argument("--run-dir", default=None, help="where the run goes (default: runs/<preset>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any config field, e.g. --set hid_dim=512 (repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="build the model and report its size; do not train")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results")
    parser.add_argument("--samples", type=int, default=1, help="print N generated samples at the end (default 1)")
    fields = parser.add_argument_group("config fields (each overrides the preset)")
    for field in dataclasses.fields(RunConfig):
        fields.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=f"field_{field.name}",
            default=None,
            metavar=field.name.upper().replace("_", ""),
            help=argparse.SUPPRESS,
        )
    parser.epilog = "Every config field is also a flag: " + ", ".join(
        "--" + f.name.replace("_", "-") for f in dataclasses.fields(RunConfig)
    )
    parser.set_defaults(handler=run_train)


def config_from_args(args) -> RunConfig:
    from lmlib.presets import get_preset

    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise LMError(f"--set expects FIELD=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        overrides[name.strip()] = parse_value(name.strip(), value.strip())
    for key, value in vars(args).items():
        if key.startswith("field_") and value is not None:
            overrides[key[len("field_") :]] = parse_value(key[len("field_") :], value)
    return get_preset(args.preset, **overrides)


def run_train(args) -> int:
    config = config_from_args(args)
    if args.dry_run:
        return _dry_run(config, args.json)
    from lmlib.training.loop import train

    run_dir = args.run_dir or f"runs/{args.preset}"
    results = train(config, run_dir, progress=not args.json)
    samples = _samples(run_dir, args.samples)
    if args.json:
        print(json.dumps({**results, "run_dir": run_dir, "samples": samples}))
        return 0
    print(
        f"run {run_dir}: {results['parameters']:,} parameters, best epoch {results['best_epoch']}, "
        f"valid ppl {results['valid_ppl']:.2f}, test ppl {results['test_ppl']:.2f}, "
        f"{results['seconds']:.0f} s ({results['stopped']})"
    )
    for text in samples:
        print(f"sample: {text}")
    return 0


def _samples(run_dir: str, count: int) -> list[str]:
    from lmlib.generate import Generator

    if count < 1:
        return []
    generator = Generator.from_run(run_dir)
    return [generator.generate("", 40, 0.8, seed=i).text for i in range(count)]


def _dry_run(config: RunConfig, as_json: bool) -> int:
    from lmlib.data.corpus import load_corpus
    from lmlib.data.splits import prepare
    from lmlib.model.lstm import LSTMLanguageModel, count_parameters

    prepared = prepare(load_corpus(config.corpus), config.protocol, config.min_freq)
    model = LSTMLanguageModel(len(prepared.vocab), config)
    report = {"parameters": count_parameters(model), "vocab_size": len(prepared.vocab), "config": config.to_dict()}
    print(json.dumps(report) if as_json else f"{report['parameters']:,} parameters, vocabulary {len(prepared.vocab):,}")
    return 0


def add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="perplexity of a trained run on valid and test",
        description="Perplexity of a run's best weights: exp(mean cross-entropy per token).",
    )
    parser.add_argument("--run", required=True, help="the run directory")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from lmlib.training.evaluate import evaluate_run
    from lmlib.training.runs import read_config, read_results

    config, data = read_config(args.run)
    result = evaluate_run(args.run, device=args.device)
    saved = read_results(args.run) or {}
    report = {
        "parameters": data.get("parameters"),
        "best_epoch": saved.get("best_epoch"),
        "seconds": saved.get("seconds"),
        **result,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.run}: valid ppl {result['valid_ppl']:.2f}, test ppl {result['test_ppl']:.2f}")
    return 0


def add_generate(commands) -> None:
    from lmlib.generate import MAX_NEW_TOKENS

    parser = commands.add_parser(
        "generate",
        help="generate text from a trained run",
        description="Sample a continuation of a prompt from a trained run.",
    )
    parser.add_argument("--run", required=True, help="the run directory")
    parser.add_argument("--prompt", default="", help="text to continue (default: start a new sentence)")
    parser.add_argument("--max-new-tokens", type=int, default=50, help=f"1..{MAX_NEW_TOKENS} (default 50)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest words (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable sample")
    parser.add_argument("--json", action="store_true", help='print {"text": ..., "tokens": [...]}')
    parser.set_defaults(handler=run_generate)


def run_generate(args) -> int:
    import torch

    from lmlib.generate import Generator

    # One word at a time is too little work to share between threads: a second intra-op
    # thread only waits (10x slower on a busy 2-core machine, benchmarks/generation_latency.py).
    torch.set_num_threads(1)

    result = Generator.from_run(args.run).generate(
        args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed
    )
    print(json.dumps({"text": result.text, "tokens": result.tokens}) if args.json else result.text)
    return 0


def add_serve(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a trained run: web page + JSON API",
        description="Serve a trained run on a web page and a JSON API (waitress).",
    )
    parser.add_argument("--run", required=True, help="a trained run folder, e.g. runs/cpu")
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
    parser.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    try:
        from lmlib.apps.web import serve
    except ModuleNotFoundError as err:
        if err.name not in ("flask", "werkzeug", "waitress"):
            raise
        raise LMError(f"the web app needs {err.name}: pip install -e '.[web]'") from None
    serve(args.run, host=args.host, port=args.port, production=not args.dev, allow_hosts=args.allow_host)
    return 0


def add_report(commands) -> None:
    parser = commands.add_parser(
        "report",
        help="run the notebooks with papermill and render the HTML report",
        description="Execute the numbered notebooks for a profile and render reports/report.html.",
    )
    parser.add_argument("--profile", default="default", help="smoke, default or gpu (params/<profile>.yaml)")
    parser.add_argument("--reports-dir", default="reports")
    parser.add_argument("--fresh", action="store_true", help="retrain every run instead of reusing finished ones")
    parser.set_defaults(handler=run_report)


def run_report(args) -> int:
    from lmlib.report.pipeline import run_pipeline

    path = run_pipeline(args.profile, reports_dir=args.reports_dir, fresh=args.fresh)
    print(f"report written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
