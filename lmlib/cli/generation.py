"""`generate`: sample a continuation of a prompt from a model (a shipped one, an exported folder, a run, a Hub id)."""

from __future__ import annotations

from lmlib.checks import check_int
from lmlib.cli import options
from lmlib.cli.output import json_line, printable
from lmlib.sampling import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, MAX_NEW_TOKENS


def add(commands) -> None:
    parser = commands.add_parser(
        "generate",
        help="generate text from a model (--model austen: the shipped one)",
        description="Sample a continuation of a prompt from a model: --model names a shipped model (austen), "
        "a folder written by `lmlib export`, a run directory or a Hugging Face Hub id; --run-dir a run directory.",
    )
    options.add_model(parser)
    parser.add_argument("--prompt", default="", help="text to continue (default: start a new sentence)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"1..{MAX_NEW_TOKENS} (default {DEFAULT_MAX_NEW_TOKENS})",
    )
    parser.add_argument(
        "--temperature", type=float, default=DEFAULT_TEMPERATURE, help=f"0 = greedy (default {DEFAULT_TEMPERATURE})"
    )
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest words (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable sample")
    options.add_device(parser)
    options.add_serving(parser)
    parser.add_argument("--json", action="store_true", help='print {"text": ..., "continuation": ..., "tokens": [...]}')
    parser.set_defaults(handler=run)


def run(args) -> int:
    import torch

    from lmlib.generate import Generator

    # One word at a time is too little work to share between threads: a second intra-op
    # thread only waits (10x slower on a busy 2-core machine, benchmarks/generation_latency.py).
    torch.set_num_threads(1)
    check_int("--seed", args.seed, minimum=0, maximum=2**63 - 1, optional=True)  # as training's seed

    generator = Generator.from_pretrained(options.model_source(args), args.device, args.serving)
    result = generator.generate(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    # The words come from vocab.json, which anyone may have edited: on a terminal, no control sequences.
    shown = {"text": result.text, "continuation": result.continuation, "tokens": result.tokens}
    print(json_line(shown) if args.json else printable(result.text))
    return 0
