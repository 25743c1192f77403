"""The one way the report writes a number, in tables, prose and titles alike.

Perplexities and their ranges to one decimal (a seed range narrower than 0.1 prints as its
one-decimal ends, which may coincide: that *is* what one decimal can say), differences
signed, shares as percentages, counts and tokens with thousands separators. Jinja templates
get the same functions as filters (lmlib.report.templates).
"""

from __future__ import annotations

import math

DASH = "–"  # what a missing number (None, NaN) prints as


def missing(value) -> bool:
    """None or NaN (math.isnan: never `x != x`)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def ppl(value) -> str:
    """A perplexity (or a difference or range of them): '120.5'; '< 0.1' for a non-zero one that would print as 0.0."""
    if missing(value):
        return DASH
    return "< 0.1" if 0 < abs(float(value)) < 0.05 else f"{float(value):.1f}"


def ppl_range(mean, low=None, high=None, n: int = 2) -> str:
    """'120.5 (120.4–120.5)': a mean and its range over seeds; just the mean for one seed."""
    if n < 2 or missing(low) or missing(high):
        return ppl(mean)
    return f"{ppl(mean)} ({ppl(low)}–{ppl(high)})"


def signed(value, digits: int = 1) -> str:
    """A difference: '+1.2', '−3.4' (a real minus sign)."""
    if missing(value):
        return DASH
    return f"{float(value):+.{digits}f}".replace("-", "−")


def percent(value, digits: int = 1, sign: bool = False) -> str:
    """A share: '27.1%', or '+27.1%' / '−27.1%' with sign=True."""
    if missing(value):
        return DASH
    text = f"{float(value) * 100:{'+' if sign else ''}.{digits}f}%"
    return text.replace("-", "−")


def count(value) -> str:
    """A count: '3,944,192'."""
    return DASH if missing(value) else f"{int(round(float(value))):,}"


def minutes(seconds) -> str:
    """Seconds as minutes to one decimal: '5.8'."""
    return DASH if missing(seconds) else f"{float(seconds) / 60:.1f}"


def epochs(value) -> str:
    """An epoch count: '5' when whole, '4.37' when the clock cut an epoch."""
    if missing(value):
        return DASH
    value = float(value)
    return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"


FILTERS = {"ppl": ppl, "signed": signed, "percent": percent, "count": count, "minutes": minutes, "epochs": epochs}
