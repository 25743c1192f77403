"""The original study's trained model as an ordinary run directory (`python -m lmlib import-original`).

The study saved three files (its app/models/): `best-val-lstm_lm.pt`, the `state_dict()` of its
`LSTM` class (embedding, lstm, dropout, fc; benchmarks/reference.py's OriginalLSTM mirrors it)
written by `torch.save`; `vocab.json`, word -> index in torchtext's order (`<unk>` 0, `<eos>` 1,
then by frequency); and `config.json` with seq_len, batch_size, emb_dim, hid_dim, num_layers,
dropout_rate. With every AWD switch off, lmlib's `original` preset is that architecture, so the
weights map one to one: embedding -> embedding, lstm -> rnns.0, fc -> decoder.

The weights are read with `torch.load(weights_only=True)`, which unpickles tensors and plain
containers only and refuses anything that would run code. The run directory gets what
training writes (config.json, vocab.json, model.safetensors, results.json), so generate, serve,
evaluate and the panel use it like any run; results.json says it was imported, and holds
perplexities only when a corpus was given to measure them on. With a raw corpus, the run also
gets casing.json (data/casing.py) learnt from it, so its text shows "Harry", not "harry".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from lmlib import __version__
from lmlib.atomic import atomic_dir, check_new_folder, write_json
from lmlib.config import RunConfig
from lmlib.data.casing import learn_casing, save_casing
from lmlib.data.corpus import load_corpus
from lmlib.data.vocab import EOS, UNK, Vocab
from lmlib.errors import LMError
from lmlib.model.build import build_model, count_parameters
from lmlib.presets import get_preset
from lmlib.training.checkpoint import load_model_tensors, model_tensors, save_tensors
from lmlib.training.runs import RESULT_KEYS, RunPaths, write_config

CONFIG_KEYS = ("seq_len", "batch_size", "emb_dim", "hid_dim", "num_layers", "dropout_rate")
RENAME = {"embedding.": "embedding.", "lstm.": "rnns.0.", "fc.": "decoder."}  # the original's module -> lmlib's
WORD_ROWS = ("embedding.weight", "fc.weight", "fc.bias")  # tensors with one row per vocabulary word


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LMError(f"{what} file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LMError(f"{path} is not a JSON {what} file ({err}): pass the study's {Path(path).name}") from None


def read_original_config(path: str | os.PathLike) -> RunConfig:
    """The study's config.json as the `original` preset at its sizes (seq_len is bptt, dropout_rate every dropout)."""
    raw = _read_json(Path(path), "config")
    if not isinstance(raw, dict):
        raise LMError(f"{path} must be a JSON object with {', '.join(CONFIG_KEYS)}")
    missing = [key for key in CONFIG_KEYS if key not in raw]
    if missing:
        raise LMError(f"{path} lacks {', '.join(missing)}: the study's config.json has {', '.join(CONFIG_KEYS)}")
    p = raw["dropout_rate"]
    try:
        return get_preset(
            "original",
            emb_dim=raw["emb_dim"],
            hid_dim=raw["hid_dim"],
            num_layers=raw["num_layers"],
            dropout_input=p,
            dropout_hidden=p,
            dropout_output=p,
            bptt=raw["seq_len"],
            batch_size=raw["batch_size"],
        )
    except LMError as err:
        raise LMError(f"{path}: {err}") from None


def read_original_vocab(path: str | os.PathLike) -> tuple[Vocab, list[int]]:
    """lmlib's vocabulary from the study's word -> index map, and `order`: lmlib's row i is the study's row order[i].

    lmlib's vocabularies put `<unk>` at 0 and `<eos>` at 1, as torchtext did; a map that numbers
    them otherwise is remapped (the two moved to the front, every other word keeps its order).
    """
    raw = _read_json(Path(path), "vocabulary")
    if not isinstance(raw, dict) or not all(isinstance(w, str) and type(i) is int for w, i in raw.items()):
        raise LMError(f'{path} must map each word to its index, like {{"<unk>": 0, "<eos>": 1, "the": 2}}')
    if sorted(raw.values()) != list(range(len(raw))):
        raise LMError(f"{path} does not number its {len(raw):,} words 0..{len(raw) - 1} once each: is it damaged?")
    absent = [special for special in (UNK, EOS) if special not in raw]
    if absent:
        raise LMError(
            f"{path} has no {' or '.join(absent)}: lmlib never samples <unk> and stops at <eos>, so a vocabulary "
            "needs both (the study's, built by torchtext with specials <unk> and <eos>, has them)"
        )
    by_index = sorted(raw, key=raw.get)
    order = [raw[UNK], raw[EOS]] + [i for i in range(len(by_index)) if i not in (raw[UNK], raw[EOS])]
    return Vocab(tuple(by_index[i] for i in order)), order


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The study's weights, read without unpickling code (`weights_only=True`), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"weights file {path} does not exist: check the path (the study's is best-val-lstm_lm.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise LMError(
            f"{path} cannot be read as weights ({reason}). It must be a state dict saved with "
            "torch.save(model.state_dict(), path); a file holding a whole pickled model is refused, "
            "because loading it would run code from the file"
        ) from None
    if isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
        nested = [state[k] for k in ("state_dict", "model_state_dict") if isinstance(state.get(k), dict)]
        state = nested[0] if len(nested) == 1 else state  # a training checkpoint holding the state dict
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise LMError(f"{path} holds no state dict (parameter names -> tensors): pass the study's .pt file")
    return state


def original_names(num_layers: int) -> list[str]:
    """The parameter names of the study's model with `num_layers` LSTM layers."""
    lstm = [f"lstm.{kind}_l{k}" for k in range(num_layers) for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return ["embedding.weight", *lstm, "fc.weight", "fc.bias"]


def map_weights(state: dict[str, torch.Tensor], config: RunConfig, vocab_size: int, order: list[int]) -> dict:
    """The study's tensors under lmlib's names, word rows in lmlib's order; sizes checked against vocab and config."""
    model = config.model
    expected = original_names(model.num_layers)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        layers = sorted({int(n.rsplit("_l", 1)[1]) for n in state if n.startswith("lstm.weight_ih_l")})
        hint = f"; the weights have {len(layers)} LSTM layer(s), config.json says {model.num_layers}" if layers else ""
        raise LMError(
            f"the weights are not the study's model (embedding, lstm, fc): missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}{hint}"
        )
    gates = 4 * model.hid_dim  # nn.LSTM stacks the input, forget, cell and output gates
    shapes = {
        "embedding.weight": (vocab_size, model.emb_dim),
        "fc.weight": (vocab_size, model.hid_dim),
        "fc.bias": (vocab_size,),
        "lstm.weight_ih_l0": (gates, model.emb_dim),
        "lstm.weight_hh_l0": (gates, model.hid_dim),
    }
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise LMError(
                f"{name} is {tuple(state[name].shape)}, but vocab.json ({vocab_size:,} words) and config.json "
                f"(emb_dim {model.emb_dim}, hid_dim {model.hid_dim}) make it {shape}: "
                "use the vocab.json and config.json saved with these weights"
            )
    rows = torch.as_tensor(order)
    mapped = {}
    for name in expected:
        tensor = state[name].float()
        if name in WORD_ROWS:
            tensor = tensor[rows]
        prefix = next(p for p in RENAME if name.startswith(p))
        mapped[RENAME[prefix] + name[len(prefix) :]] = tensor.contiguous()
    return mapped


def import_original(
    state_dict: str | os.PathLike,
    vocab: str | os.PathLike,
    config: str | os.PathLike,
    run_dir: str | os.PathLike,
    corpus: str | None = None,
    device: str = "auto",
) -> dict:
    """Write the study's model to `run_dir` as a run; measure valid/test perplexity on `corpus` when given."""
    run_dir = Path(run_dir)
    if RunPaths(run_dir).config.is_file():
        raise LMError(f"{run_dir} already holds a run: choose another --run-dir, or delete that folder first")
    # The run is written as a whole folder that replaces run_dir: only a missing or empty one may go.
    check_new_folder(run_dir, "the imported run", "choose a new --run-dir, e.g. runs/original-hp")
    run_config = read_original_config(config).replace(corpus=corpus or "hpd")  # the study trained on hpd
    words, order = read_original_vocab(vocab)
    model = build_model(len(words), run_config.model)
    load_model_tensors(model, map_weights(read_state_dict(state_dict), run_config, len(words), order), str(state_dict))
    info = {
        "imported_from": {"state_dict": str(state_dict), "vocab": str(vocab), "config": str(config)},
        "specials_moved": order[:2] != [0, 1],
        "resolved_device": None,
        "resolved_precision": None,  # it was not trained here
        "corpus": run_config.data.corpus,
        "corpus_checked": corpus is not None,
        "protocol": "original",
        "min_freq": 3,
        "vocab_size": len(words),
        "parameters": count_parameters(model),
        "torch": torch.__version__,
        "lmlib": __version__,
    }
    results = {key: None for key in RESULT_KEYS} | {"parameters": info["parameters"], "stopped": "imported"}
    with atomic_dir(run_dir) as tmp:  # all or nothing: a failed measurement leaves no half run
        paths = RunPaths(tmp)
        write_config(paths, run_config, info)
        words.save(paths.vocab)
        save_tensors(paths.model, model_tensors(model), {"imported_from": str(state_dict)})
        if corpus is not None:
            results |= _measure(tmp, corpus, device)
            _learn_casing(paths, corpus, words)
        write_json(paths.results, {**results, "imported": True})
    return {**results, "imported": True, "specials_moved": info["specials_moved"], "run_dir": str(run_dir)}


def _learn_casing(paths: RunPaths, corpus: str, vocab: Vocab) -> None:
    """casing.json from the raw corpus (a pre-split one is tokenized as written: nothing to learn)."""
    loaded = load_corpus(corpus)
    if not loaded.presplit:
        save_casing(paths.casing, learn_casing((doc.text for doc in loaded.documents), vocab.itos))


def _measure(run_dir: Path, corpus: str, device: str) -> dict:
    from lmlib.training.device import resolve_device
    from lmlib.training.evaluate import evaluate_run

    try:
        measured = evaluate_run(run_dir, device=device)
    except LMError as err:
        if "different vocabulary" not in str(err):
            raise
        raise LMError(
            f"corpus {corpus!r} gives another vocabulary than the imported vocab.json, so its perplexity would "
            "not be the study's: pass the corpus the model was trained on (the Harry Potter books, hpd), "
            "or leave out --corpus"
        ) from None
    return {**measured, "resolved_device": str(resolve_device(device))}
