"""Sweeps: the space file, the per-epoch hook, exactly N trials, and two real workers per storage kind.

The worker tests start two `python -m lmlib sweep` processes on one study in SQLite, a journal
file and a throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder on a free
port; skipped only when the postgres binaries are missing and LMLIB_REQUIRE_POSTGRES is not
set), SIGKILL one of them mid-trial and check that the other finishes the study with exactly
the requested number of trials, none trained twice, the dead one retried.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from lm_fixtures import free_port, launch, output, stop

from lmlib.errors import LMError

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed: pip install -e '.[sweep]'")

from lmlib.sweep.space import load_space  # noqa: E402
from lmlib.sweep.storage import open_storage  # noqa: E402
from lmlib.sweep.worker import _admitted, state_counts  # noqa: E402


def write_space(folder: Path, **changes) -> Path:
    raw = {
        "base": {"preset": "smoke", "overrides": {"epochs": 2}},
        "space": {"hid_dim": {"int": [16, 48], "step": 16}, "lr": {"float": ["1e-3", 1e-2], "log": True}},
        "objective": "valid_ppl",
        "pruner": "median",
    }
    raw.update(changes)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# -- the space file ---------------------------------------------------------------------------


def test_the_shipped_spaces_load():
    for path in sorted((ROOT / "params" / "sweeps").glob("*.yaml")):
        space = load_space(path)
        assert space.params and space.objective in ("valid_ppl", "valid_loss")


def test_a_space_reads_yaml_numbers_and_builds_trial_configs(tmp_path):
    space = load_space(write_space(tmp_path))
    lr = next(p for p in space.params if p.name == "lr")
    assert (lr.low, lr.high, lr.log) == (1e-3, 1e-2, True)  # "1e-3" is text to YAML, a number here
    trial = optuna.trial.FixedTrial({"hid_dim": 32, "lr": 0.004})
    config = space.config_for(trial)
    assert (config.model.hid_dim, config.train.lr, config.train.epochs) == (32, 0.004, 2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"space": {"hid_dimm": {"int": [1, 2]}}}, r"space.hid_dimm: unknown config field.*did you mean hid_dim\?"),
        ({"base": {"preset": "smoke", "overrides": {"lrr": 1}}}, r"base: unknown config field.*lrr"),
        ({"space": {"lr": {"float": [0.1, 0.01]}}}, "lower bound 0.1 must be below the upper bound 0.01"),
        ({"space": {"lr": {"float": [0.0, 0.1], "log": True}}}, "log range needs a positive lower bound"),
        ({"space": {"lr": {"float": [0.1, 0.2], "int": [1, 2]}}}, "exactly one of int"),
        ({"space": {"hid_dim": {"int": [16, 48], "stepp": 2}}}, "int takes.*not stepp"),
        ({"space": {"dropout_output": {"categorical": [0.2, 1.5]}}}, r"dropout_output = 1.5: dropout_output"),
        ({"objective": "test_ppl"}, "objective must be one of valid_ppl, valid_loss"),
        ({"pruner": "hyperband"}, "pruner is one of median, successive_halving, none"),
        ({"pruner": {"median": {"n_startup": 2}}}, "pruner median does not take"),
        ({"spaces": {}}, "unknown key.*spaces"),
    ],
)
def test_a_bad_space_is_a_clear_error(tmp_path, changes, message):
    with pytest.raises(LMError, match=message):
        load_space(write_space(tmp_path, **changes))


def test_the_cli_flag_replaces_the_pruner(tmp_path):
    assert load_space(write_space(tmp_path), pruner="successive_halving").pruner == "successive_halving"


# -- the per-epoch hook in train() -------------------------------------------------------------


def tiny_config(**changes):
    from lmlib.presets import get_preset

    return get_preset("smoke", subset_tokens=3000, hid_dim=16, emb_dim=16, epochs=3, device="cpu", **changes)


def test_on_epoch_sees_every_epoch_and_a_returned_reason_stops_the_run_cleanly(tmp_path):
    from lmlib.training.loop import train
    from lmlib.training.runs import read_metrics, read_results

    seen = []
    full = train(tiny_config(), tmp_path / "full", progress=False, on_epoch=lambda e, row: seen.append((e, row)))
    assert [e for e, _ in seen] == [1, 2, 3] and full["stopped"] == "completed"
    assert seen[0][1]["valid_ppl"] == pytest.approx(read_metrics(tmp_path / "full")["valid_ppl"][0])

    pruned = train(tiny_config(), tmp_path / "pruned", progress=False, on_epoch=lambda e, row: "pruned")
    assert pruned["stopped"] == "pruned" and pruned["epochs_run"] == 1
    assert read_results(tmp_path / "pruned")["stopped"] == "pruned" and len(read_metrics(tmp_path / "pruned")) == 1
    assert pruned["test_ppl"] > 0  # best weights evaluated on test, as for any stop
    assert train(tiny_config(), tmp_path / "pruned", progress=False)["epochs_run"] == 1  # a pruned run stays so


# -- storage and the budget ---------------------------------------------------------------------


def test_an_unknown_storage_is_a_clear_error():
    with pytest.raises(LMError, match="unknown storage 'mysql://x'.*sqlite:///.*journal:.*postgresql://"):
        open_storage("mysql://x")


def test_workers_started_together_on_a_new_sqlite_file_all_open_it(tmp_path):
    """Each creates the schema it does not see yet; the losers of that race try again (CI saw the
    alembic_version UNIQUE error when two workers started at once)."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys, time; from lmlib.sweep.storage import open_storage; "
        "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); open_storage(sys.argv[2]); print('ok')"
    )
    start = str(time.time() + 8)  # after every interpreter has imported optuna: they create the tables at once
    command = [sys.executable, "-c", code, start, url]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [out.strip() for out, _ in outputs] == ["ok"] * 4, [err[-800:] for _, err in outputs]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() without optimize()
def test_a_stale_journal_trial_is_retried_once_even_when_two_workers_notice(tmp_path):
    url = f"journal:{tmp_path / 'study.journal'}"
    first, second = open_storage(url, heartbeat=1, grace=2), open_storage(url, heartbeat=1, grace=2)
    study = optuna.create_study(study_name="s", storage=first)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # RUNNING, and nobody beats for it
    first.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    for storage in (first, second):
        optuna.storages.fail_stale_trials(optuna.load_study(study_name="s", storage=storage))
    trials = optuna.load_study(study_name="s", storage=second).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].system_attrs["failed_trial"] == dead.number and trials[1].params == dead.params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() without optimize()
def test_a_trial_is_admitted_only_while_fewer_than_n_live_trials_come_before_it(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=60))
    study.add_trial(optuna.create_trial(value=1.0))  # 0: complete
    study.ask()  # 1: running elsewhere
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL))  # 2: failed, does not count
    study.enqueue_trial({})  # 3: queued (a retry)
    assert _admitted(study, 3, total=3) and not _admitted(study, 4, total=3)
    assert state_counts(study) == {"finished": 1, "running": 1, "waiting": 1, "failed": 1}


def test_a_worker_with_another_space_cannot_join_a_study(tmp_path):
    from lmlib.sweep.worker import WorkerPlan, open_study

    url = f"sqlite:///{tmp_path}/s.db"
    open_study(WorkerPlan(study="s", space=load_space(write_space(tmp_path)), trials=2, storage=url))
    other = load_space(write_space(tmp_path, space={"lr": {"float": [1e-3, 2e-3]}}))
    with pytest.raises(LMError, match="study 's' was started with another search space"):
        open_study(WorkerPlan(study="s", space=other, trials=2, storage=url))


def test_the_sweep_command_prints_one_line_for_a_user_error(tmp_path, capsys):
    from lmlib.cli import main

    assert main(["sweep", "--study", "x", "--space", str(tmp_path / "nope.yaml"), "--trials", "2"]) == 2
    assert capsys.readouterr().err.startswith(f"error: no space file {tmp_path / 'nope.yaml'}")


# -- two real workers per storage kind ------------------------------------------------------------


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on a free local port, removed afterwards."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        reason = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("LMLIB_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " - LMLIB_REQUIRE_POSTGRES=1 requires the PostgreSQL tests to run")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="lmlib-pg-"))
    as_owner = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), folder / "data"
    run = lambda *cmd: subprocess.run(as_owner + list(cmd), check=True, capture_output=True, timeout=120)
    try:
        run(initdb, "-D", str(data), "-U", "lmlib", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
        run(_postgres_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "lmlib", "optuna")
        yield f"postgresql://lmlib@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(as_owner + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _storage_url(kind: str, tmp_path: Path, request) -> str:
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return {"sqlite": f"sqlite:///{tmp_path}/sweeps.db", "journal": f"journal:{tmp_path}/shared/sweeps.journal"}[kind]


def _worker(tmp_path: Path, space: Path, url: str, trials: int):
    # heartbeat 2 s, stale after 12 s: a loaded CI machine can delay a live worker's beat by seconds
    command = [sys.executable, "-m", "lmlib", "sweep", "--study", "pair", "--space", str(space),
               "--trials", str(trials), "--storage", url, "--runs-root", str(tmp_path / "runs"),
               "--heartbeat", "2", "--grace", "12"]  # fmt: skip
    return launch(command, cwd=tmp_path)


def _kill_mid_trial(study, victim, others, deadline: float) -> int:
    """SIGKILL `victim` once a trial of its own has finished an epoch; return that trial's number."""
    name = f"{socket.gethostname()}:{victim.pid}"
    while time.monotonic() < deadline:
        for trial in study.get_trials(deepcopy=False):
            run_dir = trial.user_attrs.get("run_dir")
            mine = trial.state.name == "RUNNING" and trial.user_attrs.get("worker") == name
            if mine and run_dir and (Path(run_dir) / "metrics.csv").is_file():
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                return trial.number
        if victim.poll() is not None or all(p.poll() is not None for p in others):
            break
        time.sleep(0.1)
    raise AssertionError(f"worker {name} never had a trial mid-way:\n{output(victim)}")


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_two_workers_share_a_study_and_a_killed_workers_trial_is_retried(tmp_path, request, kind):
    url = _storage_url(kind, tmp_path, request)
    space = write_space(tmp_path, base={"preset": "smoke", "overrides": {"epochs": 4, "subset_tokens": 6000}},
                        pruner="none")  # fmt: skip
    total = 4
    survivor, victim = _worker(tmp_path, space, url, total), _worker(tmp_path, space, url, total)
    try:
        study = _wait_for_study(url, deadline=time.monotonic() + 120)
        killed = _kill_mid_trial(study, victim, [survivor], deadline=time.monotonic() + 180)
        assert survivor.wait(timeout=300) == 0, output(survivor)
        log = output(survivor)
    finally:
        stop(survivor)
        stop(victim)
    trials = optuna.load_study(study_name="pair", storage=open_storage(url, heartbeat=2, grace=12)).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    failed = [t.number for t in trials if t.state.name == "FAIL" and not t.user_attrs.get("surplus")]
    assert len(finished) == total, [(t.number, t.state.name) for t in trials]  # exactly the requested number
    assert failed == [killed]  # the killed worker's trial, and nothing else, failed ...
    retry = next(t for t in finished if t.system_attrs.get("failed_trial") == killed)  # ... and was retried
    assert retry.params == trials[killed].params and retry.user_attrs["run_dir"].endswith(f"trial-{killed}")
    run_dirs = [t.user_attrs["run_dir"] for t in finished]
    assert len(set(run_dirs)) == total  # no trial twice
    trained = sorted(str(p.parent) for p in (tmp_path / "runs" / "pair").glob("*/results.json"))
    assert trained == sorted(run_dirs)  # and nothing trained beyond them
    assert f"retry of trial {killed}" in log and "the study has 4 of 4" in log


def _wait_for_study(url: str, deadline: float):
    while time.monotonic() < deadline:
        try:
            return optuna.load_study(study_name="pair", storage=open_storage(url, heartbeat=2, grace=12))
        except KeyError:  # not created yet
            time.sleep(0.2)
    raise AssertionError("no worker created the study")
