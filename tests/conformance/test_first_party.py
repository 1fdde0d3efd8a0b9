"""The first-party plugins pass the conformance kit that third-party authors use (``rlinf_core.testing``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
gymnasium = pytest.importorskip("gymnasium")

import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402
from rlinf_core.components import is_installed  # noqa: E402
from rlinf_core.testing import (  # noqa: E402
    AlgorithmPluginTests,
    EnvPluginTests,
    PlacementPluginTests,
    PolicyPluginTests,
    RewardPluginTests,
    RolloutEnginePluginTests,
    TrainingBackendPluginTests,
)

# ----------------------------------------------------------------------------- envs


class TestGymnasiumCartPole(EnvPluginTests):
    component = "gymnasium"
    config = {"env_id": "CartPole-v1"}


class TestGymnasiumPendulumChunks(EnvPluginTests):
    component = "embodied:gym"  # qualified alias
    config = {"env_id": "Pendulum-v1"}
    num_envs = 3
    chunk_size = 4


@pytest.mark.skipif(not is_installed("metaworld"), reason="metaworld is not installed (pip install 'rlinf-envs-embodied[metaworld]')")
class TestMetaWorldReach(EnvPluginTests):
    component = "metaworld"
    config = {"env_id": "reach-v3"}
    num_steps = 4
    chunk_size = 2
    # MT1(task, seed) draws the goal set from the seed, so sub-env 1 of seed s (goal set of s) cannot start
    # like sub-env 0 of seed s + 1 (goal set of s + 1): the kit found this deviation from the VectorEnv contract.
    sub_env_seed_is_seed_plus_i = False


# ----------------------------------------------------------------------------- policies

STATE4 = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (4,), np.float32)})


class TestMLPDiscrete(PolicyPluginTests):
    component = "mlp"
    config = {"hidden_dim": 16, "num_layers": 2, "add_value_head": True}
    observation_space = STATE4
    action_space = spaces.Discrete(2)


class TestMLPGaussianChunks(PolicyPluginTests):
    component = "mlp"
    config = {"hidden_dim": 16, "num_layers": 1, "add_value_head": True, "num_action_chunks": 3}
    observation_space = STATE4
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)


class TestMLPBinned(PolicyPluginTests):
    component = "mlp_policy"
    config = {"hidden_dim": 16, "num_layers": 1, "num_action_bins": 5}
    observation_space = STATE4
    action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)


class TestCNN(PolicyPluginTests):
    component = "cnn"
    config = {"hidden_dim": 16, "num_layers": 1, "add_value_head": True}
    observation_space = spaces.Dict({
        "state": spaces.Box(-1.0, 1.0, (3,), np.float32),
        "images": spaces.Dict({"front": spaces.Box(0, 255, (16, 16, 3), np.uint8)}),
    })
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)


def _registered(kind: str, name: str) -> bool:
    from rlinf_core.plugins import discover

    return name in discover().registries[kind]


# Tiny VLAs (configs of examples/embodied/*_instruction_cpu.yaml): about 15 s together on a loaded machine
VLA_OBS = spaces.Dict({"state": spaces.Box(-1.0, 1.0, (4,), np.float32),
                       "images": spaces.Dict({"main": spaces.Box(0, 255, (32, 32, 3), np.uint8)})})
VLA_BASE = {"hidden_size": 64, "num_layers": 2, "intermediate_size": 128, "vision_hidden": 32, "vision_layers": 2,
            "image_size": 32, "patch_size": 8, "value_hidden": 64}
_VLAS = {
    "openvla": {"num_action_bins": 16, "config": {**VLA_BASE, "num_heads": 4}},
    "openvla_oft": {"num_action_chunks": 2, "num_action_bins": 16, "config": {**VLA_BASE, "num_heads": 4, "use_proprio": True}},
    "pi0": {"num_action_chunks": 2, "config": {**VLA_BASE, "num_heads": 2, "head_dim": 32, "expert_hidden_size": 32,
                                               "num_steps": 3, "noise_method": "flow_sde", "noise_level": 0.4}},
}
for _name, _cfg in _VLAS.items():
    globals()[f"TestVLA_{_name}"] = pytest.mark.slow(pytest.mark.skipif(
        not _registered("model", _name), reason=f"model {_name!r} is not registered")(type(
            f"TestVLA_{_name}", (PolicyPluginTests,),
            {"component": _name, "config": {**_cfg, "add_value_head": True}, "observation_space": VLA_OBS,
             "action_space": spaces.Box(-1.0, 1.0, (3,), np.float32), "instructions": ["reach the red target", "push left"]})))


# ----------------------------------------------------------------------------- rollout engine and training backend

VOCAB = "0123456789+= "


def _tiny(workdir: Path) -> str:
    from rlinf_backends_fsdp.tiny import save_tiny_model

    path = workdir / "tiny"
    if not path.exists():
        save_tiny_model(path, vocab=VOCAB, hidden_size=32, num_heads=1, num_kv_heads=1, num_layers=1, seed=3)
    return str(path)


_needs_hf = pytest.mark.skipif(not is_installed("transformers"), reason="transformers is not installed")


@_needs_hf
class TestHFEngine(RolloutEnginePluginTests):
    component = "hf"
    prompts = [[4, 5, 13, 6, 14], [7, 14], [8, 9, 10, 13, 4, 14]]

    def make_config(self, workdir):
        return {"actor": {"model": {"model_path": _tiny(workdir)}}}

    def new_weights(self, engine):
        return [(name, p.detach() * 0.5) for name, p in engine.model.named_parameters()]


@_needs_hf
class TestFSDPBackend(TrainingBackendPluginTests):
    component = "fsdp"
    vocab_size = len(VOCAB) + 3

    def make_config(self, workdir):
        return {"actor": {"model": {"model_path": _tiny(workdir)}, "micro_batch_size": 2, "global_batch_size": 4,
                          "optim": {"lr": 1e-2, "clip_grad": 0.0}}}


# ----------------------------------------------------------------------------- rlinf-algos

_GROUP = {"group_size": 2}


def _algo(kind: str, name: str, **attrs) -> type:
    return type(f"Test_{kind}_{name}", (AlgorithmPluginTests,), {"kind": kind, "component": name, **attrs})


TestGAE = _algo("advantage", "gae", kwargs={"gamma": 0.9, "gae_lambda": 0.8})
TestGRPO = _algo("advantage", "grpo", kwargs=_GROUP)
TestGRPOScores = _algo("advantage", "grpo", kwargs=_GROUP, reward_layout="sequence")
TestDrGRPO = _algo("advantage", "dr_grpo", kwargs=_GROUP)
TestRLOO = _algo("advantage", "rloo", kwargs=_GROUP)
TestReinforcePP = _algo("advantage", "reinforce_plus_plus", kwargs={"gamma": 0.95})
TestReinforcePPBaseline = _algo("advantage", "reinforce_plus_plus_baseline", kwargs=_GROUP)
TestOPO = _algo("advantage", "opo", kwargs=_GROUP)
TestGPG = _algo("advantage", "gpg", kwargs=_GROUP)
TestReMax = _algo("advantage", "remax")
for _loss in ("ppo", "gspo", "clip_cov", "kl_cov", "gmpo", "cispo", "sapo", "dppo_tv", "dppo_kl", "gpg"):
    globals()[f"TestLoss_{_loss}"] = _algo("policy_loss", _loss)
TestLoss_dro = _algo("policy_loss", "dro", kwargs={"dro_beta": 0.1})
for _kl in ("k1", "k2", "k3", "abs", "k1+", "k3+", "abs+"):
    globals()[f"TestKL_{_kl.replace('+', '_plus')}"] = _algo("kl", _kl)
for _agg in ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean"):
    globals()[f"TestAgg_{_agg.replace('-', '_')}"] = _algo("loss_agg", _agg)
# Dr. GRPO's aggregation divides by the padded length on purpose
TestAgg_seq_mean_token_sum_norm = _algo("loss_agg", "seq-mean-token-sum-norm", padding_invariant=False)


# ----------------------------------------------------------------------------- placements and rewards
# (`auto` is registered as a placement too, but the Runtime resolves it from a stage profile and calling it
# raises by design, so it is no strategy the kit can place with.)


class TestCollocated(PlacementPluginTests):
    component = "collocated"
    accepted = (({"actor,rollout,env": "all"}, 2), ({"actor,rollout": "0-3"}, 4))
    rejected = (({"actor": "0", "rollout": "1"}, 2),)


class TestDisaggregated(PlacementPluginTests):
    component = "disaggregated"
    accepted = (({"actor": "0", "rollout": "1", "env": "2-3"}, 4),)
    rejected = (({"actor": "0-1", "rollout": "1"}, 2),)


class TestHybrid(PlacementPluginTests):
    component = "hybrid"
    accepted = (({"actor,rollout": "0-1", "env": "2"}, 3), ({"actor": "0", "rollout": "0-1"}, 2))


class TestExactMatch(RewardPluginTests):
    component = "exact_match"
    cases = (("42", "42", 1.0), (" 42\n", "42", 1.0), ("41", "42", 0.0))
