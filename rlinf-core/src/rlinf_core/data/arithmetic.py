"""The built-in synthetic task (``data.type: arithmetic``): ``a+b=`` prompts with exact answers.

Answers can be zero-padded to a fixed width (``answer_width``): every answer then has the same
number of tokens, which a tiny model learns far more easily by RL than variable-length numbers
(measured: see the README's quickstart).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from rlinf_core.data.records import PromptRecord
from rlinf_core.errors import ConfigError

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass(frozen=True)
class ArithmeticTask:
    """Every ``a <op> b`` with ``a, b`` in ``[min_value, max_value]`` (``-`` only where ``a >= b``),
    or ``num_problems`` of them drawn with ``seed``; ``val_fraction`` of them held out for eval."""

    min_value: int = 0
    max_value: int = 9
    operations: Sequence[str] = ("+",)
    answer_width: int = 0
    num_problems: int = -1
    val_fraction: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        bad = [op for op in self.operations if op not in OPERATIONS]
        if bad or not self.operations:
            raise ConfigError(f"data.arithmetic.operations: {bad or '[]'} not supported; choose from {', '.join(OPERATIONS)}")
        if self.min_value < 0 or self.max_value < self.min_value:
            raise ConfigError(f"data.arithmetic: need 0 <= min_value <= max_value, got {self.min_value}..{self.max_value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.arithmetic.val_fraction must be in [0, 1), got {self.val_fraction}")
        width = len(str(self.answer_range[1]))
        if 0 < self.answer_width < width:
            raise ConfigError(f"data.arithmetic.answer_width={self.answer_width} is too narrow: answers reach "
                              f"{self.answer_range[1]} ({width} digits)")

    @classmethod
    def from_config(cls, section) -> ArithmeticTask:
        return cls(min_value=int(section.min_value), max_value=int(section.max_value), operations=tuple(section.operations),
                   answer_width=int(section.answer_width), num_problems=int(section.num_problems),
                   val_fraction=float(section.val_fraction), seed=int(section.seed))

    @property
    def answer_range(self) -> tuple[int, int]:
        lo, hi = self.min_value, self.max_value
        ends = {"+": (2 * lo, 2 * hi), "-": (0, hi - lo), "*": (lo * lo, hi * hi)}
        return min(ends[op][0] for op in self.operations), max(ends[op][1] for op in self.operations)

    @property
    def alphabet(self) -> str:
        """Every character prompts and answers use (for a character-level tokenizer)."""
        return "0123456789=" + "".join(self.operations)

    def format_answer(self, value: int) -> str:
        return f"{value:0{self.answer_width}d}" if self.answer_width else str(value)

    def _all(self) -> list[tuple[int, str, int]]:
        values = range(self.min_value, self.max_value + 1)
        return [(a, op, b) for op in self.operations for a, b in itertools.product(values, values) if op != "-" or a >= b]

    def splits(self) -> tuple[list[PromptRecord], list[PromptRecord]]:
        """``(train, val)`` records; ``val`` is the train set itself when ``val_fraction`` is 0."""
        problems = self._all()
        rng = random.Random(self.seed)
        if 0 < self.num_problems < len(problems):
            problems = rng.sample(problems, self.num_problems)
        records = [PromptRecord(f"{a}{op}{b}=", self.format_answer(OPERATIONS[op](a, b)), i)
                   for i, (a, op, b) in enumerate(problems)]
        n_val = int(len(records) * self.val_fraction)
        if not n_val:
            return records, records
        order = list(range(len(records)))
        rng.shuffle(order)
        held = set(order[:n_val])
        return [r for r in records if r.index not in held], [r for r in records if r.index in held]

    def format_only_answers(self, n: int, rng: random.Random) -> list[str]:
        """``n`` answers drawn uniformly from the task's answer range, unrelated to any prompt: targets
        for a supervised warm start that teaches the answer *format* and nothing about the sums."""
        lo, hi = self.answer_range
        return [self.format_answer(rng.randint(lo, hi)) for _ in range(n)]
