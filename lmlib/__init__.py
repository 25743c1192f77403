"""lmlib: word-level LSTM language models, from the original study to AWD-LSTM.

The package is layered; a module imports only from its own layer or the ones above it in
this list (tests/test_architecture.py checks it), and nothing heavy runs at import time:

    errors, paths, atomic, config   the project's error type, file locations, atomic writes,
                                    the run configuration (one frozen dataclass per concern)
    data/       corpus, tokenize, detokenize, vocab, splits, prepared, stats, batching
    model/      lstm (LSTMLanguageModel), regularize (the AWD-LSTM regularisers)
    presets     named recipes built from config
    training/   device, checkpoint, runs, evaluate, optim, loop (train)
    generate    sampling from a trained run
    report/     profiles, compare, notebook, html, pipeline (the papermill report)
    apps/       panel (ipywidgets), web (Flask)
    cli         `python -m lmlib COMMAND`

Import what you need, e.g. `from lmlib.data.corpus import load_corpus`.
"""

__version__ = "0.1.0"
