"""Starting a run from a trained model's weights (`train --init-from NAME|DIR`).

Fine-tuning or continuing a model on its own data, as Hugging Face's `from_pretrained` then
`Trainer` does: the new run starts from the model's best-validation weights (any dtype an
exported folder stores, upcast to float32) with a fresh optimiser, its own learning-rate
schedule and its own epochs. A word-level model's output rows are its vocabulary, so the new
run's corpus, protocol and min_freq must build the very same vocabulary, and its architecture
must give the same shapes (dropouts and the update rule may differ). Anything else is refused
with one line before training starts; nothing is unpickled (safetensors and JSON only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lmlib.config import ModelConfig, value_text
from lmlib.data.vocab import Vocab
from lmlib.errors import LMError
from lmlib.model.build import LanguageModel
from lmlib.training.checkpoint import load_model_tensors, model_tensors


@dataclass(frozen=True)
class StartFrom:
    """The model a run starts from: its folder (a run or an exported folder), and the name the user gave it
    (a shipped model's or a Hub id's; the CLI finds the folder with lmlib.pretrained.locate)."""

    folder: Path | None  # None where the CLI did not look it up: the run resumes and does not need it
    name_or_path: str

    @classmethod
    def of(cls, start: StartFrom | str | os.PathLike) -> StartFrom:
        return start if isinstance(start, StartFrom) else cls(Path(start), str(start))


def check_start(start: StartFrom, run_dir: Path) -> None:
    """Before anything is written or deleted (`--restart`): a run cannot start from its own folder."""
    if start.folder is not None and start.folder.resolve() == run_dir.resolve():
        raise LMError(
            f"--init-from {start.name_or_path} is this run's own folder: give another model, or leave out "
            "--init-from to resume the run"
        )


def check_same_start(start: StartFrom, recorded: dict | None) -> None:
    """A resumed run continues from its own checkpoint: --init-from may only repeat what it started from."""
    started = (recorded or {}).get("model")
    if started != start.name_or_path:
        was = f"from {started}" if started else "without --init-from"
        raise LMError(
            f"this run was started {was}, not from {start.name_or_path}: leave out --init-from to resume it, "
            "or pass --restart to start it over"
        )


# The model fields that make the network what it is: weights carry over only where all of them agree
# (dropouts, `init`, AR/TAR and the update rule are how it trains, and may change).
ARCHITECTURE = ("arch", "emb_dim", "hid_dim", "num_layers", "tie_weights", "adaptive_softmax", "cutoffs",
                "n_heads", "context")  # fmt: skip


def check_same_architecture(source: ModelConfig, config: ModelConfig, name_or_path: str) -> None:
    """Refuse another architecture in one line naming every field that differs, before any weight is read."""
    differ = [name for name in ARCHITECTURE if getattr(source, name) != getattr(config, name)]
    if config.arch != "transformer":  # unused by the LSTM
        differ = [name for name in differ if name not in ("n_heads", "context")]
    if differ:
        fields = ", ".join(
            f"{n} {value_text(getattr(source, n))} there, {value_text(getattr(config, n))} here" for n in differ
        )
        raise LMError(
            f"--init-from {name_or_path} is another network ({fields}): give this run the model's own fields "
            "(its config.json; a preset it was trained with); dropouts and the update rule may differ"
        )


def initial_weights(model: LanguageModel, vocab: Vocab, start: StartFrom) -> dict:
    """Load `start`'s weights into `model` (built for `vocab`); return what config.json records of it."""
    from lmlib.training.runs import load_model, read_results

    folder, name_or_path = start.folder, start.name_or_path
    if folder is None or not (folder / "config.json").is_file():
        raise LMError(f"--init-from {name_or_path}: no model there (no config.json): give a run or an exported folder")
    source, source_vocab, _ = load_model(folder, "cpu")
    if source_vocab.itos != vocab.itos:
        raise LMError(
            f"--init-from {name_or_path}: its vocabulary ({len(source_vocab):,} words) differs from this run's "
            f"({len(vocab):,}{', in another order' if len(vocab) == len(source_vocab) else ''}): a model continues "
            "only on the corpus, protocol and min_freq it was trained on"
        )
    check_same_architecture(source.config, model.config, name_or_path)
    load_model_tensors(model, model_tensors(source), f"--init-from {name_or_path}")
    results = read_results(folder) or {}
    return {
        "model": str(name_or_path),
        "name": Path(name_or_path).name or name_or_path,
        "epochs_run": results.get("epochs_run"),
        "valid_ppl": results.get("valid_ppl"),
        "wall_seconds": results.get("wall_seconds"),
    }
