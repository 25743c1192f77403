"""`train` (or resume) a run."""

from __future__ import annotations

import argparse

from lmlib.cli import options
from lmlib.cli.output import json_line, printable
from lmlib.config import FIELD_CONCERN, RunConfig, parse_value
from lmlib.errors import LMError


def add(commands) -> None:
    add_train(commands)


def add_train(commands) -> None:
    from lmlib.presets import PRESET_NAMES

    parser = commands.add_parser(
        "train", help="train a model (or resume an interrupted run)",
        description="Train a preset, with any config field overridden; an interrupted run resumes "
        "from its last checkpoint when the same command is run again.",
    )  # fmt: skip
    parser.add_argument("--preset", default="cpu", choices=PRESET_NAMES, help="named recipe (default: cpu)")
    options.add_run_dir(parser, "where the run goes (default: runs/<preset>)", required=False)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set hid_dim=512 (repeatable)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="build the model and report its size; do not train")
    parser.add_argument("--restart", action="store_true",
                        help="start over: delete the run's checkpoint, metrics, weights and results first")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results")
    parser.add_argument("--samples", type=int, default=1, help="print N generated samples at the end (default 1)")
    fields = parser.add_argument_group("config fields (each overrides the preset)")
    for name in FIELD_CONCERN:
        fields.add_argument("--" + name.replace("_", "-"), dest=f"field_{name}", default=None, help=argparse.SUPPRESS)
    parser.epilog = "Every config field is also a flag: " + ", ".join("--" + n.replace("_", "-") for n in FIELD_CONCERN)
    parser.set_defaults(handler=run_train)


def config_from_args(args) -> RunConfig:
    """The preset with --set FIELD=VALUE and --field-name VALUE overrides (the same field names)."""
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
    from lmlib.training.distributed import current
    from lmlib.training.loop import train

    run_dir = args.run_dir or f"runs/{args.preset}"
    results = train(config, run_dir, progress=not args.json, restart=args.restart)
    if not current().is_main:  # under torchrun, rank 0 alone reports (and samples)
        return 0
    samples = _samples(run_dir, args.samples)
    if args.json:
        print(json_line({**results, "run_dir": run_dir, "samples": samples}))
        return 0
    print(
        f"run {run_dir}: {results['parameters']:,} parameters, best epoch {results['best_epoch']}, "
        f"valid ppl {results['valid_ppl']:.2f}, test ppl {results['test_ppl']:.2f}, "
        f"{results['wall_seconds']:.0f} s ({results['stopped']})"
    )
    for text in samples:
        print(f"sample: {printable(text)}")
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
    from lmlib.training.weights import planned_weights

    prepared = prepare(load_corpus(config.data.corpus), config.data.protocol, config.data.min_freq)
    _, parameters = planned_weights(len(prepared.vocab), config.model)  # counted on the meta device: no allocation
    report = {"parameters": parameters, "vocab_size": len(prepared.vocab), "config": config.to_dict()}
    print(json_line(report) if as_json else f"{parameters:,} parameters, vocabulary {len(prepared.vocab):,}")
    return 0
