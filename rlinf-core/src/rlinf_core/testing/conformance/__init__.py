"""Conformance test classes, one module per component kind; see :mod:`rlinf_core.testing`.

Each class is a plain class (not collected by pytest until you subclass it as ``Test...``) whose
``test_*`` methods check one interface of :mod:`rlinf_core.interfaces` on your component. Set
``component`` (the registered name, or ``plugin:name``) and the class's other attributes; override
a ``make_*`` method where building the component needs more than a config.
"""

from rlinf_core.testing.conformance.algorithm import AlgorithmPluginTests
from rlinf_core.testing.conformance.backend import TrainingBackendPluginTests
from rlinf_core.testing.conformance.base import PluginTests
from rlinf_core.testing.conformance.engine import RolloutEnginePluginTests
from rlinf_core.testing.conformance.env import EnvPluginTests
from rlinf_core.testing.conformance.flow import FlowPluginTests
from rlinf_core.testing.conformance.placement import PlacementPluginTests
from rlinf_core.testing.conformance.policy import PolicyPluginTests
from rlinf_core.testing.conformance.reward import RewardPluginTests

__all__ = [
    "AlgorithmPluginTests",
    "EnvPluginTests",
    "FlowPluginTests",
    "PlacementPluginTests",
    "PluginTests",
    "PolicyPluginTests",
    "RewardPluginTests",
    "RolloutEnginePluginTests",
    "TrainingBackendPluginTests",
]
