"""The benchmark scripts run end to end at a tiny size, so they cannot rot.

Each runs as a user would (a subprocess, its own command line) with --out in a tmp folder,
so the committed results are never overwritten. Only the JSON's shape is checked: timings
belong to the benchmarks themselves, not to tests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmlib.training.device import lstm_supports, resolve_precision

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"  # on sys.path through pytest's `pythonpath` (pyproject.toml)

TINY = ["--subset-tokens", "8000"]


def run_script(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run(
        args + ["--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def load(tmp_path: Path, name: str) -> dict:
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert {"cpu", "cores", "torch", "gpu"} <= set(payload["machine"])
    return payload


def test_throughput_script(tmp_path):
    run_script(
        [
            sys.executable,
            "benchmarks/throughput.py",
            "--sizes",
            "16x16x2",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--matmul",
            "64",
            "--threads",
            "1",
            *TINY,
        ],
        tmp_path,
    )
    payload = load(tmp_path, "throughput")
    variants = [(row["variant"], row["precision"]) for row in payload["rows"]]
    recipe = resolve_precision("mixed", torch.device("cpu"))  # what the cpu preset trains in here
    fp32_recipe = [("lmlib cpu recipe, fp32", "fp32")] if recipe != "fp32" else []
    assert variants == [("reference", "fp32"), ("lmlib identical", "fp32"), *fp32_recipe, ("lmlib cpu recipe", recipe)]
    assert set(payload["matmul_gflop_per_s"]) == {"fp32", recipe}
    for row in payload["rows"]:
        assert row["tokens_per_s"] > 0 and row["gflop_per_token"] > 0 and 0 < row["efficiency"]
    assert payload["rows"][0]["ratio"] == 1.0
    assert set(payload["met"]) == {"identical_ratio", "recipe_ratio", "efficiency"}


def test_generation_script(tmp_path):
    done = run_script(
        [
            sys.executable,
            "benchmarks/generation.py",
            "--size",
            "16x16x2",
            "--vocab",
            "50",
            "--tokens",
            "3,8",
            "--repeat",
            "1",
        ],
        tmp_path,
    )
    payload = load(tmp_path, "generation")
    assert [row["new_tokens"] for row in payload["rows"]] == [3, 8]
    assert all(row["reference_ms_per_token"] > 0 and row["lmlib_ms_per_token"] > 0 for row in payload["rows"])
    assert "ratio" in done.stdout


def test_time_to_quality_script(tmp_path):
    run_script([sys.executable, "benchmarks/time_to_quality.py", "--minutes", "0.01", "--width", "16", *TINY], tmp_path)
    payload = load(tmp_path, "time_to_quality")
    recipe = resolve_precision("mixed", torch.device("cpu"))
    assert set(payload["runs"]) == {"original", "cpu"} | ({"cpu-fp32"} if recipe != "fp32" else set())
    assert payload["runs"]["original"]["precision"] == "fp32" and payload["runs"]["cpu"]["precision"] == recipe
    for run in payload["runs"].values():
        assert run["results"]["test_ppl"] > 1 and run["curve"], run
    widths = {name: run["config"]["model"]["hid_dim"] for name, run in payload["runs"].items()}
    assert widths["original"] == widths["cpu"] == 16
    assert "improvement" in payload and isinstance(payload["met"], bool)
    assert (tmp_path / "time_to_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_transformer_vs_lstm_script(tmp_path):
    args = ["--minutes", "0.01", "--threads", "1", *TINY]
    run_script([sys.executable, "benchmarks/transformer_vs_lstm.py", *args], tmp_path)
    payload = load(tmp_path, "transformer_vs_lstm")
    assert [row["model"] for row in payload["rows"]] == ["LSTM (cpu)", "Transformer"]
    assert payload["runs"]["transformer"]["config"]["model"]["arch"] == "transformer"
    assert abs(payload["parameter_gap"]) < 0.02 and payload["winner"] in ("LSTM", "Transformer")
    for row in payload["rows"]:
        assert row["test_ppl"] > 1 and row["train_tokens_per_s"] > 0 and row["eval_tokens_per_s"] > 0


def test_test_time_eval_script(tmp_path):
    run = tmp_path / "cpu-run"
    args = ["--only", "embedded", "--cpu-run", str(run), "--epochs", "1", "--grid", "small", "--threads", "1"]
    run_script([sys.executable, "benchmarks/test_time_eval.py", *args, *TINY], tmp_path)
    payload = load(tmp_path, "test_time_eval")
    assert [r["method"] for r in payload["rows"]] == ["static", "cache", "dynamic", "both"]
    assert set(payload["targets"]) == {"embedded_cache_gain", "embedded_dynamic_gain", "cache_speed_vs_static"}
    assert all(isinstance(t["met"], bool) for t in payload["targets"].values())
    assert (run / "test_time.json").is_file()  # the run keeps the same record


def test_memory_script(tmp_path):
    run_script(
        [sys.executable, "benchmarks/memory.py", "--minutes", "0.01", "--width", "16", "--threads", "1", *TINY],
        tmp_path,
    )
    rows = load(tmp_path, "memory")["rows"]
    assert [row["recipe"] for row in rows] == ["cpu", "original"]
    for row in rows:
        assert 0 < row["peak_training_mib"] <= row["peak_process_mib"] + 1


GPU_TINY = ["--size", "16x16x2", "--steps", "10", "--window", "5", "--warmup-steps", "1", *TINY]


def test_gpu_script_checks_itself_on_cpu(tmp_path):
    """benchmarks/gpu.sh end to end, tiny: without a GPU (a) runs and passes, (b) is timed, no target applies."""
    done = run_script(["bash", "benchmarks/gpu.sh", *GPU_TINY], tmp_path)
    payload = load(tmp_path, "gpu_cpu")
    assert not (tmp_path / "gpu.json").exists()  # a CPU run never passes for the GPU result
    check = payload["agreement"]
    assert check["passed"] and check["precision"] == resolve_precision("auto", torch.device("cpu"))
    assert len(payload["losses"]["fp32"]) == 10 and check["relative_difference"] <= check["tolerance"]
    assert [row["variant"] for row in payload["rows"]] == ["reference", "lmlib identical", "lmlib auto"]
    assert all(row["s_per_epoch"] > 0 and row["peak_gpu_mib"] is None for row in payload["rows"])
    verdicts = {name: target["passed"] for name, target in payload["targets"].items()}
    assert verdicts == {"lmlib identical": None, "lmlib auto": None}
    assert payload["passed"] is True and "all checks passed" in done.stdout and "not applicable" in done.stdout


BF16_KERNELS = lstm_supports(torch.bfloat16, torch.device("cpu"))  # False on AVX2-only CPUs (no oneDNN bf16 LSTM)


def test_gpu_script_fails_when_the_precisions_part(tmp_path):
    """bf16 rounds (on a CPU too): with no tolerance the agreement check must fail, and the exit status says so.
    Where this CPU has no bf16 LSTM kernel, asking for bf16 is one line and exit 2 instead."""
    command = ["bash", "benchmarks/gpu.sh", *GPU_TINY, "--precision", "bf16", "--tolerance", "0", "--skip-timing"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run(command + ["--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if not BF16_KERNELS:
        assert done.returncode == 2 and "does not run in bf16" in done.stderr and "Traceback" not in done.stderr
        return
    assert done.returncode == 1, done.stdout + done.stderr
    payload = load(tmp_path, "gpu_cpu")
    assert payload["agreement"]["passed"] is False and payload["agreement"]["relative_difference"] > 0
    assert "A CHECK FAILED" in done.stdout


def test_gpu_script_exits_1_when_the_curves_part_whatever_the_cpu(tmp_path, monkeypatch, capsys):
    """The failing side of the agreement check on any CPU: curves that drift apart fail the run and say so."""
    import gpu_check

    monkeypatch.setattr(gpu_check, "resolve_precision", lambda requested, device: "bf16")
    drift = lambda config, vocab, ids, device, precision, steps: [6.0 - 0.01 * i * (precision == "fp32") for i in
                                                                  range(steps)]  # fmt: skip
    monkeypatch.setattr(gpu_check, "train_losses", drift)
    code = gpu_check.cli([*GPU_TINY, "--precision", "bf16", "--skip-timing", "--out", str(tmp_path)])
    assert code == 1 and "A CHECK FAILED" in capsys.readouterr().out
    assert load(tmp_path, "gpu_cpu")["agreement"]["passed"] is False


def test_the_agreement_check_catches_what_breaks_mixed_precision():
    from gpu_check import agreement

    fp32 = [6.0 - 0.01 * i for i in range(100)]
    assert agreement(fp32, [v * 1.005 for v in fp32], 20, 0.02)["passed"]  # rounding: 0.5% apart
    assert not agreement(fp32, [v * 1.05 for v in fp32], 20, 0.02)["passed"]  # drifted: 5% apart
    assert not agreement(fp32, fp32[:-1] + [math.inf], 20, 0.02)["passed"]  # an overflow
    assert not agreement(fp32, fp32[:50] + [float("nan")] * 50, 20, 0.02)["passed"]
    assert not agreement(fp32, [6.0] * 100, 20, 1.0)["passed"]  # stalled: did not learn


def test_reference_and_lmlib_compute_the_same_function():
    """The reference is a faithful original: with the same weights, lmlib's `original` maths agree."""
    from generation import build_models

    ref, ours = build_models((8, 12, 2), vocab_size=30)
    ids = torch.randint(0, 30, (3, 7))
    with torch.no_grad():
        expected, (h, c) = ref(ids, ref.init_hidden(3, "cpu"))
        out = ours(ids, ours.init_hidden(3))
        got, hidden = out.log_probs, out.hidden
    torch.testing.assert_close(got, torch.log_softmax(expected, -1))
    torch.testing.assert_close(hidden[0][0], h)


def test_flop_count_of_the_original_step():
    from throughput import train_flops_per_token

    from lmlib.presets import get_preset

    config = get_preset("original", emb_dim=4, hid_dim=8, num_layers=2)
    lstm = 2 * 4 * 8 * (4 + 8) + 2 * 4 * 8 * (8 + 8)
    assert train_flops_per_token(config, 100, torch.zeros(5, dtype=torch.long)) == 3 * (lstm + 2 * 8 * 100)
    adaptive = config.replace(adaptive_softmax=True, cutoffs=(50,))
    all_in_tail = train_flops_per_token(adaptive, 100, torch.full((5,), 60))
    assert all_in_tail == 3 * (lstm + 2 * 8 * 51 + 2 * (8 * 2 + 2 * 50))


@pytest.mark.parametrize(
    "script",
    [
        "throughput",
        "generation",
        "time_to_quality",
        "memory",
        "gpu_check",
        "transformer_vs_lstm",
        "test_time_eval",
        "rebuild_precision",
    ],
)
def test_every_benchmark_documents_its_command(script):
    text = (BENCH / f"{script}.py").read_text()
    assert text.startswith('"""') and ("python benchmarks/" in text or "bash benchmarks/" in text)
    assert script in (BENCH / "README.md").read_text()


def _summary(precision: str, cpu: tuple[float, float], dropout: tuple[float, float]) -> dict:
    runs, arms = [], []
    for arm, vs, tests in (("cpu", "", cpu), ("plain-dropout", "cpu", dropout)):
        arms.append(
            {
                "arm": arm,
                "vs": vs,
                "seeds": 2,
                "test_mean": sum(tests) / 2,
                "test_min": min(tests),
                "test_max": max(tests),
                "valid_mean": 1.0,
                "valid_min": 1.0,
                "valid_max": 1.0,
                "finished": False,
            }
        )
        runs += [{"arm": arm, "test_ppl": t, "epochs_run": 5, "wall_seconds": 60.0, "resolved_precision": precision}
                 for t in tests]  # fmt: skip
    return {"profile": "default", "versions": "test", "arms": arms, "runs": runs}


def test_rebuild_precision_script_judges_changes_against_the_seed_ranges(tmp_path):
    """bf16 before, fp32 after: the cpu arm moves beyond its seed range, plain dropout does not; the
    conclusion 'plain dropout is worse' holds in both."""
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps({"machine": "bf16 box", "summary": _summary("bf16", (120.4, 120.5), (153.0, 153.2))}))
    after.write_text(json.dumps(_summary("fp32", (123.2, 124.0), (153.1, 153.3))))
    run_script([sys.executable, "benchmarks/rebuild_precision.py", "--before", str(before), "--after", str(after)],
               tmp_path)  # fmt: skip
    payload = load(tmp_path, "rebuild_precision")
    cpu, dropout = payload["arms"]
    assert (cpu["precision before"], cpu["precision after"]) == ("bf16", "fp32")
    assert cpu["change"] == pytest.approx(3.15, abs=0.06)
    assert "an effect" in cpu["beyond the seed ranges"] and "within noise" in dropout["beyond the seed ranges"]
    assert payload["conclusions"][0]["outcome"] == "holds"
