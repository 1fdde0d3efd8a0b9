"""Reward functions (kind ``reward``, ``reward.reward_type``): ``fn(responses, answers, **kw) -> list[float]``."""

from rlinf_core.rewards.exact_match import exact_match
from rlinf_core.rewards.math import extract_answer, math_reward

__all__ = ["exact_match", "extract_answer", "math_reward"]
