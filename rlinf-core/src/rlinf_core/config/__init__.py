"""Configuration: OmegaConf dataclass schemas per section, loading with overrides, validation."""

from rlinf_core.config.compat import RENAMED_KEYS
from rlinf_core.config.loader import load_config, parse_overrides, validate_config
from rlinf_core.config.schema import COMPONENT_KEYS, RlinfConfig

__all__ = ["COMPONENT_KEYS", "RENAMED_KEYS", "RlinfConfig", "load_config", "parse_overrides", "validate_config"]
