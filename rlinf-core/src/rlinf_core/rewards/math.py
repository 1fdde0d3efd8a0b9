"""``math``: extract the final answer of a response (``\\boxed{...}`` first, else the last number or
"answer is ..." phrase) and check it against the reference with ``math-verify`` (imported lazily)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*\$?([^\n$]+?)\$?\s*(?:\.\s*)?$", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; ``None`` if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the last ``\\boxed{}``, else an "answer is X" phrase, else the
    last number; ``None`` when there is none."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    phrases = _ANSWER_IS.findall(text)
    if phrases:
        return phrases[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def _verify(gold: str, predicted: str) -> bool:
    from math_verify import parse, verify

    def as_latex(s: str) -> str:
        return s if "$" in s or "\\boxed" in s else f"${s}$"

    try:
        return bool(verify(parse(as_latex(gold)), parse(as_latex(predicted))))
    except Exception:  # math-verify raises on unparsable input; such an answer is simply wrong
        return False


def math_reward(responses: Sequence[str], answers: Sequence[str], **_: object) -> list[float]:
    """1.0 when the response's final answer is mathematically equal to the reference, else 0.0."""
    if len(responses) != len(answers):
        raise ValueError(f"math reward: {len(responses)} responses but {len(answers)} answers")
    scores = []
    for response, answer in zip(responses, answers, strict=True):
        predicted = extract_answer(response)
        gold = _last_boxed(str(answer)) or str(answer)
        scores.append(0.0 if predicted is None else float(predicted.strip() == gold.strip() or _verify(gold, predicted)))
    return scores
