"""rlinf core: the plugin system, registries and configuration of rlinf.

Importing it is cheap and pulls no deep-learning library.
"""

from rlinf_core.components import KINDS, ComponentSpec
from rlinf_core.errors import (
    ComponentConflictError,
    ComponentError,
    ComponentLoadError,
    ConfigError,
    PluginError,
    RlinfError,
    UnknownComponentError,
)
from rlinf_core.hookspecs import hookimpl
from rlinf_core.plugins import PluginSet, discover, get_plugins, reset_plugins

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "ComponentConflictError",
    "ComponentError",
    "ComponentLoadError",
    "ComponentSpec",
    "ConfigError",
    "PluginError",
    "PluginSet",
    "RlinfError",
    "UnknownComponentError",
    "__version__",
    "discover",
    "get_plugins",
    "hookimpl",
    "reset_plugins",
]
