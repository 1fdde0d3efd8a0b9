"""The embodied env worker's reward and reset options: ``use_rel_reward`` and ``use_fixed_reset_state_ids``."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from rlinf_core.config import load_config
from rlinf_core.runtime import RankInfo
from rlinf_core.runtime.worker import construct_worker

torch = pytest.importorskip("torch")
pytest.importorskip("rlinf_envs_embodied")
from rlinf_core.flows.embodied_workers import EmbodiedEnvWorker  # noqa: E402


def _worker(**train) -> EmbodiedEnvWorker:
    cfg = load_config({"env": {"train": {"simulator_type": "gymnasium", "env_id": "CartPole-v1", "total_num_envs": 2,
                                         "seed": 5, **train}}})
    info = RankInfo(group_name="env", rank=0, world_size=1, devices=(0,))
    worker = construct_worker(EmbodiedEnvWorker, info, (OmegaConf.to_container(cfg, resolve=True), "train", "continue"), {})
    worker.setup(1)
    return worker


def _rollout(worker: EmbodiedEnvWorker, steps: int, step_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    worker.begin(step_id)
    first = worker.reset(0)["obs"]["state"]
    for t in range(steps):
        worker.step(0, {"actions": np.full(2, t % 2), "log_probs": torch.zeros(2)})
    worker.finish(0, {"values": None})
    data = worker.collect(0)
    return data["rewards"][..., 0], data["terminated"][..., 0], np.asarray(first)


def test_rel_reward_trains_on_the_change_of_the_reward_within_each_episode():
    plain_rewards, done, _ = _rollout(_worker(), 40)
    assert torch.equal(plain_rewards, torch.ones_like(plain_rewards))  # CartPole: 1 per step
    assert done.any()  # alternating pushes end some episodes within 40 steps
    rel, done_rel, _ = _rollout(_worker(use_rel_reward=True, reward_coef=2.0), 40)
    assert torch.equal(done_rel, done)  # same seeds, same episodes
    # by hand: 2 * (1 - previous reward of the episode); the first step of every episode has none before it
    expected = torch.zeros_like(rel)
    for i in range(rel.shape[0]):
        start = True
        for t in range(rel.shape[1]):
            expected[i, t] = 2.0 if start else 0.0
            start = bool(done[i, t])
    torch.testing.assert_close(rel, expected)


def test_fixed_reset_state_ids_start_every_step_from_the_same_states():
    _, _, a = _rollout(_worker(), 1, step_id=0)
    _, _, b = _rollout(_worker(), 1, step_id=3)
    assert not np.allclose(a, b)  # by default each training step draws new initial states
    _, _, c = _rollout(_worker(use_fixed_reset_state_ids=True), 1, step_id=0)
    _, _, d = _rollout(_worker(use_fixed_reset_state_ids=True), 1, step_id=3)
    np.testing.assert_allclose(c, d)
    np.testing.assert_allclose(a, c)
