"""The tiny ``openvla``, ``openvla_oft`` and ``pi0`` policies: conformance, on-policy log-probs, gradients,
a training step, action bins and normalisation, OFT's attention, pi0's noise schedule, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import ActionSample, Policy, check_conformance
from rlinf_envs_embodied.vla.common import ActionBins, Normalizer

NAMES = ("openvla", "openvla_oft", "pi0")


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_conform(name, build_vla):
    from rlinf_core.plugins import get_plugins

    cls = get_plugins().registries.load("model", name)
    assert check_conformance("model", cls) == []
    assert isinstance(build_vla(name), Policy)


@pytest.mark.parametrize("name", NAMES)
def test_sampled_log_probs_equal_evaluated_ones(name, build_vla, obs):
    policy = build_vla(name)
    k = policy.num_chunks
    sample = policy.sample(obs)
    assert isinstance(sample, ActionSample)
    assert tuple(sample.actions.shape) == (4, k, 2) and sample.actions.dtype == torch.float32
    assert tuple(sample.log_probs.shape) == (4, k) and tuple(sample.values.shape) == (4,)
    assert torch.isfinite(sample.log_probs).all()
    out = policy.evaluate(obs, sample.actions, sample.extras)
    torch.testing.assert_close(out["log_probs"], sample.log_probs, atol=1e-4, rtol=0)
    torch.testing.assert_close(out["values"], sample.values, atol=1e-5, rtol=0)
    assert out["entropy"].shape == (4, k) and out["log_probs"].requires_grad
    if name != "pi0":  # token policies re-score from the actions alone too
        torch.testing.assert_close(policy.evaluate(obs, sample.actions.numpy())["log_probs"], sample.log_probs,
                                   atol=1e-4, rtol=0)
        assert (sample.actions.abs() <= 1).all()
        assert (sample.log_probs <= 0).all()  # categoricals


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_sampling_repeats_and_random_sampling_varies(name, build_vla, obs):
    policy = build_vla(name)
    a = policy.sample(obs, deterministic=True).actions
    torch.manual_seed(1)
    b = policy.sample(obs, deterministic=True).actions
    torch.testing.assert_close(a, b)
    c, d = policy.sample(obs).actions, policy.sample(obs).actions
    assert not torch.equal(c, d)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_trainable_parameter(name, build_vla, obs):
    policy = build_vla(name)
    sample = policy.sample(obs)
    out = policy.evaluate(obs, sample.actions, sample.extras)
    (out["log_probs"].sum() + out["entropy"].sum() + out["values"].sum()).backward()
    trainable = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert missing == []
    assert sum(float(p.grad.abs().sum()) > 0 for _, p in trainable) > 0.9 * len(trainable)


@pytest.mark.parametrize("name", NAMES)
def test_a_training_step_raises_the_log_prob_of_an_advantaged_action(name, build_vla, obs):
    policy = build_vla(name)
    sample = policy.sample(obs)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    before = float((sample.log_probs.sum(-1) * adv).sum())
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        out = policy.evaluate(obs, sample.actions, sample.extras)
        loss = -(out["log_probs"].sum(-1) * adv).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = policy.evaluate(obs, sample.actions, sample.extras)["log_probs"].sum(-1).detach()
    assert float((after * adv).sum()) > before + 0.01


def test_action_bins_follow_openvla_tokenisation():
    bins = ActionBins(256, vocab_end=32000)
    assert (bins.first, bins.count) == (31745, 255)
    # OpenVLA: token = vocab - digitize(a, linspace(-1, 1, 256)); -1 -> digitize 1 -> token 31999; 0 -> 128;
    # 1.0 -> digitize 256, which OpenVLA decodes like 255: token 31745
    idx = bins.action_to_index(torch.tensor([-1.0, 0.0, 1.0, 0.999]))
    assert (bins.first + idx).tolist() == [31999, 32000 - 128, 31745, 31745]
    # decoding a token gives its bin centre, and encoding a centre gives the token back
    idx = torch.arange(255)
    torch.testing.assert_close(bins.action_to_index(bins.index_to_action(idx)), idx)
    assert bins.index_to_action(torch.tensor([254])).item() == pytest.approx(float(bins.centers[0]))  # token 31999
    assert bins.index_to_action(torch.tensor([0])).item() == pytest.approx(float(bins.centers[-1]))


def test_unnormalisation_is_the_inverse_of_normalisation():
    stats = {"q01": [-2.0, 0.0, 0.0], "q99": [2.0, 1.0, 10.0], "mask": [True, True, False]}
    norm = Normalizer("bounds_q99", stats, 3)
    x = torch.tensor([[0.5, -1.0, 0.3]])
    # hand-computed: (0.5 + 1) / 2 * 4 - 2 = 1; (-1 + 1) / 2 * 1 + 0 = 0; masked dim kept
    torch.testing.assert_close(norm.unnormalize(x), torch.tensor([[1.0, 0.0, 0.3]]))
    y = torch.tensor([[1.5, 0.25, 7.0], [-2.0, 1.0, -3.0]])
    torch.testing.assert_close(norm.unnormalize(norm.normalize(y)), y)
    assert norm.normalize(torch.tensor([[9.0, 2.0, 0.0]])).tolist() == [[1.0, 1.0, 0.0]]  # clipped, as the data was
    ms = Normalizer("mean_std", {"mean": [1.0, -1.0], "std": [2.0, 0.5]}, 2)
    torch.testing.assert_close(ms.unnormalize(torch.tensor([[1.0, 2.0]])), torch.tensor([[3.0, 0.0]]))
    torch.testing.assert_close(ms.normalize(ms.unnormalize(y[:, :2])), y[:, :2], atol=1e-6, rtol=0)


def test_policies_unnormalise_with_the_statistics(build_vla, obs):
    policy = build_vla("openvla")
    policy.action_norm = Normalizer("bounds_q99", {"q01": [0.0, 10.0], "q99": [2.0, 20.0]}, 2)
    sample = policy.sample(obs)
    expected = policy.bins.index_to_action(sample.extras["action_tokens"])
    torch.testing.assert_close(sample.actions, (expected + 1) / 2 * torch.tensor([2.0, 10.0]) + torch.tensor([0.0, 10.0]))
    torch.testing.assert_close(policy.evaluate(obs, sample.actions)["log_probs"], sample.log_probs, atol=1e-4, rtol=0)


def test_openvla_prompt_is_the_trained_one(build_vla):
    policy = build_vla("openvla")
    ids = policy.prompt_ids("Move to the RED target")
    assert ids[0] == policy.tokenizer.bos_token_id
    assert policy.tokenizer.decode(ids[1:]) == "In: What action should the robot take to move to the red target?\nOut:"


def test_oft_placeholders_attend_to_each_other_but_the_prompt_does_not_see_them(build_vla, obs):
    one = build_vla("openvla_oft", num_action_chunks=1)
    two = build_vla("openvla_oft", num_action_chunks=2)
    two.load_state_dict(one.state_dict())
    d1, v1 = one._forward(obs)
    d2, v2 = two._forward(obs)
    torch.testing.assert_close(v1, v2, atol=1e-5, rtol=0)  # the last prompt position: same either way
    # under causal attention the first placeholder could not see the ones after it
    assert not torch.allclose(d1.logits[:, 0], d2.logits[:, 0], atol=1e-4)


def test_pi0_deterministic_chain_log_prob_is_the_schedule(build_vla, obs):
    policy = build_vla("pi0")
    sample = policy.sample(obs, deterministic=True)
    s, k, d = policy.num_steps, policy.num_chunks, policy.action_dim
    expected = 0.0
    for i in range(s):
        t, dt = 1.0 - i / s, -1.0 / s
        one_minus = 1.0 - (t if t < 1 else t + dt)
        std = 0.5 * math.sqrt(t / one_minus) * math.sqrt(-dt)
        expected += -math.log(std) - 0.5 * math.log(2 * math.pi)  # at the mean
    torch.testing.assert_close(sample.log_probs, torch.full((4, k), expected * d), atol=1e-4, rtol=0)
    chain = sample.extras["chain"]
    assert tuple(chain.shape) == (4, s + 1, policy.model.config.chunk_size, policy.model.config.max_action_dim)
    torch.testing.assert_close(sample.actions, chain[:, -1, :k, :d])  # identity statistics here


def test_pi0_step_distributions_match_hand_computed_values(build_vla):
    policy = build_vla("pi0")
    x, v = torch.tensor([1.0]), torch.tensor([0.5])
    # flow-SDE, noise_level a = 0.5: s_t = a sqrt(t / (1 - t)); mean = x + dt (v + s_t^2 / (2t) (x + (1 - t) v))
    mean, std = policy._step(x, v, 0.5, -0.25)  # s = 0.5: 1 - 0.25 (0.5 + 0.25 (1 + 0.25)) = 0.796875
    assert (float(mean), float(std)) == pytest.approx((0.796875, 0.25))
    mean, std = policy._step(x, v, 1.0, -0.25)  # t = 1 uses the next t in 1 - t: s = 0.5 sqrt(1 / 0.25) = 1
    assert (float(mean), float(std)) == pytest.approx((0.75, 0.5))
    policy.noise_method = "flow_noise"
    mean, std = policy._step(x, v, 0.5, -0.25)  # Euler mean, fixed std
    assert (float(mean), float(std)) == pytest.approx((0.875, 0.5))


def test_pi0_flow_noise_injects_the_fixed_noise_level(build_vla, obs):
    policy = build_vla("pi0", config={"num_steps": 2, "noise_method": "flow_noise", "noise_level": 0.2})
    sample = policy.sample(obs)
    chain = sample.extras["chain"]
    # padding dims and unused chunk steps follow the mean: same as a noiseless re-run from the chain
    x = policy.inputs(obs)
    cache, _ = policy._prefix(x)
    with torch.no_grad():
        v = policy._velocity(x, cache, chain[:, 0], 1.0)
    mean = chain[:, 0] + (-0.5) * v
    d = policy.action_dim
    torch.testing.assert_close(chain[:, 1, :, d:], mean[:, :, d:], atol=1e-5, rtol=0)
    z = (chain[:, 1, :, :d] - mean[:, :, :d]) / 0.2
    assert 0.3 < float(z.std()) < 2.0


def test_pi0_evaluate_needs_the_chain(build_vla, obs):
    policy = build_vla("pi0")
    with pytest.raises(ValueError, match="chain"):
        policy.evaluate(obs, policy.sample(obs).actions)


@pytest.mark.parametrize(("name", "override", "match"), [
    ("pi0", {"config": {"noise_method": "flow_sdee"}}, "noise_method.*Did you mean 'flow_sde'"),
    ("pi0", {"config": {"num_steps": 0}}, "actor.model.config.num_steps: must be >= 1"),
    ("pi0", {"config": {"noise_level": 0}}, "actor.model.config.noise_level: must be > 0"),
    ("openvla", {"config": {"hidden_sise": 8}}, "actor.model.config.hidden_sise.*hidden_size"),
    ("openvla", {"config": {"cameras": ["wrist"]}}, "actor.model.cameras.*'wrist'.*\\['image'\\]"),
    ("openvla_oft", {"action_dim": 7}, "actor.model.action_dim: 7 does not match"),
    ("openvla", {"precision": "fp8"}, "actor.model.precision"),
    ("openvla", {"is_lora": True, "lora_rank": 0}, "actor.model.lora_rank"),
])
def test_bad_config_is_one_clear_error(name, override, match, build_vla):
    with pytest.raises(ConfigError, match=match):
        build_vla(name, **override)


def test_observations_without_instruction_are_refused(build_vla, obs):
    policy = build_vla("openvla_oft")
    with pytest.raises(ConfigError, match="actor.model.config.instruction"):
        policy.sample({k: v for k, v in obs.items() if k != "instruction"})


def test_a_configured_instruction_stands_in_for_envs_without_one(build_vla, obs):
    text = "move to the green target"
    policy = build_vla("pi0", config={"num_steps": 3, "instruction": text})
    bare = {k: v for k, v in obs.items() if k != "instruction"}
    torch.testing.assert_close(policy.sample(bare, deterministic=True).actions,
                               policy.sample(dict(obs, instruction=[text] * 4), deterministic=True).actions)


@pytest.mark.parametrize("name", ["openvla", "pi0"])
def test_lora_trains_adapters_only(name, build_vla, obs):
    pytest.importorskip("peft")
    policy = build_vla(name, is_lora=True, lora_rank=4)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)
    sample = policy.sample(obs)
    out = policy.evaluate(obs, sample.actions, sample.extras)
    torch.testing.assert_close(out["log_probs"], sample.log_probs, atol=1e-4, rtol=0)
    (out["log_probs"].sum() + out["values"].sum()).backward()
    assert all(p.grad is not None for p in policy.parameters() if p.requires_grad)


def test_batched_sampling_matches_one_by_one(build_vla, obs):
    policy = build_vla("openvla_oft")
    batch = policy.sample(obs, deterministic=True)
    for i in range(2):
        row = {"images": {"image": obs["images"]["image"][i:i + 1]}, "state": obs["state"][i:i + 1],
               "instruction": obs["instruction"][i:i + 1]}
        single = policy.sample(row, deterministic=True)
        torch.testing.assert_close(single.actions[0], batch.actions[i])
        torch.testing.assert_close(single.log_probs[0], batch.log_probs[i], atol=1e-4, rtol=0)


def test_left_padding_does_not_change_openvla_log_probs(build_vla, obs):
    policy = build_vla("openvla")
    short = dict(obs, instruction=["move to the red target"] * 4)
    mixed = dict(obs, instruction=["move to the red target", "x" * 40, "move to the red target", "y"])
    s = policy.sample(short, deterministic=True)
    m = policy.evaluate(mixed, s.actions, s.extras)["log_probs"]
    ref = policy.evaluate(short, s.actions, s.extras)["log_probs"]
    torch.testing.assert_close(m[[0, 2]], ref[[0, 2]], atol=1e-4, rtol=0)
    assert np.isfinite(m.detach().numpy()).all()
