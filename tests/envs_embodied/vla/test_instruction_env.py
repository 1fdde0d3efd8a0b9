"""``rlinf/InstructionTargets-v0`` through the ``gymnasium`` env: observations, dynamics, success."""

from __future__ import annotations

import numpy as np
import pytest
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv
from rlinf_envs_embodied.envs.instruction_targets import COLOURS, InstructionTargetsEnv


def test_observation_dict_has_image_state_and_instruction(env, obs):
    assert set(obs) == {"images", "state", "instruction"}
    assert obs["images"]["image"].shape == (4, 32, 32, 3) and obs["images"]["image"].dtype == np.uint8
    assert obs["state"].shape == (4, 2) and obs["state"].dtype == np.float32
    assert len(obs["instruction"]) == 4
    assert all(t in {f"move to the {c} target" for c in ("red", "green", "blue")} for t in obs["instruction"])
    assert set(env.observation_space.spaces) == {"images", "state", "instruction"}


def test_image_shows_the_targets_and_the_agent_where_they_are():
    e = InstructionTargetsEnv(image_size=32)
    e.reset(seed=3)
    img = e.render()
    for colour, slot in zip(e.colours, e.order, strict=True):
        r, c = e._pixel(e.slots[slot])
        assert tuple(img[round(r), round(c)]) == COLOURS[colour]
    r, c = e._pixel(e.agent)
    assert tuple(img[round(r), round(c)]) == (255, 255, 255)


def test_moving_to_the_named_target_succeeds_and_terminates():
    e = InstructionTargetsEnv()
    e.reset(seed=1)
    start = e._distance()
    total, steps = 0.0, 0
    while True:
        direction = e.target_position() - e.agent
        _, reward, terminated, truncated, info = e.step(direction / max(np.abs(direction).max(), 1e-6))
        total, steps = total + reward, steps + 1
        if terminated:
            break
    assert info["success"] and not truncated and steps <= 4
    # dense reward: the distance covered, plus 1 for reaching the target
    assert total == pytest.approx(start - e._distance() + 1.0, abs=1e-5)


def test_shuffled_targets_change_slots_fixed_ones_do_not():
    orders = set()
    for s in range(20):
        e = InstructionTargetsEnv(shuffle_targets=True)
        e.reset(seed=s)
        orders.add(tuple(e.order))
    assert len(orders) > 1
    e = InstructionTargetsEnv(shuffle_targets=False)
    for s in range(5):
        e.reset(seed=s)
        assert tuple(e.order) == (0, 1, 2)


def test_random_actions_are_near_chance_and_the_oracle_always_succeeds(instruction_env_id):
    env = GymnasiumEnv({"env_id": instruction_env_id, "max_episode_steps": 12}, num_envs=8, seed=0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    ends = successes = 0
    for _ in range(120):
        _, _, term, trunc, info = env.step(rng.uniform(-1, 1, (8, 2)).astype(np.float32))
        ends += int((term | trunc).sum())
        successes += int(info["success"].sum())
    assert 0.05 < successes / ends < 0.5
    env.close()
    e = InstructionTargetsEnv(num_targets=4)
    for s in range(10):
        e.reset(seed=s)
        for _ in range(12):
            d = e.target_position() - e.agent
            _, _, terminated, _, _ = e.step(d / max(np.abs(d).max(), 1e-6))
            if terminated:
                break
        assert terminated


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_targets"):
        InstructionTargetsEnv(num_targets=9)


def test_instructions_follow_auto_resets_and_final_observations(instruction_env_id):
    env = GymnasiumEnv({"env_id": instruction_env_id, "max_episode_steps": 3}, num_envs=3, seed=5)
    obs, _ = env.reset(seed=5)
    for _ in range(2):
        obs, _, _, _, info = env.step(np.zeros((3, 2), np.float32))
    obs, _, _, truncated, info = env.step(np.zeros((3, 2), np.float32))
    assert truncated.all()
    final = info["final_observation"]
    assert isinstance(final["instruction"], list) and len(final["instruction"]) == 3
    assert all(isinstance(t, str) for t in obs["instruction"]) and len(obs["instruction"]) == 3
    # the chunked form carries them too
    obs, *_ = env.step(np.zeros((3, 2, 2), np.float32))
    assert len(obs["instruction"]) == 3
    env.close()
