"""One pass over a split that static evaluation, the cache and dynamic evaluation share.

The split (B rows, as `batch_splits` cuts it) is read in windows with the state carried
across, like `training.evaluate.evaluate_loss`; each window records, per token, the model's
loss (reduction "none": an adaptive softmax scores only the target) and, with a cache,
p_cache(target). Neither depends on the cache's lambda, so one pass scores every lambda
(`Pass.loss(lam)`): tuning lambda costs no extra pass. With dynamic evaluation the window
is the update segment, and the weights step after the window's tokens are recorded.
Evaluation is fp32 whatever the run trained in, as training's validation is.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from lmlib.data.batching import fixed_windows, get_batch
from lmlib.evaluation.cache import CachePointer, mixture_nll
from lmlib.evaluation.dynamic import DynamicUpdater, detach_state, no_cudnn_rnn
from lmlib.training.evaluate import progress_bar


@dataclass
class Pass:
    """Per-token results of one pass: model nll, p_cache(target), whether the cache held anything; and its time."""

    nll: torch.Tensor  # (N,) the model's own loss per token, in scoring order
    p_cache: torch.Tensor | None  # (N,) or None without a cache
    has: torch.Tensor | None
    seconds: float
    windows: list | None = None  # [(features (B, T, D), targets (B, T))] when kept, for `replay_cache`

    @property
    def tokens(self) -> int:
        return self.nll.numel()

    def loss(self, lam: float = 0.0) -> float:
        """Mean loss per token (nats) with the cache mixed in at `lam` (none: the model alone)."""
        if self.p_cache is None:
            return self.nll.double().sum().item() / self.tokens
        return mixture_nll(self.nll, self.p_cache, self.has, lam).sum().item() / self.tokens


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def run_pass(
    model: torch.nn.Module,
    data: torch.Tensor,
    window: int,
    cache: tuple[int, float] | None = None,
    updater: DynamicUpdater | None = None,
    keep: bool = False,
    progress: str | None = None,
) -> Pass:
    """Score `data` (B, columns) in windows of `window` tokens; cache = (W, theta) or None; updater: dynamic eval.

    `keep` keeps each window's features and targets, so `replay_cache` can try other caches
    on the same (static) model without running it again. `progress` names a progress bar (None: none).
    """
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    pointer = CachePointer(*cache) if cache is not None else None
    hidden = model.init_hidden(data.size(0), data.device)
    nlls, p_caches, hases, kept = [], [], [], []
    bar = progress_bar(data, progress)
    for start, length in fixed_windows(data.size(1), window):
        x, y = get_batch(data, start, length)
        bar.update(y.numel())
        with torch.set_grad_enabled(updater is not None), no_cudnn_rnn() if updater is not None else nullcontext():
            out = model(x, hidden, targets=y, reduction="none")  # nll (B, T)
        nlls.append(out.nll.detach().float())
        if keep:
            kept.append((out.features.detach().float(), y))
        if pointer is not None:
            p_cache, has = pointer.step(out.features, y)
            p_caches.append(p_cache)
            hases.append(has)
        if updater is not None:
            updater.step(out.nll.mean())  # after this window's tokens were recorded above
            hidden = detach_state(out.hidden)
        else:
            hidden = out.hidden
    bar.close()
    model.train(was_training)
    # (B, T) windows in order, flattened column-window by column-window: the order does not matter for a mean.
    flat = [t.reshape(-1) for t in nlls]
    return Pass(
        nll=torch.cat(flat),
        p_cache=torch.cat([t.reshape(-1) for t in p_caches]) if pointer is not None else None,
        has=torch.cat([t.reshape(-1) for t in hases]) if pointer is not None else None,
        seconds=time.perf_counter() - started,
        windows=kept if keep else None,
    )


def replay_cache(scored: Pass, window: int, theta: float) -> Pass:
    """`scored` (a static pass run with keep=True) with a cache of `window` positions and `theta` added."""
    started = time.perf_counter()
    pointer = CachePointer(window, theta)
    steps = [pointer.step(features, targets) for features, targets in scored.windows]
    return Pass(
        nll=scored.nll,
        p_cache=torch.cat([p.reshape(-1) for p, _ in steps]),
        has=torch.cat([h.reshape(-1) for _, h in steps]),
        seconds=scored.seconds + time.perf_counter() - started,
    )
