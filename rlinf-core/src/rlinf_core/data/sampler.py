"""A seeded prompt sampler whose position is saved in checkpoints, so a resumed run sees the same
prompts in the same order as an uninterrupted one."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PromptSampler(Generic[T]):
    """Draws batches epoch by epoch: each epoch is a permutation seeded by ``(seed, epoch)``
    (or the dataset order with ``shuffle=False``); a batch may span two epochs."""

    def __init__(self, items: Sequence[T], *, seed: int = 1, shuffle: bool = True):
        if not items:
            raise ValueError("the prompt dataset is empty (data.train_data_paths / data.type)")
        self.items, self.seed, self.shuffle = items, seed, shuffle
        self.epoch, self.position = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.items)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_batch(self, n: int) -> list[T]:
        out = []
        while len(out) < n:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            out.append(self.items[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "size": len(self.items)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("size") != len(self.items) or state.get("seed") != self.seed:
            raise ValueError(f"cannot resume the prompt order: the checkpoint was made with {state.get('size')} prompts and "
                             f"data.seed={state.get('seed')}, this run has {len(self.items)} and data.seed={self.seed}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
