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


# Whether this machine's oneDNN has a bf16 LSTM: with AVX-512 BF16 or AMX it does; with AVX2 only (many
# laptops and cloud CPUs) "could not create a primitive descriptor for the LSTM forward propagation
# primitive". Each test below simulates the side this machine is not on, so every machine checks both.
BF16_KERNELS = device_module.lstm_supports(torch.bfloat16, CPU)


@pytest.mark.parametrize(
    "native, kernel, expected",
    [(True, True, "bf16"), (True, False, "fp32"), (False, True, "fp32"), (False, False, "fp32")],
    ids=["bf16-cpu", "bf16-flags-without-lstm-kernel", "emulated-bf16", "avx2-only"],
)
def test_mixed_on_a_cpu_is_bf16_only_where_the_cpu_has_bf16_instructions_and_lstm_kernels(
    monkeypatch, native, kernel, expected
):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(device_module, "lstm_supports", lambda dtype, device: kernel)
    assert resolve_precision("mixed", CPU) == expected
    assert resolve_precision("auto", CPU) == "fp32"  # bf16 on a CPU is opt-in per recipe


def test_the_cpu_preset_opts_in_and_reproductions_stay_fp32():
    assert get_preset("cpu").runtime.precision == "mixed"
    assert get_preset("original").runtime.precision == "auto"
    assert get_preset("zaremba-small").runtime.precision == "fp32"


@pytest.mark.parametrize("kernel", [True, False], ids=["with-bf16-lstm-kernel", "without"])
def test_explicit_bf16_on_a_cpu_is_taken_where_the_kernel_runs_and_one_clear_error_where_not(monkeypatch, kernel):
    monkeypatch.setattr(device_module, "lstm_supports", lambda dtype, device: kernel)
    assert resolve_precision("fp32", CPU) == "fp32"
    if kernel:
        assert resolve_precision("bf16", CPU) == "bf16"  # taken even where emulated: the user asked
    else:
        with pytest.raises(LMError, match="does not run in bf16: use --precision fp32 or auto"):
            resolve_precision("bf16", CPU)
    with pytest.raises(LMError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)


def test_this_cpus_own_answer_follows_its_kernels():
    """No simulation: on this machine, explicit bf16 is taken exactly where the LSTM kernel really runs."""
    if BF16_KERNELS:
        assert resolve_precision("bf16", CPU) == "bf16"
    else:
        with pytest.raises(LMError, match="does not run in bf16"):
            resolve_precision("bf16", CPU)
    assert resolve_precision("mixed", CPU) == ("bf16" if BF16_KERNELS and cpu_has_native_bf16() else "fp32")


def test_bf16_on_a_cpu_without_the_kernel_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    """Where the LSTM kernel is missing (real or simulated), `train --set precision=bf16` is one line, exit 2."""
    from lmlib.cli import main

    monkeypatch.setattr(device_module, "lstm_supports", lambda dtype, device: False)
    code = main(["train", "--preset", "smoke", "--run-dir", str(tmp_path / "r"), "--set", "precision=bf16"])
    err = capsys.readouterr().err
    assert code == 2 and "does not run in bf16" in err and "Traceback" not in err


def test_adam_uses_the_fused_kernel_on_a_cpu():
    config = get_preset("smoke", **TINY)
    opt = UpdateRule(config.train, LSTMLanguageModel(50, config.model), CPU, "fp32")
    assert opt.optimizer.defaults["fused"] is True


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_bf16_training_on_a_cpu_learns_and_reports_fp32_perplexities(tmp_path, monkeypatch, arch):
    """Autocast bf16 trains (fp32 weights and loss); validation and test are measured in fp32, so the saved
    valid perplexity is exactly what `lmlib evaluate` recomputes. The LSTM trains in bf16 where this CPU has
    the kernel; the Transformer (matmuls only, which any CPU runs in bf16) checks the same path everywhere."""
    if arch == "lstm" and not BF16_KERNELS:
        pytest.skip("this CPU has no bf16 LSTM kernel (AVX2 only): the one-line error is tested above instead")
    from lmlib.training import session

    monkeypatch.setattr(session, "resolve_precision", lambda requested, device: requested)  # as asked
    model = dict(arch="transformer", n_heads=2, context=10) if arch == "transformer" else {}
    run = tmp_path / "bf16"
    results = train(get_preset("smoke", precision="bf16", **TINY, **model), run, progress=False)
    assert json.loads((run / "config.json").read_text())["run"]["resolved_precision"] == "bf16"
    fp32 = train(get_preset("smoke", precision="fp32", **TINY, **model), tmp_path / "fp32", progress=False)
    # same data, same seed: bf16 rounding moves the result a little, not a lot
    assert results["test_ppl"] == pytest.approx(fp32["test_ppl"], rel=0.1)
    assert results["test_ppl"] != fp32["test_ppl"]  # it really trained in bf16
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


# --- one device rule: generation, evaluation, the panel and the web app follow training's `auto` ---


@pytest.fixture
def asked_devices(monkeypatch) -> list[str]:
    """Every device name a run is loaded on (lmlib.training.runs.load_model), answered with the CPU."""
    from lmlib.training import runs

    asked = []
    monkeypatch.setattr(runs, "resolve_device", lambda name: asked.append(str(name)) or CPU)
    return asked


def test_auto_takes_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_module.resolve_device("auto") == torch.device("cuda")
    assert device_module.resolve_device("cpu") == CPU  # overridable
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LMError, match="no CUDA GPU is available"):
        device_module.resolve_device("cuda")


def test_generate_follows_auto_and_takes_device(tiny_run, asked_devices, capsys):
    from lmlib.cli import main

    assert main(["generate", "--run-dir", str(tiny_run), "--max-new-tokens", "3", "--seed", "1"]) == 0
    assert main(["generate", "--run-dir", str(tiny_run), "--max-new-tokens", "3", "--device", "cpu"]) == 0
    assert asked_devices == ["auto", "cpu"]


def test_generate_on_a_missing_gpu_is_one_clear_line(tiny_run, capsys):
    from lmlib.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["generate", "--run-dir", str(tiny_run), "--device", "cuda"]) == 2
    assert "no CUDA GPU is available: use --device auto or cpu" in capsys.readouterr().err


def test_evaluate_follows_auto_and_takes_device(tiny_run, asked_devices, capsys):
    from lmlib.cli import main

    assert main(["evaluate", "--run-dir", str(tiny_run), "--json"]) == 0
    assert main(["evaluate", "--run-dir", str(tiny_run), "--device", "cpu", "--json"]) == 0
    assert asked_devices == ["auto", "cpu"]


def test_the_web_app_and_the_notebooks_load_runs_with_auto(tiny_run, asked_devices, monkeypatch):
    pytest.importorskip("flask")
    pytest.importorskip("waitress")
    from lm_fixtures import free_port

    from lmlib.apps import web
    from lmlib.apps.web import server as web_serve
    from lmlib.report import notebook

    monkeypatch.setattr(web_serve, "run", lambda app, sock, limits, production: None)  # load the model, serve nothing
    web.serve(tiny_run, port=free_port())
    notebook.samples(tiny_run, "it is", temperatures=(1.0,), max_new_tokens=2)
    assert asked_devices == ["auto", "auto"]


# --- the CUDA branches, covered on the CPU as far as they go ---


def test_the_grad_scaler_is_for_fp16_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA GradScaler disables itself without one
    cuda = torch.device("cuda")
    assert device_module.grad_scaler(cuda, "fp16").is_enabled()
    assert not device_module.grad_scaler(cuda, "bf16").is_enabled()  # bf16 has fp32's range
    assert not device_module.grad_scaler(cuda, "fp32").is_enabled()
    assert device_module.grad_scaler(CPU, "fp16").is_enabled()


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # the context is built, not entered
@pytest.mark.parametrize("precision, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_autocast_on_cuda_casts_to_the_chosen_precision(precision, dtype):
    context = device_module.autocast(torch.device("cuda"), precision)
    assert isinstance(context, torch.autocast) and context.device == "cuda" and context.fast_dtype == dtype


def test_autocast_is_nothing_in_fp32():
    assert not isinstance(device_module.autocast(torch.device("cuda"), "fp32"), torch.autocast)


@pytest.fixture
def fp16_on_the_cpu(monkeypatch):
    """The fp16 path of the loop (enabled GradScaler: scale, unscale before clipping, step, update) on a CPU,
    which has no fp16 LSTM kernel: the run resolves to fp16 and its forward passes run in fp32."""
    from lmlib.training import optim, session

    monkeypatch.setattr(session, "resolve_precision", lambda requested, device: "fp16")
    monkeypatch.setattr(optim, "autocast", lambda device, precision: device_module.autocast(device, "fp32"))
    return optim


def test_the_scaler_skips_a_step_whose_gradients_overflowed(fp16_on_the_cpu):
    """fp16's failure mode (Micikevicius et al. 2018): an inf gradient skips the update and halves the scale."""
    config = get_preset("smoke", **TINY)
    model = LSTMLanguageModel(50, config.model)
    rule = UpdateRule(config.train, model, CPU, "fp16")
    x, y = torch.randint(0, 50, (2, 5)), torch.randint(0, 50, (2, 5))
    rule.step(x, y, model.init_hidden(2))
    assert rule.scaler.get_scale() == 65536.0
    before = [p.detach().clone() for p in model.parameters()]
    hook = model.embedding.weight.register_hook(lambda grad: grad * float("inf"))
    rule.step(x, y, model.init_hidden(2))
    hook.remove()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert rule.scaler.get_scale() == 32768.0


def test_fp16_training_with_a_scaler_matches_fp32_and_evaluates_in_fp32(tmp_path, fp16_on_the_cpu, monkeypatch):
    """Scaling by 2^16 and unscaling is exact in fp32, so the scaler path changes no number; validation and
    test never autocast, whatever the run trains in."""
    from lmlib.training import evaluate

    evaluated_in = []
    real_autocast = evaluate.autocast
    monkeypatch.setattr(evaluate, "autocast", lambda d, p: evaluated_in.append(p) or real_autocast(d, p))
    config = get_preset("smoke", **TINY)
    scaled = train(config, tmp_path / "fp16", progress=False)
    assert scaled["resolved_precision"] == "fp16" and set(evaluated_in) == {"fp32"}
    monkeypatch.undo()
    plain = train(config.replace(precision="fp32"), tmp_path / "fp32", progress=False)
    assert scaled["valid_ppl"] == plain["valid_ppl"] and scaled["test_ppl"] == plain["test_ppl"]


def test_the_checkpoint_carries_the_scaler_state_and_resume_restores_it(tmp_path, fp16_on_the_cpu, monkeypatch):
    from lmlib.training.checkpoint import load_tensors
    from lmlib.training.runs import RunPaths
    from lmlib.training.session import open_session

    monkeypatch.setattr(
        fp16_on_the_cpu, "grad_scaler", lambda device, p: torch.amp.GradScaler("cpu", init_scale=1024.0)
    )
    config = get_preset("smoke", **TINY)
    run = tmp_path / "fp16"
    train(config, run, progress=False)
    _, header = load_tensors(run / "last.safetensors")
    assert header["update"]["scaler"]["scale"] == 1024.0
    monkeypatch.setattr(fp16_on_the_cpu, "grad_scaler", device_module.grad_scaler)  # a new session starts at 2^16
    resumed = open_session(config.replace(epochs=3), RunPaths(run), None)
    assert resumed.precision == "fp16" and resumed.update.scaler.get_scale() == 1024.0
