"""The learning-rate schedule of ``actor.lr_sched``, shared by the training backends (torch-free).

``lr_decay_style``: ``constant``, ``cosine`` (to ``min_lr``) or ``linear`` (to ``min_lr``), after a
linear warmup from 0 over ``lr_warmup_fraction`` of the optimizer steps. A backend wraps
:meth:`LRSchedule.factor` in ``torch.optim.lr_scheduler.LambdaLR`` (or sets the rate itself from
:meth:`LRSchedule.lr`), so every backend follows the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlinf_core.config.access import get
from rlinf_core.errors import ConfigError, suggestion_text

DECAY_STYLES = ("constant", "cosine", "linear")


@dataclass(frozen=True)
class LRSchedule:
    """The rate at each optimizer step (0-based): warmup from 0 to ``peak``, then the decay style."""

    peak: float
    min_lr: float = 0.0
    style: str = "constant"
    total: int = 1
    warmup: int = 0

    @classmethod
    def from_config(cls, config: Any, *, peak: float, total_steps: int | None) -> LRSchedule:
        """Read ``actor.lr_sched``; ``total_steps`` (optimizer steps of the run) defaults to
        ``runner.max_steps x algorithm.n_minibatches x algorithm.update_epoch``.

        Raises:
            ConfigError: an unknown decay style, or a decay / warmup without a known length.
        """
        sched = get(config, "actor.lr_sched")
        style = str(get(sched, "lr_decay_style", "constant")).lower()
        if style not in DECAY_STYLES:
            raise ConfigError(f"actor.lr_sched.lr_decay_style: {style!r} is not a decay style."
                              f"{suggestion_text(style, DECAY_STYLES)} Valid: {', '.join(DECAY_STYLES)}")
        warmup_fraction = float(get(sched, "lr_warmup_fraction", 0.0))
        if total_steps is None:
            max_steps = int(get(config, "runner.max_steps", -1))
            per_step = int(get(config, "algorithm.n_minibatches", 1)) * int(get(config, "algorithm.update_epoch", 1))
            total_steps = max_steps * per_step if max_steps > 0 else None
        if total_steps is None and (style != "constant" or warmup_fraction > 0):
            raise ConfigError(f"runner.max_steps is not set: actor.lr_sched.lr_decay_style={style} with warmup "
                              f"{warmup_fraction} needs the number of optimizer steps (set runner.max_steps)")
        total = int(total_steps or 1)
        return cls(peak=float(peak), min_lr=float(get(sched, "min_lr", 0.0)), style=style, total=total,
                   warmup=int(warmup_fraction * total))

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step ``step``."""
        if self.warmup and step < self.warmup:
            return self.peak * step / self.warmup
        if self.style == "constant":
            return self.peak
        progress = min(1.0, max(0.0, (step - self.warmup) / max(1, self.total - self.warmup)))
        if self.style == "cosine":
            return self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.peak - (self.peak - self.min_lr) * progress

    def factor(self, step: int) -> float:
        """``lr(step) / peak``: the multiplier ``torch.optim.lr_scheduler.LambdaLR`` takes."""
        return self.lr(step) / self.peak if self.peak else 0.0
