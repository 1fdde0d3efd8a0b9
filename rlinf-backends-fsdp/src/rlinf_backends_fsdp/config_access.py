"""Reading config values the same way in every module of this package (torch-free).

Components receive the whole experiment config: an OmegaConf ``DictConfig`` in a run, nested
dicts or objects in tests. These two helpers hide the difference.
"""

from __future__ import annotations

from typing import Any


def get(config: Any, dotted: str, default: Any = None) -> Any:
    """``config.a.b`` for a DictConfig, nested dicts or objects; ``default`` where missing or null."""
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if hasattr(node, "get") else getattr(node, part, None)
    return default if node is None else node


def plain(value: Any) -> Any:
    """Plain Python containers from an OmegaConf node (other values unchanged)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
