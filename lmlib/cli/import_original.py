"""`import-original`: the original study's trained model (its .pt, vocab.json, config.json) as a run directory."""

from __future__ import annotations

import json

from lmlib.cli import options


def add(commands) -> None:
    parser = commands.add_parser(
        "import-original",
        help="turn the original study's trained model into a run directory",
        description="Read the study's best-val-lstm_lm.pt (a state dict, loaded with weights_only=True), "
        "vocab.json (word -> index) and config.json, and write a run directory that generate, serve, "
        "evaluate and the notebook panel use.",
    )
    parser.add_argument("--state-dict", required=True, help="the study's weights, e.g. best-val-lstm_lm.pt")
    parser.add_argument("--vocab", required=True, help="its vocab.json (word -> index)")
    parser.add_argument("--config", required=True, help="its config.json (seq_len, batch_size, emb_dim, ...)")
    options.add_run_dir(parser, "the run directory to write, e.g. runs/original-hp")
    parser.add_argument(
        "--corpus",
        default=None,
        help="also measure valid and test perplexity on this corpus (e.g. hpd, the books it was trained on)",
    )
    options.add_device(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from lmlib.training.importing import import_original

    result = import_original(args.state_dict, args.vocab, args.config, args.run_dir, args.corpus, args.device)
    if args.json:
        print(json.dumps(result))
        return 0
    moved = " (<unk> and <eos> moved to indices 0 and 1, as lmlib numbers them)" if result["specials_moved"] else ""
    measured = (
        f"valid ppl {result['valid_ppl']:.2f}, test ppl {result['test_ppl']:.2f}"
        if result["valid_ppl"] is not None
        else "no perplexity measured (pass --corpus hpd to measure it)"
    )
    print(f"imported {result['parameters']:,} parameters into {args.run_dir}{moved}; {measured}")
    print(f"try: python -m lmlib generate --run-dir {args.run_dir} --prompt 'Harry looked at'")
    return 0
