"""The ``mlp`` and ``cnn`` policies: conformance, on-policy log-probs, gradients, entropy, errors, learning."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from gymnasium import spaces
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import Policy, check_conformance
from rlinf_core.plugins import get_plugins
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv
from rlinf_envs_embodied.policies.cnn import CNNPolicy
from rlinf_envs_embodied.policies.mlp import MLPPolicy

STATE = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (5,), np.float32)})
IMAGES = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                      "images": spaces.Dict({"wrist": spaces.Box(0, 255, (12, 16, 3), np.uint8),
                                             "main": spaces.Box(0, 255, (20, 20, 3), np.uint8)})})
ACTION_SPACES = {
    "gaussian": (spaces.Box(-1, 1, (3,), np.float32), {}),
    "bins": (spaces.Box(np.array([-1, 0, -2], np.float32), np.array([1, 1, 2], np.float32)), {"num_action_bins": 5}),
    "discrete": (spaces.Discrete(4, start=1), {}),
    "multidiscrete": (spaces.MultiDiscrete([3, 5]), {}),
}


def observations(space: spaces.Dict, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    obs = {}
    if "state" in space.spaces:
        obs["state"] = rng.normal(size=(n, *space["state"].shape)).astype(np.float32)
    if "images" in space.spaces:
        obs["images"] = {cam: rng.integers(0, 256, size=(n, *s.shape), dtype=np.uint8)
                         for cam, s in space["images"].spaces.items()}
    return obs


def build(cls, obs_space, kind: str, chunks: int = 1, **cfg):
    act_space, extra = ACTION_SPACES[kind]
    torch.manual_seed(0)
    return cls({"hidden_dim": 32, "num_action_chunks": chunks, "add_value_head": True, **extra, **cfg},
               observation_space=obs_space, action_space=act_space)


def test_conform_and_are_registered():
    for name, cls in (("mlp", MLPPolicy), ("cnn_policy", CNNPolicy)):
        assert check_conformance("model", cls) == []
        assert get_plugins().registries.get_spec("model", name).load() is cls
    assert isinstance(build(MLPPolicy, STATE, "gaussian"), Policy)


# the action heads are shared: every kind with the MLP, two with the CNN (its encoder is what differs)
@pytest.mark.parametrize(("cls", "kind"), [(MLPPolicy, kind) for kind in ACTION_SPACES]
                         + [(CNNPolicy, "gaussian"), (CNNPolicy, "discrete")])
@pytest.mark.parametrize("chunks", [1, 3])
def test_sampled_log_probs_equal_evaluate(cls, chunks, kind):
    obs_space = STATE if cls is MLPPolicy else IMAGES
    policy = build(cls, obs_space, kind, chunks)
    obs = observations(obs_space, 6)
    sample = policy.sample(obs)
    act_space = ACTION_SPACES[kind][0]
    per_step = () if isinstance(act_space, spaces.Discrete) else act_space.shape
    assert tuple(sample.actions.shape) == ((6, *per_step) if chunks == 1 else (6, chunks, *per_step))
    assert tuple(sample.log_probs.shape) == ((6,) if chunks == 1 else (6, chunks))
    assert tuple(sample.values.shape) == (6,)
    assert all(act_space.contains(a) for a in sample.actions.reshape(-1, *per_step).numpy()) or kind == "gaussian"
    for extras in (sample.extras, None):  # binned actions are also recovered from their values alone
        out = policy.evaluate(obs, sample.actions, extras)
        torch.testing.assert_close(out["log_probs"], sample.log_probs, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["values"], sample.values, atol=1e-5, rtol=0)
        assert out["entropy"].shape == sample.log_probs.shape and out["log_probs"].requires_grad
    # numpy actions (as an env worker would pass them back) re-score the same
    torch.testing.assert_close(policy.evaluate(obs, sample.actions.numpy(), sample.extras)["log_probs"],
                               sample.log_probs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(ACTION_SPACES))
def test_deterministic_actions_are_the_mode(kind):
    policy = build(MLPPolicy, STATE, kind, chunks=2)
    obs = observations(STATE, 4)
    a, b = policy.sample(obs, deterministic=True), policy.sample(obs, deterministic=True)
    torch.testing.assert_close(a.actions, b.actions)
    torch.testing.assert_close(policy.evaluate(obs, a.actions, a.extras)["log_probs"], a.log_probs, atol=1e-5, rtol=0)
    if kind == "gaussian":  # the mean: the highest density, so the log-prob beats any sample's
        assert (a.log_probs >= policy.sample(obs).log_probs).all()


@pytest.mark.parametrize("cls", [MLPPolicy, CNNPolicy])
@pytest.mark.parametrize("kind", ["gaussian", "bins"])
def test_gradients_reach_every_parameter(cls, kind):
    obs_space = STATE if cls is MLPPolicy else IMAGES
    policy = build(cls, obs_space, kind, chunks=2)
    obs = observations(obs_space, 8)
    sample = policy.sample(obs)
    out = policy.evaluate(obs, sample.actions, sample.extras)
    loss = -(out["log_probs"].sum(-1) * torch.randn(8)).mean() - 0.01 * out["entropy"].mean() + out["values"].pow(2).mean()
    loss.backward()
    for name, param in policy.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gaussian_entropy_and_log_prob_match_the_closed_form():
    policy = build(MLPPolicy, STATE, "gaussian", chunks=2, log_std_init=-0.7)
    obs = observations(STATE, 5)
    sample = policy.sample(obs)
    out = policy.evaluate(obs, sample.actions)
    d = 3
    expected = d * (0.5 * math.log(2 * math.pi * math.e) - 0.7)  # sum over dims of 0.5 log(2 pi e sigma^2)
    torch.testing.assert_close(out["entropy"], torch.full((5, 2), expected), atol=1e-5, rtol=0)
    mean = policy.sample(obs, deterministic=True).actions
    z = (sample.actions - mean) / math.exp(-0.7)
    by_hand = (-0.5 * z**2 - (-0.7) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(out["log_probs"], by_hand, atol=1e-5, rtol=0)


def test_categorical_entropy_is_log_n_for_uniform_logits():
    policy = build(MLPPolicy, STATE, "multidiscrete")
    with torch.no_grad():
        policy.action_logits.weight.zero_()
        policy.action_logits.bias.zero_()
    out = policy.evaluate(observations(STATE, 2), np.array([[0, 4], [2, 1]]))
    torch.testing.assert_close(out["entropy"], torch.full((2,), math.log(3) + math.log(5)))
    torch.testing.assert_close(out["log_probs"], torch.full((2,), -math.log(15)))


def test_binned_actions_lie_on_the_grid():
    policy = build(MLPPolicy, STATE, "bins", chunks=4)
    acts = policy.sample(observations(STATE, 50)).actions.reshape(-1, 3).numpy()
    grid = [np.linspace(-1, 1, 5), np.linspace(0, 1, 5), np.linspace(-2, 2, 5)]
    for dim in range(3):
        assert np.isin(np.round(acts[:, dim], 5), np.round(grid[dim], 5)).all()


def test_state_dict_round_trip_gives_the_same_log_probs():
    a, b = build(MLPPolicy, STATE, "gaussian"), build(MLPPolicy, STATE, "gaussian")
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.5)
    obs = observations(STATE, 3)
    sample = a.sample(obs)
    assert not torch.allclose(b.evaluate(obs, sample.actions)["log_probs"], sample.log_probs)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.evaluate(obs, sample.actions)["log_probs"], sample.log_probs)


@pytest.mark.parametrize(("cls", "obs_space", "cfg", "act", "expected"), [
    (MLPPolicy, STATE, {"obs_dim": 7}, None, "actor.model.obs_dim: 7 does not match the env, which has a state of 5"),
    (MLPPolicy, STATE, {"action_dim": 2}, None, "actor.model.action_dim: 2 does not match the env's action space"),
    (MLPPolicy, spaces.Dict({"images": IMAGES["images"]}), {}, None, "mlp needs a 'state' observation"),
    (CNNPolicy, STATE, {}, None, "cnn needs camera images"),
    (MLPPolicy, STATE, {"num_action_bins": 4}, spaces.Box(-np.inf, np.inf, (2,)), "infinite bounds"),
    (MLPPolicy, STATE, {"num_action_chunks": 0}, None, "actor.model.num_action_chunks: must be >= 1"),
])
def test_bad_config_is_one_line(cls, obs_space, cfg, act, expected):
    with pytest.raises(ConfigError) as err:
        cls(cfg, observation_space=obs_space, action_space=act or spaces.Box(-1, 1, (3,)))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_wrong_chunk_length_is_reported():
    policy = build(MLPPolicy, STATE, "gaussian", chunks=3)
    with pytest.raises(ConfigError, match=r"actions of shape \(2, 2, 3\) do not match num_action_chunks=3"):
        policy.evaluate(observations(STATE, 2), np.zeros((2, 2, 3)))


def test_built_from_config_keys_without_spaces():
    policy = MLPPolicy({"obs_dim": 4, "action_dim": 2, "hidden_dim": 8}, observation_space=None, action_space=None)
    assert tuple(policy.sample({"state": np.zeros((3, 4))}).actions.shape) == (3, 2)


def test_cnn_policy_drives_an_image_env(counting_id):
    env = GymnasiumEnv({"env_id": counting_id, "init_params": {"images": True}}, num_envs=2, seed=0)
    policy = CNNPolicy({"hidden_dim": 16, "num_action_chunks": 4}, observation_space=env.observation_space,
                       action_space=env.action_space)
    obs, _ = env.reset()
    sample = policy.sample(obs)
    obs, rew, term, _, info = env.step(sample.actions)
    assert rew.shape == (2, 4) and term[:, 2].all() and info["_final_observation"].all()
    env.close()


def test_ppo_with_the_mlp_policy_raises_cartpole_return():
    """A bare PPO loop (GAE, clipped ratio, value loss): the mean episode return rises well above random."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n, steps, gamma, lam = 8, 64, 0.99, 0.95
    env = GymnasiumEnv({"env_id": "CartPole-v1"}, num_envs=n, seed=0)
    policy = MLPPolicy({"hidden_dim": 64, "add_value_head": True}, observation_space=env.observation_space,
                       action_space=env.action_space)
    optim = torch.optim.Adam(policy.parameters(), lr=2.5e-3)
    obs, _ = env.reset()
    ep_ret, finished = np.zeros(n), []
    first = None
    start = time.monotonic()
    for _update in range(40):
        batch = {k: [] for k in ("state", "act", "logp", "val", "rew", "term", "done", "next_val")}
        for _ in range(steps):
            sample = policy.sample(obs)
            next_obs, rew, term, trunc, info = env.step(sample.actions)
            boot = policy.values(next_obs).detach()
            if "final_observation" in info:  # bootstrap a truncation from the last observation of the old episode
                final = policy.values(info["final_observation"]).detach()
                boot = torch.where(torch.as_tensor(info["_final_observation"]), final, boot)
            for key, value in (("state", torch.as_tensor(obs["state"])), ("act", sample.actions),
                               ("logp", sample.log_probs), ("val", sample.values), ("rew", torch.as_tensor(rew)),
                               ("term", torch.as_tensor(term, dtype=torch.float32)), ("next_val", boot)):
                batch[key].append(value)
            ep_ret += rew
            for i in np.flatnonzero(term | trunc):
                finished.append(ep_ret[i])
                ep_ret[i] = 0
            batch["done"].append(torch.as_tensor(term | trunc, dtype=torch.float32))
            obs = next_obs
        b = {k: torch.stack(v) for k, v in batch.items()}
        adv, last = torch.zeros(steps, n), torch.zeros(n)
        for t in reversed(range(steps)):
            delta = b["rew"][t] + gamma * b["next_val"][t] * (1 - b["term"][t]) - b["val"][t]
            last = delta + gamma * lam * (1 - b["done"][t]) * last
            adv[t] = last
        ret = adv + b["val"]
        flat = {"state": b["state"].reshape(steps * n, -1), "act": b["act"].reshape(-1), "logp": b["logp"].reshape(-1),
                "adv": adv.reshape(-1), "ret": ret.reshape(-1)}
        for _ in range(4):
            for idx in torch.randperm(steps * n).split(128):
                out = policy.evaluate({"state": flat["state"][idx]}, flat["act"][idx])
                a = flat["adv"][idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                ratio = (out["log_probs"] - flat["logp"][idx]).exp()
                pg = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
                loss = pg + 0.5 * (out["values"] - flat["ret"][idx]).pow(2).mean() - 0.01 * out["entropy"].mean()
                optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
                optim.step()
        if first is None and len(finished) >= 20:
            first = float(np.mean(finished[:20]))
        if len(finished) >= 20 and np.mean(finished[-20:]) > 150:
            break
    env.close()
    late = float(np.mean(finished[-20:]))
    assert first is not None and first < 40, first  # a random CartPole policy lasts about 22 steps
    assert late > 3 * first and late > 100, (first, late, time.monotonic() - start)


def test_discrete_fast_path_matches_torch_categorical():
    """One categorical (Discrete): log-probs and entropy as torch.distributions computes them from the
    same logits, and sampling draws what Categorical draws from the same generator state."""
    policy = build(MLPPolicy, STATE, "discrete", chunks=2)
    obs = observations(STATE, 6, seed=3)
    with torch.no_grad():
        feats, _ = policy._features(obs, False)
        logits = policy.action_logits(feats).reshape(6, 2, 4)
    dist = torch.distributions.Categorical(logits=logits)
    torch.manual_seed(7)
    sample = policy.sample(obs)
    torch.manual_seed(7)
    expected = dist.sample()
    assert torch.equal(sample.actions - 1, expected)  # Discrete(4, start=1)
    out = policy.evaluate(obs, sample.actions)
    torch.testing.assert_close(out["log_probs"], dist.log_prob(expected), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["entropy"], dist.entropy(), atol=1e-6, rtol=0)
    torch.testing.assert_close(sample.log_probs, out["log_probs"], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("precision", "dtype"), [(None, torch.float32), ("fp32", torch.float32),
                                                  ("bf16", torch.bfloat16), ("fp16", torch.float16)])
@pytest.mark.parametrize(("cls", "obs_space", "kind"), [(MLPPolicy, STATE, "discrete"), (MLPPolicy, STATE, "gaussian"),
                                                        (CNNPolicy, IMAGES, "bins")])
def test_precision_casts_the_parameters_and_keeps_float32_outputs(cls, obs_space, kind, precision, dtype):
    policy = build(cls, obs_space, kind, **({} if precision is None else {"precision": precision}))
    assert {p.dtype for p in policy.parameters()} == {dtype}
    obs = observations(obs_space, 6, seed=1)
    sample = policy.sample(obs)
    out = policy.evaluate(obs, sample.actions, sample.extras)
    for x in (sample.log_probs, sample.values, policy.values(obs), out["log_probs"], out["entropy"], out["values"]):
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
    # the log-probs the policy sampled with are those it scores the actions with, at its own precision
    torch.testing.assert_close(out["log_probs"].detach(), sample.log_probs, atol=1e-5, rtol=0)
    (out["log_probs"].sum() + out["values"].sum()).backward()
    assert all(p.grad is not None and p.grad.dtype == dtype for p in policy.parameters() if p.requires_grad)


def test_a_bf16_copy_loads_the_weights_and_a_cast_policy_follows_its_parameters():
    """The rollout copy (same config) loads the actor's bf16 state dict as the flow's weight sync does; a
    policy cast after construction (``.to(dtype)``) takes its observations in the new dtype."""
    actor = build(MLPPolicy, STATE, "discrete", precision="bf16")
    torch.manual_seed(5)
    rollout = MLPPolicy({"hidden_dim": 32, "add_value_head": True, "precision": "bf16"}, observation_space=STATE,
                        action_space=ACTION_SPACES["discrete"][0])
    rollout.load_state_dict(actor.state_dict())
    obs = observations(STATE, 4)
    torch.testing.assert_close(rollout.values(obs), actor.values(obs).detach(), atol=0, rtol=0)
    cast = build(MLPPolicy, STATE, "discrete").to(torch.float16)
    assert cast.values(obs).dtype == torch.float32 and cast.sample(obs).log_probs.dtype == torch.float32


@pytest.mark.parametrize(("value", "hint"), [("bf61", "Did you mean 'bf16'?"), ("int8", "")])
def test_unknown_precision_is_a_one_line_config_error(value, hint):
    with pytest.raises(ConfigError) as err:
        build(MLPPolicy, STATE, "discrete", precision=value)
    message = str(err.value)
    assert message.startswith(f"actor.model.precision: unknown precision {value!r}.") and "\n" not in message
    assert message.endswith("Valid: fp32, bf16, fp16") and hint in message


@pytest.mark.parametrize(("cls", "obs_space"), [(MLPPolicy, STATE), (CNNPolicy, IMAGES)])
def test_values_run_the_critic_alone(cls, obs_space):
    """``values`` does not run the actor's layers (the bootstrap of a truncation asks only for V)."""
    policy = build(cls, obs_space, "discrete")
    calls = []
    policy.actor.register_forward_hook(lambda *_: calls.append(1))
    obs = observations(obs_space, 3)
    with torch.no_grad():
        v = policy.values(obs)
        torch.testing.assert_close(v, policy.sample(obs).values)
    assert len(calls) == 1  # the sample's, not the values'


def test_mlp_fast_path_equals_calling_each_layer():
    """The MLP runs its layers' weights directly; a hook on one layer makes it call the layers as usual."""
    policy = build(MLPPolicy, STATE, "gaussian")
    x = torch.randn(4, 5)
    by_layer = x
    for layer in policy.actor:
        by_layer = layer(by_layer)
    torch.testing.assert_close(policy.actor(x), by_layer, atol=0, rtol=0)
    seen = []
    policy.actor[0].register_forward_hook(lambda *_: seen.append(1))
    torch.testing.assert_close(policy.actor(x), by_layer, atol=0, rtol=0)
    assert seen == [1]
