"""The OmegaConf resolvers RLinf's configs use, so their ``${...}`` values resolve here too.

``${multiply:a,b}``, ``${int_div:a,b}``, ``${subtract:a,b}``, ``${not:x}`` (e.g.
``max_new_tokens: ${subtract:${runner.seq_length},${data.max_prompt_length}}``). A resolver of the
same name registered before (by the user or another library) is left as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from omegaconf import OmegaConf

RESOLVERS: dict[str, Callable[..., Any]] = {
    "multiply": lambda x, y: x * y,
    "int_div": lambda x, y: x // y,
    "subtract": lambda x, y: x - y,
    "not": lambda x: not bool(x),
}


def register_resolvers() -> None:
    """Register :data:`RESOLVERS` with OmegaConf (those not registered yet)."""
    # OmegaConf 2.4 renamed register_new_resolver to register_resolver; 2.3's register_resolver is the old API.
    new_api = "replace" in inspect.signature(OmegaConf.register_resolver).parameters
    register = OmegaConf.register_resolver if new_api else OmegaConf.register_new_resolver
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            register(name, fn)
