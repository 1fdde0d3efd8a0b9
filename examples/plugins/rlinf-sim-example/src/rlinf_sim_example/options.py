"""The ``init_params`` of ``reacher2d``, read and checked without importing MuJoCo."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

#: Key -> (default, type, lower bound). ``images`` and ``terminate_on_success`` are booleans.
DEFAULTS: dict[str, Any] = {
    "frame_skip": 2,               # MuJoCo steps (of 10 ms) per env step
    "success_tolerance": 0.02,     # fingertip within this distance (m) of the target: success
    "terminate_on_success": False,  # end the episode (terminated) at the first success
    "control_cost": 1e-3,          # reward -= control_cost * |action|^2
    "images": False,               # add images["top"], a top-down uint8 view drawn from the arm's geometry
    "image_size": 32,
}


def init_params_problems(init_params: Mapping[str, Any] | None, key: str) -> list[str]:
    """One message per unknown key or bad value of ``init_params`` (empty when it is fine)."""
    given = dict(init_params or {})
    problems = []
    for name, value in given.items():
        if name not in DEFAULTS:
            near = difflib.get_close_matches(str(name), DEFAULTS, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            problems.append(f"{key}.{name}: unknown key of env 'reacher2d'.{hint} Valid: {', '.join(DEFAULTS)}")
        elif isinstance(DEFAULTS[name], bool) and not isinstance(value, bool):
            problems.append(f"{key}.{name}: must be true or false, got {value!r}")
    for name, low in (("frame_skip", 1), ("image_size", 8)):
        value = given.get(name, DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"{key}.{name}: must be an integer >= {low}, got {value!r}")
    for name in ("success_tolerance", "control_cost"):
        value = given.get(name, DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{key}.{name}: must be a number >= 0, got {value!r}")
    return problems


def read_options(config: Any, key: str) -> dict[str, Any]:
    """``init_params`` merged over the defaults; a ValueError naming every bad key."""
    given = dict(config.get("init_params") or {})
    problems = init_params_problems(given, key)
    if problems:
        raise ValueError("; ".join(problems))
    return {**DEFAULTS, **given}
