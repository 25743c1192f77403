"""Nothing lost, one writer, exact resume or a clear refusal, one-line errors (issue 14).

Each test tries what a careless user, a crash or a full disk does, the way they do it: real
processes for the lock and the CLI, doctored files for damaged runs, a file-size limit for a
full disk. README.md's "Reliability" section names which test checks which promise.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from lmlib.errors import LMError
from lmlib.presets import get_preset
from lmlib.training.loop import train
from lmlib.training.runs import load_model, read_metrics, read_results

SMALL = dict(subset_tokens=6000, epochs=2, batch_size=8, bptt=10, emb_dim=16, hid_dim=16)
# The CLI spelling of the tiny run (lm_fixtures.train_tiny_run: smoke, 1 epoch, 5,000 tokens), one epoch more.
TINY_MORE = ["--preset", "smoke", "--set", "subset_tokens=5000", "--set", "epochs=2", "--samples", "0", "--json"]


PREPARED_FILES = ("meta.json", "vocab.json", "casing.json", "train.npy", "valid.npy", "test.npy")


def small(**overrides):
    return get_preset("smoke", **{**SMALL, **overrides})


def lmlib(*args, cwd=ROOT, timeout=300, prefix=()):
    return subprocess.run(
        [sys.executable, *prefix, "-m", "lmlib", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def assert_one_line_error(proc, message: str | None = None) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    if message is not None:
        assert message in proc.stderr


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A small text corpus: prepare takes a fraction of a second on it."""
    words = "the cat sat on the mat . a dog ran to the park . she said hello to him .".split()
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))) * 20, encoding="utf-8")
    return path


def copy_run(run: Path, folder: Path) -> Path:
    return Path(shutil.copytree(run, folder))


# -- 1. No data outside a run directory is ever removed ------------------------------------


def test_prepare_keeps_a_folder_that_is_not_prepared_data(tmp_path, corpus):
    scratch = tmp_path / "scratch"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "keep.txt").write_text("keep")
    for flag in ("--prepared-dir", "--out"):
        assert_one_line_error(lmlib("prepare", "--corpus", corpus, flag, scratch), "not prepared data")
        assert (scratch / "keep.txt").read_text() == "keep" and (scratch / "sub").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or .old left
    forced = lmlib("prepare", "--corpus", corpus, "--prepared-dir", scratch, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in scratch.iterdir()) == sorted(PREPARED_FILES)


def test_prepare_replaces_missing_empty_and_prepared_folders_only(tmp_path, corpus):
    from lmlib.cli import main
    from lmlib.data.prepared import load_prepared

    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new", tmp_path / "empty", tmp_path / "new"):  # the last: over prepared data
        assert main(["prepare", "--corpus", str(corpus), "--prepared-dir", str(folder), "--json"]) == 0
        assert load_prepared(folder).corpus == str(corpus)  # what reloads it: its absolute path
    (tmp_path / "new" / "notes.txt").write_text("mine")
    assert main(["prepare", "--corpus", str(corpus), "--prepared-dir", str(tmp_path / "new"), "--json"]) == 2
    assert (tmp_path / "new" / "notes.txt").read_text() == "mine"


def test_prepare_onto_a_file_keeps_it_and_leaves_no_hidden_copy(tmp_path, corpus):
    target = tmp_path / "notes.md"
    target.write_text("my notes")
    assert_one_line_error(lmlib("prepare", "--corpus", corpus, "--prepared-dir", target), "is a file")
    assert target.read_text() == "my notes"
    forced = lmlib("prepare", "--corpus", corpus, "--prepared-dir", target, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert target.is_dir() and (target / "meta.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "notes.md"]  # no .notes.md.old


@pytest.mark.parametrize("where,message", [(".", "the current folder"), ("..", "a folder above the current one")])
def test_prepare_into_the_current_folder_is_a_clear_error(tmp_path, corpus, where, message):
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    (here / "keep.txt").write_text("keep")
    for force in ([], ["--force"]):
        proc = lmlib("prepare", "--corpus", corpus, "--prepared-dir", where, *force, cwd=here)
        assert_one_line_error(proc, message)
    assert (here / "keep.txt").read_text() == "keep"


def test_the_report_swap_still_replaces_its_own_folder_and_undoes_a_failed_one(tmp_path, monkeypatch):
    from lmlib.atomic import replace_dir

    target, build = tmp_path / "reports" / "smoke", tmp_path / "reports" / "smoke.tmp"
    for folder, text in ((target, "old"), (build, "new")):
        folder.mkdir(parents=True)
        (folder / "report.html").write_text(text)
    replace_dir(build, target)  # what pipeline.run_pipeline does once the new report is complete
    assert (target / "report.html").read_text() == "new" and not build.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["smoke"]
    build.mkdir()
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(LMError, match="the disk is full"):
        replace_dir(build, target)
    assert (target / "report.html").read_text() == "new"  # the old report is back in place


# -- 2. One writer per run directory -------------------------------------------------------


def test_two_trainings_into_one_run_dir_one_is_refused_at_once(tmp_path):
    run = tmp_path / "shared"
    args = [sys.executable, "-m", "lmlib", "train", "--preset", "smoke", "--run-dir", str(run), "--json",
            "--samples", "0", "--set", "subset_tokens=20000", "--set", "epochs=4"]  # fmt: skip
    started = time.monotonic()
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    finished = {}
    while len(finished) < 2 and time.monotonic() - started < 600:
        for i, proc in enumerate(procs):
            if i not in finished and proc.poll() is not None:
                finished[i] = (proc.returncode, time.monotonic() - started, *proc.communicate())
        time.sleep(0.05)
    codes = sorted(code for code, *_ in finished.values())
    assert codes == [0, 2], finished
    refused = next(f for f in finished.values() if f[0] == 2)
    winner = next(f for f in finished.values() if f[0] == 0)
    assert "is being trained by another process (pid " in refused[3] and refused[3].count("\n") == 1
    assert refused[1] < winner[1]  # it failed fast, while the other trained
    assert list(read_metrics(run)["epoch"]) == [1, 2, 3, 4]  # each epoch once
    assert json.loads(winner[2])["epochs_run"] == 4


def test_the_lock_refuses_a_second_owner_and_is_released_after_a_failure(tmp_path):
    from lmlib.training.ownership import own_run_dir

    run = tmp_path / "run"
    with own_run_dir(run):
        with pytest.raises(LMError, match=rf"being trained by another process \(pid {os.getpid()}\)"):
            train(small(), run, progress=False)
    with pytest.raises(LMError, match="unknown corpus name"):
        train(small(corpus="nope"), run, progress=False)  # fails inside train(): the lock must go with it
    with own_run_dir(run):
        pass


def test_a_refused_start_leaves_no_folder_behind_but_never_removes_a_users_folder(tmp_path):
    run = tmp_path / "new" / "run"
    with pytest.raises(LMError, match="unknown corpus name"):
        train(small(corpus="nope"), run, progress=False)
    assert not run.exists()  # created for the run, then refused: gone again (no folder holding only a lock)
    run.mkdir()
    (tmp_path / "new" / "notes.txt").write_text("mine")
    with pytest.raises(LMError, match="unknown corpus name"):
        train(small(corpus="nope"), run, progress=False)
    assert run.is_dir() and (tmp_path / "new" / "notes.txt").read_text() == "mine"  # the user's folders stay


def test_a_lock_taken_on_a_file_its_last_owner_just_removed_is_taken_again(tmp_path, monkeypatch):
    """own_run_dir removes the lock of a folder it leaves empty; whoever opened that file just before would
    hold a lock nobody else can see, so it checks the name still leads to its file, and tries again."""
    from lmlib.training import ownership

    opened, real_open = [], ownership._open_lock

    def open_then_removed(lock):
        fd = real_open(lock)
        if not opened:  # the last owner's cleanup, between this open and this flock
            lock.unlink()
        opened.append(lock)
        return fd

    monkeypatch.setattr(ownership, "_open_lock", open_then_removed)
    run = tmp_path / "run"
    with ownership.own_run_dir(run):
        assert len(opened) == 2 and (run / ownership.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert not run.exists()


@pytest.mark.parametrize("platform", ["no fcntl", "no flock on this file system"])
def test_without_fcntl_the_lock_is_an_exclusive_file(tmp_path, monkeypatch, platform):
    from lmlib.training import ownership

    if platform == "no fcntl":
        monkeypatch.setattr(ownership, "fcntl", None)  # as on Windows
    else:
        import fcntl

        def unsupported(fd, operation):
            raise OSError(errno.ENOLCK, "No locks available")  # as some network and FUSE mounts answer

        monkeypatch.setattr(fcntl, "flock", unsupported)
    run = tmp_path / "run"
    with ownership.own_run_dir(run):
        assert (run / ownership.PID_LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(LMError, match="if no training runs there any more, delete"):
            with ownership.own_run_dir(run):
                pass
    assert not (run / ownership.PID_LOCK_NAME).exists()
    with ownership.own_run_dir(run):
        pass


# -- 3. A run resumes exactly, or refuses to pretend ---------------------------------------


def test_a_run_without_its_checkpoint_is_refused_and_restarts_only_when_asked(tmp_path):
    run = tmp_path / "run"
    train(small(), run, progress=False)
    (run / "last.safetensors").unlink()
    best = (run / "model.safetensors").read_bytes()
    with pytest.raises(LMError, match=r"has metrics for 2 epochs but no checkpoint \(last.safetensors\).*--restart"):
        train(small(epochs=3), run, progress=False)
    assert (run / "model.safetensors").read_bytes() == best and list(read_metrics(run)["epoch"]) == [1, 2]
    assert train(small(), run, progress=False) == read_results(run)  # finished, same config: its results
    (run / "metrics.csv").unlink()
    with pytest.raises(LMError, match="has model.safetensors and results.json but no checkpoint"):
        train(small(epochs=3), run, progress=False)
    (run / "notes.txt").write_text("mine")
    results = train(small(epochs=3), run, progress=False, restart=True)
    assert list(read_metrics(run)["epoch"]) == [1, 2, 3] and results["epochs_run"] == 3.0
    assert (run / "notes.txt").read_text() == "mine"  # starting over deletes the run's files only
    assert results["test_ppl"] == train(small(epochs=3), tmp_path / "whole", progress=False)["test_ppl"]


def test_a_run_stopped_before_its_first_checkpoint_starts_over_exactly(tmp_path):
    run = tmp_path / "run"
    whole = train(small(epochs=1), run, progress=False)
    for name in ("last.safetensors", "model.safetensors", "metrics.csv", "results.json"):
        (run / name).unlink()  # what a kill before the first checkpoint leaves: config.json, vocab.json
    assert train(small(epochs=1), run, progress=False)["test_ppl"] == whole["test_ppl"]
    assert list(read_metrics(run)["epoch"]) == [1]


# -- 4. A full disk is one line; what a killed write leaves is cleaned ---------------------


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from lmlib.atomic import write_json

    write_json(tmp_path / "results.json", {"old": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(LMError, match=r"cannot write .*results.json: the disk is full"):
        write_json(tmp_path / "results.json", {"new": 2})
    assert json.loads((tmp_path / "results.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_full_disk_while_saving_weights_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from safetensors import SafetensorError

    from lmlib.cli import main
    from lmlib.training import checkpoint

    def full(*args, **kwargs):  # what safetensors raises when the disk is full
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    run = tmp_path / "run"
    args = ["train", "--preset", "smoke", "--run-dir", str(run), "--set", "subset_tokens=3000", "--set", "epochs=1",
            "--hid-dim", "16", "--emb-dim", "16", "--samples", "0", "--json"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write ") and "the disk is full" in err and err.count("\n") == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(sys.platform == "win32", reason="needs resource.RLIMIT_FSIZE")
def test_a_file_size_limit_in_a_real_process_then_the_same_command_resumes(tmp_path):
    """A real failing write (a 4 MB file-size limit: the weights fit, the 6 MB checkpoint with Adam's state does
    not), after epoch 1's metrics row; then the same command, without the limit, resumes and loses nothing."""
    limit = (
        "-c", "import resource, runpy, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, resource.RLIM_INFINITY)); "
        "runpy.run_module('lmlib', run_name='__main__')",
    )  # fmt: skip
    run = tmp_path / "run"
    base = ["train", "--preset", "smoke", "--run-dir", run, "--set", "epochs=2", "--samples", "0", "--json"]
    proc = subprocess.run(
        [sys.executable, *limit, *map(str, base)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert_one_line_error(proc, "last.safetensors: the file is larger than this system allows")
    assert list(read_metrics(run)["epoch"]) == [1]  # the row came before the checkpoint that failed...
    assert (run / "last.safetensors").is_file()  # ...and the checkpoint written before training is there
    proc = lmlib(*base)
    assert proc.returncode == 0, proc.stderr
    assert list(read_metrics(run)["epoch"]) == [1, 2]  # epoch 1 trained again, its row once
    whole = lmlib(*[str(a).replace(str(run), str(tmp_path / "whole")) for a in base])
    assert json.loads(proc.stdout)["test_ppl"] == json.loads(whole.stdout)["test_ppl"]


def test_a_full_disk_at_any_write_leaves_a_run_the_same_call_resumes(tmp_path, monkeypatch):
    """The disk fills at the 1st, 2nd, ... write of a run (config, vocabulary, checkpoints, weights, metrics,
    results): each time the same call afterwards finishes the run exactly as an uninterrupted one."""
    config = small(checkpoint_minutes=None)
    real_replace, writes, full_at = os.replace, [], [0]  # the nth write fails (0: none)

    def replace(src, dst):
        writes.append(Path(dst).name)
        if len(writes) == full_at[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    whole = train(config, tmp_path / "whole", progress=False)
    names = list(writes)
    assert names[:4] == ["config.json", "vocab.json", "casing.json", "last.safetensors"]  # a checkpoint first
    assert names.index("last.safetensors") < names.index("metrics.csv") and names[-1] == "results.json"
    timing = ["train_seconds", "train_tokens_per_s", "wall_seconds"]
    expected = read_metrics(tmp_path / "whole").drop(columns=timing)
    for n, name in enumerate(names, start=1):
        run, full_at[0] = tmp_path / f"full-at-{n}", n
        writes.clear()
        with pytest.raises(LMError, match=f"cannot write .*{name}: the disk is full"):
            train(config, run, progress=False)
        full_at[0] = 0
        assert train(config, run, progress=False)["test_ppl"] == whole["test_ppl"], name  # the same call again
        assert read_metrics(run).drop(columns=timing).equals(expected), name


def test_stale_temporary_files_are_removed_by_the_next_owner_only(tmp_path):
    from lmlib.training.ownership import own_run_dir

    run = tmp_path / "run"
    train(small(epochs=1), run, progress=False)
    stale = {".last.safetensors.k2j4h5g6.tmp", ".model.safetensors.ab_d1234.tmp", ".tmpAb12Cd"}
    kept = {"notes.tmp", ".keep", "x.abcd1234.tmp", ".notes"}
    with own_run_dir(run):  # another process trains it and is writing: nothing of its may go
        (run / ".last.safetensors.k2j4h5g6.tmp").mkdir()  # what a SIGKILL during a write leaves
        (run / ".last.safetensors.k2j4h5g6.tmp" / "last.safetensors").write_bytes(b"\0" * 100_000)
        (run / ".model.safetensors.ab_d1234.tmp").write_bytes(b"\0" * 1000)  # an older version's temporary file
        (run / ".tmpAb12Cd").write_bytes(b"\0" * 1000)  # safetensors' own, beside its target
        for name in kept:
            (run / name).write_text("mine")
        with pytest.raises(LMError, match="being trained by another process"):
            train(small(epochs=2), run, progress=False)
        assert stale <= {p.name for p in run.iterdir()}
    train(small(epochs=2), run, progress=False)  # the next owner resumes, and cleans
    names = {p.name for p in run.iterdir()}
    assert not stale & names and kept <= names
    assert list(read_metrics(run)["epoch"]) == [1, 2]


# -- 9. Non-finite numbers -----------------------------------------------------------------


@pytest.mark.parametrize("setting", ["lr=nan", "lr=inf", "clip=nan", "alpha=nan", "max_minutes=nan", "lr=-inf"])
def test_non_finite_settings_are_one_line_errors(setting):
    proc = lmlib("train", "--preset", "smoke", "--set", setting, "--dry-run")
    assert_one_line_error(proc, f"{setting.split('=')[0]} must be a finite")


@pytest.mark.parametrize("yaml_text", ["max_minutes: .nan\n", "overrides: {lr: .inf}\n", "overrides: {clip: .NaN}\n"])
def test_non_finite_yaml_values_are_one_line_errors(tmp_path, yaml_text):
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml_text + "runs: [{name: a, preset: smoke}]\n")
    assert_one_line_error(lmlib("report", "--profile", profile, "--reports-dir", tmp_path / "reports"), "finite")
    assert not (tmp_path / "reports").exists()


def test_a_diverging_run_stops_with_the_epoch_and_saves_nothing_misleading(tmp_path):
    run = tmp_path / "diverged"
    with pytest.raises(LMError, match=r"training diverged in epoch 1 \(by window \d+\): the training loss reached"):
        train(small(optimizer="sgd", lr=1e6, clip=None), run, progress=False)
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "casing.json",
        "config.json",
        "last.safetensors",  # written before training: the run as it started, which --restart replaces
        "vocab.json",
    ]
    proc = lmlib("train", "--preset", "smoke", "--run-dir", tmp_path / "cli", "--set", "optimizer=sgd",
                 "--set", "lr=1e30", "--set", "clip=none", "--set", "subset_tokens=3000", "--json")  # fmt: skip
    assert_one_line_error(proc, "training diverged in epoch 1")


# -- 10. config.json's sizes against the weights, before anything is allocated ----------------


def test_a_doctored_size_is_refused_before_the_model_is_built(tiny_run, tmp_path, monkeypatch):
    from lmlib.training import runs

    built = []
    monkeypatch.setattr(runs, "build_model", lambda *args: built.append(args))
    run = copy_run(tiny_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"]["hid_dim"] = 4096
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(LMError, match=r"do not fit this model .*rnns.0.weight_ih_l0 is \(128, 32\) not \(16384, 32\)"):
        load_model(run)
    config["config"]["model"]["hid_dim"] = 10**7
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(LMError, match="over the 2,147,483,648 allowed; choose smaller sizes"):
        load_model(run)
    assert not built


def test_a_resume_checks_the_checkpoint_before_building_the_model(tmp_path, monkeypatch):
    from lmlib.training import session

    run = tmp_path / "run"
    train(small(epochs=1), run, progress=False)
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"]["hid_dim"] = 24  # config.json and the command agree; the weights do not
    (run / "config.json").write_text(json.dumps(config))
    built = []
    monkeypatch.setattr(session, "build_model", lambda *args: built.append(args))
    with pytest.raises(LMError, match="last.safetensors do not fit this model"):
        train(small(epochs=2, hid_dim=24), run, progress=False)
    assert not built


def test_absurd_model_sizes_are_refused_without_allocating():
    from lmlib.training.weights import planned_weights

    with pytest.raises(LMError, match="LSTM parameters, over the"):
        small(hid_dim=10**7)
    with pytest.raises(LMError, match="num_layers must be a whole number from 1 to 100"):
        small(num_layers=10**6)
    with pytest.raises(LMError, match="a vocabulary of 10,000,000 words"):
        planned_weights(10**7, small(emb_dim=400).model)  # 4e9 embedding weights: counted, never allocated
    shapes, parameters = planned_weights(100, small(tie_weights=True).model)
    assert "decoder.weight" not in shapes and parameters == 100 * 16 + 2 * (4 * 16 * 32 + 8 * 16) + 100


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(tie_weights=True), dict(tie_weights=True, emb_dim=8), dict(locked_dropout=True, num_layers=3),
     dict(adaptive_softmax=True), dict(adaptive_softmax=True, cutoffs=(20, 60), hid_dim=40),
     dict(weight_drop=0.3, num_layers=1), dict(arch="transformer"), dict(arch="transformer", tie_weights=True),
     dict(arch="transformer", adaptive_softmax=True, num_layers=3, hid_dim=40, context=5)],
    ids=["untied", "tied", "tied-per-layer", "locked-3-layers", "adaptive", "adaptive-cutoffs", "weight-drop",
         "transformer", "transformer-tied", "transformer-adaptive"],
)  # fmt: skip
def test_planned_weights_are_exactly_what_the_model_stores(overrides):
    from lmlib.model.build import build_model, count_parameters
    from lmlib.training.checkpoint import model_tensors
    from lmlib.training.weights import planned_weights

    config = small(**overrides).model
    model = build_model(150, config)
    shapes, parameters = planned_weights(150, config)
    assert shapes == {name: tuple(t.shape) for name, t in model_tensors(model).items()}
    assert parameters == count_parameters(model)


# -- 11. Damaged files and bad values: one line, exit 2, no traceback ------------------------


def _rewrite_checkpoint(run: Path, metadata) -> None:
    from safetensors.torch import load_file, save_file

    path = run / "last.safetensors"
    save_file(load_file(path), path, metadata=metadata)


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


DAMAGE = {
    "config.json not UTF-8": (lambda run: (run / "config.json").write_bytes(b"\xff\xfe{"), "not a valid config.json"),
    "config.json a list": (lambda run: (run / "config.json").write_text("[1]"), "not a valid config.json"),
    "vocab.json a folder": (
        lambda run: ((run / "vocab.json").unlink(), (run / "vocab.json").mkdir()), "cannot be read"),
    "vocab.json non-text tokens": (
        lambda run: _edit_json(run / "vocab.json", lambda v: v["itos"].__setitem__(5, 17)), "tokens must be text"),
    "vocab.json not UTF-8": (lambda run: (run / "vocab.json").write_bytes(b"\xff{}"), "not a valid vocab.json"),
    "model.safetensors empty": (lambda run: (run / "model.safetensors").write_bytes(b""), "damaged or truncated"),
    "model.safetensors odd header": (
        lambda run: (run / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}"), "damaged or truncated"),
    "results.json garbage": (lambda run: (run / "results.json").write_text("garbage{"), "results.json is damaged"),
    "results.json a list": (lambda run: (run / "results.json").write_text("[1, 2]"), "results.json is damaged"),
    "casing.json not UTF-8": (lambda run: (run / "casing.json").write_bytes(b"\xff{}"), "not a valid casing.json"),
    "casing.json another word": (
        lambda run: _edit_json(run / "casing.json", lambda c: c["forms"].__setitem__("the", "\x1b[2J")),
        "not the same word"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_a_damaged_run_is_a_one_line_error(tiny_run, tmp_path, damage, command):
    doctor, message = DAMAGE[damage]
    if command == "generate" and damage.startswith("results"):
        pytest.skip("generate does not read results.json")
    if command == "evaluate" and damage.startswith("casing"):
        pytest.skip("evaluate does not read casing.json (casing never touches ids)")
    run = copy_run(tiny_run, tmp_path / "run")
    doctor(run)
    assert_one_line_error(lmlib(command, "--run-dir", run), message)


RESUME_DAMAGE = {
    "no header": (lambda run: _rewrite_checkpoint(run, None), "lacks what a resume needs"),
    "header not a mapping": (lambda run: _rewrite_checkpoint(run, {"header": "[1, 2]"}), "unreadable header"),
    "header not JSON": (lambda run: _rewrite_checkpoint(run, {"header": "{oops"}), "damaged or truncated"),
    "header without the loop": (lambda run: _rewrite_checkpoint(run, {"header": '{"optimization": {}}'}),
                                "lacks what a resume needs"),
    "metrics.csv garbage": (lambda run: (run / "metrics.csv").write_text("a,b\n1,2\n"), "metrics.csv is damaged"),
    "metrics.csv binary": (lambda run: (run / "metrics.csv").write_bytes(b"\xff\x00garbage"), "metrics.csv is damaged"),
    "results.json garbage": (lambda run: (run / "results.json").write_text("{"), "results.json is damaged"),
    "config.json not UTF-8": (lambda run: (run / "config.json").write_bytes(b"\xff\xfe{"), "not a valid config.json"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(RESUME_DAMAGE))
def test_resuming_a_damaged_run_is_a_one_line_error(tiny_run, tmp_path, damage):
    doctor, message = RESUME_DAMAGE[damage]
    run = copy_run(tiny_run, tmp_path / "run")
    doctor(run)
    assert_one_line_error(lmlib("train", "--run-dir", run, *TINY_MORE), message)


BAD_VALUES = {
    "huge --seed (generate)": (["generate", "--seed", "9" * 30], "--seed must be a whole number from 0 to"),
    "huge --seed (train)": (["train", "--preset", "smoke", "--seed", "9" * 30, "--dry-run"], "seed must be"),
    "huge hid_dim": (["train", "--preset", "smoke", "--hid-dim", "10000000", "--dry-run"], "LSTM parameters, over"),
    "huge emb_dim": (["train", "--preset", "smoke", "--emb-dim", "1000000000", "--hid-dim", "1", "--dry-run"],
                     "allowed; choose smaller sizes"),
    "huge num_layers": (["train", "--preset", "smoke", "--num-layers", "1000000", "--dry-run"], "num_layers must"),
    "a huge vocabulary x emb_dim": (["train", "--preset", "smoke", "--emb-dim", "400000", "--hid-dim", "1",
                                     "--dry-run"], "a vocabulary of"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_one_line_errors(tiny_run, case):
    args, message = BAD_VALUES[case]
    if args[0] == "generate":
        args = [*args, "--run-dir", str(tiny_run)]
    assert_one_line_error(lmlib(*args), message)


BAD_PROFILES = {
    "top level a list": (b"- a\n- b\n", "must be a mapping"),
    "overrides a list": (b"overrides: [1]\nruns: [{name: a, preset: smoke}]\n", "`overrides` must be a mapping"),
    "overrides with a number key": (b"overrides: {5: 1}\nruns: [{name: a, preset: smoke}]\n", "must be a mapping"),
    "a run's overrides a list": (b"runs: [{name: a, preset: smoke, overrides: [1]}]\n", "must be a mapping"),
    "a run's overrides with a number key": (b"runs: [{name: a, preset: smoke, overrides: {5: 1}}]\n",
                                            "must be a mapping"),
    "runs a mapping": (b"runs: {a: 1}\n", "lists no runs"),
    "not UTF-8": (b"\xff\xfe: 1\n", "not valid YAML in UTF-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_PROFILES))
def test_a_bad_params_file_is_a_one_line_error(tmp_path, case):
    text, message = BAD_PROFILES[case]
    (tmp_path / "bad.yaml").write_bytes(text)
    assert_one_line_error(lmlib("report", "--profile", tmp_path / "bad.yaml", "--reports-dir", tmp_path / "r"), message)


def test_a_corpus_that_is_not_gzip_is_a_one_line_error(tmp_path):
    (tmp_path / "book.txt.gz").write_text("plain text, not gzip")
    assert_one_line_error(lmlib("prepare", "--corpus", tmp_path / "book.txt.gz"), "is not a valid gzip file")
    (tmp_path / "cut.txt.gz").write_bytes(__import__("gzip").compress(b"some text " * 1000)[:40])
    assert_one_line_error(lmlib("prepare", "--corpus", tmp_path / "cut.txt.gz"), "is not a valid gzip file")


# -- 12. Terminal escapes, strict JSON, file modes, weights that disagree ------------------------


def test_generate_prints_no_terminal_escapes_from_a_doctored_vocabulary(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    evil = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1m\x07"
    _edit_json(run / "vocab.json", lambda v: v.__setitem__("itos", v["itos"][:2] + [evil + t for t in v["itos"][2:]]))
    args = ["generate", "--run-dir", run, "--prompt", "she", "--seed", "1", "--max-new-tokens", "6"]
    plain = lmlib(*args)
    assert plain.returncode == 0, plain.stderr
    assert not any(c in plain.stdout for c in "\x1b\x07\x9b") and "owned" not in plain.stdout
    assert plain.stdout.strip().startswith("she ")  # the prompt is echoed as typed, then the continuation
    tokens = json.loads(lmlib(*args, "--json").stdout)["tokens"]  # --json keeps the exact tokens, escaped
    assert any(t.startswith(evil) for t in tokens)


def test_printable_strips_control_sequences_and_keeps_text():
    from lmlib.cli.output import printable

    hyperlink = "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
    assert printable(f"a\x1b[1;31mred\x1b[0m b{hyperlink} c\x07\x00\x7f\x85") == "ared blink c"
    assert printable("line one\nline\ttwo — “quoted” é") == "line one\nline\ttwo — “quoted” é"


def _doctor_bias(run: Path, bias: float) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = run / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    tensors["decoder.bias"][0] = bias
    save_file(tensors, path, metadata=metadata)


def test_evaluate_json_is_strict_json_with_null_for_non_finite_numbers(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _doctor_bias(run, 1e4)  # every word but <unk> becomes e^-10000 likely: an infinite perplexity

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    report = json.loads(lmlib("evaluate", "--run-dir", run, "--json").stdout, parse_constant=refuse)
    assert report["valid_ppl"] is None and report["test_ppl"] is None
    assert "valid ppl inf" in lmlib("evaluate", "--run-dir", run).stdout


def test_weights_holding_nan_are_a_one_line_error(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    _doctor_bias(run, float("nan"))
    assert_one_line_error(lmlib("evaluate", "--run-dir", run, "--json"), "hold NaN or infinite values (decoder.bias)")


def test_every_run_file_follows_the_umask(tiny_run):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "vocab.json", "metrics.csv", "results.json", "model.safetensors", "last.safetensors"):
        assert (tiny_run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_tie_weights_must_agree_with_the_weights(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    run = copy_run(tiny_run, tmp_path / "run")  # an untied model: decoder.weight is its own matrix
    _edit_json(run / "config.json", lambda c: c["config"]["model"].__setitem__("tie_weights", True))
    with pytest.raises(LMError, match="hold a separate decoder.weight, but the config says tie_weights is true"):
        load_model(run)
    _edit_json(run / "config.json", lambda c: c["config"]["model"].__setitem__("tie_weights", False))
    tensors = load_file(run / "model.safetensors")
    del tensors["decoder.weight"]  # as a tied model stores its one matrix
    save_file(tensors, run / "model.safetensors")
    with pytest.raises(LMError, match="hold no decoder.weight, but the config says tie_weights is false"):
        load_model(run)


@pytest.mark.parametrize("dtype,message", [("float16", "are float16 .*not float32"),
                                           ("int64", "are int64 .*not floating-point numbers")])  # fmt: skip
def test_half_and_integer_weights_are_refused(tiny_run, tmp_path, dtype, message):
    import torch
    from safetensors.torch import load_file, save_file

    run = copy_run(tiny_run, tmp_path / "run")
    tensors = load_file(run / "model.safetensors")
    save_file({k: v.to(getattr(torch, dtype)) for k, v in tensors.items()}, run / "model.safetensors")
    with pytest.raises(LMError, match=message):
        load_model(run)
