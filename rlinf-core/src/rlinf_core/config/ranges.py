"""Allowed ranges of numeric config fields, declared next to each field in ``schema.py``.

``lr: float = bounded(1.0e-6, ge=0)`` gives a field its default and its range. :func:`range_problems`
checks every field that has one (``load_config`` calls it) and reports each value outside its range
as one line naming the key and the range.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

#: The dataclass field metadata key that holds a field's :class:`Range`.
RANGE = "rlinf_range"


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric value (``None``: unbounded), plus special values allowed outside them."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    #: Values accepted outside the bounds, e.g. ``-1`` for "no limit".
    also: tuple[float, ...] = ()

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if value in self.also:
            return True
        return not (math.isnan(value)
                    or (self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                    or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le))

    def __str__(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if bound is not None]
        text = " and ".join(parts)
        return text + "".join(f", or {v:g}" for v in self.also)


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None, also: tuple[float, ...] = ()) -> Any:
    """A dataclass field with ``default`` and the allowed range, e.g. ``bounded(1.0, gt=0, le=1)``."""
    return field(default=default, metadata={RANGE: Range(gt, ge, lt, le, tuple(also))})


def range_problems(cfg: Any, schema: type, prefix: str = "") -> list[str]:
    """One line per value of ``cfg`` (a DictConfig of ``schema``) outside its field's range.

    Values behind an unresolvable ``${...}`` are skipped: ``validate_config`` reports those.
    """
    problems: list[str] = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        try:
            value = cfg[f.name]
        except Exception:  # an interpolation that does not resolve
            continue
        if dataclasses.is_dataclass(hints[f.name]) and value is not None:
            problems += range_problems(value, hints[f.name], f"{prefix}{f.name}.")
            continue
        allowed = f.metadata.get(RANGE)
        if allowed is not None and value is not None and value not in allowed:
            problems.append(f"{prefix}{f.name}: must be {allowed}, got {value!r}")
    return problems
