"""Honest tuning: each method's settings are chosen on the validation split only, then test is scored once.

    compare_methods(model, splits, bptt, methods=("static", "cache", "dynamic", "both"))

A setting the caller fixes is not tuned; the others take the grid's values (GRIDS: "full"
for a real comparison, "small" for the smoke report and tests). The cache's lambda costs
no pass (score.Pass.loss), and the model runs once on valid for all (window, theta): each
cache is replayed on its kept features. Each (lr, decay) is one pass over valid. "both" is
dynamic evaluation's updated model feeding the cache: it keeps the settings chosen for
each method alone and tunes only lambda again, on valid. Every method records its
settings, what was tuned, the grid's validation perplexities, valid and test perplexity,
the test pass's seconds and tokens/s, and its cost as a ratio to a static pass over test
timed just before it.

"No adaptation" is always a candidate: the cache's lambda 0 and dynamic evaluation's zero
step (lr 0) are in every grid whose lambda or lr is tuned, scored as static evaluation on
valid. When no setting beats static on validation, that is the answer: the method keeps
the trained model's predictions (its test perplexity is static's, at static's cost) and
its entry says `"adapted": false`. Without it, tuning picks the least harmful of harmful
settings, which can be worse on test than doing nothing (issue 20: dynamic evaluation of a
smoke run, valid 709.4 against static 635.6, test +32.8%).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from lmlib.errors import LMError
from lmlib.evaluation.cache import CacheSettings
from lmlib.evaluation.dynamic import DynamicSettings, adapting, gradient_rms
from lmlib.evaluation.score import Pass, perplexity, replay_cache, run_pass

METHODS = ("static", "cache", "dynamic", "both")
# Cache: Grave et al. 2016 tune theta and lambda per corpus and use windows of 100-2000
# (awd-lstm-lm: 500 on PTB, 3785 on WikiText-2); a row's history cannot exceed the row.
# Dynamic: dynamiceval.py's grid is eta 3e-5..1e-4, lambda 0.001..0.005 for 5-token segments
# of one stream with RMS from 100-row batches. The grid's eta is for updates on as many rows
# as the statistics (the cpu model: 32 and 32; a probe on part of valid: eta 3e-4 too slow,
# 3e-3 worse, 1e-2 diverges); lr_row_scale adapts it when the two differ.
_CACHE_GRID = {"window": (500, 2000, 3785), "theta": (0.3, 1.0, 2.0, 3.0), "lambda": (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)}
GRIDS = {
    # the benchmark's: 12 cached replays of one valid pass, 8 dynamic passes over valid
    "full": {**_CACHE_GRID, "lr": (2.5e-4, 5e-4, 1e-3, 2e-3), "decay": (0.001, 0.003)},
    # the report's (within its time budget): the benchmark's choices on the cpu model and their
    # neighbours for the cache, its one dynamic setting
    "report": {
        "window": (2000, 3785),
        "theta": (1.0, 3.0),
        "lambda": _CACHE_GRID["lambda"],
        "lr": (1e-3,),
        "decay": (0.001,),
    },
    # tiny models (tests, smoke): two step sizes, since a small Transformer diverges at 1e-3
    "small": {"window": (50,), "theta": (0.3,), "lambda": (0.1, 0.2), "lr": (1e-4, 1e-3), "decay": (0.01,)},
}
STAT_TOKENS = 100_000  # training tokens for the gradient statistics (dynamiceval.py's --max_batches)


def lr_row_scale(eval_rows: int, stat_rows: int) -> float:
    """The factor on the grid's eta when evaluation reads `eval_rows` rows and RMS_g came from `stat_rows`.

    A segment's mean-loss gradient is mostly noise, whose size goes as 1/sqrt(rows): the
    statistics over B_stat rows are sqrt(B_stat / B_eval) times smaller than a B_eval-row
    update's gradient, and the normalised step grad / RMS_g that much larger. Scaling eta by
    sqrt(B_eval / B_stat) keeps the step the grid was chosen for (Krause et al.'s one stream
    with 100-row statistics and eta 2e-5..1e-4 is the grid's 2e-4..1e-3 at equal rows).
    """
    return math.sqrt(eval_rows / stat_rows)


def _candidates(fixed: dict, grid: dict, names: tuple[str, ...]) -> list[dict]:
    """Every combination of the grid's values for the names not fixed (a fixed one is the only value)."""
    values = [(fixed[n],) if fixed.get(n) is not None else grid[n] for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def tune_cache(model, valid, bptt: int, fixed: dict, grid: dict, progress=False) -> tuple[CacheSettings, list[dict]]:
    """The (window, theta, lambda) with the lowest validation loss; one model pass, one cache per (window, theta).

    A tuned lambda also tries 0 (no cache: static evaluation), first, so that it wins ties."""
    rows = []
    static = run_pass(model, valid, bptt, keep=True, progress=_bar(progress, "cache: valid"))  # replayed per cache
    lambdas = _candidates(fixed, grid, ("lambda",))
    if fixed.get("lambda") is None:
        lambdas = [{"lambda": 0.0}] + [lam for lam in lambdas if lam["lambda"] != 0]
    for pair in _candidates(fixed, grid, ("window", "theta")):
        scored = replay_cache(static, pair["window"], pair["theta"])
        for lam in lambdas:
            rows.append({**pair, **lam, "valid_ppl": perplexity(scored.loss(lam["lambda"]))})
    best = min(rows, key=_finite_ppl)
    return CacheSettings(best["window"], best["theta"], best["lambda"]), rows


def tune_dynamic(
    model, valid, rms, fixed: dict, grid: dict, static_ppl: float | None = None, progress=False
) -> tuple[DynamicSettings, list[dict]]:
    """The (lr, decay) with the lowest validation loss; the weights are restored after every pass.

    A tuned lr also tries the zero step (no update: static evaluation, whose validation
    perplexity `static_ppl` is), first, so that it wins ties."""
    segment = fixed.get("segment") or DynamicSettings.segment
    rows = []
    if fixed.get("lr") is None and static_ppl is not None:
        rows.append({**DynamicSettings(0.0, 0.0, segment).to_dict(), "valid_ppl": static_ppl})
    for combo in _candidates(fixed, grid, ("lr", "decay")):
        settings = DynamicSettings(combo["lr"], combo["decay"], segment)
        with adapting(model, rms, settings) as updater:
            bar = _bar(progress, f"dynamic lr {settings.lr:.3g} decay {settings.decay:g}: valid")
            scored = run_pass(model, valid, segment, updater=updater, progress=bar)
        rows.append({**settings.to_dict(), "valid_ppl": perplexity(scored.loss())})
    best = min(rows, key=_finite_ppl)  # a setting that diverged (inf or NaN) is chosen only if all did
    return DynamicSettings(best["lr"], best["decay"], best["segment"]), rows


def _finite_ppl(row: dict) -> float:
    return row["valid_ppl"] if math.isfinite(row["valid_ppl"]) else math.inf


def _both_pass(model, data, rms, dynamic: DynamicSettings, cache: CacheSettings, progress=None) -> Pass:
    with adapting(model, rms, dynamic) as updater:
        return run_pass(model, data, dynamic.segment, (cache.window, cache.theta), updater, progress=progress)


def _entry(settings, tuned, grid, valid: float, test: Pass, lam: float = 0.0, static_seconds=None) -> dict:
    """One method's record; its cost is against a static pass over test timed just before it (same load)."""
    loss = test.loss(lam)
    static_seconds = static_seconds or test.seconds
    return {
        "settings": settings,
        "tuned_on_valid": tuned,
        "grid": grid,
        "adapted": True,
        "valid_ppl": perplexity(valid),
        "test_loss": loss,
        "test_ppl": perplexity(loss),
        "seconds": test.seconds,
        "tokens": test.tokens,
        "tokens_per_s": test.tokens / max(test.seconds, 1e-9),
        "static_seconds": static_seconds,
        "cost_ratio": test.seconds / max(static_seconds, 1e-9),
    }


def _kept_static(settings: dict, tuned: list, grid: list, static: dict) -> dict:
    """The entry of a method whose tuning chose no adaptation: static's numbers (no pass is needed), and why."""
    adapted = [r["valid_ppl"] for r in grid if _adapts(r) and math.isfinite(r["valid_ppl"])]
    return {
        **static,
        "settings": settings,
        "tuned_on_valid": tuned,
        "grid": grid,
        "adapted": False,
        "best_adapted_valid_ppl": min(adapted) if adapted else math.inf,
    }


def _adapts(row: dict) -> bool:
    """Whether a grid row changes anything: a cache with lambda > 0, or a dynamic step with lr > 0."""
    return row.get("lambda", 0) > 0 or row.get("lr", 0) > 0


def compare_methods(
    model: torch.nn.Module,
    splits: dict[str, torch.Tensor],
    bptt: int,
    methods=METHODS,
    cache: dict | None = None,
    dynamic: dict | None = None,
    grid: str = "full",
    log: Callable[[str], None] = lambda _: None,
    progress: bool = False,
) -> dict:
    """{method: entry} for static and each of `methods`; settings not fixed in `cache`/`dynamic` tuned on valid.

    `progress` shows a bar for each pass (tqdm.auto)."""
    unknown = set(methods) - set(METHODS)
    if unknown or grid not in GRIDS:
        raise LMError(f"methods must be among {', '.join(METHODS)} and grid one of {', '.join(GRIDS)}")
    values, cache, dynamic = GRIDS[grid], dict(cache or {}), dict(dynamic or {})
    _check_given(cache, dynamic)  # a bad value is an error now, not after the first passes
    static_valid = run_pass(model, splits["valid"], bptt, progress=_bar(progress, "static: valid")).loss()
    static_test = run_pass(model, splits["test"], bptt, progress=_bar(progress, "static: test"))
    results = {"static": _entry({}, [], [], static_valid, static_test) | {"adapted": False}}
    static = results["static"]
    log(f"static: test ppl {static['test_ppl']:.2f}")
    chosen_cache = rms = chosen_dynamic = None
    if {"cache", "both"} & set(methods):
        chosen_cache, rows = tune_cache(model, splits["valid"], bptt, cache, values, progress)
        results["cache"] = _cache_entry(model, splits["test"], bptt, chosen_cache, cache, rows, static, progress)
    if {"dynamic", "both"} & set(methods):
        segment = dynamic.get("segment") or DynamicSettings.segment
        rms, setup = _timed(lambda: gradient_rms(model, splits["train"], segment, STAT_TOKENS, progress))
        scale = lr_row_scale(splits["valid"].size(0), splits["train"].size(0))
        scaled = {**values, "lr": tuple(lr * scale for lr in values["lr"])}
        chosen_dynamic, rows = tune_dynamic(model, splits["valid"], rms, dynamic, scaled, static["valid_ppl"], progress)
        results["dynamic"] = _dynamic_entry(
            model, splits["test"], bptt, rms, chosen_dynamic, dynamic, rows, static, progress
        )
        results["dynamic"].update(setup_seconds=setup, lr_row_scale=scale)
    if "both" in methods:
        both = (chosen_dynamic, chosen_cache, cache, values, static, progress)
        results["both"] = _tune_both(model, splits, bptt, rms, *both)
    for name, entry in results.items():
        if name != "static":
            log(_summary_line(name, entry, static))
    return {name: results[name] for name in ("static", *[m for m in METHODS if m in methods and m != "static"])}


def _cache_entry(
    model, test_split, bptt, chosen: CacheSettings, fixed: dict, rows: list, static: dict, progress=False
) -> dict:
    tuned = [n for n in ("window", "theta", "lambda") if fixed.get(n) is None]
    if chosen.lam == 0 and "lambda" in tuned:
        return _kept_static(chosen.to_dict(), tuned, rows, static)
    paired = _static_seconds(model, test_split, bptt, progress)
    test = run_pass(
        model, test_split, bptt, cache=(chosen.window, chosen.theta), progress=_bar(progress, "cache: test")
    )
    entry = _entry(chosen.to_dict(), tuned, rows, 0.0, test, chosen.lam, paired)
    entry["valid_ppl"] = min(r["valid_ppl"] for r in rows)
    return entry


def _dynamic_entry(
    model, test_split, bptt, rms, chosen: DynamicSettings, fixed: dict, rows, static: dict, progress=False
):
    tuned = [n for n in ("lr", "decay") if fixed.get(n) is None]
    if chosen.lr == 0 and "lr" in tuned:
        return _kept_static(chosen.to_dict(), tuned, rows, static)
    paired = _static_seconds(model, test_split, bptt, progress)
    with adapting(model, rms, chosen) as updater:
        test = run_pass(model, test_split, chosen.segment, updater=updater, progress=_bar(progress, "dynamic: test"))
    entry = _entry(chosen.to_dict(), tuned, rows, 0.0, test, static_seconds=paired)
    entry["valid_ppl"] = min(r["valid_ppl"] for r in rows if r["lr"] == chosen.lr and r["decay"] == chosen.decay)
    return entry


def _summary_line(name: str, entry: dict, static: dict) -> str:
    """What the CLI logs for a method: its numbers and settings, or that static was kept and why."""
    if entry["adapted"] or not entry.get("grid"):
        return f"{name}: valid ppl {entry['valid_ppl']:.2f}, test ppl {entry['test_ppl']:.2f}, {entry['settings']}"
    return (
        f"{name}: no setting beat static on validation (best {entry['best_adapted_valid_ppl']:.2f} against "
        f"static {static['valid_ppl']:.2f}): no adaptation, static kept (test ppl {entry['test_ppl']:.2f})"
    )


def _tune_both(
    model, splits, bptt, rms, dynamic: DynamicSettings, cache: CacheSettings, fixed, values, static, progress=False
) -> dict:
    """Dynamic evaluation feeding the cache: each method's settings kept, lambda re-tuned on valid (0 included:
    dynamic evaluation alone); static is kept when that does not beat it on validation either."""
    lambdas = _candidates(fixed, values, ("lambda",))
    if fixed.get("lambda") is None:
        lambdas = [{"lambda": 0.0}] + [lam for lam in lambdas if lam["lambda"] != 0]
    scored = _both_pass(model, splits["valid"], rms, dynamic, cache, _bar(progress, "both: valid"))
    rows = [
        {"lambda": c["lambda"], "lr": dynamic.lr, "valid_ppl": perplexity(scored.loss(c["lambda"]))} for c in lambdas
    ]
    best = min(rows, key=_finite_ppl)
    tuned = ["lambda"] if fixed.get("lambda") is None else []
    settings = {"cache": {**cache.to_dict(), "lambda": best["lambda"]}, "dynamic": dynamic.to_dict()}
    if tuned and not (_adapts(best) and best["valid_ppl"] < static["valid_ppl"]):
        return _kept_static(settings, tuned, rows, static)
    paired = _static_seconds(model, splits["test"], bptt, progress)
    test = _both_pass(model, splits["test"], rms, dynamic, cache, _bar(progress, "both: test"))
    entry = _entry(settings, tuned, rows, 0.0, test, best["lambda"], paired)
    entry["valid_ppl"] = best["valid_ppl"]
    return entry


def _static_seconds(model, test, bptt: int, progress=False) -> float:
    """A static pass over test timed right before a method's, so a shared machine's load hits both alike."""
    return run_pass(model, test, bptt, progress=_bar(progress, "static: test (timing)")).seconds


def _bar(progress: bool, name: str) -> str | None:
    """A pass's progress bar name when bars are on."""
    return name if progress else None


def _check_given(cache: dict, dynamic: dict) -> None:
    given = {k: v for k, v in cache.items() if v is not None}
    CacheSettings(given.get("window", 1), given.get("theta", 0.0), given.get("lambda", 0.0))
    given = {k: v for k, v in dynamic.items() if v is not None}
    DynamicSettings(given.get("lr", 0.0), given.get("decay", 0.0), given.get("segment", 1))


def _timed(work):
    import time

    started = time.perf_counter()
    value = work()
    return value, time.perf_counter() - started
