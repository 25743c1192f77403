"""The model card: README.md with YAML front matter, for a finished run or an exported folder.

Everything on it is read from the run's own files (config.json, results.json, test_time.json
from `lmlib evaluate --cache --dynamic`), plus seeded samples from the weights it describes, so
the card of a folder never claims more than the folder holds. The Hugging Face Hub reads the
front matter (library_name, license, datasets, metrics, model-index); lmlib's tests parse it.
"""

from __future__ import annotations

import os
import shlex
import string
from importlib import resources
from pathlib import Path

import yaml

from lmlib.atomic import write_text
from lmlib.config import RunConfig
from lmlib.errors import LMError
from lmlib.presets import PRESETS
from lmlib.sampling import DEFAULT_TEMPERATURE

# What each known corpus is, and under which licence its text is.
CORPORA = {
    "austen": {
        "title": "Jane Austen's six novels", "language": "en",
        "license": {"license": "other", "license_name": "public-domain"},
        "text": "Jane Austen's six novels (1811-1817), embedded in lmlib (data/austen/README.md), split by the "
        "`{protocol}` protocol. The novels are in the public domain; lmlib's copy comes from the R package "
        "janeaustenr (MIT licence), which took them from Project Gutenberg.",
    },
    "hpd": {
        "title": "the Harry Potter books", "language": "en", "license": {"license": "unknown"},
        "text": "The seven Harry Potter books, supplied by the user (the original study's corpus). The books are "
        "under copyright: they are not distributed with lmlib, and whether weights trained on them may be "
        "shared is for their owner to decide.",
    },
}  # fmt: skip
SAMPLE_PROMPTS = ("It is a truth universally acknowledged", "She had never", "The")
SAMPLE_LENGTH = 40
METHOD_NAMES = {"static": "static", "cache": "continuous cache", "dynamic": "dynamic evaluation",
                "both": "cache + dynamic evaluation"}  # fmt: skip


def write_model_card(run_dir: str | os.PathLike) -> Path:
    """Write the card of a finished run into `<run_dir>/README.md`; returns its path."""
    from lmlib.generate import Generator

    run_dir = Path(run_dir)
    card = model_card(run_dir, Generator.from_pretrained(run_dir, "cpu", serving="fp32"), source=str(run_dir))
    write_text(run_dir / "README.md", card)
    return run_dir / "README.md"


def model_card(run_dir: str | os.PathLike, generator, source: str, dtype: str = "float32") -> str:
    """The card of the run in `run_dir`, with samples from `generator`; `source` is how users load it."""
    from lmlib.evaluation.records import read_record
    from lmlib.training.runs import read_config, read_results

    config, run = read_config(run_dir)
    results = read_results(run_dir)
    if results is None:
        raise LMError(f"{run_dir} has not finished (no results.json): a card needs its perplexities")
    record = read_record(run_dir) or {}
    corpus = CORPORA.get(run.get("corpus") or config.data.corpus)
    name = Path(source).name or source
    prompt = SAMPLE_PROMPTS[0]
    template = string.Template(resources.files("lmlib.pretrained").joinpath("templates/model_card.md").read_text())
    return template.substitute(
        front_matter=yaml.safe_dump(front_matter(name, config, run, results, record), sort_keys=False).strip(),
        title=f"{name}: a word-level LSTM language model" if config.model.arch == "lstm" else name,
        architecture=_architecture(config),
        parameters=f"{results.get('parameters') or 0:,}",
        vocab_size=f"{run.get('vocab_size') or len(generator.vocab):,}",
        metrics_table="\n".join(
            f"| {label} | {_ppl(valid)} | {_ppl(test)} |" for label, valid, test in _metric_rows(results, record)
        ),
        test_time_note=_test_time_note(record),
        source=source,
        prompt=prompt,
        command=training_command(config, run),
        config_note=_config_note(dtype),
        data=(
            corpus["text"]
            if corpus
            else f"The corpus `{config.data.corpus}`, split by the "
            f"`{{protocol}}` protocol; its licence is not known to lmlib."
        ).format(protocol=run.get("protocol")),
        machine=_machine(run, results) + _notes(Path(run_dir)),
        temperature=DEFAULT_TEMPERATURE,
        sample_length=SAMPLE_LENGTH,
        samples=_samples(generator),
    )


def front_matter(name: str, config: RunConfig, run: dict, results: dict, record: dict) -> dict:
    """The card's YAML metadata, as the Hugging Face Hub reads it."""
    corpus_name = run.get("corpus") or config.data.corpus
    corpus = CORPORA.get(corpus_name, {"license": {"license": "unknown"}})
    metrics = []
    for label, valid, test in _metric_rows(results, record):
        metrics += [
            {"type": "perplexity", "name": f"valid perplexity ({label})", "value": _round(valid)},
            {"type": "perplexity", "name": f"test perplexity ({label})", "value": _round(test)},
        ]
    meta = {"library_name": "lmlib", **corpus["license"], "pipeline_tag": "text-generation"}
    if "language" in corpus:
        meta["language"] = corpus["language"]
    meta |= {
        "tags": ["lmlib", "word-level", config.model.arch],
        "datasets": [corpus_name if corpus_name in CORPORA else Path(corpus_name).name],
        "metrics": ["perplexity"],
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "text-generation", "name": "Language modelling"},
                        "dataset": {"type": corpus_name, "name": corpus.get("title", corpus_name), "split": "test"},
                        "metrics": [m for m in metrics if m["value"] is not None],
                    }
                ],
            }
        ],
    }
    return meta


def _metric_rows(results: dict, record: dict) -> list[tuple[str, float | None, float | None]]:
    """(method, valid ppl, test ppl): static from results.json, then each test-time method measured."""
    rows = [("static", results.get("valid_ppl"), results.get("test_ppl"))]
    for method, entry in (record.get("methods") or {}).items():
        if method != "static":
            rows.append((METHOD_NAMES.get(method, method), entry.get("valid_ppl"), entry.get("test_ppl")))
    return rows


def _round(value) -> float | None:
    return round(float(value), 2) if isinstance(value, (int, float)) and value == value else None


def _ppl(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) and value == value else "not measured"


def _test_time_note(record: dict) -> str:
    if not record.get("methods"):
        return "The test-time methods (`lmlib evaluate --cache --dynamic`) were not measured for this model."
    return (
        "The test-time rows adapt to the text as it is read (Grave et al. 2016; Krause et al. 2018), with "
        "settings tuned on validation only (`lmlib evaluate --cache --dynamic`)."
    )


def training_command(config: RunConfig, run: dict) -> str:
    """A `python -m lmlib train` command that trains this configuration (the preset it matches, if any)."""
    ignore = {"device", "precision", "checkpoint_minutes"}
    flat = config.flat()
    best, best_changes = "original", None
    for preset, fields in PRESETS.items():
        base = RunConfig().replace(**fields).flat()
        changes = {k: v for k, v in flat.items() if base[k] != v and k not in ignore}
        if best_changes is None or len(changes) < len(best_changes):
            best, best_changes = preset, changes
    sets = "".join(f" \\\n    --set {k}={_flag_value(v)}" for k, v in sorted((best_changes or {}).items()))
    start = run.get("init_from") or {}
    init = f" \\\n    --init-from {shlex.quote(start['model'])}" if start.get("model") else ""
    return f"python -m lmlib train --preset {best} --run-dir runs/{best}{init}{sets}"


def _flag_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _architecture(config: RunConfig) -> str:
    m = config.model
    if m.arch == "transformer":
        return f"a {m.num_layers}-block Transformer, {m.emb_dim} wide"
    tied = ", tied input and output embeddings" if m.tie_weights else ""
    awd = ", AWD-LSTM regularisation" if m.weight_drop or m.locked_dropout else ""
    return f"{m.num_layers} LSTM layers of {m.hid_dim}, {m.emb_dim}-wide embeddings{tied}{awd}"


def _config_note(dtype: str) -> str:
    stored = "" if dtype == "float32" else f" The weights are stored in {dtype} (`lmlib export --dtype`)."
    return f"config.json holds every setting of the run (`config`) and what it resolved (`run`).{stored}"


def _machine(run: dict, results: dict) -> str:
    if results.get("stopped") == "imported":
        return "Not trained by lmlib: imported from the original study's weights (`lmlib import-original`)."
    hours = (results.get("wall_seconds") or 0) / 3600
    epochs = results.get("epochs_run")
    where = run.get("resolved_device") or "an unrecorded device"
    where = f"{where} ({run['machine']})" if run.get("machine") else where
    start = run.get("init_from") or {}
    before = (
        f" Started from the weights of {start.get('name') or start['model']} ({start.get('epochs_run', '?')} "
        f"epochs, valid perplexity {_ppl(start.get('valid_ppl'))}), with a fresh optimiser."
        if start.get("model")
        else ""
    )
    return (
        f"Trained on {where} in "
        f"{run.get('resolved_precision') or 'fp32'}, torch {run.get('torch', '?')}, lmlib {run.get('lmlib', '?')}: "
        f"{hours:.1f} hours of wall time, {epochs if epochs is not None else '?'} epochs "
        f"(best validation at epoch {results.get('best_epoch', '?')}, stopped: {results.get('stopped', '?')}).{before}"
    )


def _notes(run_dir: Path) -> str:
    """What the run's owner wrote in <run>/notes.md (how it was trained beyond its config), quoted under the machine."""
    path = run_dir / "notes.md"
    return "\n\n" + path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def _samples(generator) -> str:
    lines = []
    for seed, prompt in enumerate(SAMPLE_PROMPTS, start=1):
        result = generator.generate(prompt, SAMPLE_LENGTH, DEFAULT_TEMPERATURE, seed=seed)
        shown = f"**{prompt}**{result.continuation}" if prompt else result.continuation
        lines.append(f"- seed {seed}, prompt {prompt!r}: {shown}")
    return "\n".join(lines)
