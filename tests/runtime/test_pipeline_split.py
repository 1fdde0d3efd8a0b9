"""run_env_rollout_loop under the inline executor with env workers that start a step and collect it later
(``step_send`` / ``step_receive``): the calls interleave so that a micro-batch's env steps while the policy
runs on the next one, and the results equal those of plain ``step`` calls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rlinf_core import get_plugins
from rlinf_core.runtime import Runtime, Worker, WorkerError, WorkerSpec
from rlinf_core.runtime.pipeline import run_env_rollout_loop

LOG: list[tuple[str, int]] = []


class Env(Worker):
    """Micro-batch ``mb``'s observation is a number; a step adds the action to it."""

    def __init__(self, fail_at: int | None = None):
        self.obs: dict[int, int] = {}
        self.pending: dict[int, int] = {}
        self.fail_at, self.steps = fail_at, 0

    def reset(self, mb: int, num_micro_batches: int) -> tuple[int, int]:
        self.obs[mb] = 100 * mb
        return mb, self.obs[mb]

    def step(self, mb: int, action: int) -> tuple[int, int]:
        LOG.append(("step", mb))
        self.obs[mb] += action
        return mb, self.obs[mb]

    def finish(self, mb: int, action: int) -> tuple[int, int]:
        return mb, self.obs[mb] * 1000 + action


class SplitEnv(Env):
    def step_send(self, mb: int, action: int) -> None:
        LOG.append(("send", mb))
        self.steps += 1
        if self.steps == self.fail_at:
            raise ValueError("the simulator broke")
        self.pending[mb] = action

    def step_receive(self, mb: int) -> tuple[int, int]:
        LOG.append(("recv", mb))
        self.obs[mb] += self.pending.pop(mb)
        return mb, self.obs[mb]


class Rollout(Worker):
    def act(self, obs: tuple[int, int]) -> int:
        mb, value = obs
        LOG.append(("act", mb))
        return value % 7 + 1


def run(env_cls, stage_num: int, steps: int = 3, **env_kwargs):
    LOG.clear()
    cluster = SimpleNamespace(executor="inline", component_placement={}, placement=None, num_nodes=1,
                              num_devices_per_node=1, ray_address=None)
    workers = {"env": WorkerSpec(env_cls, (), env_kwargs), "rollout": WorkerSpec(Rollout)}
    with Runtime(cluster, get_plugins(), workers) as rt:
        return run_env_rollout_loop(rt["env"], rt["rollout"], steps=steps, stage_num=stage_num, finish="finish")


def test_split_steps_interleave_and_give_the_plain_results():
    plain = run(Env, stage_num=2)
    assert LOG == [("act", 0), ("step", 0), ("act", 1), ("step", 1)] * 3 + [("act", 0), ("act", 1)]  # + finish
    split = run(SplitEnv, stage_num=2)
    assert split == plain
    # micro-batch 0 is collected only after the policy ran on micro-batch 1: its env stepped meanwhile
    assert LOG == ([("act", 0), ("send", 0), ("act", 1), ("send", 1)]
                   + [("recv", 0), ("act", 0), ("send", 0), ("recv", 1), ("act", 1), ("send", 1)] * 2
                   + [("recv", 0), ("recv", 1), ("act", 0), ("act", 1)])


def test_one_micro_batch_steps_plainly():
    assert run(SplitEnv, stage_num=1) == run(Env, stage_num=1)
    assert ("send", 0) not in LOG


def test_a_failed_step_start_is_reported_as_itself():
    with pytest.raises(WorkerError, match=r"group 'env' rank 0 .*step_send[\s\S]*the simulator broke"):
        run(SplitEnv, stage_num=2, fail_at=3)
