"""How the weights change: the optimiser, its learning-rate schedule, clipping and NT-ASGD.

Optimisers: Adam (the original), AdamW, SGD, and NT-ASGD (Merity et al. 2017, §3): train
with plain SGD; once the validation loss is worse than the best of the epochs before the
last `nonmono`, switch to averaged SGD and from then on evaluate (and save) the running
average of the weights. Schedules (`lr_schedule`): "plateau", ReduceLROnPlateau on the
validation loss (the original: factor 0.5, patience 0); "step", lr x lr_factor every epoch
from `lr_decay_start` (Zaremba et al. 2014); "none".
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from lmlib.config import TrainConfig
from lmlib.model.build import Hidden, LanguageModel
from lmlib.training.checkpoint import optimizer_tensors, restore_optimizer
from lmlib.training.device import autocast, grad_scaler


class UpdateRule:
    """Optimiser + schedule + grad scaler + clipping + NT-ASGD averaging, with checkpointable state."""

    def __init__(self, config: TrainConfig, model: LanguageModel, device: torch.device, precision: str):
        self.config, self.model, self.device, self.precision = config, model, device, precision
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.averaging = False
        self.optimizer = self._make_optimizer(config.optimizer)
        self.scheduler = self._make_scheduler()
        self.scaler = grad_scaler(device, precision)

    def _make_optimizer(self, name: str) -> torch.optim.Optimizer:
        config = self.config
        if name in ("adam", "adamw"):
            # The fused kernel does the same update in one pass over each tensor instead of
            # ~10 elementwise ops: a tenth of a CPU training step at width 512 (fused is
            # offered on CPU and CUDA only).
            fused = torch.device(self.device).type in ("cpu", "cuda") or None
            cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
            return cls(self.params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
        if name == "asgd":
            # t0=0, lambd=0: plain SGD steps, averaging from the switch on (AWD-LSTM's settings)
            return torch.optim.ASGD(self.params, lr=self.lr, t0=0, lambd=0.0, weight_decay=config.weight_decay)
        return torch.optim.SGD(self.params, lr=config.lr, weight_decay=config.weight_decay)  # sgd, ntasgd

    def _make_scheduler(self):
        if self.config.lr_schedule != "plateau":
            return None
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=self.config.lr_factor, patience=self.config.lr_patience
        )

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def start_epoch(self, epoch: int) -> None:
        """The step schedule (Zaremba et al. 2014): lr x factor every epoch from `lr_decay_start` on."""
        config = self.config
        if config.lr_schedule == "step" and epoch >= config.lr_decay_start:
            self._set_lr(config.lr * config.lr_factor ** (epoch - config.lr_decay_start + 1))

    def step(self, x: torch.Tensor, y: torch.Tensor, hidden: Hidden, lr_scale: float = 1.0):
        """One forward/backward/update on a window; returns (NLL without penalties, hidden)."""
        with autocast(self.device, self.precision):
            out = self.model(x, hidden, targets=y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if self.config.clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.config.clip)
        if lr_scale != 1.0:  # AWD-LSTM: scale lr with the window length (§4.1)
            base = self.lr
            self._set_lr(base * lr_scale)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if lr_scale != 1.0:
            self._set_lr(base)
        return out.nll, out.hidden

    def end_epoch(self, valid_loss: float, history: list[float]) -> None:
        """Step the plateau scheduler, or switch SGD to averaged SGD (NT-ASGD)."""
        if self.scheduler is not None:
            self.scheduler.step(valid_loss)
        n = self.config.nonmono
        if self.config.optimizer == "ntasgd" and not self.averaging and len(history) > n:
            if valid_loss > min(history[:-n]):
                self._switch_to_averaging()

    def _switch_to_averaging(self) -> None:
        self.averaging = True
        self.optimizer = self._make_optimizer("asgd")

    @contextmanager
    def averaged_weights(self):
        """Inside: the model holds the ASGD running average (when averaging); restored after."""
        if not self.averaging:
            yield
            return
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p in self.params:
                state = self.optimizer.state.get(p, {})
                if "ax" in state:
                    p.copy_(state["ax"])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.params, saved):
                    p.copy_(s)

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, header = optimizer_tensors(self.optimizer)
        header["averaging"] = self.averaging
        header["scheduler"] = self.scheduler.state_dict() if self.scheduler else None
        header["scaler"] = self.scaler.state_dict() if self.scaler.is_enabled() else None
        return tensors, header

    def restore(self, tensors: dict[str, torch.Tensor], header: dict) -> None:
        if header.get("averaging"):
            self.averaging = True
            self.optimizer = self._make_optimizer("asgd")
            self.scheduler = None
        restore_optimizer(self.optimizer, {k: v.to(self.device) for k, v in tensors.items()}, header)
        if self.scheduler is not None and header.get("scheduler"):
            self.scheduler.load_state_dict(header["scheduler"])
        if header.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(header["scaler"])
