"""``AlgorithmPluginTests``: algorithm components (``advantage``, ``policy_loss``, ``kl``, ``loss_agg``).

Calling conventions (those of rlinf-algos, which the flows use):

- ``advantage``: ``fn(*, rewards, mask, **kwargs) -> (advantages, returns)``, both ``(B, T)`` and zero
  at masked positions; ``rewards`` per token ``(B, T)`` or per sequence ``(B,)`` (``reward_layout``);
- ``policy_loss``: ``fn(*, log_probs, old_log_probs, advantages, mask, **kwargs) -> (loss, metrics)``,
  a scalar loss and a dict of scalar metrics;
- ``kl``: ``fn(log_probs, ref_log_probs) -> (B, T)`` per-token estimates;
- ``loss_agg``: ``fn(loss, mask, *, global_tokens=None, global_seqs=None, max_tokens=None) -> scalar``.

Checks: output shapes; the input dtype is kept (float32 and float64); masked positions do not
matter (arbitrary values there change nothing at valid positions, and per-token outputs are zero
there); extra padding columns change nothing; gradients reach valid positions only and are finite;
KL estimators are zero where the policies agree, local, and finite at extreme log-ratios. Needs torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests

ALGORITHM_KINDS = ("advantage", "policy_loss", "kl", "loss_agg")
#: Response lengths of the test rows (right padding to the longest).
LENGTHS = (6, 4, 1, 5)
GARBAGE = 37.0
#: Tests that apply to some kinds only.
_TESTS_FOR = {
    "test_masked_positions_do_not_matter": ("advantage", "policy_loss", "loss_agg"),
    "test_padding_columns_do_not_matter": ("advantage", "policy_loss", "loss_agg"),
    "test_gradients_reach_valid_positions_only": ("policy_loss", "kl", "loss_agg"),
    "test_gradient_at_ratio_one_favours_positive_advantages": ("policy_loss",),
    "test_kl_is_local_zero_at_agreement_and_finite": ("kl",),
}


class AlgorithmPluginTests(PluginTests):
    """Subclass as ``class TestMyLoss(AlgorithmPluginTests)``; set ``kind``, ``component`` and ``kwargs``.

    Attributes:

    - ``kind``: ``"advantage"``, ``"policy_loss"``, ``"kl"`` or ``"loss_agg"``.
    - ``kwargs``: extra keyword arguments for every call (``{"group_size": 2}``, ``{"gamma": 0.99}``).
    - ``reward_layout`` (advantages): ``"token"`` (rewards ``(B, T)``) or ``"sequence"`` (scores ``(B,)``).
    - ``padding_invariant`` (True): extra all-masked columns change nothing (false for losses that
      normalise by the padded length on purpose).
    - ``gradient_sign`` (True, policy losses): at ``log_probs == old_log_probs``, with one advantage
      per row, the gradient of the loss with respect to ``log_probs`` has the sign of
      ``-advantages`` (or is zero) at every valid token, so that a descent step raises the likelihood
      of positively advantaged tokens.

    Override :meth:`extra_inputs` for tensor arguments beyond the standard ones (built-in: ``values``
    ``(B, T)`` and ``reward_baselines`` ``(B,)``).
    """

    kind: ClassVar[str] = ""
    kwargs: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass keeps only the tests that apply to its ``kind`` (no skipped noise)."""
        super().__init_subclass__(**kwargs)
        if cls.kind in ALGORITHM_KINDS:
            for name, kinds in _TESTS_FOR.items():
                if cls.kind not in kinds:
                    setattr(cls, name, None)  # not a function: pytest does not collect it
    reward_layout: ClassVar[str] = "token"
    padding_invariant: ClassVar[bool] = True
    gradient_sign: ClassVar[bool] = True

    # ------------------------------------------------------------------ inputs

    def _kind(self) -> str:
        if self.kind not in ALGORITHM_KINDS:
            pytest.fail(f"{type(self).__name__}: set kind to one of {', '.join(ALGORITHM_KINDS)} (got {self.kind!r})")
        return self.kind

    def mask(self, pad: int = 0) -> Any:
        import torch

        width = max(LENGTHS) + pad
        return torch.tensor([[1.0] * n + [0.0] * (width - n) for n in LENGTHS])

    def extra_inputs(self, rows: int, width: int, dtype: Any, gen: Any) -> dict[str, Any]:
        """Tensor arguments the function requires beyond the standard ones (see the class docstring)."""
        import torch

        fn = self.load_target()
        params = inspect.signature(fn).parameters
        out: dict[str, Any] = {}
        standard = {"rewards", "mask", "log_probs", "old_log_probs", "advantages", "ref_log_probs", "loss"}
        for name, p in params.items():
            if name in standard or name in self.kwargs or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if name == "values":
                out[name] = torch.randn(rows, width, generator=gen, dtype=dtype)
            elif name == "reward_baselines":
                out[name] = torch.randn(rows, generator=gen, dtype=dtype)
            elif p.default is inspect.Parameter.empty:
                pytest.fail(f"{type(self).__name__}: {fn.__name__} requires {name!r}; "
                            "set it in kwargs or override extra_inputs()")
        return out

    def make_inputs(self, dtype: Any = None, pad: int = 0, seed: int = 0) -> dict[str, Any]:
        """Random inputs of this kind (rows of lengths :data:`LENGTHS`, ``pad`` extra masked columns)."""
        import torch

        dtype = dtype or torch.float32
        gen = torch.Generator().manual_seed(seed)
        mask = self.mask(pad).to(dtype)
        rows, width = mask.shape
        base = max(LENGTHS)

        def per_token(scale: float = 1.0) -> Any:
            x = torch.randn(rows, base, generator=gen, dtype=torch.float64) * scale
            return torch.cat([x, torch.zeros(rows, pad, dtype=torch.float64)], dim=1).to(dtype)

        kind = self._kind()
        if kind == "advantage":
            rewards = per_token() if self.reward_layout == "token" else torch.randn(rows, generator=gen, dtype=dtype)
            inputs = {"rewards": rewards * (mask if rewards.dim() == 2 else 1), "mask": mask}
        elif kind == "policy_loss":
            logp = -per_token(0.5).abs() - 0.1
            inputs = {"log_probs": logp, "old_log_probs": logp + 0.05 * per_token(), "advantages": per_token(), "mask": mask}
        elif kind == "kl":
            logp = -per_token(0.5).abs() - 0.1
            inputs = {"log_probs": logp, "ref_log_probs": logp + 0.3 * per_token()}
        else:
            inputs = {"loss": per_token(), "mask": mask}
        extra = self.extra_inputs(rows, base, dtype, gen)
        for name, value in extra.items():  # padding columns of per-token extras are zero, like the rest
            if value.dim() == 2 and pad:
                value = torch.cat([value, torch.zeros(rows, pad, dtype=dtype)], dim=1)
            inputs[name] = value
        return inputs

    def call(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Call the component; its outputs by name (``advantages``/``returns``, ``loss``/``metrics``, ``kl``, ``loss``)."""
        fn, kind = self.load_target(), self._kind()
        if kind == "advantage":
            out = fn(**inputs, **self.kwargs)
            assert isinstance(out, tuple) and len(out) == 2, "an advantage estimator returns (advantages, returns)"
            return {"advantages": out[0], "returns": out[1]}
        if kind == "policy_loss":
            out = fn(**inputs, **self.kwargs)
            assert isinstance(out, tuple) and len(out) == 2, "a policy loss returns (loss, metrics)"
            return {"loss": out[0], "metrics": out[1]}
        if kind == "kl":
            return {"kl": fn(inputs["log_probs"], inputs["ref_log_probs"], **self.kwargs)}
        return {"loss": fn(inputs["loss"], inputs["mask"], **self.kwargs)}

    def _garbage(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` with every per-token tensor overwritten at masked positions."""
        mask = inputs.get("mask")
        if mask is None:
            mask = self.mask().to(next(iter(inputs.values())).dtype)
        out = dict(inputs)
        for name, value in inputs.items():
            if name == "mask" or not hasattr(value, "dim") or value.dim() != 2 or value.shape != mask.shape:
                continue
            junk = GARBAGE * (1 + (value.new_ones(value.shape).cumsum(1) % 3))
            if name in ("log_probs", "old_log_probs", "ref_log_probs"):
                junk = -junk / 10  # still log-probs: negative
            out[name] = value.where(mask.bool(), junk)
        return out

    # ------------------------------------------------------------------ tests

    def test_output_shapes(self) -> None:
        import torch

        inputs = self.make_inputs()
        out, kind = self.call(inputs), self._kind()
        shape = tuple(self.mask().shape)
        if kind == "advantage":
            for name in ("advantages", "returns"):
                assert tuple(out[name].shape) == shape, f"{name} must be (B, T) = {shape}, got {tuple(out[name].shape)}"
                assert torch.isfinite(out[name]).all(), f"{name} has non-finite values"
        elif kind == "kl":
            got = tuple(out["kl"].shape)
            assert got == shape, f"a KL estimator returns per-token (B, T) = {shape}, got {got}"
        else:
            assert out["loss"].dim() == 0, f"the loss must be a scalar tensor, got shape {tuple(out['loss'].shape)}"
            assert torch.isfinite(out["loss"]), "the loss is not finite"
        if kind == "policy_loss":
            assert isinstance(out["metrics"], Mapping), "metrics must be a dict"
            for key, value in out["metrics"].items():
                value = torch.as_tensor(value)
                assert value.numel() == 1, f"metric {key!r} must be a scalar"
                assert not value.requires_grad, f"metric {key!r} must be detached"

    @pytest.mark.parametrize("dtype_name", ["float32", "float64"])
    def test_dtype_is_kept(self, dtype_name: str) -> None:
        import torch

        dtype = getattr(torch, dtype_name)
        out = self.call(self.make_inputs(dtype=dtype))
        for name, value in out.items():
            if name == "metrics":
                continue
            assert value.dtype == dtype, f"{dtype_name} inputs gave {name} of dtype {value.dtype}"

    def test_masked_positions_do_not_matter(self) -> None:
        import torch

        if self._kind() == "kl":
            pytest.skip("a KL estimator takes no mask: see test_kl_is_local_zero_at_agreement_and_finite")
        inputs = self.make_inputs(dtype=torch.float64)
        clean, dirty = self.call(inputs), self.call(self._garbage(inputs))
        mask = inputs["mask"].bool()
        for name, value in clean.items():
            if name == "metrics":
                continue
            if value.dim() == 2:
                torch.testing.assert_close(dirty[name][mask], value[mask], msg=f"values at masked positions changed {name}")
                assert (value[~mask] == 0).all() and (dirty[name][~mask] == 0).all(), f"{name} must be zero at masked positions"
            else:
                torch.testing.assert_close(dirty[name], value, msg=f"values at masked positions changed {name}")

    def test_padding_columns_do_not_matter(self) -> None:
        import torch

        if not self.padding_invariant:
            pytest.skip("padding_invariant = False")
        if self._kind() == "kl":
            pytest.skip("a KL estimator is per token: see test_kl_is_local_zero_at_agreement_and_finite")
        base = self.make_inputs(dtype=torch.float64, seed=1)
        padded = self.make_inputs(dtype=torch.float64, pad=3, seed=1)
        a, b = self.call(base), self.call(padded)
        width = self.mask().shape[1]
        for name, value in a.items():
            if name == "metrics":
                continue
            other = b[name][:, :width] if value.dim() == 2 else b[name]
            torch.testing.assert_close(other, value, msg=f"3 extra padding columns changed {name}")

    def test_gradients_reach_valid_positions_only(self) -> None:
        import torch

        kind = self._kind()
        if kind == "advantage":
            pytest.skip("advantages are computed without gradient")
        inputs = self.make_inputs(dtype=torch.float64)
        leaf = "loss" if kind == "loss_agg" else "log_probs"
        inputs[leaf] = inputs[leaf].clone().requires_grad_(True)
        out = self.call(inputs)
        total = out["kl"].sum() if kind == "kl" else out["loss"]
        (grad,) = torch.autograd.grad(total, inputs[leaf])
        assert torch.isfinite(grad).all(), f"non-finite gradient with respect to {leaf}"
        if kind != "kl":
            mask = inputs["mask"].bool()
            assert (grad[~mask] == 0).all(), f"masked positions of {leaf} get a gradient"
            assert grad[mask].abs().sum() > 0, f"no gradient reaches {leaf}"

    def test_gradient_at_ratio_one_favours_positive_advantages(self) -> None:
        import torch

        if self._kind() != "policy_loss":
            pytest.skip("policy losses only")
        if not self.gradient_sign:
            pytest.skip("gradient_sign = False")
        inputs = self.make_inputs(dtype=torch.float64, seed=2)
        inputs["log_probs"] = inputs["old_log_probs"].clone().requires_grad_(True)
        # one advantage per row, as outcome rewards give (sequence-level losses such as GMPO assume it)
        inputs["advantages"] = torch.tensor([[1.5], [-0.5], [0.8], [-2.0]], dtype=torch.float64) * inputs["mask"]
        (grad,) = torch.autograd.grad(self.call(inputs)["loss"], inputs["log_probs"])
        mask, adv = inputs["mask"].bool(), inputs["advantages"]
        wrong = mask & (grad * adv > 1e-12)
        assert not wrong.any(), f"at ratio 1 the loss gradient has the sign of the advantage at {wrong.nonzero().tolist()}"
        assert (grad[mask & (adv != 0)] != 0).float().mean() > 0.5, "most advantaged tokens get no gradient at ratio 1"

    def test_kl_is_local_zero_at_agreement_and_finite(self) -> None:
        import torch

        if self._kind() != "kl":
            pytest.skip("KL estimators only")
        inputs = self.make_inputs(dtype=torch.float64, seed=3)
        same = self.call({"log_probs": inputs["log_probs"], "ref_log_probs": inputs["log_probs"].clone()})["kl"]
        torch.testing.assert_close(same, torch.zeros_like(same), msg="the KL estimate must be 0 where the policies agree")
        base = self.call(inputs)["kl"]
        moved = dict(inputs)
        moved["ref_log_probs"] = inputs["ref_log_probs"].clone()
        moved["ref_log_probs"][1, 2] -= 0.7
        diff = (self.call(moved)["kl"] - base).abs() > 0
        assert diff[1, 2] and diff.sum() == 1, "changing one token's log-prob must change that token's estimate only"
        extreme = {"log_probs": torch.full((2, 3), -0.01, dtype=torch.float64, requires_grad=True),
                   "ref_log_probs": torch.tensor([[-60.0, -0.01, -1e-4], [-30.0, -5.0, -80.0]], dtype=torch.float64)}
        kl = self.call(extreme)["kl"]
        (grad,) = torch.autograd.grad(kl.sum(), extreme["log_probs"])
        assert torch.isfinite(kl).all() and torch.isfinite(grad).all(), "non-finite KL or gradient at extreme log-ratios"
