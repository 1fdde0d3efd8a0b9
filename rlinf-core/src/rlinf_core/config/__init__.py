"""Configuration: OmegaConf dataclass schemas per section, loading with overrides, validation.

Hydra ``defaults`` composition is in ``compose.py``, migration from RLinf configs in ``migrate.py``.
"""

from rlinf_core.config.compat import RENAMED_KEYS
from rlinf_core.config.loader import load_config, parse_overrides, validate_config
from rlinf_core.config.migrate import Migration, migrate_config
from rlinf_core.config.resolvers import register_resolvers
from rlinf_core.config.schema import COMPONENT_KEYS, RlinfConfig

register_resolvers()

__all__ = ["COMPONENT_KEYS", "RENAMED_KEYS", "Migration", "RlinfConfig", "load_config", "migrate_config",
           "parse_overrides", "validate_config"]
