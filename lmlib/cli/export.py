"""`export`: a finished run as a shareable model folder (Hugging Face layout, model card, fp32/fp16/bf16)."""

from __future__ import annotations

from lmlib.cli import options
from lmlib.cli.output import json_line


def add(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a finished run as a shareable model folder",
        description="Write a finished run's best weights as a folder in the Hugging Face layout: config.json, "
        "model.safetensors, vocab.json, casing.json, results.json and README.md (the model card). Load it with "
        "--model DIR, Generator.from_pretrained(DIR), or upload it to the Hugging Face Hub and use its id.",
    )
    options.add_run_dir(parser, "the finished run to export")
    parser.add_argument(
        "--to", required=True, metavar="DIR", help="the folder to write (an earlier export there is replaced)"
    )
    parser.add_argument(
        "--dtype",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="how the weights are stored: fp16/bf16 halve the size (default fp32)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.pretrained.export import export_run

    result = export_run(args.run_dir, args.to, args.dtype)
    if args.json:
        print(json_line(result))
    else:
        print(
            f"exported {result['parameters']:,} parameters ({args.dtype}, {result['bytes'] / 1e6:.1f} MB) to {args.to}"
        )
        print(f"try: python -m lmlib generate --model {args.to} --prompt 'It is a truth universally acknowledged'")
    return 0
