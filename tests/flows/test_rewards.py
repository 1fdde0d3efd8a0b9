"""Rewards: exact match and the math verifier (answer extraction + math-verify equivalence)."""

from __future__ import annotations

import pytest
from rlinf_core.plugins import get_plugins
from rlinf_core.rewards import exact_match, extract_answer


def test_exact_match():
    assert exact_match([" 07", "7", "07\n", ""], ["07", "07", "07", "07"]) == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="2 responses but 1 answers"):
        exact_match(["a", "b"], ["a"])


@pytest.mark.parametrize(("text", "expected"), [
    ("so the total is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{3} then \\boxed{x^{2}+1}", "x^{2}+1"),
    ("The answer is 42.", "42"),
    ("we get 3 apples and 1,250 pears", "1250"),
    ("no number here", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_math_reward_equivalence():
    pytest.importorskip("math_verify")
    from rlinf_core.rewards import math_reward

    responses = ["... \\boxed{0.5}", "The answer is 1/2", "\\boxed{\\frac{2}{4}}", "\\boxed{3}", "nothing", "\\boxed{\\sqrt{4}}"]
    answers = ["\\frac{1}{2}", "0.5", "\\boxed{\\frac{1}{2}}", "4", "1", "2"]
    assert math_reward(responses, answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]


def test_rewards_are_registered():
    reg = get_plugins().registries["reward"]
    assert reg.load("exact_match") is exact_match
    spec = reg.get_spec("math")
    assert spec.requires == ("math-verify",) and spec.install_hint(["math-verify"]) == "pip install 'rlinf-core[math]'"
