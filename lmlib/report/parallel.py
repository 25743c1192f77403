"""Run the report's notebook executions in order, the independent ones (training runs) several at once.

On the 2-core CPU here two training processes with one torch thread each finish these small
models sooner than one 2-thread process after the other: a 2-thread run loses much of its
speed whenever another process is busy (benchmarks/README.md), and one thread per run
leaves no OpenMP barrier to wait on. The thread count is fixed by the profile (cores //
parallel), so a rebuild on the same machine repeats the same arithmetic (and numbers).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from functools import partial


def training_threads(parallel: int, cores: int | None = None) -> int | None:
    """Torch threads per training process when `parallel` run at once (None: one at a time, torch's own choice)."""
    return max(1, (cores or os.cpu_count() or 1) // parallel) if parallel > 1 else None


def run_steps(steps: list, call: Callable, parallel: int, log) -> list[float]:
    """`call(step)` for every step, in order, consecutive `step.parallel` ones `parallel` at a time; seconds each.

    `call` must be picklable (a module-level function or a partial of one): parallel steps run
    in worker processes. The first failure is raised once the steps already running have ended.
    """
    seconds: dict[int, float] = {}
    i = 0
    while i < len(steps):
        group = [i]
        while parallel > 1 and steps[i].parallel and group[-1] + 1 < len(steps) and steps[group[-1] + 1].parallel:
            group.append(group[-1] + 1)
        if len(group) == 1:
            log(f"[{i + 1}/{len(steps)}] {steps[i].notebook} ({steps[i].label}) ...")
            seconds[i] = call(steps[i])
            log(f"      done in {seconds[i]:.0f} s")
        else:
            seconds.update(_run_group(steps, group, call, parallel, log))
        i = group[-1] + 1
    return [seconds[k] for k in range(len(steps))]


def _run_group(steps: list, group: list[int], call: Callable, parallel: int, log) -> dict[int, float]:
    threads, done = training_threads(parallel), {}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch, ZMQ or event-loop state
    with ProcessPoolExecutor(max_workers=min(parallel, len(group)), mp_context=context) as pool:
        log(
            f"[{group[0] + 1}-{group[-1] + 1}/{len(steps)}] {len(group)} × {steps[group[0]].notebook}, "
            f"{parallel} at once, {threads} torch thread(s) each ..."
        )
        futures = {pool.submit(partial(_with_threads, threads, call), steps[k]): k for k in group}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)  # log each as it ends
            for future in finished:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()  # not started yet; one already running ends (and is reused next time)
                    raise future.exception()
                k = futures[future]
                done[k] = future.result()
                log(f"      [{k + 1}/{len(steps)}] {steps[k].label} done in {done[k]:.0f} s")
    return done


def _with_threads(threads: int | None, call: Callable, step) -> float:
    """`call(step)` in a worker whose kernels inherit the thread count (torch reads OMP_NUM_THREADS at import)."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    return call(step)
