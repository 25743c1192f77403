"""Device and precision, resolved once per run (nanoGPT style)."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from lmlib.errors import LMError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; a forced device that is absent is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LMError("device 'cuda' was asked for but no CUDA GPU is available: use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LMError("device 'mps' was asked for but Apple's MPS is not available: use --device auto or cpu")
    return torch.device(name)


def lstm_supports(dtype: torch.dtype, device: torch.device) -> bool:
    """Probe (do not assume) whether the fused LSTM runs forward and backward in `dtype`."""
    try:
        lstm = torch.nn.LSTM(8, 8, batch_first=True).to(device)
        x = torch.randn(2, 3, 8, device=device, requires_grad=True)
        with torch.autocast(device.type, dtype=dtype):
            out, _ = lstm(x)
        out.float().sum().backward()
        return bool(torch.isfinite(x.grad).all())
    except (RuntimeError, NotImplementedError):
        return False


def _cpuinfo_field(name: str, cpuinfo: str) -> str | None:
    """The value of the first `name : value` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name (Linux), else what `platform` knows."""
    import platform

    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), read from `cpuinfo` (Linux).

    Elsewhere bf16 is emulated and slower than fp32, so `mixed` keeps fp32 there.
    """
    flags = set((_cpuinfo_field("flags", cpuinfo) or "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(requested: str, device: torch.device) -> str:
    """The autocast precision a run trains in (parameters, optimiser state and loss stay fp32).

    mixed  the fastest precision the hardware runs natively: on CUDA bf16 where the GPU has
           it (Ampere and later) and the LSTM kernel takes it, else fp16 with a grad scaler;
           on a CPU bf16 where it has bf16 instructions (oneDNN's bf16 LSTM and matmuls), else fp32.
    auto   mixed on CUDA, fp32 on a CPU. On a CPU bf16 is opt-in per recipe (the `cpu` preset
           asks for mixed): the oneDNN bf16 LSTM learned the same per epoch for the `cpu`
           preset, but stalled the original recipe without dropout (validation perplexity
           rose in epoch 2 where fp32's fell, for three seeds), so it is not a safe default.
    fp16 is CUDA only; fp32 and bf16 are taken as asked.
    """
    if device.type not in ("cuda", "cpu"):
        if requested in ("fp16", "bf16"):
            raise LMError(f"precision {requested} is supported on cuda and cpu; this run is on {device.type}")
        return "fp32"
    if requested == "mixed" or (requested == "auto" and device.type == "cuda"):
        return _mixed_precision(device)
    if requested == "auto":
        return "fp32"
    if requested == "fp16" and device.type == "cpu":
        raise LMError("precision fp16 needs a CUDA device: on a CPU use bf16, mixed, fp32 or auto")
    if requested != "fp32" and not lstm_supports(_DTYPES[requested], device):
        raise LMError(
            f"the LSTM kernel on this {device.type} does not run in {requested}: use --precision fp32 or auto"
        )
    return requested


_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _mixed_precision(device: torch.device) -> str:
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() and lstm_supports(torch.bfloat16, device) else "fp32"
    # Native bf16 only (Ampere and later): on a T4 (Colab) bf16 is emulated and slow, fp16 is not.
    if torch.cuda.is_bf16_supported(including_emulation=False) and lstm_supports(torch.bfloat16, device):
        return "bf16"
    return "fp16" if lstm_supports(torch.float16, device) else "fp32"


def autocast(device: torch.device, precision: str):
    """The forward-pass context: autocast in bf16/fp16, nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """A GradScaler only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))
