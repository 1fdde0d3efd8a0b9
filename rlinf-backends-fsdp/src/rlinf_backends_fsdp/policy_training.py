"""Policy mode of the ``fsdp`` backend: an embodied :class:`~rlinf_core.interfaces.Policy` (``mlp``,
``cnn``, a VLA) trained with the same optimizer, schedule, clipping, FSDP2 sharding and DCP checkpoints
as a language model.

The backend is in policy mode when ``actor.model.model_type`` names a ``model`` component whose class
has ``sample`` (the :class:`~rlinf_core.interfaces.Policy` protocol). The policy is built through the
plugin registry as ``cls(actor.model, observation_space=..., action_space=...)`` with the env's spaces,
which the flow passes to the backend's constructor.

A batch in policy mode holds one row per env step (or action chunk); every value is split on its
first dimension, nested dicts and lists included (see ``interfaces.TrainingBackend``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rlinf_backends_fsdp.config_access import get as _get

#: Methods of a policy that run its parameters: FSDP2 all-gathers the weights around each call.
FORWARD_METHODS = ("evaluate", "sample", "values")


def policy_class(config: Any, section: str = "actor") -> type | None:
    """The Policy class ``<section>.model.model_type`` names, or ``None`` (a language model, or no name).

    An unknown name is left to the language-model path, which reports what it is missing.
    """
    name = _get(config, f"{section}.model.model_type")
    if not name:
        return None
    from rlinf_core.plugins import get_plugins

    registries = get_plugins(strict=False).registries
    try:
        registries.get_spec("model", str(name))
    except Exception:  # noqa: BLE001 - not a registered model component: a Hugging Face model_type
        return None
    cls = registries.load("model", str(name))
    return cls if hasattr(cls, "sample") and hasattr(cls, "evaluate") else None


def build_policy(cls: type, config: Any, section: str, *, observation_space: Any, action_space: Any,
                 seed: int) -> nn.Module:
    """``cls(<section>.model, observation_space=..., action_space=...)`` with parameters drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = cls(_get(config, f"{section}.model"), observation_space=observation_space, action_space=action_space)
    if not isinstance(policy, nn.Module):
        raise TypeError(f"{section}.model.model_type: {cls.__name__} is not a torch.nn.Module; the fsdp backend "
                        "trains torch modules")
    return policy


def shard_policy(policy: nn.Module, **fully_shard_kwargs: Any) -> nn.Module:
    """FSDP2: each direct child with parameters is a unit, then the root; the policy's methods that run
    its parameters (:data:`FORWARD_METHODS`) gather them as ``forward`` would."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for child in policy.children():
        if any(p.requires_grad for p in child.parameters()):
            fully_shard(child, **fully_shard_kwargs)
    fully_shard(policy, **fully_shard_kwargs)
    for method in FORWARD_METHODS:
        if callable(getattr(policy, method, None)):
            register_fsdp_forward_method(policy, method)
    return policy


def num_rows(tree: Any) -> int:
    """Rows of a batch: the first dimension of its first tensor or array (or length of its first list)."""
    if isinstance(tree, (torch.Tensor, np.ndarray)):
        return int(tree.shape[0]) if tree.ndim else -1
    if isinstance(tree, Mapping):
        for value in tree.values():
            n = num_rows(value)
            if n >= 0:
                return n
        return -1
    if isinstance(tree, (list, tuple)):
        return len(tree)
    return -1


def take_rows(tree: Any, index: slice | torch.Tensor, rows: int) -> Any:
    """The rows ``index`` of every tensor, numpy array or list with ``rows`` rows in ``tree`` (nested
    dicts too); scalars and other values are kept as they are."""
    if isinstance(tree, torch.Tensor):
        return tree[index] if tree.dim() and tree.shape[0] == rows else tree
    if isinstance(tree, np.ndarray):
        if not (tree.ndim and tree.shape[0] == rows):
            return tree
        return tree[index] if isinstance(index, slice) else tree[index.cpu().numpy()]
    if isinstance(tree, Mapping):
        return {k: take_rows(v, index, rows) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)) and len(tree) == rows:
        if isinstance(index, slice):
            return list(tree[index])
        return [tree[int(i)] for i in index.tolist()]
    return tree


def to_device(tree: Any, device: torch.device) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, Mapping):
        return {k: to_device(v, device) for k, v in tree.items()}
    return tree


def evaluate(policy: nn.Module, mb: Mapping[str, Any]) -> dict[str, Any]:
    """``policy.evaluate(obs, actions, extras)`` of one micro-batch, outputs as they come (with gradient)."""
    out = policy.evaluate(mb["obs"], mb["actions"], mb.get("extras") or {})
    missing = [k for k in ("log_probs", "entropy") if k not in out]
    if missing:
        raise ValueError(f"{type(policy).__name__}.evaluate returned {sorted(out)}; the Policy protocol needs "
                         "log_probs, entropy and values")
    return dict(out)
