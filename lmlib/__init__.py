"""lmlib: word-level LSTM language models, from the original study to AWD-LSTM.

The package is layered; a module imports only from its own layer or the ones above it in
this list (tests/test_architecture.py checks it), and nothing heavy runs at import time:

    errors, paths, atomic, checks   the project's error type, file locations, atomic writes and
    config, config_upgrade          validation; the run configuration (a frozen dataclass per concern);
    sampling                        generation's defaults and limits (no torch: the CLI's --help reads them)
    data/       corpus, tokenize, detokenize, vocab, splits, prepared, stats, batching
    model/      lstm (LSTMLanguageModel), transformer (TransformerLanguageModel), head (their shared output
                layer), build (build_model: one or the other per `arch`), regularize (AWD-LSTM regularisers)
    presets     named recipes built from config
    training/   device, checkpoint, weights (do saved weights fit a config), runs (run directories),
                exported (the folder `lmlib export` writes, as read back),
                ownership (one writer per run directory), evaluate, optim (UpdateRule),
                session (a run's live objects, checkpoint and resume), loop (train), tracking
                (progress bars, TensorBoard), distributed (the steps processes share under torchrun)
    evaluation/ test-time methods: cache (the continuous cache pointer), dynamic (dynamic evaluation),
                score (the one scoring pass), tuning (settings chosen on valid only), records (test_time.json)
    generate    sampling from a model (Generator.from_pretrained: the one way to load one)
    pretrained/ locate (shipped names, folders, Hugging Face Hub ids), export (a run as a shareable folder),
                card (the model card), serving (fp32, bf16 or int8 on this machine), austen/ (the shipped model)
    sweep/      space (search space YAML), storage (SQLite, journal file, PostgreSQL + heartbeats),
                worker (Optuna trials of train(), exactly N per study), results (tables for notebook 05)
    report/     profiles (params/*.yaml, read and checked), compare (records, table, curves), analysis (prose),
                figures, notebook (helpers + results contract), outputs (git policy), html,
                title, browser (headless Chromium), pipeline (papermill -> report.html)
    apps/       panel (ipywidgets), colab (set-up on Colab), web/ (the Flask app: request, guard, admission,
                stream, server, app, and its static page)
    cli/        `python -m lmlib COMMAND`, one module per command

How the code reads, the main flow in order (docs/training.md says more):

    corpus           data/corpus.load_corpus
    prepared splits  data/splits.prepare (vocabulary: data/vocab)
    batches          data/batching.batch_splits, then windows of bptt tokens
    session          training/session.open_session: model/build.build_model, training/optim.UpdateRule
    training loop    training/loop.train: each window through UpdateRule.step -> the model's forward
    checkpoint       training/session.save_checkpoint (training/checkpoint: safetensors + a JSON header)
    results          training/loop._finish -> results.json (training/runs)
    report           report/pipeline.run_pipeline (python -m lmlib report)

Import what you need, e.g. `from lmlib.data.corpus import load_corpus`.
"""

__version__ = "0.2.0"
