"""Validation with messages a user can act on: each check raises LMError naming the field and what it accepts.

NaN and infinities are never numbers here: a NaN learning rate or budget would train on NaN
or never stop, so they are refused where they enter (config, CLI, YAML, HTTP).
"""

from __future__ import annotations

import math

from lmlib.errors import LMError


def not_int(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def check_text(name: str, value) -> None:
    if not isinstance(value, str) or not value:
        raise LMError(f"{name} must be a non-empty text, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise LMError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise LMError(f"{name} must be true or false, got {value!r}")


def check_int(name: str, value, minimum: int, maximum: int | None = None, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise LMError(f"{name} must be a whole number {bound}{_or_none(optional, value)}")


def check_number(name, value, low, high=None, low_open=False, high_open=False, optional=False) -> None:
    """A finite number in the interval; NaN and infinities are refused (they would train on NaN)."""
    if optional and value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        upper = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        interval = f"{'(' if low_open else '['}{low:g}, {upper}"
        raise LMError(f"{name} must be a finite number in {interval}{_or_none(optional, value)}")


def _or_none(optional: bool, value) -> str:
    """The end of a range error: where "not set" is allowed, how it is spelled (none; never 0, which is a value)."""
    if not optional:
        return f", got {value!r}"
    if value == 0 and not isinstance(value, bool):
        return f" (or none), got {value!r}: to leave it unset write none, not 0"
    return f" (or none), got {value!r}"
