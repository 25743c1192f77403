"""`evaluate` a trained run: static perplexity, and the test-time methods (cache pointer, dynamic evaluation)."""

from __future__ import annotations

from lmlib.cli import options
from lmlib.cli.output import json_line

CACHE_FLAGS = {"window": "cache_window", "theta": "cache_theta", "lambda": "cache_lambda"}
DYNAMIC_FLAGS = {"lr": "dynamic_lr", "decay": "dynamic_decay", "segment": "dynamic_segment"}


def add(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="perplexity of a model on valid and test (+ cache, dynamic evaluation)",
        description="Perplexity of a model's weights (a run's best, or --model's): exp(mean cross-entropy per "
        "token) on its own corpus's splits. With --cache and/or --dynamic, also the test-time methods: settings "
        "not given are tuned on the validation split only, then the test split is scored once; for a run the "
        "result is kept in <run>/test_time.json.",
    )
    options.add_model(parser)
    options.add_device(parser)
    parser.add_argument("--json", action="store_true")
    cache = parser.add_argument_group("continuous cache pointer (Grave et al. 2016)")
    cache.add_argument("--cache", action="store_true", help="mix a cache of recent hidden states into p(word)")
    cache.add_argument("--cache-window", type=int, help="positions kept per row (tuned when absent)")
    cache.add_argument("--cache-theta", type=float, help="attention sharpness (tuned when absent)")
    cache.add_argument("--cache-lambda", type=float, help="mixture weight of the cache, 0-1 (tuned when absent)")
    dynamic = parser.add_argument_group("dynamic evaluation (Krause et al. 2018)")
    dynamic.add_argument("--dynamic", action="store_true", help="adapt the weights to the text as it is scored")
    dynamic.add_argument("--dynamic-lr", type=float, help="learning rate eta (tuned when absent)")
    dynamic.add_argument("--dynamic-decay", type=float, help="decay lambda towards the trained weights (tuned)")
    dynamic.add_argument("--dynamic-segment", type=int, help="tokens per update segment (default 5)")
    parser.add_argument("--grid", choices=("full", "report", "small"), default="full", help="tuning grid")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    if args.model is not None:  # a name or a Hub id becomes its local folder; nothing is written there
        from lmlib.pretrained.locate import locate

        args.run_dir, args.record = str(locate(args.model)[0]), False
    if args.cache or args.dynamic:
        return run_methods(args)
    from lmlib.training.evaluate import evaluate_run
    from lmlib.training.runs import read_config, read_results

    _, run = read_config(args.run_dir)
    result = evaluate_run(args.run_dir, device=args.device)
    saved = read_results(args.run_dir) or {}
    report = {
        "parameters": run.get("parameters"),
        "best_epoch": saved.get("best_epoch"),
        "wall_seconds": saved.get("wall_seconds"),
        **result,
    }
    if args.json:
        print(json_line(report))  # NaN and infinities (a diverged model) are null: strict JSON
    else:
        print(f"{args.model or args.run_dir}: valid ppl {result['valid_ppl']:.2f}, test ppl {result['test_ppl']:.2f}")
    return 0


def run_methods(args) -> int:
    from lmlib.evaluation.records import RECORD_NAME, evaluate_run_methods

    methods = (
        ["static"] + ["cache"] * args.cache + ["dynamic"] * args.dynamic + ["both"] * (args.cache and args.dynamic)
    )
    cache = {name: getattr(args, flag) for name, flag in CACHE_FLAGS.items()}
    dynamic = {name: getattr(args, flag) for name, flag in DYNAMIC_FLAGS.items()}
    log = (lambda _: None) if args.json else print
    for name, given in (("cache", cache), ("dynamic", dynamic)):
        missing = [key for key, value in given.items() if value is None and key != "segment"]
        if name in methods and missing:
            log(f"{name}: tuning {', '.join(missing)} on the validation split ({args.grid} grid); test is scored once")
    record = getattr(args, "record", True)  # a run keeps its record; a shipped or downloaded model is left as it is
    result = evaluate_run_methods(args.run_dir, methods, cache, dynamic, args.grid, args.device, record, log)
    if args.json:
        print(json_line(result))
        return 0
    static = result["methods"]["static"]
    print(f"{'method':<8} {'valid ppl':>9} {'test ppl':>9} {'change':>7} {'seconds':>8} {'x static':>8}  settings")
    for name, entry in result["methods"].items():
        change = entry["test_ppl"] / static["test_ppl"] - 1
        settings = entry["settings"] or ""
        if not entry.get("adapted", True) and entry.get("grid"):  # tuning kept static: say so, not lr 0 / lambda 0
            settings = f"none (no setting beat static on valid; best {entry['best_adapted_valid_ppl']:.2f})"
        print(
            f"{name:<8} {entry['valid_ppl']:9.2f} {entry['test_ppl']:9.2f} {change:+7.1%} "
            f"{entry['seconds']:8.1f} {entry['cost_ratio']:8.2f}  {settings}"
        )
    if record:
        print(f"recorded in {args.run_dir}/{RECORD_NAME}")
    return 0
