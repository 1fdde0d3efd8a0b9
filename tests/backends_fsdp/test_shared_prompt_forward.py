"""The fsdp backend's shared-prompt forward (each distinct prompt of a micro-batch forwarded once, its KV
cache indexed out to the rows) against the ordinary full forward: log-probs, entropy, gradients, and when
it is used at all."""

from __future__ import annotations

import pytest
import torch
from fsdp_helpers import make_batch, make_config
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_core.flows.objectives import PolicyObjective

# 3 prompts of different lengths (left padding), each in several rows (not adjacent), responses of
# different lengths (right padding), one row with a single response token
PROMPTS = [[4, 5, 13], [6, 14], [3, 9, 11, 12, 10]]
GROUPS = [0, 1, 2, 0, 1, 2, 0, 2]
RESPONSES = [[7, 8, 3], [9], [2, 5, 6, 7], [12], [5, 5], [8, 9, 10, 11], [4, 4, 4, 4], [13]]


def _batch(seed: int = 0) -> dict:
    batch = make_batch([PROMPTS[g] for g in GROUPS], RESPONSES)
    gen = torch.Generator().manual_seed(seed)
    rows, resp = batch["response_mask"].shape
    batch["advantages"] = torch.randn(rows, resp, generator=gen)
    batch["old_log_probs"] = -torch.rand(rows, resp, generator=gen) * 2
    return batch


def _forward_sizes(backend: FSDPBackend) -> list[tuple[int, int]]:
    """Records the ``(rows, columns)`` of every model forward from now on."""
    sizes: list[tuple[int, int]] = []
    backend.model.register_forward_pre_hook(lambda _m, _a, kw: sizes.append(tuple(kw["input_ids"].shape)),
                                            with_kwargs=True)
    return sizes


def _pair(tiny_dir: str, rows: int = 8, **actor) -> tuple[FSDPBackend, FSDPBackend]:
    """Two actors with the same weights (one micro-batch of ``rows``): the shared-prompt forward on, and forced off."""
    fast = FSDPBackend(make_config(tiny_dir, micro_batch_size=rows, **actor), role="actor")
    full = FSDPBackend(make_config(tiny_dir, micro_batch_size=rows, **actor), role="actor")
    full._shared_prompt_arg = None
    return fast, full


def _grads(backend: FSDPBackend, batch: dict, temperature: float, entropy_coef: float,
           entropy_grad: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    backend.model.train()
    backend.model.zero_grad(set_to_none=True)
    out = backend._forward(batch, temperature=temperature, with_entropy=True, entropy_grad=entropy_grad)
    mask = batch["response_mask"]
    loss = -(out["log_probs"] * batch["advantages"] * mask).sum() / mask.sum()
    if entropy_coef:
        loss = loss - entropy_coef * (out["entropy"] * mask).sum() / mask.sum()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in backend.model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


def _assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        scale = float(b[name].abs().max())
        assert scale > 0, name  # every parameter gets a gradient: the comparison is not vacuous
        torch.testing.assert_close(a[name], b[name], atol=1e-5 * scale, rtol=1e-5, msg=name)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_log_probs_and_entropy_equal_the_full_forward(tiny_dir, temperature):
    fast, full = _pair(tiny_dir)
    batch = _batch()
    sizes = _forward_sizes(fast)
    a = fast.compute_log_probs(batch, temperature=temperature, with_entropy=True)
    b = full.compute_log_probs(batch, temperature=temperature, with_entropy=True)
    # one forward of the 3 distinct prompts (5 columns), one of the 8 rows' response columns but the last
    assert sizes == [(3, 5), (8, 3)]
    torch.testing.assert_close(a["log_probs"], b["log_probs"], atol=1e-6, rtol=0)
    torch.testing.assert_close(a["entropy"], b["entropy"], atol=1e-6, rtol=0)
    assert (a["log_probs"][batch["response_mask"] == 0] == 0).all()
    assert (a["log_probs"][batch["response_mask"] == 1] < 0).all()


@pytest.mark.parametrize("temperature,entropy_coef", [(1.0, 0.0), (0.7, 0.3)])
def test_gradients_equal_the_full_forward(tiny_dir, temperature, entropy_coef):
    fast, full = _pair(tiny_dir)
    batch = _batch(seed=1)
    out_a, grads_a = _grads(fast, batch, temperature, entropy_coef)
    out_b, grads_b = _grads(full, batch, temperature, entropy_coef)
    torch.testing.assert_close(out_a["log_probs"], out_b["log_probs"], atol=1e-6, rtol=0)
    _assert_grads_close(grads_a, grads_b)


def test_entropy_without_gradient_changes_only_the_entropy_term(tiny_dir):
    fast, full = _pair(tiny_dir)
    batch = _batch(seed=2)
    # a loss without the entropy: the entropy computed without gradient gives the same gradient
    out_a, grads_a = _grads(fast, batch, 0.8, 0.0, entropy_grad=False)
    _, grads_b = _grads(full, batch, 0.8, 0.0, entropy_grad=True)
    _assert_grads_close(grads_a, grads_b)
    torch.testing.assert_close(out_a["entropy"], full._forward(batch, temperature=0.8, with_entropy=True)["entropy"]
                               .detach(), atol=1e-6, rtol=0)
    fast.model.train()
    assert not fast._forward(batch, temperature=0.8, with_entropy=True, entropy_grad=False)["entropy"].requires_grad
    assert fast._forward(batch, temperature=0.8, with_entropy=True, entropy_grad=True)["entropy"].requires_grad


def test_train_step_matches_the_full_forward(tiny_dir):
    fast, full = _pair(tiny_dir)
    batch = _batch(seed=3)
    loss_fn = PolicyObjective(loss_type="ppo", entropy_bonus=0.01)
    sizes = _forward_sizes(fast)
    ma = fast.train_step(batch, loss_fn, temperature=0.9)
    mb = full.train_step(batch, loss_fn, temperature=0.9)
    assert sizes == [(3, 5), (8, 3)]
    assert ma["loss"] == pytest.approx(mb["loss"], abs=1e-6)
    assert ma["grad_norm"] == pytest.approx(mb["grad_norm"], rel=1e-5) and ma["grad_norm"] > 0
    assert ma["entropy"] == pytest.approx(mb["entropy"], abs=1e-6)
    # (the weights after the step are not compared: Adam's first step, lr * g / (|g| + eps), turns float
    # rounding in a near-zero gradient into a visible difference; the gradients are compared above)


def test_single_token_responses_need_only_the_prompt_forward(tiny_dir):
    fast, full = _pair(tiny_dir)
    batch = make_batch([PROMPTS[g] for g in GROUPS], [[r[0]] for r in RESPONSES])
    sizes = _forward_sizes(fast)
    a = fast.compute_log_probs(batch, temperature=0.6, with_entropy=True)
    b = full.compute_log_probs(batch, temperature=0.6, with_entropy=True)
    assert sizes == [(3, 5)]
    torch.testing.assert_close(a["log_probs"], b["log_probs"], atol=1e-6, rtol=0)
    torch.testing.assert_close(a["entropy"], b["entropy"], atol=1e-6, rtol=0)


def test_same_tokens_with_other_padding_are_distinct_prompts(tiny_dir):
    fast, full = _pair(tiny_dir, rows=4)
    # rows 0 and 1: the same visible tokens, but row 1's first column is padding; row 2 repeats row 0
    batch = make_batch([[0, 5, 13], [5, 13], [0, 5, 13], [6, 14]], [[7, 8], [9, 2], [3], [4, 4]])
    batch["attention_mask"][1, 0] = 0
    sizes = _forward_sizes(fast)
    a = fast.compute_log_probs(batch)["log_probs"]
    b = full.compute_log_probs(batch)["log_probs"]
    assert sizes[0][0] == 3
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_falls_back_to_the_full_forward(tiny_dir):
    fast, _ = _pair(tiny_dir, rows=3)
    distinct = make_batch(PROMPTS, [[7, 8], [9], [2, 5, 6]])
    sizes = _forward_sizes(fast)
    fast.compute_log_probs(distinct)
    assert sizes == [(3, 8)]  # every prompt distinct: one ordinary forward of the 5 + 3 columns
    gc = FSDPBackend(make_config(tiny_dir, fsdp_config={"gradient_checkpointing": True}), role="actor")
    assert gc._shared_prompt_arg is None
    critic = FSDPBackend(make_config(tiny_dir), role="critic")
    assert critic._shared_prompt_arg is None
    reference = FSDPBackend(make_config(tiny_dir), role="reference")
    assert reference._shared_prompt_arg in ("cache", "past_key_values")


def test_policy_objective_asks_for_entropy_gradient_only_with_a_bonus():
    assert not PolicyObjective().entropy_grad
    assert PolicyObjective(entropy_bonus=0.01).entropy_grad
