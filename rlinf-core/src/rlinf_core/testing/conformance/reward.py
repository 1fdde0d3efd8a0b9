"""``RewardPluginTests``: a ``reward`` function, ``reward_fn(responses, answers, **kwargs) -> list[float]``.

Checks: one finite float per response, in order; ``cases`` (response, answer, expected score)
score as expected; the function is pure (same input, same scores). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rlinf_core.testing.conformance.base import PluginTests


class RewardPluginTests(PluginTests):
    """Subclass as ``class TestMyReward(RewardPluginTests)``; set ``component`` and ``cases``.

    - ``cases``: ``(response, answer, expected_score)`` triples, hand-checked;
    - ``kwargs``: extra keyword arguments of every call.
    """

    kind = "reward"
    cases: ClassVar[Sequence[tuple[str, Any, float]]] = ()
    kwargs: ClassVar[Mapping[str, Any]] = {}

    def score(self, responses: list[str], answers: list[Any]) -> list[float]:
        return list(self.load_target()(responses, answers, **self.kwargs))

    def test_one_finite_score_per_response(self) -> None:
        assert self.cases, "set cases: (response, answer, expected score) triples"
        responses = [c[0] for c in self.cases]
        scores = self.score(responses, [c[1] for c in self.cases])
        assert len(scores) == len(responses), f"{len(responses)} responses gave {len(scores)} scores"
        assert all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores), f"scores must be finite floats: {scores}"

    def test_cases_score_as_expected_in_order(self) -> None:
        scores = self.score([c[0] for c in self.cases], [c[1] for c in self.cases])
        expected = [c[2] for c in self.cases]
        assert [round(float(s), 6) for s in scores] == [round(float(e), 6) for e in expected]
        backwards = self.score([c[0] for c in self.cases][::-1], [c[1] for c in self.cases][::-1])
        assert backwards == scores[::-1], "scores must follow the order of the responses"

    def test_is_pure(self) -> None:
        responses, answers = [c[0] for c in self.cases], [c[1] for c in self.cases]
        assert self.score(responses, answers) == self.score(responses, answers)
