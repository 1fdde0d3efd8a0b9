"""``TrainingBackendPluginTests``: the :class:`~rlinf_core.interfaces.TrainingBackend` contract of a ``training_backend``.

On a batch in the interface's layout (prompts left-padded, responses right-padded, ``response_mask``)
it checks: ``compute_log_probs`` gives ``(B, R)`` finite log-probs <= 0 without a graph, unchanged by
token ids at padded positions; a ``train_step`` with a policy-gradient loss on positive advantages
returns finite metrics with ``loss`` and raises the batch's log-likelihood; ``export_weights``
yields named tensors; a checkpoint saved and loaded restores the log-probs; offload / onload keep
them. Needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests, plain_to_config

#: (prompt length, response length) of the test rows.
ROWS = ((3, 4), (5, 2), (2, 5), (4, 1))


def make_batch(vocab_size: int, seed: int = 0, pad_id: int = 0, low: int = 1) -> dict[str, Any]:
    """A batch in the TrainingBackend layout, tokens drawn from ``[low, vocab_size)``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    plen, rlen = max(p for p, _ in ROWS), max(r for _, r in ROWS)
    ids = torch.full((len(ROWS), plen + rlen), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    rmask = torch.zeros(len(ROWS), rlen)
    for i, (p, r) in enumerate(ROWS):
        ids[i, plen - p:plen + r] = torch.randint(low, vocab_size, (p + r,), generator=gen)
        attn[i, plen - p:plen + r] = 1
        rmask[i, :r] = 1
    return {"input_ids": ids, "attention_mask": attn, "response_mask": rmask,
            "advantages": torch.ones(len(ROWS), rlen) * rmask}


class PolicyGradientLoss:
    """``-sum(A * log p) / tokens`` over the response tokens (a loss function the flows could pass)."""

    with_entropy = False

    def __call__(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        mask = mb["response_mask"]
        tokens = mb.get("global_tokens") or mask.sum()
        loss = -(outputs["log_probs"] * mb["advantages"] * mask).sum() / tokens
        return loss, {"pg_loss": loss.detach()}


class TrainingBackendPluginTests(PluginTests):
    """Subclass as ``class TestMyBackend(TrainingBackendPluginTests)``; set ``component`` and the model.

    - :meth:`make_config` returns the experiment config (a dict: ``actor.model``, ``actor.optim``,
      ``actor.micro_batch_size``, ...); override it to write a small model under ``workdir``.
      Default: ``config``. Use a learning rate large enough for one step to move log-probs.
    - ``vocab_size``: token ids of the test batch are drawn below it; ``pad_id`` (0).
    """

    kind = "training_backend"
    config: ClassVar[Mapping[str, Any]] = {}
    vocab_size: ClassVar[int] = 16
    pad_id: ClassVar[int] = 0

    def make_config(self, workdir: Path) -> Mapping[str, Any]:
        return self.config

    def make_backend(self, workdir: Path, role: str = "actor") -> Any:
        cfg = self.make_config(workdir)
        if isinstance(cfg, Mapping):
            from rlinf_core.config import load_config

            cfg = load_config(dict(cfg))
        return self.load_target()(plain_to_config(cfg), role=role, rank=0, world_size=1, device="cpu")

    def batch(self, seed: int = 0) -> dict[str, Any]:
        return make_batch(self.vocab_size, seed, self.pad_id)

    def log_probs(self, backend: Any, batch: Mapping[str, Any]) -> Any:
        return backend.compute_log_probs(batch)["log_probs"]

    # ------------------------------------------------------------------ tests

    def test_compute_log_probs_shape_and_no_graph(self, tmp_path: Path) -> None:
        import torch

        backend, batch = self.make_backend(tmp_path), self.batch()
        out = backend.compute_log_probs(batch)
        assert isinstance(out, Mapping) and "log_probs" in out, "compute_log_probs returns {'log_probs': (B, R)}"
        lp, mask = out["log_probs"], batch["response_mask"].bool()
        assert tuple(lp.shape) == tuple(mask.shape), f"log_probs must be (B, R) = {tuple(mask.shape)}, got {tuple(lp.shape)}"
        assert not lp.requires_grad, "compute_log_probs must not build a graph"
        assert torch.isfinite(lp[mask]).all() and (lp[mask] <= 1e-6).all(), "log-probs of response tokens must be finite and <= 0"

    def test_padding_tokens_do_not_change_log_probs(self, tmp_path: Path) -> None:
        import torch

        backend, batch = self.make_backend(tmp_path), self.batch()
        junk = dict(batch)
        junk["input_ids"] = batch["input_ids"].where(batch["attention_mask"].bool(),
                                                     torch.full_like(batch["input_ids"], self.vocab_size - 1))
        mask = batch["response_mask"].bool()
        torch.testing.assert_close(self.log_probs(backend, junk)[mask], self.log_probs(backend, batch)[mask],
                                   msg="token ids at padded positions (attention_mask 0) changed the log-probs")

    def test_train_step_raises_the_likelihood_of_positive_advantages(self, tmp_path: Path) -> None:
        import math

        backend, batch = self.make_backend(tmp_path), self.batch()
        mask = batch["response_mask"].bool()
        before = self.log_probs(backend, batch)[mask].mean()
        metrics = backend.train_step(batch, PolicyGradientLoss(), global_tokens=int(mask.sum()), global_seqs=len(ROWS))
        assert isinstance(metrics, Mapping) and "loss" in metrics, f"train_step returns metrics with 'loss', got {metrics!r}"
        bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)}
        assert not bad, f"train_step metrics must be finite floats: {bad}"
        after = self.log_probs(backend, batch)[mask].mean()
        assert after > before, (f"one step on advantages of +1 must raise the mean log-prob "
                                f"({float(before):.4f} -> {float(after):.4f})")

    def test_export_weights_yields_named_tensors(self, tmp_path: Path) -> None:
        import torch

        pairs = list(self.make_backend(tmp_path).export_weights())
        assert pairs, "export_weights() yielded nothing on rank 0"
        names = [n for n, _ in pairs]
        assert all(isinstance(n, str) for n in names) and len(set(names)) == len(names), "names must be unique strings"
        assert all(isinstance(t, torch.Tensor) for _, t in pairs), "export_weights() must yield (name, tensor) pairs"

    def test_checkpoint_round_trip_restores_the_model(self, tmp_path: Path) -> None:
        import torch

        backend, batch = self.make_backend(tmp_path), self.batch()
        saved = self.log_probs(backend, batch)
        backend.save_checkpoint(str(tmp_path / "ckpt"))
        backend.train_step(batch, PolicyGradientLoss())
        moved = self.log_probs(backend, batch)
        mask = batch["response_mask"].bool()
        assert not torch.allclose(moved[mask], saved[mask]), "the train step changed nothing: the check cannot bite"
        backend.load_checkpoint(str(tmp_path / "ckpt"))
        torch.testing.assert_close(self.log_probs(backend, batch), saved, msg="load_checkpoint did not restore the model")

    def test_offload_and_onload_keep_the_model(self, tmp_path: Path) -> None:
        import torch

        backend, batch = self.make_backend(tmp_path), self.batch()
        before = self.log_probs(backend, batch)
        backend.offload()
        backend.onload()
        torch.testing.assert_close(self.log_probs(backend, batch), before, msg="offload() then onload() changed the model")

    def test_reference_role_is_frozen(self, tmp_path: Path) -> None:
        try:
            ref = self.make_backend(tmp_path, role="reference")
        except (ValueError, TypeError) as exc:
            pytest.skip(f"no reference role: {exc}")
        model = getattr(ref, "model", None)
        if model is None or not hasattr(model, "parameters"):
            pytest.skip("the backend has no .model to inspect")
        assert not any(p.requires_grad for p in model.parameters()), "role='reference' must be frozen (requires_grad False)"
