"""``PolicyPluginTests``: the :class:`~rlinf_core.interfaces.Policy` contract of an embodied ``model`` component.

Checks ``sample`` shapes (no gradient), that ``evaluate`` re-scores sampled actions to the same
log-probs, entropy / value shapes, seeded and deterministic sampling, that gradients reach every
trainable parameter, a ``state_dict`` save / load round trip through ``torch.save``, and, when the
``fsdp`` training backend of rlinf-backends-fsdp has a policy mode, one training step under it.
Needs torch, numpy and gymnasium.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests, plain_to_config


def sample_observations(space: Any, n: int, seed: int, instructions: list[str] | None = None) -> dict[str, Any]:
    """``n`` observations drawn from a sub-env's observation dict space, batched as an env returns them."""
    import numpy as np

    space.seed(seed)
    rows = [space.sample() for _ in range(n)]
    obs: dict[str, Any] = {}
    if "state" in space.spaces:
        obs["state"] = np.stack([r["state"] for r in rows]).astype(np.float32)
    if "images" in space.spaces:
        obs["images"] = {cam: np.stack([r["images"][cam] for r in rows]) for cam in space["images"].spaces}
    if instructions is not None:
        obs["instruction"] = [instructions[i % len(instructions)] for i in range(n)]
    return obs


def fsdp_policy_support() -> tuple[bool, str]:
    """Whether rlinf-backends-fsdp's ``FSDPBackend`` can train an embodied policy, and why not.

    Detected from the backend itself, not from a version number: its constructor must take the
    env's ``observation_space`` and ``action_space`` (what its policy mode builds a policy with).
    """
    import inspect

    try:
        from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    except ImportError as exc:
        return False, f"the fsdp backend cannot be imported ({exc}); pip install rlinf-backends-fsdp"
    params = inspect.signature(FSDPBackend.__init__).parameters
    if "observation_space" in params and "action_space" in params:
        return True, ""
    return False, ("rlinf_backends_fsdp.fsdp_backend.FSDPBackend has no policy mode (its constructor takes no "
                   "observation_space / action_space): the fsdp check is skipped")


def _as_tensors(obs: Mapping[str, Any]) -> dict[str, Any]:
    """Numpy arrays of an observation dict as torch tensors (nested dicts too; lists kept)."""
    import torch

    return {k: _as_tensors(v) if isinstance(v, Mapping) else (v if isinstance(v, list) else torch.as_tensor(v))
            for k, v in obs.items()}


class PolicyPluginTests(PluginTests):
    """Subclass as ``class TestMyPolicy(PolicyPluginTests)`` and set ``component``, ``config`` and the spaces.

    Attributes:

    - ``config``: the ``actor.model`` section (a dict).
    - ``observation_space`` / ``action_space``: gymnasium spaces of ONE sub-env, as an env component
      gives them (``observation_space`` a ``Dict`` with ``state`` / ``images``); or override
      :meth:`spaces` (e.g. to take them from your env).
    - ``instructions``: task strings to put in ``obs["instruction"]`` (VLAs), or ``None``.
    - ``batch_size`` (4), ``logprob_atol`` (1e-5: how close ``evaluate`` must re-score ``sample``),
      ``train_lr`` (1e-3: the learning rate of the one fsdp training step).
    - ``params_without_grad``: names of parameters that legitimately get no gradient from
      ``evaluate`` (frozen towers are skipped anyway: only ``requires_grad`` ones are checked).
    """

    kind = "model"
    config: ClassVar[Mapping[str, Any]] = {}
    observation_space: ClassVar[Any] = None
    action_space: ClassVar[Any] = None
    instructions: ClassVar[list[str] | None] = None
    batch_size: ClassVar[int] = 4
    logprob_atol: ClassVar[float] = 1e-5
    params_without_grad: ClassVar[tuple[str, ...]] = ()
    #: Adam learning rate of the fsdp training-step check (small: one step must not overshoot).
    train_lr: ClassVar[float] = 1e-3

    # ------------------------------------------------------------------ building

    def spaces(self) -> tuple[Any, Any]:
        """``(observation_space, action_space)`` of one sub-env."""
        if self.observation_space is None or self.action_space is None:
            pytest.fail(f"{type(self).__name__}: set observation_space and action_space (gymnasium spaces of one "
                        "sub-env) or override spaces()")
        return self.observation_space, self.action_space

    def make_policy(self, seed: int = 0) -> Any:
        """``cls(config, observation_space=, action_space=)`` with torch seeded ``seed``, in eval mode."""
        import torch

        obs_space, act_space = self.spaces()
        torch.manual_seed(seed)
        policy = self.load_target()(plain_to_config(self.config), observation_space=obs_space, action_space=act_space)
        policy.eval()
        return policy

    def observations(self, seed: int = 0, n: int | None = None) -> dict[str, Any]:
        return sample_observations(self.spaces()[0], n or self.batch_size, seed, self.instructions)

    # ------------------------------------------------------------------ tests

    def test_is_a_torch_module(self) -> None:
        import torch

        policy = self.make_policy()
        assert isinstance(policy, torch.nn.Module), "a policy must be a torch.nn.Module (weight sync uses state_dict)"
        assert any(p.requires_grad for p in policy.parameters()), "the policy has no trainable parameter"

    def test_sample_shapes_and_no_gradient(self) -> None:
        import torch

        from rlinf_core.interfaces import ActionSample

        policy, n = self.make_policy(), self.batch_size
        out = policy.sample(self.observations())
        assert isinstance(out, ActionSample), f"sample() must return rlinf_core.interfaces.ActionSample, got {type(out).__name__}"
        actions, log_probs = torch.as_tensor(out.actions), out.log_probs
        assert actions.shape[0] == n, f"actions must be batch-first (N={n}, ...), got {tuple(actions.shape)}"
        assert isinstance(log_probs, torch.Tensor), "log_probs must be a torch tensor"
        assert log_probs.shape[0] == n and log_probs.dim() in (1, 2), (
            f"log_probs must be (N,) or (N, K), got {tuple(log_probs.shape)}")
        if log_probs.dim() == 2:
            assert actions.dim() >= 2 and actions.shape[1] == log_probs.shape[1], (
                f"chunked log_probs (N, K) = {tuple(log_probs.shape)} need actions (N, K, ...), got {tuple(actions.shape)}")
        assert torch.isfinite(log_probs).all(), "sample() returned non-finite log_probs"
        assert not log_probs.requires_grad, "sample() must not build a graph (decorate it with torch.no_grad())"
        if out.values is not None:
            assert tuple(out.values.shape) == (n,), f"values must be (N,), got {tuple(out.values.shape)}"
        for key, value in out.extras.items():
            assert len(value) == n, f"extras[{key!r}] must be batch-first with N={n} rows"

    def test_evaluate_re_scores_sampled_actions(self) -> None:
        import torch

        policy, obs = self.make_policy(), self.observations(seed=1)
        torch.manual_seed(5)
        out = policy.sample(obs)
        ev = policy.evaluate(obs, out.actions, out.extras)
        for key in ("log_probs", "entropy", "values"):
            assert key in ev, f"evaluate() must return a dict with {key!r} (values may be None)"
        assert tuple(ev["log_probs"].shape) == tuple(out.log_probs.shape), (
            f"evaluate log_probs {tuple(ev['log_probs'].shape)} vs sample {tuple(out.log_probs.shape)}")
        torch.testing.assert_close(ev["log_probs"].detach().float(), out.log_probs.float(), atol=self.logprob_atol, rtol=0,
                                   msg="evaluate() must give the sampled actions the log-probs sample() reported")
        assert tuple(ev["entropy"].shape) == tuple(out.log_probs.shape), "entropy must be shaped like log_probs"
        assert torch.isfinite(ev["entropy"]).all(), "entropy must be finite"
        if out.values is not None:
            torch.testing.assert_close(ev["values"].detach().float(), out.values.float(), atol=self.logprob_atol, rtol=0,
                                       msg="evaluate() values must match sample() values")

    def test_deterministic_sample_is_repeatable_and_seeded_sampling_too(self) -> None:
        import torch

        policy, obs = self.make_policy(), self.observations(seed=2)
        a = torch.as_tensor(policy.sample(obs, deterministic=True).actions)
        b = torch.as_tensor(policy.sample(obs, deterministic=True).actions)
        torch.testing.assert_close(a, b, msg="sample(deterministic=True) must not be random")
        torch.manual_seed(11)
        c = torch.as_tensor(policy.sample(obs).actions)
        torch.manual_seed(11)
        d = torch.as_tensor(policy.sample(obs).actions)
        torch.testing.assert_close(c, d, msg="sampling must be reproducible from torch's seed")

    def test_gradients_reach_every_trainable_parameter(self) -> None:
        """Every trainable parameter gets a finite, non-zero gradient from ``evaluate`` within two steps.

        Two backward passes with a small SGD step between, so that a layer initialised at zero (a common
        value-head choice, which blocks the gradient of the layers before it at step 0) does not count
        as disconnected; a parameter cut off from ``evaluate``'s outputs gets no gradient in either.
        """
        import torch

        policy, obs = self.make_policy(), self.observations(seed=3)
        out = policy.sample(obs)
        reached: set[str] = set()
        for _ in range(2):
            ev = policy.evaluate(obs, out.actions, out.extras)
            assert ev["log_probs"].requires_grad, "evaluate() log_probs must carry a gradient"
            loss = -ev["log_probs"].mean() - 0.01 * ev["entropy"].mean()
            if ev.get("values") is not None:
                loss = loss + ev["values"].mean()
            policy.zero_grad()
            loss.backward()
            bad = [name for name, p in policy.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            assert not bad, f"non-finite gradients in {bad}"
            with torch.no_grad():
                for name, p in policy.named_parameters():
                    if p.grad is not None and p.grad.abs().sum() > 0:
                        reached.add(name)
                        p -= 1e-2 * p.grad
        missing = [name for name, p in policy.named_parameters()
                   if p.requires_grad and name not in self.params_without_grad and name not in reached]
        assert not missing, (f"no gradient from evaluate() reaches {missing} (set params_without_grad if that is intended, "
                             "or requires_grad=False for frozen parts)")

    def test_state_dict_round_trip(self) -> None:
        import torch

        src, dst = self.make_policy(seed=0), self.make_policy(seed=1)
        buffer = io.BytesIO()
        torch.save(src.state_dict(), buffer)
        buffer.seek(0)
        result = dst.load_state_dict(torch.load(buffer, weights_only=True))
        if result is not None and hasattr(result, "missing_keys"):
            assert not result.missing_keys and not result.unexpected_keys, f"state_dict round trip: {result}"
        obs = self.observations(seed=4)
        torch.manual_seed(3)
        out = src.sample(obs)
        a = src.evaluate(obs, out.actions, out.extras)["log_probs"]
        b = dst.evaluate(obs, out.actions, out.extras)["log_probs"]
        torch.testing.assert_close(a, b, msg="a policy loaded from another's state_dict must score actions the same")

    def test_trains_under_the_fsdp_backend(self) -> None:
        """The ``fsdp`` backend's policy mode builds this policy by name, scores it like ``evaluate`` and trains it."""
        ok, reason = fsdp_policy_support()
        if not ok:
            pytest.skip(reason)
        if not self.component:
            pytest.skip("the fsdp backend builds policies by registered name: set `component`")
        import torch
        from rlinf_backends_fsdp.fsdp_backend import FSDPBackend

        from rlinf_core.config import load_config

        obs_space, act_space = self.spaces()
        n = self.batch_size
        model = {**dict(self.config), "model_type": self.component}
        cfg = load_config({"actor": {"model": model, "micro_batch_size": n // 2 or 1, "global_batch_size": n,
                                     "optim": {"lr": self.train_lr, "clip_grad": 0.0}}})
        backend = FSDPBackend(cfg, role="actor", observation_space=obs_space, action_space=act_space)
        obs = _as_tensors(self.observations(seed=6))  # the flows batch observations as tensors
        torch.manual_seed(0)
        sample = backend.model.sample(obs)
        batch = {"obs": obs, "actions": sample.actions, "extras": sample.extras,
                 "advantages": torch.ones(n), "loss_mask": torch.ones(n)}
        before = backend.compute_log_probs(batch)["log_probs"]
        torch.testing.assert_close(before.float(), sample.log_probs.float().cpu(), atol=self.logprob_atol, rtol=0,
                                   msg="the fsdp backend's log-probs of sampled actions differ from sample()'s")

        def loss_fn(outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
            logp = outputs["log_probs"].reshape(outputs["log_probs"].shape[0], -1).sum(-1)
            loss = -(logp * mb["advantages"]).sum() / mb["global_seqs"]
            return loss, {}

        metrics = backend.train_step(batch, loss_fn)
        assert "loss" in metrics, f"train_step metrics must hold 'loss', got {sorted(metrics)}"
        after = backend.compute_log_probs(batch)["log_probs"]
        assert after.sum() > before.sum(), "a step on advantages of +1 under fsdp did not raise the actions' log-probs"
