"""Algorithms for rlinf: advantage estimators, policy and value losses, KL estimators and loss
aggregation, as pure functions of torch tensors, registered by name (see ``plugin.py``).

Names are imported lazily, so that plugin discovery (which imports ``rlinf_algos.plugin``) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "rlinf_algos.advantages": ("discounted_returns", "dr_grpo", "gae", "gpg", "grpo", "normalize_advantages", "opo",
                               "reinforce_plus_plus", "reinforce_plus_plus_baseline", "remax", "rloo"),
    "rlinf_algos.aggregation": ("AGGREGATIONS", "aggregate"),
    "rlinf_algos.dapo": ("DynamicSamplingResult", "dynamic_sampling_filter", "overlong_penalty"),
    "rlinf_algos.groups": ("Groups", "as_groups"),
    "rlinf_algos.kl": ("ESTIMATORS", "entropy_from_logits", "kl_loss", "kl_penalized_rewards", "log_probs_from_logits"),
    "rlinf_algos.kl_control": ("AdaptiveKLController", "FixedKLController", "kl_controller", "kl_controller_from_config"),
    "rlinf_algos.losses": ("cispo", "clip_cov", "dppo", "dppo_kl", "dppo_tv", "dro", "gmpo", "gpg_loss", "gspo", "kl_cov", "ppo",
                           "sapo", "value_loss"),
    "rlinf_algos.masked": ("masked_mean", "masked_sum", "masked_var", "masked_whiten"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'rlinf_algos' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
