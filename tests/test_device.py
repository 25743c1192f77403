"""Device and precision: what `auto` and `mixed` pick, what is refused, and bf16 training on a CPU."""

import json

import pytest
import torch

from lmlib.errors import LMError
from lmlib.model.lstm import LSTMLanguageModel
from lmlib.presets import get_preset
from lmlib.training import device as device_module
from lmlib.training.device import cpu_has_native_bf16, cpu_model, resolve_precision
from lmlib.training.evaluate import evaluate_run
from lmlib.training.loop import train
from lmlib.training.optim import UpdateRule
from lmlib.training.runs import read_metrics

CPU = torch.device("cpu")
TINY = dict(subset_tokens=6000, epochs=2, batch_size=8, bptt=10, emb_dim=16, hid_dim=16)


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu sse avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4, Intel Cooper Lake
        ("fpu sse avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
        ("fpu sse avx2 avx512f avx512bw", False),  # AVX-512 without bf16: emulated, slow
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is native


def test_native_bf16_is_false_without_a_cpuinfo_file(tmp_path):
    assert cpu_has_native_bf16(str(tmp_path / "absent")) is False


def test_cpu_model_names_the_processor(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\nflags\t\t: fpu\n")
    assert cpu_model(str(cpuinfo)) == "AMD EPYC 9R14 96-Core Processor"
    assert cpu_model(str(tmp_path / "absent"))  # falls back to what `platform` knows


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_mixed_on_a_cpu_is_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch, native, expected):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("mixed", CPU) == expected
    assert resolve_precision("auto", CPU) == "fp32"  # bf16 on a CPU is opt-in per recipe


def test_the_cpu_preset_opts_in_and_reproductions_stay_fp32():
    assert get_preset("cpu").runtime.precision == "mixed"
    assert get_preset("original").runtime.precision == "auto"
    assert get_preset("zaremba-small").runtime.precision == "fp32"


def test_explicit_precisions_on_a_cpu():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # allowed even where emulated: the user asked
    with pytest.raises(LMError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)


def test_adam_uses_the_fused_kernel_on_a_cpu():
    config = get_preset("smoke", **TINY)
    opt = UpdateRule(config.train, LSTMLanguageModel(50, config.model), CPU, "fp32")
    assert opt.optimizer.defaults["fused"] is True


def test_bf16_training_on_a_cpu_learns_and_reports_fp32_perplexities(tmp_path):
    """Autocast bf16 trains (fp32 weights and loss); validation and test are measured in fp32,
    so the saved valid perplexity is exactly what `lmlib evaluate` recomputes."""
    run = tmp_path / "bf16"
    results = train(get_preset("smoke", precision="bf16", **TINY), run, progress=False)
    assert json.loads((run / "config.json").read_text())["run"]["resolved_precision"] == "bf16"
    fp32 = train(get_preset("smoke", precision="fp32", **TINY), tmp_path / "fp32", progress=False)
    # same data, same seed: bf16 rounding moves the result a little, not a lot
    assert results["test_ppl"] == pytest.approx(fp32["test_ppl"], rel=0.1)
    train_loss = read_metrics(run)["train_loss"]
    assert train_loss.iloc[-1] < train_loss.iloc[0]
    again = evaluate_run(run)
    assert again["valid_ppl"] == pytest.approx(results["valid_ppl"], rel=1e-9)
    assert again["test_ppl"] == pytest.approx(results["test_ppl"], rel=1e-9)


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_never_picks_emulated_bf16(monkeypatch, native_bf16, expected):
    """A T4 (Colab's GPU) emulates bf16, slowly: `auto` (= mixed on CUDA) picks fp16 there, bf16 on Ampere+."""
    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return native_bf16 or including_emulation  # what torch answers on a T4 / an A100

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(device_module, "lstm_supports", lambda dtype, device: True)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("mixed", torch.device("cuda")) == expected
    assert asked == {"including_emulation": False}
