"""Reading what older versions of lmlib wrote into config.json.

Only where run files are read from disk (lmlib.training.runs.read_config): a config built
today (presets, --set, YAML, RunConfig.replace) takes today's spellings, so an explicit 0
there is the value 0 (an error where it is out of range), never a silent "not set".
"""

from __future__ import annotations

import math
from typing import Any

# Fields whose old "not set" was 0 (config.json files written before None became the one spelling).
_ZERO_MEANT_UNSET = ("subset_tokens", "eval_batch_size", "clip", "max_minutes", "patience", "lr_decay_start",
                     "checkpoint_minutes")  # fmt: skip


def upgrade_old_spellings(values: dict[str, Any]) -> dict[str, Any]:
    """Read what older versions wrote: 0 for "not set", () for automatic cut-offs, lr_factor >= 1 for "no schedule"."""
    values = dict(values)
    for name in _ZERO_MEANT_UNSET:
        if name in values and values[name] == 0 and not isinstance(values[name], bool):
            values[name] = None
    if "cutoffs" in values and values["cutoffs"] in ((), []):
        values["cutoffs"] = None
    if "lr_schedule" not in values and ({"lr_factor", "lr_decay_start", "optimizer"} & set(values)):
        if values.get("optimizer") == "ntasgd" or _number(values.get("lr_factor")) >= 1.0:
            values["lr_schedule"] = "none"
        elif values.get("lr_decay_start"):
            values["lr_schedule"] = "step"
    if values.get("lr_schedule") == "none" and _number(values.get("lr_factor")) >= 1.0:
        values.pop("lr_factor")  # the old "off" value; the factor itself is unused without a schedule
    return values


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -math.inf
