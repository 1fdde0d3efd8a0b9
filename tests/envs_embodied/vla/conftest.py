"""Tiny VLA builders and observations from ``rlinf/InstructionTargets-v0`` for the VLA tests."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv  # noqa: E402

ENV_ID = "rlinf_envs_embodied.envs.instruction_targets:rlinf/InstructionTargets-v0"
#: model_type -> the tiny actor.model section the tests build it from
TINY = {
    "openvla": {"num_action_chunks": 1, "add_value_head": True, "num_action_bins": 16},
    "openvla_oft": {"num_action_chunks": 2, "add_value_head": True, "num_action_bins": 16,
                    "config": {"use_proprio": True}},
    "pi0": {"num_action_chunks": 2, "add_value_head": True, "config": {"num_steps": 3}},
}


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def env():
    env = GymnasiumEnv({"env_id": ENV_ID, "max_episode_steps": 12}, num_envs=4, seed=0)
    yield env
    env.close()


@pytest.fixture(scope="session")
def obs(env):
    return env.reset(seed=0)[0]


def policy_class(name: str):
    from rlinf_core.plugins import get_plugins

    return get_plugins().registries.load("model", name)


@pytest.fixture(scope="session")
def instruction_env_id() -> str:
    return ENV_ID


@pytest.fixture(scope="session")
def build_vla(env):
    """``build_vla(model_type, seed=0, env=None, **actor_model_overrides)`` -> a tiny VLA for the test env."""

    def build(name: str, seed: int = 0, env_=None, **overrides):
        space_env = env_ or env
        cfg = {**TINY[name], **overrides}
        torch.manual_seed(seed)
        return policy_class(name)(cfg, observation_space=space_env.observation_space, action_space=space_env.action_space)

    return build
