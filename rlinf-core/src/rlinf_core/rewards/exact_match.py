"""``exact_match``: 1.0 when the response equals the answer (surrounding whitespace ignored)."""

from __future__ import annotations

from collections.abc import Sequence


def exact_match(responses: Sequence[str], answers: Sequence[str], **_: object) -> list[float]:
    """One score per response: ``1.0`` if ``response.strip() == answer.strip()``, else ``0.0``."""
    if len(responses) != len(answers):
        raise ValueError(f"exact_match: {len(responses)} responses but {len(answers)} answers")
    return [1.0 if r.strip() == str(a).strip() else 0.0 for r, a in zip(responses, answers, strict=True)]
