"""`train` (or resume) a run.

A run's configuration is a preset, then `--config FILE.yaml`, then the flags: each config field
is a flag (`--hid-dim 512`) and `--set hid_dim=512` says the same; `--print-config` shows the
result. Help text and defaults come from the fields themselves (lmlib.config.field_docs), so
this module knows no field by name. Building the parser imports no torch: `--help` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmlib.cli import options
from lmlib.cli.output import json_line, printable
from lmlib.config import CONCERNS, RunConfig, check_known, config_yaml, field_docs, parse_value, value_text
from lmlib.errors import LMError

DEFAULT_PRESET = "cpu"
CONCERN_TITLES = {
    "data": "data fields (the corpus, its splits and vocabulary)",
    "model": "model fields (what the network is)",
    "train": "train fields (optimiser, schedule, batches, budgets, seed)",
    "runtime": "runtime fields (where and how it computes, never what it learns: a run may resume with others)",
}
USAGE = (
    "%(prog)s [-h] [--preset NAME] [--config FILE.yaml] [--set FIELD=VALUE] [--FIELD VALUE ...]\n"
    "       [--print-config] [--run-dir RUN_DIR] [--dry-run] [--restart] [--init-from NAME|DIR] [--json]\n"
    "       [--samples N]"
)


def add(commands) -> None:
    add_train(commands)


def add_train(commands) -> None:
    from lmlib.presets import PRESET_NAMES

    parser = commands.add_parser(
        "train",
        help="train a model (or resume an interrupted run)",
        usage=USAGE,
        description="Train a preset, with any config field changed; an interrupted run resumes from its last "
        "checkpoint when the same command is run again. The configuration is the preset, then --config, then "
        "the field flags and --set (later wins); --print-config shows it. Every config field below is a flag "
        "and also FIELD=VALUE for --set or a FIELD: VALUE line for --config. Defaults are the original study's; "
        f"a preset changes some (shown for the default preset, {DEFAULT_PRESET}). none means not set.",
    )
    parser.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=PRESET_NAMES, help=f"named recipe (default: {DEFAULT_PRESET})"
    )
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=None,
        help="field: value lines (flat field names, as --print-config prints) over the preset",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change any config field, e.g. --set hid_dim=512 (repeatable)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as YAML and exit (train nothing)"
    )
    options.add_run_dir(parser, "where the run goes (default: runs/<preset>)", required=False)
    parser.add_argument("--dry-run", action="store_true", help="build the model and report its size; do not train")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start over: delete the run's checkpoint, metrics, weights and results first",
    )
    parser.add_argument(
        "--init-from",
        metavar="NAME|DIR",
        default=None,
        help="start from this model's weights (a shipped model, an exported folder or a run) with a fresh "
        "optimiser: to continue or fine-tune it on the data it was trained on (the same vocabulary)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results")
    parser.add_argument(
        "--samples", type=int, default=1, metavar="N", help="print N generated samples at the end (default 1)"
    )
    add_field_flags(parser)
    parser.set_defaults(handler=run_train)


def add_field_flags(parser: argparse.ArgumentParser) -> None:
    """Every config field as a flag, grouped by concern, with its help and default (and the default preset's)."""
    from lmlib.presets import get_preset

    preset = get_preset(DEFAULT_PRESET).flat()
    groups = {concern: parser.add_argument_group(CONCERN_TITLES[concern]) for concern in CONCERNS}
    for doc in field_docs():
        default = f"default {value_text(doc.default)}"
        if preset[doc.name] != (list(doc.default) if isinstance(doc.default, tuple) else doc.default):
            default += f"; {DEFAULT_PRESET} preset {value_text(preset[doc.name])}"
        groups[doc.concern].add_argument(
            "--" + doc.name.replace("_", "-"),
            dest=f"field_{doc.name}",
            default=None,
            metavar=doc.metavar,
            help=f"{doc.help} ({default})".replace("%", "%%"),
        )


def config_from_args(args) -> RunConfig:
    """The preset, then --config FILE, then --set FIELD=VALUE and --field-name VALUE (the same field names)."""
    from lmlib.presets import get_preset

    overrides = read_config_file(args.config) if args.config else {}
    for item in args.set:
        if "=" not in item:
            raise LMError(f"--set expects FIELD=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        overrides[name.strip()] = parse_value(name.strip(), value.strip())
    for key, value in vars(args).items():
        if key.startswith("field_") and value is not None:
            overrides[key[len("field_") :]] = parse_value(key[len("field_") :], value)
    return get_preset(args.preset, **overrides)


def read_config_file(path: str) -> dict:
    """{field: value} from a YAML file of flat field names; text values are read as --set reads them."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise LMError(f"--config {path} cannot be read ({err.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise LMError(f"--config {path} is not valid YAML in UTF-8 ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise LMError(f"--config {path} must hold field: value lines (python -m lmlib train --print-config shows them)")
    try:
        check_known(data)
    except LMError as err:
        raise LMError(f"--config {path}: {err}") from None
    # YAML 1.1 reads 1e-3 (no dot) as text: text goes through --set's parser, as typed there
    return {name: parse_value(name, value) if isinstance(value, str) else value for name, value in data.items()}


def run_train(args) -> int:
    config = config_from_args(args)
    if args.print_config:
        print(config_yaml(config), end="")
        return 0
    if args.dry_run:
        return _dry_run(config, args.json, args.init_from)
    from lmlib.training.distributed import current
    from lmlib.training.loop import train

    run_dir = args.run_dir or f"runs/{args.preset}"
    start = _start_from(args.init_from, run_dir, args.restart) if args.init_from else None
    results = train(config, run_dir, progress=not args.json, restart=args.restart, init_from=start)
    if not current().is_main:  # under torchrun, rank 0 alone reports (and samples)
        return 0
    from lmlib.pretrained.card import write_model_card

    write_model_card(run_dir)  # <run>/README.md: the same card `export` ships with the weights
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


def _start_from(name_or_path: str, run_dir: str, restart: bool):
    """--init-from's model: any name `--model` takes (a shipped model, a folder, a Hub id), as a folder.

    Not looked up where the run resumes from its own checkpoint: it needs no source then (which may be gone).
    """
    from lmlib.pretrained.locate import locate
    from lmlib.training.initial import StartFrom
    from lmlib.training.runs import RunPaths

    if RunPaths(Path(run_dir)).last.is_file() and not restart:
        return StartFrom(None, name_or_path)
    folder, _ = locate(name_or_path)
    return StartFrom(folder, name_or_path)


def _samples(run_dir: str, count: int) -> list[str]:
    from lmlib.generate import Generator

    if count < 1:
        return []
    generator = Generator.from_run(run_dir)
    return [generator.generate("", 40, 0.8, seed=i).text for i in range(count)]


def _dry_run(config: RunConfig, as_json: bool, init_from: str | None = None) -> int:
    """The model's size for this config; with --init-from, also whether those weights fit it (same check as train)."""
    from lmlib.data.corpus import load_corpus
    from lmlib.data.splits import prepare
    from lmlib.training.weights import planned_weights

    prepared = prepare(load_corpus(config.data.corpus), config.data.protocol, config.data.min_freq)
    _, parameters = planned_weights(len(prepared.vocab), config.model)  # counted on the meta device: no allocation
    report = {"parameters": parameters, "vocab_size": len(prepared.vocab), "config": config.to_dict()}
    text = f"{parameters:,} parameters, vocabulary {len(prepared.vocab):,}"
    if init_from:
        report["init_from"] = _check_init_from(config, prepared.vocab, init_from)
        text += f"; starts from {init_from} (its vocabulary and architecture fit)"
    print(json_line(report) if as_json else text)
    return 0


def _check_init_from(config: RunConfig, vocab, name_or_path: str) -> dict:
    """Load --init-from's weights into the model this config builds, as train would; what it would record."""
    from lmlib.model.build import build_model
    from lmlib.pretrained.locate import locate
    from lmlib.training.initial import StartFrom, initial_weights

    folder, _ = locate(name_or_path)
    return initial_weights(build_model(len(vocab), config.model), vocab, StartFrom(folder, name_or_path))
