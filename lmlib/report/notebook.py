"""Helpers the numbered notebooks call, so the notebooks stay narrative plus one-line calls.

Every notebook starts with `setup()`, which moves to the project root: the paths in the
parameters cells are then relative to the root, exactly as in the CLI and params/*.yaml,
whether the kernel started in notebooks/, in a test's temporary folder or on Colab.
The outputs policy for notebooks in git (`strip_outputs`, `refresh_checked_outputs`) is
here too: see reports/README.md.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from lmlib import paths
from lmlib.data.splits import Prepared


def setup() -> Path:
    """Work from the project root and make figures small, embeddable PNGs; return the root."""
    root = paths.checkout_root()
    if root is not None:
        os.chdir(root)
    try:  # only inside IPython: inline PNG at a modest resolution keeps reports small
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
            shell.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
            shell.run_line_magic("config", "InlineBackend.rc = {'figure.dpi': 90}")
    except ImportError:
        pass
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_colwidth", 200)
    return Path.cwd()


def device_report(name: str = "auto") -> str:
    """Which device `name` resolves to here, in words (GPU model and memory when there is one)."""
    import torch

    from lmlib.training.device import resolve_device

    device = resolve_device(name)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name}, {props.total_memory / 2**30:.1f} GiB (torch {torch.__version__})"
    if device.type == "mps":
        return f"mps: Apple GPU (torch {torch.__version__})"
    hint = " On Colab choose Runtime → Change runtime type → T4 GPU." if "COLAB_RELEASE_TAG" in os.environ else ""
    return f"cpu: {torch.get_num_threads()} threads, no GPU found (torch {torch.__version__}).{hint}"


def run_config(
    preset: str,
    overrides: dict | None = None,
    max_minutes: float | None = None,
    device: str = "auto",
    prepared: Prepared | None = None,
):
    """The RunConfig a notebook/pipeline run trains: preset + overrides + budget + device + data."""
    from lmlib.presets import get_preset

    fields = dict(overrides or {})
    if max_minutes is not None:
        fields["max_minutes"] = max_minutes
    fields["device"] = device
    if prepared is not None:  # record the data actually used, not the preset's default corpus
        fields.update(corpus=prepared.corpus, protocol=prepared.protocol, min_freq=prepared.min_freq)
    return get_preset(preset, **fields)


def zipf_figure(prepared: Prepared):
    """Rank/frequency on log-log axes with the fitted Zipf exponent (ranks 10-1000)."""
    import matplotlib.pyplot as plt

    from lmlib.data.stats import rank_frequency

    ranks, counts = rank_frequency(prepared)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.loglog(ranks, counts, ".", ms=2, label="words")
    s, c = zipf_exponent(ranks, counts)
    ax.loglog(ranks, np.exp(c) * ranks ** (-s), "--", lw=1, label=f"fit: frequency ∝ rank^-{s:.2f}")
    ax.set(xlabel="rank", ylabel="frequency", title=f"Zipf plot: {prepared.corpus}, {len(ranks):,} words")
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def zipf_exponent(ranks: np.ndarray, counts: np.ndarray, lo: int = 10, hi: int = 1000) -> tuple[float, float]:
    """Least-squares slope s and intercept c of log f = c - s log r over ranks lo..hi."""
    keep = (ranks >= lo) & (ranks <= hi)
    if keep.sum() < 2:
        keep = ranks > 0
    slope, intercept = np.polyfit(np.log(ranks[keep]), np.log(counts[keep]), 1)
    return float(-slope), float(intercept)


def token_sample(prepared: Prepared, n: int = 80, split: str = "train", width: int = 100) -> str:
    """The first `n` tokens of a split as the model sees them (ids decoded, `<unk>` shown)."""
    return textwrap.fill(" ".join(prepared.vocab.decode(prepared.splits[split][:n])), width)


def samples(run_dir, prompt: str, temperatures=(0.7, 1.0), max_new_tokens: int = 40, seed: int = 0) -> pd.DataFrame:
    """One generated continuation of `prompt` per temperature (seeded: the same text every time)."""
    from lmlib.generate import Generator

    generator = Generator.from_run(run_dir)
    rows = [
        {
            "temperature": t,
            "text": generator.generate(prompt, max_new_tokens=max_new_tokens, temperature=t, seed=seed).text,
        }
        for t in temperatures
    ]
    return pd.DataFrame(rows).set_index("temperature")


def config_table(config) -> pd.DataFrame:
    """The fields where `config` differs from the original study's recipe (the RunConfig defaults)."""
    from lmlib.config import RunConfig

    base = RunConfig().to_dict()
    rows = {k: (str(v), str(base[k])) for k, v in config.to_dict().items() if v != base[k]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["this run", "original study"])


def run_summary(results: dict) -> str:
    """One paragraph of a run's results dict, for the notebook and the log."""
    return (
        f"best epoch {results['best_epoch']} of {results['epochs_run']:g} "
        f"(stopped: {results['stopped'].replace('_', ' ')}); valid perplexity {results['valid_ppl']:.1f}, "
        f"test perplexity {results['test_ppl']:.1f}; {results['parameters']:,} parameters; "
        f"{results['seconds'] / 60:.1f} minutes at {results['tokens_per_s']:,.0f} tokens/s "
        f"on {results.get('device', '?')}"
    )


CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def strip_outputs(nb, keep_checked: bool = True):
    """The outputs policy for notebooks in git: outputs only on `# NBVAL_CHECK_OUTPUT` cells.

    Everything else (figures, progress bars, training logs, samples) is cleared, with the
    execution counts and widget state, so stored notebooks stay small and diffs readable.
    """
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if not (keep_checked and cell.source.startswith(CHECK_MARKER)):
            cell.execution_count, cell.outputs = None, []  # nbval needs the count of a checked cell
    return nb


def refresh_checked_outputs(notebook: str = "01_data_prep.ipynb", notebooks_dir: Path | None = None) -> Path:
    """Re-execute `notebook` with its default parameters and store the outputs nbval checks."""
    import tempfile

    import nbformat
    import papermill as pm

    notebooks_dir = Path(notebooks_dir or paths.notebooks_dir())
    source = notebooks_dir / notebook
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / notebook
        pm.execute_notebook(str(source), str(executed), cwd=str(notebooks_dir), progress_bar=False)
        ran = {c.id: c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"}
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.id in ran:
            cell.outputs, cell.execution_count = ran[cell.id].outputs, ran[cell.id].execution_count
    nbformat.write(strip_outputs(nb), source)
    return source
