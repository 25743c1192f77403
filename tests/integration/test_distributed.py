"""Data-parallel training under `torchrun --nproc_per_node=2` with gloo on this CPU.

Two ranks with the global batch split by rows must train the model one process trains with
the same global batch (to float rounding: gradients are averaged in another order), and a
two-rank run stopped with Ctrl-C mid-way must end, resumed with two ranks or with one, with
the metrics of an uninterrupted run. The config has no dropout: per-rank dropout masks differ
from one process's by design (lmlib.training.distributed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT
from lm_fixtures import launch, output, stop

from lmlib.errors import LMError
from lmlib.training.distributed import DataParallel, Single, current

FIELDS = dict(
    dropout_input=0.0,
    dropout_hidden=0.0,
    dropout_output=0.0,
    subset_tokens=12_000,
    batch_size=8,
    eval_batch_size=5,
    bptt=10,
    emb_dim=16,
    hid_dim=16,
    epochs=3,
    device="cpu",
)  # fmt: skip  (eval_batch_size 5: the two ranks evaluate 2 and 3 rows)
SAME = ["epoch", "train_loss", "valid_loss", "lr"]  # the metrics that must not depend on the ranks


def config():
    from lmlib.presets import get_preset

    return get_preset("smoke", **FIELDS)


def torchrun(nproc: int, run_dir: Path) -> list[str]:
    sets = [item for name, value in FIELDS.items() for item in ("--set", f"{name}={value}")]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "lmlib", "train", "--preset", "smoke", "--run-dir", str(run_dir), "--samples", "0", "--json",
            *sets]  # fmt: skip


def run_torchrun(nproc: int, run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(torchrun(nproc, run_dir), capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def metrics(run_dir: Path) -> pd.DataFrame:
    from lmlib.training.runs import read_metrics

    return read_metrics(run_dir)[SAME]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from lmlib.training.checkpoint import load_tensors

    tensors, _ = load_tensors(run_dir / "last.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model/")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One process and two ranks, uninterrupted, on the same global batch."""
    from lmlib.training.loop import train

    root = tmp_path_factory.mktemp("ddp")
    train(config(), root / "one", progress=False)
    run_torchrun(2, root / "two")
    return {"one": root / "one", "two": root / "two", "root": root}


def test_two_ranks_train_the_weights_one_process_trains(runs):
    one, two = weights(runs["one"]), weights(runs["two"])
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-4, msg=name)
    pd.testing.assert_frame_equal(metrics(runs["two"]), metrics(runs["one"]), rtol=1e-5)
    from lmlib.training.runs import read_results

    a, b = read_results(runs["one"]), read_results(runs["two"])
    assert b["test_ppl"] == pytest.approx(a["test_ppl"], rel=1e-5) and b["stopped"] == "completed"
    assert not (runs["two"] / "results.json.tmp").exists()


def test_a_two_rank_run_stopped_with_ctrl_c_resumes_with_two_ranks_or_one(runs):
    from lmlib.training.loop import train
    from lmlib.training.runs import read_results

    stopped = runs["root"] / "stopped"
    process = launch(torchrun(2, stopped), cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (stopped / "metrics.csv").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to torchrun
        process.wait(timeout=60)
        log = output(process)
    finally:
        stop(process)
    assert (stopped / "last.safetensors").is_file() and read_results(stopped) is None, log[-3000:]
    assert "training interrupted" in log
    assert len(metrics(stopped)) < FIELDS["epochs"]  # it really stopped mid-way
    from lmlib.training.checkpoint import load_tensors

    saved, header = load_tensors(stopped / "last.safetensors")
    if header["loop"]["column"]:  # stopped inside an epoch: the whole batch's hidden state is saved
        assert saved["hidden/0/h"].shape[1] == FIELDS["batch_size"] and header["ranks"] == 2
    single = runs["root"] / "stopped-then-one"
    shutil.copytree(stopped, single)
    run_torchrun(2, stopped)
    train(config(), single, progress=False)
    for resumed in (stopped, single):
        pd.testing.assert_frame_equal(metrics(resumed), metrics(runs["two"]), rtol=1e-5)
        assert read_results(resumed)["test_ppl"] == pytest.approx(read_results(runs["two"])["test_ppl"], rel=1e-5)


def test_torchrun_onto_a_run_dir_another_trainer_holds_is_rank_0s_one_line(tmp_path):
    """Rank 0 finds the lock and says so once; rank 1 gets the same answer and exits quietly (no gloo traceback)."""
    from lmlib.training.ownership import own_run_dir

    run = tmp_path / "held"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with own_run_dir(run):  # another trainer: this process
        done = subprocess.run(torchrun(2, run), capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    log = done.stdout + done.stderr
    assert done.returncode != 0
    assert log.count(f"error: {run} is being trained by another process (pid {os.getpid()})") == 1, log[-3000:]
    assert "[rank1]" not in log and "Connection closed" not in log and "gloo" not in log, log[-3000:]
    assert not (run / "config.json").exists()


def test_the_global_batch_is_split_by_rows_and_must_divide():
    data = torch.arange(8 * 6).view(8, 6)
    second = DataParallel(rank=1, world_size=2, local_rank=1)
    shard = second.shard({"train": data, "valid": data[:5]})
    assert torch.equal(shard["train"], data[4:]) and torch.equal(shard["valid"], data[2:5])
    hidden = [(torch.zeros(2, 8, 3).index_fill_(1, torch.arange(4, 8), 1.0), torch.zeros(2, 8, 3))]
    assert second.shard_hidden(hidden)[0][0].eq(1.0).all()  # its rows of the whole batch's state
    with pytest.raises(LMError, match="batch_size 8 does not divide among 3 processes"):
        DataParallel(rank=0, world_size=3, local_rank=0).shard({"train": data})


def test_a_plain_process_is_single_and_starts_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert isinstance(current(), Single) and not isinstance(current(), DataParallel)
    assert not torch.distributed.is_initialized()
