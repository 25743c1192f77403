"""How a loaded model computes when it serves text: fp32, bf16, or int8 dynamic quantisation.

Storage and computation are separate: an exported folder may store fp16 or bf16 (half the
size), and is widened to fp32 when it is read (training/runs.py). Serving then decides what
the weights compute in:

    fp32  as trained
    bf16  weights and activations in bfloat16: fast where the CPU multiplies bf16 natively
          (AVX-512 BF16, AMX) and on recent GPUs; emulated, so slower, elsewhere
    int8  dynamic quantisation of the LSTM and linear layers (int8 weights, activations
          quantised on the fly; Jacob et al. 2018), CPU only; the embedding stays fp32

`auto` takes the fastest that keeps test perplexity within 1% of fp32's, as
benchmarks/serving.py measured it (benchmarks/results/serving.json; docs/performance.md).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from lmlib.errors import LMError

SERVING = ("auto", "fp32", "bf16", "int8")


# The quantised engines int8 was measured on (x86 CPUs with AVX2 or better: fbgemm's kernels, which
# PyTorch calls "x86" since 2.0); elsewhere (ARM's qnnpack, no engine) auto keeps fp32.
INT8_ENGINES = ("x86", "fbgemm")


def quantized_engine() -> str:
    """The quantised kernels PyTorch uses here ("x86", "fbgemm", "qnnpack", "onednn" or "none")."""
    return torch.backends.quantized.engine or "none"


def default_serving(device: torch.device, arch: str = "lstm") -> str:
    """What `auto` serves an `arch` model in on `device`: an LSTM in int8 on a CPU with the measured
    int8 kernels, else fp32.

    benchmarks/serving.py (docs/performance.md): on x86 CPUs (AVX2; AVX-512) int8 was about 4x faster per
    word than fp32 and changed the shipped model's test perplexity by 0.05%; bf16 was slower than fp32 where the
    CPU emulates it, and is never chosen by `auto`. ARM's kernels were not measured; a GPU keeps fp32.
    """
    if arch == "lstm" and device.type == "cpu" and quantized_engine() in INT8_ENGINES:
        return "int8"
    return "fp32"


def prepare_for_serving(model: nn.Module, serving: str = "auto") -> tuple[nn.Module, str]:
    """(the model ready to serve, what it computes in); `model` itself is never changed (a copy is served)."""
    if serving not in SERVING:
        raise LMError(f"serving must be one of {', '.join(SERVING)}, got {serving!r}")
    device = next(model.parameters()).device
    arch = getattr(getattr(model, "config", None), "arch", "lstm")
    chosen = default_serving(device, arch) if serving == "auto" else serving
    if chosen == "fp32":
        return model, "fp32"
    if chosen == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16).eval(), "bf16"
    if device.type != "cpu":
        raise LMError(f"int8 serving (dynamic quantisation) runs on a CPU; this model is on {device.type}: use fp32")
    if arch != "lstm":
        # nn.TransformerEncoderLayer reads its linear layers' weights directly, which quantised layers do not have.
        raise LMError(f"int8 serving covers LSTM models; this one is a {arch}: use fp32 or bf16")
    try:
        return quantize_int8(model), "int8"
    except (RuntimeError, NotImplementedError, AssertionError) as err:
        if serving == "auto":
            return model, "fp32"  # kernels missing after all: serve as trained
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise LMError(f"int8 serving is not available on this machine ({reason}): use fp32") from None


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with its LSTM and linear layers dynamically quantised to int8 (CPU).

    torch.ao.quantization.quantize_dynamic: PyTorch 2.13 deprecates it in favour of torchao,
    whose quantize_ covers linear layers only, not the LSTM, which is most of this model's
    per-word work; until torchao quantises LSTMs this is the one way to quantise both.
    """
    from torch.ao.nn.quantized import dynamic as quantized
    from torch.ao.quantization import quantize_dynamic

    plain = copy.deepcopy(model).eval()
    for name, module in list(plain.named_modules()):
        if isinstance(module, nn.LSTM) and type(module) is not nn.LSTM:
            _replace(plain, name, _plain_lstm(module))  # WeightDropLSTM: its DropConnect is off in eval anyway
    mapping = {nn.LSTM: quantized.LSTM, nn.Linear: quantized.Linear}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice above, on every call
        return quantize_dynamic(plain, {nn.LSTM, nn.Linear}, dtype=torch.qint8, mapping=mapping)


def _plain_lstm(lstm: nn.LSTM) -> nn.LSTM:
    plain = nn.LSTM(
        lstm.input_size,
        lstm.hidden_size,
        lstm.num_layers,
        bias=lstm.bias,
        batch_first=lstm.batch_first,
        dropout=lstm.dropout,
        proj_size=lstm.proj_size,
    )
    plain.load_state_dict(lstm.state_dict())
    return plain.eval()


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)
