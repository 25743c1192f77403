"""Device and precision, resolved once per run (nanoGPT style)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from .errors import LMError


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


def resolve_precision(requested: str, device: torch.device) -> str:
    """fp32 off CUDA; on CUDA `auto` is bf16 where the LSTM kernel takes it, else fp16."""
    if device.type != "cuda":
        if requested in ("fp16", "bf16"):
            raise LMError(f"precision {requested} needs a CUDA device; this run is on {device.type}")
        return "fp32"
    if requested == "auto":
        if torch.cuda.is_bf16_supported() and lstm_supports(torch.bfloat16, device):
            return "bf16"
        return "fp16" if lstm_supports(torch.float16, device) else "fp32"
    if requested != "fp32" and not lstm_supports(getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}[requested]), device):
        raise LMError(f"the LSTM kernel on this GPU does not run in {requested}: use --precision fp32 or auto")
    return requested


def autocast(device: torch.device, precision: str):
    """The forward-pass context: autocast on CUDA in low precision, nothing otherwise."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    """A GradScaler only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))
