"""Testing helpers for rlinf and for plugins built on it.

Conformance test classes (:mod:`rlinf_core.testing.conformance`) that a plugin author subclasses
in their own pytest suite, setting a few attributes::

    from rlinf_core.testing import EnvPluginTests

    class TestMySim(EnvPluginTests):
        component = "mysim"                      # the name your plugin registers
        config = {"env_id": "reach", "max_episode_steps": 50}

``pytest`` then runs every check of the ``env`` interface on your component. First-party plugins
use the same classes (``tests/conformance/``). The names are loaded lazily: importing this package
imports neither pytest nor torch (``demo_flow``, used by the runtime tests and benchmarks, needs
neither pytest nor the classes).

``demo_flow``: a small env / rollout / actor flow with real compute (needs torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PluginTests": "rlinf_core.testing.conformance.base",
    "EnvPluginTests": "rlinf_core.testing.conformance.env",
    "PolicyPluginTests": "rlinf_core.testing.conformance.policy",
    "RolloutEnginePluginTests": "rlinf_core.testing.conformance.engine",
    "TrainingBackendPluginTests": "rlinf_core.testing.conformance.backend",
    "AlgorithmPluginTests": "rlinf_core.testing.conformance.algorithm",
    "PlacementPluginTests": "rlinf_core.testing.conformance.placement",
    "RewardPluginTests": "rlinf_core.testing.conformance.reward",
    "FlowPluginTests": "rlinf_core.testing.conformance.flow",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlinf_core.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
