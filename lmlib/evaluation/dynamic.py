"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models", §5).

The split is read in segments; each segment is scored first, then the weights take one
gradient step on that segment's loss, so segment k is scored by weights that have seen
segments 1..k-1 only. The update is the paper's "RMS with decay" rule (eq. 8-9, and
benkrause/dynamic-evaluation's dynamiceval.py):

    theta <- theta - eta * grad / (RMS_g + eps) + lambda * r * (theta_g - theta)

where RMS_g is the root mean square of each weight's gradient over segments of the
training split (collected once, in eval mode), theta_g the trained weights, and
r = RMS_g / mean(RMS_g) a per-weight decay rate clipped so that lambda * r <= 1 (weights
that change much in training decay back faster). The model stays in eval mode (no
dropout) with gradients on; the trained weights are copied first and put back after,
so nothing on disk or in the caller's model changes. eta = 0 leaves every weight exactly
as trained (the decay term is then lambda * r * 0), which the tests check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from lmlib.checks import check_int, check_number
from lmlib.data.batching import fixed_windows, get_batch

EPSILON = 2e-5  # dynamiceval.py's default stabiliser


@dataclass(frozen=True)
class DynamicSettings:
    """eta (lr), lambda (decay towards the trained weights) and the segment length in tokens."""

    lr: float
    decay: float
    segment: int = 5  # Krause et al. use 5-token segments for word-level models

    def __post_init__(self):
        check_number("dynamic lr", self.lr, low=0.0)
        check_number("dynamic decay", self.decay, low=0.0, high=1.0)
        check_int("dynamic segment", self.segment, 1)

    def to_dict(self) -> dict:
        return {"lr": self.lr, "decay": self.decay, "segment": self.segment}


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def detach_state(state):
    """A hidden state of any shape (tensors in lists/tuples, or None) cut from the graph."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, list | tuple):
        return type(state)(detach_state(s) for s in state)
    return state


def no_cudnn_rnn():
    """cuDNN's RNN backward refuses eval mode (no dropout), which dynamic evaluation needs: use PyTorch's kernel."""
    return torch.backends.cudnn.flags(enabled=False)


def gradient_rms(
    model: torch.nn.Module, train: torch.Tensor, segment: int, max_tokens: int, progress: bool = False
) -> list[torch.Tensor]:
    """RMS_g: per weight, the root mean square of the mean-loss gradient over training segments (eval mode)."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=min(max_tokens, train.size(0) * (train.size(1) - 1)),  # what the windows below score, at most
        desc="dynamic: gradient statistics",
        unit="tok",
        unit_scale=True,
        leave=False,
        disable=None if progress else True,  # on terminals and in notebooks, as training.evaluate.progress_bar
    )
    params = trainable(model)
    squares = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(train.size(0), train.device)
    steps, seen = 0, 0
    with torch.enable_grad(), no_cudnn_rnn():
        for start, length in fixed_windows(train.size(1), segment):
            if seen >= max_tokens:
                break
            x, y = get_batch(train, start, length)
            out = model(x, hidden, targets=y, reduction="mean")
            grads = torch.autograd.grad(out.nll, params, allow_unused=True)
            for square, grad in zip(squares, grads):
                if grad is not None:
                    square.add_(grad * grad)
            hidden = detach_state(out.hidden)
            steps, seen = steps + 1, seen + y.numel()
            bar.update(y.numel())
    bar.close()
    model.train(was_training)
    return [torch.sqrt(square / max(steps, 1)) for square in squares]


def seen_rms(rms: torch.Tensor) -> torch.Tensor:
    """RMS_g with the weights the statistics never moved (exactly 0) given their tensor's mean.

    The training segments leave some rows without any gradient (words they never contain, a
    Transformer's unused positions); with RMS_g = 0 the step grad / (0 + eps) is 1 / eps
    times the gradient and one rare word in the evaluated text blows the weights up. The
    paper's statistics cover the whole training set, where this barely happens.
    """
    seen = rms[rms > 0]
    return torch.where(rms > 0, rms, seen.mean() if seen.numel() else torch.ones((), device=rms.device))


class DynamicUpdater:
    """One RMS-with-decay step per scored segment; `restore` puts the trained weights back."""

    def __init__(self, model: torch.nn.Module, rms: list[torch.Tensor], settings: DynamicSettings):
        self.params = trainable(model)
        self.settings = settings
        self.origin = [p.detach().clone() for p in self.params]
        self.denominator = [seen_rms(r) + EPSILON for r in rms]
        mean_rms = torch.stack([r.mean() for r in rms]).mean()
        # lambda * r clipped at 1: a larger step would overshoot the trained weights (dynamiceval.py).
        self.decay = [torch.clamp(settings.decay * r / mean_rms, max=1.0) for r in rms]

    def step(self, loss: torch.Tensor) -> None:
        """Update the weights from `loss` (a scalar with a graph to them), after its tokens were scored."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        with torch.no_grad():
            for p, g, origin, denominator, decay in zip(self.params, grads, self.origin, self.denominator, self.decay):
                change = decay * (origin - p)
                if g is not None:
                    change -= self.settings.lr * g / denominator
                p.add_(change)

    def restore(self) -> None:
        with torch.no_grad():
            for p, origin in zip(self.params, self.origin):
                p.copy_(origin)


@contextmanager
def adapting(model: torch.nn.Module, rms: list[torch.Tensor], settings: DynamicSettings) -> Iterator[DynamicUpdater]:
    """A DynamicUpdater on `model` whose weights are restored afterwards, whatever happens."""
    updater = DynamicUpdater(model, rms, settings)
    try:
        yield updater
    finally:
        updater.restore()
