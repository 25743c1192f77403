"""Sampling settings: their defaults, their limits and their checks, in one place and without torch.

Python (`Generator.generate`), the CLI (`generate`), the notebook panel and the web page all
start from these defaults, so one prompt reads the same everywhere. The module imports no
torch: the CLI builds its `--help` and the web app parses requests from it in milliseconds.
"""

from __future__ import annotations

from lmlib.errors import LMError

MAX_NEW_TOKENS = 1000  # the library's cap on one generation
# The interactive front-ends' default cap (the panel's length slider, the web app's limit, the
# page's slider via /health): enough for a paragraph, short enough to stay responsive on a CPU.
INTERACTIVE_MAX_NEW_TOKENS = 300
DEFAULT_MAX_NEW_TOKENS = 50
# Below 1 the likeliest words gain, which keeps a small word-level model's text on topic; the
# original study's page and this project's CLI, panel and page have always started here.
DEFAULT_TEMPERATURE = 0.8


def check_sampling(max_new_tokens: int, temperature: float, top_k: int, top_p: float) -> None:
    """Validate sampling parameters with messages a user can act on."""
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or not 1 <= max_new_tokens <= MAX_NEW_TOKENS
    ):
        raise LMError(f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 100:
        raise LMError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise LMError(f"top_k must be a whole number >= 0 (0 = off), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise LMError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")
