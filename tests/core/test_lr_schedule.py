"""``actor.lr_sched`` as both training backends follow it (``rlinf_core.lr_schedule``)."""

from __future__ import annotations

import math

import pytest
from rlinf_core.errors import ConfigError
from rlinf_core.lr_schedule import LRSchedule


def _schedule(total_steps=10, peak=1.0, **sched):
    return LRSchedule.from_config({"actor": {"lr_sched": sched}}, peak=peak, total_steps=total_steps)


def test_warmup_then_each_decay_style_by_hand():
    cos = _schedule(lr_decay_style="cosine", lr_warmup_fraction=0.2, min_lr=0.1)
    assert [cos.lr(s) for s in (0, 1)] == [0.0, 0.5]  # 2 warmup steps from 0
    assert cos.lr(2) == pytest.approx(1.0) and cos.lr(10) == pytest.approx(0.1) and cos.lr(50) == pytest.approx(0.1)
    assert cos.lr(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    lin = _schedule(lr_decay_style="linear", min_lr=0.2)
    assert [lin.lr(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.6, 0.2])
    const = _schedule(peak=3e-4, lr_warmup_fraction=0.5)
    assert [const.lr(s) for s in (0, 4, 5, 9)] == pytest.approx([0.0, 2.4e-4, 3e-4, 3e-4])
    assert const.factor(4) == pytest.approx(0.8) and _schedule(peak=0.0).factor(3) == 0.0


def test_the_length_comes_from_the_run_and_bad_input_names_the_key():
    cfg = {"actor": {"lr_sched": {"lr_decay_style": "linear"}}, "runner": {"max_steps": 5},
           "algorithm": {"n_minibatches": 2, "update_epoch": 3}}
    assert LRSchedule.from_config(cfg, peak=1.0, total_steps=None).total == 30
    with pytest.raises(ConfigError, match=r"lr_decay_style: 'cosin' is not a decay style. Did you mean 'cosine'\?"):
        _schedule(lr_decay_style="cosin")
    with pytest.raises(ConfigError, match=r"runner.max_steps is not set: actor.lr_sched.lr_decay_style=cosine"):
        LRSchedule.from_config({"actor": {"lr_sched": {"lr_decay_style": "cosine"}}}, peak=1.0, total_steps=None)
    assert _schedule(total_steps=None).lr(123) == 1.0  # constant needs no length
