"""Reading values from a config the same way everywhere (torch-free).

Components receive the whole experiment config: an OmegaConf ``DictConfig`` in a run, nested dicts
or plain objects in tests and third-party code. These helpers hide the difference.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def get(config: Any, dotted: str, default: Any = None) -> Any:
    """``config.a.b`` for ``"a.b"`` in a DictConfig, nested mappings or objects; ``default`` where a
    part is missing or the value is null."""
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if hasattr(node, "get") else getattr(node, part, None)
    return default if node is None else node


def plain(value: Any) -> Any:
    """Plain Python containers from an OmegaConf node, resolved (other values unchanged)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def path_of(section: Any, default: str) -> str:
    """The dotted path of a config section: ``"env.eval"`` for ``cfg.env.eval`` (an OmegaConf node
    knows where it sits), ``default`` for a plain mapping or the root.

    Components that are handed one section (an env gets ``env.train`` or ``env.eval``) use it to
    name their keys in messages and to read their options with ``read_options(cls, section, ...)``.
    """
    try:
        full = section._get_full_key("")  # OmegaConf's node API; it has no public equivalent
    except Exception:  # noqa: BLE001 - a plain mapping, an object, a detached node
        return default
    return full if isinstance(full, str) and full else default
