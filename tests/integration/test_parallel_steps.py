"""Training runs side by side: the report's parallel steps run in worker processes with a fixed thread count."""

from __future__ import annotations

import os

import pytest

from lmlib.report.parallel import run_steps, training_threads
from lmlib.report.pipeline import Step


def report_env(step) -> float:
    """A stand-in for executing a notebook: returns the thread count its kernel would get (and the pid)."""
    return float(os.environ.get("OMP_NUM_THREADS", "0")) + os.getpid() * 1000


def test_parallel_steps_run_in_worker_processes_with_a_fixed_thread_count():
    steps = [Step("a", "a", {}, "first"), *[Step("t", f"t{i}", {}, f"run {i}", parallel=True) for i in range(3)],
             Step("c", "c", {}, "last")]  # fmt: skip
    logged = []
    result = run_steps(steps, report_env, 2, logged.append)
    assert len(result) == 5 and "2-4/5" in logged[2]
    threads = training_threads(2)
    assert [round(r % 1000) for r in result[1:4]] == [threads] * 3
    assert result[0] // 1000 == result[4] // 1000 == os.getpid()  # the others ran here, in order
    assert all(r // 1000 != os.getpid() for r in result[1:4])
    assert training_threads(2, cores=2) == 1 and training_threads(2, cores=16) == 8 and training_threads(1) is None
    serial = run_steps(steps, report_env, 1, [].append)
    assert all(r // 1000 == os.getpid() for r in serial)


def test_a_failing_parallel_step_raises_its_error():
    steps = [Step("t", f"t{i}", {}, f"run {i}", parallel=True) for i in range(2)]
    with pytest.raises(ZeroDivisionError):
        run_steps(steps, fail_on_second, 2, [].append)


def fail_on_second(step) -> float:
    return 1 / (step.output != "t1")


def sleep_then_report(step) -> float:
    import time

    time.sleep(step.parameters["sleep"])
    return step.parameters["sleep"]


def test_each_parallel_run_is_logged_when_it_ends_not_when_all_have():
    import time

    steps = [Step("t", "slow", {"sleep": 3.0}, "slow run", parallel=True),
             Step("t", "fast", {"sleep": 0.0}, "fast run", parallel=True)]  # fmt: skip
    logged = []
    run_steps(steps, sleep_then_report, 2, lambda line: logged.append((time.monotonic(), line)))
    when = {("fast" if "fast run" in line else "slow"): t for t, line in logged if "done in" in line}
    assert when["slow"] - when["fast"] > 1.5
