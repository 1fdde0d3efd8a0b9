"""Loss functions handed to ``TrainingBackend.train_step`` (the ``LossFn`` of ``interfaces.py``).

Each is a small picklable object (it travels to Ray ranks) that names its components and resolves
them through the plugin registries on first use, so third-party losses work the same way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _load(kind: str, name: str) -> Callable[..., Any]:
    from rlinf_core.plugins import get_plugins

    return get_plugins(strict=False).registries.load(kind, name)


@functools.lru_cache(maxsize=256)
def _accepted(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword names ``fn`` takes (``None`` when it takes ``**kw``), looked up once per function."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)


def call_accepting(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments its signature accepts (all of them if it takes ``**kw``)."""
    try:
        accepted = _accepted(fn)
    except TypeError:  # an unhashable callable: no cache
        accepted = _accepted.__wrapped__(fn)
    if accepted is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return fn(**kwargs)


def _counts(mb: Mapping[str, Any]) -> dict[str, Any]:
    return {"global_tokens": mb.get("global_tokens"), "global_seqs": mb.get("global_seqs")}


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


@dataclass
class PolicyObjective:
    """Policy loss (``algorithm.loss_type``) aggregated by ``algorithm.loss_agg_func``, plus the KL
    loss (``use_kl_loss``) and the entropy bonus. Reports entropy and the loss's own metrics."""

    loss_type: str = "ppo"
    loss_agg: str = "token-mean"
    clip_ratio_low: float = 0.2
    clip_ratio_high: float | None = None
    clip_ratio_c: float | None = None
    sequence_ratio: bool = False
    kl: str | None = None
    kl_beta: float = 0.0
    entropy_bonus: float = 0.0
    max_tokens: int | None = None
    #: ``train_step`` computes ``entropy`` for loss functions that set this (see ``interfaces.LossFn``).
    with_entropy: bool = True

    @property
    def entropy_grad(self) -> bool:
        """Whether the loss is differentiated through ``entropy`` (only the entropy bonus is): when not,
        a backend may compute the entropy without gradient (it is then a metric only)."""
        return bool(self.entropy_bonus)

    def __call__(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from rlinf_algos import aggregate, kl_loss, masked_mean

        mask = mb["response_mask"].bool()
        counts = _counts(mb)
        loss, metrics = call_accepting(
            _load("policy_loss", self.loss_type), log_probs=outputs["log_probs"], old_log_probs=mb["old_log_probs"],
            advantages=mb["advantages"], mask=mask, clip_ratio_low=self.clip_ratio_low, clip_ratio_high=self.clip_ratio_high,
            clip_ratio_c=self.clip_ratio_c, sequence_ratio=self.sequence_ratio, loss_agg=self.loss_agg,
            max_tokens=self.max_tokens, **counts)
        metrics = _floats(metrics)
        metrics["policy_loss"] = float(loss.detach())
        if self.kl is not None and self.kl_beta > 0:
            kl = _load("kl", self.kl)(outputs["log_probs"], mb["ref_log_probs"])
            loss = loss + kl_loss(kl, mask, self.kl_beta, self.loss_agg, **counts)
            metrics["kl"] = float(masked_mean(kl.detach(), mask))
        entropy = outputs.get("entropy")
        if entropy is not None:
            metrics["entropy"] = float(masked_mean(entropy.detach(), mask))
            if self.entropy_bonus:
                loss = loss - self.entropy_bonus * aggregate(entropy, mask, self.loss_agg, **counts)
        return loss, metrics


@dataclass
class ValueObjective:
    """The clipped value loss of the critic (``algorithm.value_clip`` / ``huber_delta``)."""

    loss_agg: str = "token-mean"
    value_clip: float | None = None
    huber_delta: float | None = None

    def __call__(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from rlinf_algos import value_loss

        loss, metrics = value_loss(values=outputs["values"], old_values=mb["old_values"], returns=mb["returns"],
                                   mask=mb["response_mask"].bool(), value_clip=self.value_clip, huber_delta=self.huber_delta,
                                   loss_agg=self.loss_agg, **_counts(mb))
        return loss, {**_floats(metrics), "value_loss": float(loss.detach())}


@dataclass
class SupervisedObjective:
    """Negative log-likelihood of the response tokens (token mean): the format warm start."""

    def __call__(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from rlinf_algos import aggregate

        mask = mb["response_mask"].bool()
        loss = aggregate(-outputs["log_probs"], mask, "token-mean", **_counts(mb))
        return loss, {"sft_loss": float(loss.detach())}
