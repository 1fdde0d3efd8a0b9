"""The automatic-placement cost model and profiler."""

from __future__ import annotations

import pytest
from rlinf_core.runtime import scheduler
from rlinf_core.runtime.scheduler import StageProfile, choose, predict_step_time, profile_stage


def test_profile_fits_overhead_and_per_row_cost(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(scheduler.time, "perf_counter", lambda: clock[0])

    def run(rows):
        clock[0] += 0.002 + 0.0005 * rows

    prof = profile_stage("env", run, [8, 16, 32, 64])
    assert prof.overhead_s == pytest.approx(0.002) and prof.per_row_s == pytest.approx(0.0005)
    assert prof.time(10) == pytest.approx(0.007)


def test_predicted_step_times_by_hand():
    env, pol = StageProfile("env", 0.0, 1.0), StageProfile("rollout", 0.0, 0.5)  # seconds per row
    kw = dict(num_envs=8, num_devices=2)
    # sequential disaggregated: E + P = 8 + 4
    assert predict_step_time(env, pol, stage_num=1, mode="disaggregated", env_devices=1, **kw) == 12
    # k=2: E=4, P=2 per call; env rank does 2 calls: max(8, 4, 6) = 8
    assert predict_step_time(env, pol, stage_num=2, mode="disaggregated", env_devices=1, **kw) == 8
    # collocated k=2 on 2 devices: one micro-batch per device: 4 + 2
    assert predict_step_time(env, pol, stage_num=2, mode="collocated", **kw) == 6
    # with 0.5 s per call
    assert predict_step_time(env, pol, stage_num=2, mode="collocated", call_overhead_s=0.5, **kw) == 7
    with pytest.raises(ValueError, match="needs devices for both stages"):
        predict_step_time(env, pol, stage_num=1, mode="disaggregated", env_devices=2, **kw)


def test_choice_follows_the_profile():
    balanced = StageProfile("env", 0.0, 1e-3), StageProfile("rollout", 0.0, 1e-3)
    best = choose(*balanced, num_envs=64, num_devices=2)[0]
    assert best.stage_num >= 2  # overlapping pays when stages are balanced
    assert best.predicted_steps_per_s == pytest.approx(64 / (64e-3), rel=1e-9)  # both devices always busy

    # a policy stage three times the env's on 4 devices: split 1 env + 3 policy devices, k = 3 ... 4
    env, pol = StageProfile("env", 0.0, 1e-3), StageProfile("rollout", 0.0, 3e-3)
    ranked = choose(env, pol, num_envs=48, num_devices=4, stage_nums=(1, 2, 3, 4, 6))
    seq = next(c for c in ranked if c.stage_num == 1 and c.mode == "disaggregated")
    assert ranked[0].predicted_steps_per_s > 1.5 * seq.predicted_steps_per_s

    # a huge per-call overhead: pipelining into many micro-batches does not pay
    best = choose(*balanced, num_envs=64, num_devices=2, call_overhead_s=1.0)[0]
    assert best.stage_num <= 2
    with pytest.raises(ValueError, match="divides num_envs"):
        choose(*balanced, num_envs=7, num_devices=2, stage_nums=(2, 4))


def test_candidates_are_valid_placements():
    from rlinf_core.runtime import parse_component_placement

    for cand in choose(StageProfile("env", 0, 1), StageProfile("rollout", 0, 1), num_envs=8, num_devices=3):
        groups = parse_component_placement(cand.component_placement, 3)
        assert set(groups) == {"env", "rollout"}
