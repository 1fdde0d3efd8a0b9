"""RLinf key names we accept and rename, so that RLinf users' YAMLs load.

Each entry maps an RLinf key path to ours. Loading a config that uses one renames it and records
a note, which ``rlinf config validate`` prints. Component *values* RLinf uses (``reinpp``,
``low_var_kl``, ``actor_critic``) are aliases registered by the components themselves.
"""

from __future__ import annotations

from typing import Any

RENAMED_KEYS: dict[str, str] = {
    "algorithm.kl_penalty_type": "algorithm.kl_penalty",
    "rollout.generation_backend": "rollout.rollout_backend",
    "env.train.env_type": "env.train.simulator_type",
    "env.eval.env_type": "env.eval.simulator_type",
}


def apply_renames(data: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Rename RLinf keys in a plain nested dict in place; append one note per rename."""
    for old, new in RENAMED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        node: Any = data
        for part in old_parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = data
        for part in new_parents:
            target = target.setdefault(part, {})
        if new_leaf in target and target[new_leaf] != value:
            notes.append(f"both {old} ({value!r}) and {new} ({target[new_leaf]!r}) are set; using {new}")
            continue
        target[new_leaf] = value
        notes.append(f"RLinf key {old} is read as {new}")
    return data
