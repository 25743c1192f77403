"""`generate`: sample a continuation of a prompt from a trained run."""

from __future__ import annotations

from lmlib.checks import check_int
from lmlib.cli import options
from lmlib.cli.output import json_line, printable


def add(commands) -> None:
    from lmlib.generate import MAX_NEW_TOKENS

    parser = commands.add_parser(
        "generate",
        help="generate text from a trained run",
        description="Sample a continuation of a prompt from a trained run.",
    )
    options.add_run_dir(parser, "the run directory")
    parser.add_argument("--prompt", default="", help="text to continue (default: start a new sentence)")
    parser.add_argument("--max-new-tokens", type=int, default=50, help=f"1..{MAX_NEW_TOKENS} (default 50)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest words (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable sample")
    options.add_device(parser)
    parser.add_argument("--json", action="store_true", help='print {"text": ..., "tokens": [...]}')
    parser.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from lmlib.generate import Generator

    # One word at a time is too little work to share between threads: a second intra-op
    # thread only waits (10x slower on a busy 2-core machine, benchmarks/generation_latency.py).
    torch.set_num_threads(1)
    check_int("--seed", args.seed, minimum=0, maximum=2**63 - 1, optional=True)  # as training's seed

    result = Generator.from_run(args.run_dir, args.device).generate(
        args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed
    )
    # The words come from vocab.json, which anyone may have edited: on a terminal, no control sequences.
    print(json_line({"text": result.text, "tokens": result.tokens}) if args.json else printable(result.text))
    return 0
