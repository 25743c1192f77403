"""Helpers the numbered notebooks call, so the notebooks stay narrative plus one-line calls.

Every notebook starts with `setup()`, which moves to the project root of a checkout (in an
installed package it stays where it is): the paths in the parameters cells are then
relative to the root, exactly as in the CLI and params/*.yaml, whether the kernel started
in notebooks/, in a test's temporary folder or elsewhere.

Each notebook ends with `record(results)`: the dict is shown as a table and stored in the
executed notebook under RESULTS_MIME, where the tests and the report read it back
(`recorded_results`), as recommenders' notebooks do with scrapbook.
"""

from __future__ import annotations

import json
import math
import os

import pandas as pd

from lmlib import paths
from lmlib.config import RunConfig, differences
from lmlib.errors import LMError
from lmlib.report.html import RESULTS_MIME  # one name for the notebooks' records and the report that hides them


def setup() -> None:
    """Work from the project root and make figures small, embeddable PNGs.

    It returns None, so a cell that ends with `nbk.setup()` shows nothing (a returned path would be
    echoed as `PosixPath('/abs/path')` into every executed notebook and the report).
    """
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


def device_report(name: str = "auto") -> str:
    """Which device `name` resolves to here, in words: the GPU's name and memory, and the precision `auto` trains in."""
    import torch

    from lmlib.training.device import resolve_device, resolve_precision

    device = resolve_device(name)
    versions = f"torch {torch.__version__}"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        precision = resolve_precision("auto", device)  # fp16 + grad scaler on a T4, bf16 on Ampere and later
        return f"cuda: {props.name}, {props.total_memory / 2**30:.1f} GiB, precision auto = {precision} ({versions})"
    if device.type == "mps":
        return f"mps: Apple GPU, precision auto = fp32 ({versions})"
    hint = " On Colab choose Runtime → Change runtime type → T4 GPU." if "COLAB_RELEASE_TAG" in os.environ else ""
    return f"cpu: {torch.get_num_threads()} threads, no GPU found, precision auto = fp32 ({versions}).{hint}"


def record(results: dict) -> None:
    """Show a notebook's results and store them in its output, machine-readable (the notebook's contract)."""
    from IPython.display import display

    clean = json.loads(json.dumps(results, default=str))  # what JSON can hold, as the tests will read it
    text = "\n".join(f"{k}: {v}" for k, v in clean.items())
    display({RESULTS_MIME: clean, "text/plain": text}, raw=True)


def recorded_results(executed: str | os.PathLike) -> dict:
    """The dict an executed notebook passed to `record` (its last one)."""
    import nbformat

    found = None
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            if RESULTS_MIME in output.get("data", {}):
                found = output["data"][RESULTS_MIME]
    if found is None:
        raise LMError(f"{executed} recorded no results: run it to the end (its last cell calls record)")
    return dict(found)


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


def budgets_beside(compare_summary: str | os.PathLike, arms: list, runs_root: str | os.PathLike = "runs"):
    """These arms beside another build's (its summary.json), the shorter budget first; None when there is none.

    The order follows the epochs the builds' runs needed, so the converged report set beside the
    default one, or the default beside the converged one, both read "short budget → converged".
    This build is named as the report names it: runs/report-<profile> are the runs of <profile>.
    """
    if not compare_summary:
        return None
    from lmlib.report.budgets import compare_budgets, from_arms, read_summary

    folder = os.path.basename(os.path.normpath(runs_root))
    name = folder.removeprefix("report-") if folder.startswith("report-") else "this build"
    short, long = sorted([read_summary(compare_summary), from_arms(name, arms)], key=_mean_epochs)
    return compare_budgets(short, long)


def _mean_epochs(build) -> float:
    """The mean over a build's arms of the epochs their seeds ran (0 for a build without any)."""
    epochs = [a.epochs.mean for a in build.arms.values() if math.isfinite(a.epochs.mean)]
    return sum(epochs) / len(epochs) if epochs else 0.0


def config_table(config: RunConfig) -> pd.DataFrame:
    """The fields where `config` differs from the original study's recipe (the RunConfig defaults)."""
    rows = {k: (str(b), str(a)) for k, (a, b) in differences(RunConfig(), config).items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["this run", "original study"])


def run_summary(results: dict) -> str:
    """One paragraph of a run's results dict, for the notebook and the log."""
    return (
        f"best epoch {results['best_epoch']} of {results['epochs_run']:g} "
        f"(stopped: {results['stopped'].replace('_', ' ')}); valid perplexity {results['valid_ppl']:.1f}, "
        f"test perplexity {results['test_ppl']:.1f}; {results['parameters']:,} parameters; "
        f"{results['wall_seconds'] / 60:.1f} minutes at {results['train_tokens_per_s']:,.0f} tokens/s "
        f"on {results.get('resolved_device', '?')}"
    )
