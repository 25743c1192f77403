"""What the commands print: strict JSON for scripts, and text that is safe to show on a terminal."""

from __future__ import annotations

import json
import math
import re

# Terminal control: ESC sequences as a whole (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \\`,
# and two-character ones), the 8-bit CSI, then any other C0/C1 control character. Newline and
# tab stay: they only move the cursor forward.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks, clipboard writes
    r"|\x1b[@-_]"  # other two-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # CSI as one C1 character
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # the remaining control characters
)


def printable(text: str) -> str:
    """`text` without terminal control sequences: words come from vocab.json, which anyone may have edited."""
    return _ESCAPES.sub("", text)


def json_line(obj) -> str:
    """`obj` as one line of strict JSON: NaN and infinities (not JSON) become null."""
    return json.dumps(_finite(obj), allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
