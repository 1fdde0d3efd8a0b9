"""Every registered rlinf-algos function against veRL 0.9.1's ``core_algos``, float32 and float64, at 1e-5.

Run with ``.venv-nox/bin/nox -s parity`` (installs verl==0.9.1 --no-deps beside its light
dependencies); skipped where veRL is not installed. Inputs are random, with the awkward cases:
fully masked rows, shuffled uneven groups with singletons, near-tied rewards, multi-turn masks with
gaps, extreme log-ratios. Where we differ from veRL on purpose (rlinf-algos/README.md), the test
asserts the documented relation instead of equality, so a difference cannot grow unnoticed.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

core = pytest.importorskip("verl.trainer.ppo.core_algos", reason="veRL not installed: run `nox -s parity`")
verl_F = pytest.importorskip("verl.utils.torch_functional")
import rlinf_algos as ra  # noqa: E402
from rlinf_algos import aggregation, kl, kl_control, losses  # noqa: E402
from rlinf_core import get_plugins  # noqa: E402
from verl.workers.config import ActorConfig, PolicyLossConfig  # noqa: E402

DTYPES = [torch.float32, torch.float64]
TOL = 1e-5
B, T = 24, 16
MASK_CASES = ["random", "fully_masked", "multiturn"]
AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


def close(ours, theirs, tol=TOL):
    ours, theirs = torch.as_tensor(ours), torch.as_tensor(theirs)
    torch.testing.assert_close(ours.to(torch.float64), theirs.to(torch.float64), atol=tol, rtol=tol)


# --- inputs


def make_mask(case: str, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    if case == "fully_masked":
        mask[[1, 5, 6, 17]] = False
    elif case == "multiturn":  # observation tokens (tool output) inside the response
        gaps = torch.rand(B, T, generator=gen) < 0.3
        mask = mask & ~gaps
        mask[:, 0] = True
    return mask


def group_index(case: str, gen: torch.Generator) -> tuple[list[str], np.ndarray]:
    """Per-row labels: contiguous groups of 4, or shuffled groups of sizes 1..7 (singletons included)."""
    if case in ("contiguous", "near_tied"):
        ids = [f"p{i // 4}" for i in range(B)]
    else:
        sizes, total = [1, 7, 3, 1, 5, 2, 5], 0
        ids = []
        for g, n in enumerate(sizes):
            ids += [f"uid-{g}"] * n
            total += n
        assert total == B
        perm = torch.randperm(B, generator=gen).tolist()
        ids = [ids[p] for p in perm]
    return ids, np.array(ids, dtype=object)


def outcome_rewards(mask: torch.Tensor, case: str, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Token rewards with each row's score on its last valid token (0 elsewhere, as veRL lays them out)."""
    if case == "near_tied":
        scores = 1.0 + (torch.rand(B, generator=gen, dtype=torch.float64) < 0.5) * 1e-4 + torch.randn(B, generator=gen,
                                                                                                      dtype=torch.float64) * 1e-6
    else:
        scores = torch.randint(0, 3, (B,), generator=gen).double() + torch.rand(B, generator=gen, dtype=torch.float64) * 0.5
    scores = scores.to(dtype)
    token = torch.zeros(B, T, dtype=dtype)
    last = torch.where(mask, torch.arange(T), -1).max(1).values
    rows = (last >= 0).nonzero().flatten()
    token[rows, last[rows]] = scores[rows]
    return token


def policy_batch(case: str, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mask = make_mask("fully_masked" if case == "fully_masked" else "multiturn" if case == "multiturn" else "random", gen)
    old = torch.log(torch.rand(B, T, generator=gen, dtype=torch.float64) * 0.98 + 0.01)
    logp = (old + torch.randn(B, T, generator=gen, dtype=torch.float64) * 0.3).clamp(max=-1e-3)
    adv = torch.randn(B, T, generator=gen, dtype=torch.float64)
    if case == "extreme":
        logp[0, :4], old[0, :4] = -30.0, -1e-3  # log-ratio -30
        logp[2, :3], old[2, :3] = -1e-3, -30.0  # log-ratio +30
        adv[2] = -abs(adv[2])
    return logp.to(dtype), old.to(dtype), adv.to(dtype), mask


def actor_config(**kw) -> ActorConfig:
    policy_loss = PolicyLossConfig(**{k: kw.pop(k) for k in list(kw) if k in PolicyLossConfig.__dataclass_fields__})
    return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, policy_loss=policy_loss, **kw)


def with_grad(fn, logp):
    """(loss, metrics, d loss / d log_probs) of ``fn(leaf)``."""
    leaf = logp.clone().requires_grad_()
    loss, metrics = fn(leaf)
    (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True)
    return loss.detach(), metrics, torch.zeros_like(logp) if grad is None else grad


def compare_loss(ours_fn, verl_fn, logp, mask, metric_map, *, scale=1.0):
    loss_o, m_o, g_o = with_grad(ours_fn, logp)
    loss_v, m_v, g_v = with_grad(verl_fn, logp)
    close(loss_o, loss_v * scale)
    close(g_o * mask, g_v * mask * scale)
    for ours_name, verl_name in metric_map.items():
        close(m_o[ours_name], m_v[verl_name])


# --- advantages


def _adv_inputs(case, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = make_mask("fully_masked" if case == "fully_masked" else "random", gen)
    labels, np_index = group_index(case, gen)
    return mask, outcome_rewards(mask, case, dtype, gen), labels, np_index


GROUP_CASES = ["contiguous", "shuffled_uneven", "near_tied", "fully_masked"]


def check_gae(dtype):
    for case in MASK_CASES:
        gen = torch.Generator().manual_seed(1)
        mask = make_mask(case, gen)
        rewards = torch.randn(B, T, generator=gen, dtype=dtype) * mask
        values = torch.randn(B, T, generator=gen, dtype=dtype)
        adv, ret = ra.gae(rewards=rewards, values=values, mask=mask, gamma=0.95, gae_lambda=0.9)
        v_adv, v_ret = core.compute_gae_advantage_return(rewards, values, mask.to(dtype), 0.95, 0.9)
        # veRL whitens inside GAE; we return raw advantages and the flows whiten them
        close(ra.normalize_advantages(adv, mask), v_adv * mask)
        close(ret, v_ret * mask)


def check_grpo(dtype, norm_by_std=True):
    for case in GROUP_CASES:
        mask, rewards, labels, np_index = _adv_inputs(case, dtype)
        ints = {label: 7 * i + 3 for i, label in enumerate(sorted(set(labels)))}
        for index in (labels, torch.tensor([ints[x] for x in labels])):
            adv, _ = ra.grpo(rewards=rewards, mask=mask, index=index, norm_by_std=norm_by_std)
            v_adv, _ = core.compute_grpo_outcome_advantage(rewards.clone(), mask.to(dtype), np_index,
                                                           norm_adv_by_std_in_grpo=norm_by_std)
            close(adv, v_adv)
        if case == "contiguous":
            close(ra.grpo(rewards=rewards, mask=mask, group_size=4, norm_by_std=norm_by_std)[0], v_adv)


def check_dr_grpo(dtype):
    for case in GROUP_CASES:
        mask, rewards, labels, np_index = _adv_inputs(case, dtype)
        v_adv, _ = core.compute_grpo_outcome_advantage(rewards.clone(), mask.to(dtype), np_index, norm_adv_by_std_in_grpo=False)
        close(ra.dr_grpo(rewards=rewards, mask=mask, index=labels)[0], v_adv)


def _simple_group(ours, verl_fn):
    def check(dtype):
        for case in GROUP_CASES:
            mask, rewards, labels, np_index = _adv_inputs(case, dtype)
            v_adv, _ = verl_fn(rewards.clone(), mask.to(dtype), np_index, config=None)
            close(ours(rewards=rewards, mask=mask, index=labels)[0], v_adv)
    return check


def check_gpg(dtype):
    for case in GROUP_CASES:
        mask, rewards, labels, np_index = _adv_inputs(case, dtype)
        v_adv, _ = core.compute_gpg_outcome_advantage(rewards.clone(), mask.to(dtype), np_index, f_norm=2.0)
        scores = rewards.sum(-1)
        verl_alpha = B / max(int(torch.count_nonzero(scores)), 1)
        # same formula with veRL's alpha (B / rows with a non-zero reward) ...
        close(ra.gpg(rewards=rewards, mask=mask, index=labels, f_norm=2.0, alpha=verl_alpha)[0], v_adv)
        # ... and the paper's alpha (B / rows with a non-zero advantage) by default: a deliberate difference
        members = {label: [i for i in range(B) if labels[i] == label] for label in labels}
        centred = [float(scores[i]) - (sum(float(scores[j]) for j in members[labels[i]]) / len(members[labels[i]])
                                       if len(members[labels[i]]) > 1 else 0.0) for i in range(B)]
        paper_alpha = B / max(sum(c != 0.0 for c in centred), 1)
        close(ra.gpg(rewards=rewards, mask=mask, index=labels, f_norm=2.0)[0], v_adv * paper_alpha / verl_alpha)


def check_reinforce_plus_plus(dtype):
    for case in MASK_CASES:
        gen = torch.Generator().manual_seed(2)
        mask = make_mask(case, gen)
        rewards = torch.randn(B, T, generator=gen, dtype=dtype) * mask
        adv, ret = ra.reinforce_plus_plus(rewards=rewards, mask=mask, gamma=0.9)
        v_adv, v_ret = core.compute_reinforce_plus_plus_outcome_advantage(rewards, mask.to(dtype),
                                                                          config=types.SimpleNamespace(gamma=0.9))
        close(adv, v_adv)
        close(ret, v_ret)


def check_remax(dtype):
    for case in MASK_CASES:
        gen = torch.Generator().manual_seed(3)
        mask = make_mask(case, gen)
        rewards = torch.randn(B, T, generator=gen, dtype=dtype) * mask
        baselines = torch.randn(B, generator=gen, dtype=dtype)
        adv, ret = ra.remax(rewards=rewards, mask=mask, reward_baselines=baselines)
        v_adv, v_ret = core.compute_remax_outcome_advantage(rewards, baselines, mask.to(dtype))
        close(adv, v_adv * mask)  # veRL leaves reward-to-go at masked gap positions; ours are 0 there
        close(ret, v_ret * mask)


# --- policy losses


def ours_loss(fn, **kw):
    return lambda lp: fn(log_probs=lp, **kw)


def verl_loss(fn, old, adv, mask, mode, cfg):
    return lambda lp: fn(old, lp, adv, mask.to(lp.dtype), mode, cfg)


def seeded(fn, seed=7):
    """``fn`` run right after seeding torch's global generator (Clip-Cov draws tokens at random)."""
    def run(lp):
        torch.manual_seed(seed)
        return fn(lp)
    return run


def check_ppo(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        for mode in AGG_MODES:
            for c in (3.0, None):  # veRL always dual-clips; a huge c turns it off
                cfg = actor_config(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=c or 1e30)
                compare_loss(
                    ours_loss(losses.ppo, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=0.2,
                              clip_ratio_high=0.28, clip_ratio_c=c, loss_agg=mode),
                    verl_loss(core.compute_policy_loss_vanilla, old, adv, mask, mode, cfg),
                    logp, mask, {"clipfrac": "actor/pg_clipfrac", "approx_kl": "actor/ppo_kl",
                                 "dual_clipfrac": "actor/pg_clipfrac_lower"},
                )


def check_gspo(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        if case == "extreme":
            old[4] = logp[4] - 15.0  # a whole sequence at log-ratio 15 (> 10: capped)
            adv[4] = -1.0
        cfg = actor_config(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28)
        for mode in AGG_MODES:
            compare_loss(
                ours_loss(losses.gspo, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=0.2,
                          clip_ratio_high=0.28, loss_agg=mode),
                verl_loss(core.compute_policy_loss_gspo, old, adv, mask, mode, cfg),
                logp, mask, {"clipfrac": "actor/pg_clipfrac", "approx_kl": "actor/ppo_kl"},
            )


# veRL does not clamp the log-ratio in these three: at |log-ratio| 30 its ratio is e^30 (or its
# float32 overflow); ours clamps at 20 like every other loss. Compared on the other cases.
UNCLAMPED_IN_VERL = ("clip_cov", "kl_cov", "gmpo")


def check_clip_cov(dtype):
    for case in MASK_CASES:
        logp, old, adv, mask = policy_batch(case, dtype)
        kw = dict(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_cov_ratio=0.05, clip_cov_lb=0.2, clip_cov_ub=3.0)
        cfg = actor_config(clip_ratio=0.2, **kw)
        for mode in AGG_MODES:
            ours = seeded(ours_loss(losses.clip_cov, old_log_probs=old, advantages=adv, mask=mask, loss_agg=mode, **kw))
            compare_loss(ours, seeded(verl_loss(core.compute_policy_loss_clip_cov, old, adv, mask, mode, cfg)),
                         logp, mask, {"cov_clipfrac": "actor/pg_clipfrac", "approx_kl": "actor/ppo_kl"})
            assert ours(logp)[1]["cov_clipfrac"] > 0  # the case exercises the covariance clip


def check_kl_cov(dtype):
    for case in MASK_CASES:
        logp, old, adv, mask = policy_batch(case, dtype)
        cfg = actor_config(kl_cov_ratio=0.05, ppo_kl_coef=0.3)
        for mode in AGG_MODES:
            compare_loss(
                ours_loss(losses.kl_cov, old_log_probs=old, advantages=adv, mask=mask, kl_cov_ratio=0.05, ppo_kl_coef=0.3,
                          loss_agg=mode),
                verl_loss(core.compute_policy_loss_kl_cov, old, adv, mask, mode, cfg),
                logp, mask, {"abs_kl": "actor/ppo_kl"},
            )


def check_gmpo(dtype):
    for case in MASK_CASES:
        logp, old, adv, mask = policy_batch(case, dtype)
        seq_adv = (adv * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
        adv = seq_adv.expand_as(adv).contiguous()  # GMPO takes sequence-level advantages
        cfg = actor_config(clip_ratio=0.4, clip_ratio_low=0.4, clip_ratio_high=0.4)
        # veRL averages over every row; ours over rows with a valid token (fully masked rows do not dilute)
        scale = B / int(mask.any(1).sum())
        compare_loss(
            ours_loss(losses.gmpo, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=0.4),
            verl_loss(core.compute_policy_loss_geo_mean, old, adv, mask, "token-mean", cfg),
            logp, mask, {"clipfrac_pos": "actor/pg_clipfrac", "clipfrac_neg": "actor/pg_clipfrac_lower",
                         "approx_kl": "actor/ppo_kl"}, scale=scale,
        )


def check_cispo(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        cfg = actor_config(clip_ratio=0.2, clip_ratio_low=0.5, clip_ratio_high=0.28)
        for mode in AGG_MODES:
            compare_loss(
                ours_loss(losses.cispo, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=0.5,
                          clip_ratio_high=0.28, loss_agg=mode),
                verl_loss(core.compute_policy_loss_cispo, old, adv, mask, mode, cfg),
                logp, mask, {"clipfrac": "actor/pg_clipfrac", "approx_kl": "actor/ppo_kl"},
            )


def check_sapo(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        cfg = actor_config(tau_pos=1.0, tau_neg=1.05)
        compare_loss(
            ours_loss(losses.sapo, old_log_probs=old, advantages=adv, mask=mask, tau_pos=1.0, tau_neg=1.05),
            verl_loss(core.compute_policy_loss_sapo, old, adv, mask, "seq-mean-token-mean", cfg),
            logp, mask, {"approx_kl": "actor/ppo_kl"},
        )


def _check_dppo(name, verl_fn):
    ours_fn = getattr(losses, name)

    def check(dtype):
        for case in [*MASK_CASES, "extreme"]:
            logp, old, adv, mask = policy_batch(case, dtype)
            low, high = (0.05, 0.1) if name == "dppo_tv" else (0.01, 0.02)
            cfg = actor_config(clip_ratio=low, clip_ratio_low=low, clip_ratio_high=high, clip_ratio_c=5.0)
            for mode in AGG_MODES:
                compare_loss(
                    ours_loss(ours_fn, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=low, clip_ratio_high=high,
                              clip_ratio_c=5.0, loss_agg=mode),
                    verl_loss(verl_fn, old, adv, mask, mode, cfg),
                    logp, mask, {"clipfrac": "actor/pg_clipfrac", "truncfrac": "actor/pg_clipfrac_lower",
                                 "approx_kl": "actor/ppo_kl"},
                )
            metrics = ours_fn(log_probs=logp, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=low,
                              clip_ratio_high=high)[1]
            assert 0 < float(metrics["clipfrac"]) < 1  # the thresholds are active on this batch
    return check


def check_dro(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        cfg = actor_config(dro_beta=0.3)
        for mode in AGG_MODES:
            compare_loss(
                ours_loss(losses.dro, old_log_probs=old, advantages=adv, mask=mask, dro_beta=0.3, loss_agg=mode),
                verl_loss(core.compute_policy_loss_dro, old, adv, mask, mode, cfg),
                logp, mask, {"approx_kl": "actor/ppo_kl"},
            )


def check_gpg_loss(dtype):
    for case in [*MASK_CASES, "extreme"]:
        logp, old, adv, mask = policy_batch(case, dtype)
        cfg = actor_config()
        for mode in AGG_MODES:
            compare_loss(
                ours_loss(losses.gpg_loss, old_log_probs=old, advantages=adv, mask=mask, loss_agg=mode),
                verl_loss(core.compute_policy_loss_gpg, old, adv, mask, mode, cfg),
                logp, mask, {},
            )


# --- KL estimators and aggregation


def _check_kl(name, verl_names):
    def check(dtype):
        gen = torch.Generator().manual_seed(4)
        logp = torch.log(torch.rand(B, T, generator=gen, dtype=dtype) * 0.98 + 0.01)
        ref = torch.log(torch.rand(B, T, generator=gen, dtype=dtype) * 0.98 + 0.01)
        logp[0, :3], ref[0, :3] = -100.0, 0.0  # the extreme log-ratios of the k3 defect
        logp[1, :3], ref[1, :3] = 0.0, -100.0
        weights = torch.rand(B, T, generator=gen, dtype=dtype)
        ours_fn = kl.ESTIMATORS[name]
        for verl_name in verl_names:
            _, _, g_o = with_grad(lambda lp: ((ours_fn(lp, ref) * weights).sum(), {}), logp)
            _, _, g_v = with_grad(lambda lp, n=verl_name: ((core.kl_penalty(lp, ref, n) * weights).sum(), {}), logp)
            close(ours_fn(logp, ref), core.kl_penalty(logp, ref, verl_name))
            assert torch.isfinite(g_o).all()
            close(g_o, g_v)
    return check


def _check_agg(mode):
    def check(dtype):
        for case in MASK_CASES:
            gen = torch.Generator().manual_seed(5)
            mask = make_mask(case, gen)
            loss = torch.randn(B, T, generator=gen, dtype=dtype)
            close(aggregation.AGGREGATIONS[mode](loss, mask), core.agg_loss(loss, mask.to(dtype), mode))
            counts = {"global_tokens": 123, "global_seqs": 40, "max_tokens": 64}
            close(aggregation.AGGREGATIONS[mode](loss, mask, **counts),
                  core.agg_loss(loss, mask.to(dtype), mode, batch_num_tokens=123, global_batch_size=40, loss_scale_factor=64))
    return check


#: (kind, registered name) -> check(dtype). Every component rlinf-algos registers must be here.
PARITY = {
    ("advantage", "gae"): check_gae,
    ("advantage", "grpo"): check_grpo,
    ("advantage", "dr_grpo"): check_dr_grpo,
    ("advantage", "rloo"): _simple_group(ra.rloo, core.compute_rloo_outcome_advantage),
    ("advantage", "reinforce_plus_plus_baseline"): _simple_group(
        ra.reinforce_plus_plus_baseline, core.compute_reinforce_plus_plus_baseline_outcome_advantage),
    ("advantage", "opo"): _simple_group(ra.opo, core.compute_opo_outcome_advantage),
    ("advantage", "gpg"): check_gpg,
    ("advantage", "reinforce_plus_plus"): check_reinforce_plus_plus,
    ("advantage", "remax"): check_remax,
    ("policy_loss", "ppo"): check_ppo,
    ("policy_loss", "gspo"): check_gspo,
    ("policy_loss", "clip_cov"): check_clip_cov,
    ("policy_loss", "kl_cov"): check_kl_cov,
    ("policy_loss", "gmpo"): check_gmpo,
    ("policy_loss", "cispo"): check_cispo,
    ("policy_loss", "sapo"): check_sapo,
    ("policy_loss", "dppo_tv"): _check_dppo("dppo_tv", core.compute_policy_loss_dppo_tv),
    ("policy_loss", "dppo_kl"): _check_dppo("dppo_kl", core.compute_policy_loss_dppo_kl),
    ("policy_loss", "dro"): check_dro,
    ("policy_loss", "gpg"): check_gpg_loss,
    ("kl", "k1"): _check_kl("k1", ["k1", "kl"]),
    ("kl", "k2"): _check_kl("k2", ["k2", "mse", "k2+"]),
    ("kl", "k3"): _check_kl("k3", ["k3", "low_var_kl"]),
    ("kl", "abs"): _check_kl("abs", ["abs"]),
    ("kl", "k1+"): _check_kl("k1+", ["k1+", "kl+"]),
    ("kl", "k3+"): _check_kl("k3+", ["k3+", "low_var_kl+"]),
    ("kl", "abs+"): _check_kl("abs+", ["abs+"]),
    **{("loss_agg", mode): _check_agg(mode) for mode in AGG_MODES},
}


def test_every_registered_component_has_a_parity_check():
    registries = get_plugins().registries
    ours = {(kind, name) for kind in ("advantage", "policy_loss", "kl", "loss_agg")
            for name in registries[kind] if registries[kind][name].distribution == "rlinf-algos"}
    assert ours == set(PARITY)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("key", sorted(PARITY), ids=lambda k: f"{k[0]}:{k[1]}")
def test_parity(key, dtype):
    PARITY[key](dtype)


# --- public helpers that are not registered components


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_value_loss_parity(dtype):
    for case in MASK_CASES:
        gen = torch.Generator().manual_seed(6)
        mask = make_mask(case, gen)
        values, old, ret = (torch.randn(B, T, generator=gen, dtype=dtype) for _ in range(3))
        for mode in AGG_MODES:
            leaf = values.clone().requires_grad_()
            loss, m = losses.value_loss(values=leaf, old_values=old, returns=ret, mask=mask, value_clip=0.5, loss_agg=mode)
            (g,) = torch.autograd.grad(loss, leaf)
            leaf_v = values.clone().requires_grad_()
            v_loss, v_clipfrac = core.compute_value_loss(leaf_v, ret, old, mask.to(dtype), 0.5, loss_agg_mode=mode)
            (g_v,) = torch.autograd.grad(v_loss, leaf_v)
            close(loss, v_loss)
            close(g, g_v)
            close(m["vf_clipfrac"], v_clipfrac)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_masked_helpers_and_logits_parity(dtype):
    gen = torch.Generator().manual_seed(8)
    mask = make_mask("fully_masked", gen)
    x = torch.randn(B, T, generator=gen, dtype=dtype)
    fmask = mask.to(dtype)  # float 0/1 masks are accepted, as in veRL
    close(ra.masked_sum(x, fmask), verl_F.masked_sum(x, fmask))
    close(ra.masked_mean(x, fmask), verl_F.masked_mean(x, fmask))
    close(ra.masked_mean(x, fmask, dim=1), verl_F.masked_mean(x, fmask, axis=1))
    close(ra.masked_var(x, fmask), verl_F.masked_var(x, fmask))
    close(ra.masked_whiten(x, fmask), verl_F.masked_whiten(x, fmask) * fmask)
    close(ra.normalize_advantages(x, mask), verl_F.masked_whiten(x, fmask) * fmask)
    logits = torch.randn(4, 5, 11, generator=gen, dtype=dtype) * 3
    labels = torch.randint(0, 11, (4, 5), generator=gen)
    ent = ra.entropy_from_logits(logits, chunk_size=3)
    lp = ra.log_probs_from_logits(logits, labels, chunk_size=3)
    assert ent.dtype == dtype and lp.dtype == dtype
    close(ent, verl_F.entropy_from_logits(logits))
    close(lp, verl_F.logprobs_from_logits_naive(logits, labels))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kl_penalized_rewards_parity(dtype):
    gen = torch.Generator().manual_seed(9)
    scores, logp, ref = (torch.randn(B, T, generator=gen, dtype=dtype) for _ in range(3))
    close(ra.kl_penalized_rewards(scores, kl.k1(logp, ref), beta=0.05), core.compute_rewards(scores, logp, ref, 0.05))


def test_kl_controllers_parity():
    ours = kl_control.kl_controller("adaptive", kl_coef=0.2, target_kl=0.05, horizon=1000)
    theirs = core.get_kl_controller(types.SimpleNamespace(type="adaptive", kl_coef=0.2, target_kl=0.05, horizon=1000))
    fixed = kl_control.kl_controller("fixed", kl_coef=0.2)
    fixed_v = core.get_kl_controller(types.SimpleNamespace(type="fixed", kl_coef=0.2))
    for step, current in enumerate([0.01, 0.2, 0.05, 0.07, 0.0, 1.0, 0.049]):
        for a, b in ((ours, theirs), (fixed, fixed_v)):
            a.update(current, 64 + step)
            b.update(current, 64 + step)
            assert abs(a.value - b.value) <= 1e-12 * abs(b.value)
    assert ours.value != 0.2 and fixed.value == 0.2
