"""Load a config (YAML + ``key=value`` overrides) onto the schema, and validate it.

Errors name the key path at fault: unknown keys get the valid keys of their section and a
"did you mean"; component names are checked against the registries.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlinf_core.config.compat import apply_renames
from rlinf_core.config.schema import COMPONENT_KEYS, RlinfConfig
from rlinf_core.errors import ComponentError, ConfigError, suggestion_text
from rlinf_core.runtime.executors import EXECUTORS
from rlinf_core.runtime.placement import AUTO

HYDRA_HINT = (
    ". (Hydra's 'defaults' list and 'hydra' section are not used by rlinf: merge the files into one YAML and "
    "pass changes as key=value overrides.)"
)


def _check_keys(data: Mapping[str, Any], schema: type, prefix: str, problems: list[str]) -> None:
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            section = prefix[:-1] or "the top level"
            hint = HYDRA_HINT if not prefix and key in ("defaults", "hydra") else ""
            problems.append(
                f"unknown config key '{path}'.{suggestion_text(str(key), names)} "
                f"Valid keys of {section}: {', '.join(names)}{hint}"
            )
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping):
            _check_keys(value, hints[key], f"{path}.", problems)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} must look like key=value, e.g. algorithm.adv_type=grpo")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot parse overrides {list(overrides)}: {exc}") from exc


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    plugins: Any = None,
    notes: list[str] | None = None,
) -> DictConfig:
    """Read a YAML file (or a mapping), apply overrides and RLinf renames, and type-check it.

    Plugins' ``rlinf_configure`` hooks run on the result when ``plugins`` (a
    :class:`~rlinf_core.plugins.PluginSet`) is given. Renames are described in ``notes``.

    Raises:
        ConfigError: every unknown key (with its section's valid keys) and every value of the
            wrong type, naming the key path.
    """
    notes = [] if notes is None else notes
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        data = OmegaConf.to_container(OmegaConf.create(dict(source)))  # type: ignore[assignment]
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = OmegaConf.to_container(OmegaConf.load(path)) or {}  # type: ignore[assignment]
        except Exception as exc:
            raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, not {type(data).__name__}")
    if overrides:
        data = OmegaConf.to_container(OmegaConf.merge(data, parse_overrides(overrides)))  # type: ignore[assignment]
    apply_renames(data, notes)
    problems: list[str] = []
    _check_keys(data, RlinfConfig, "", problems)
    if problems:
        raise ConfigError(problems)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RlinfConfig), data)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"config key '{key}': {getattr(exc, 'msg', exc)}") from exc
    assert isinstance(cfg, DictConfig)
    if plugins is not None:
        plugins.call_each("rlinf_configure", config=cfg)
    return cfg


def validate_config(cfg: DictConfig, plugins: Any) -> None:
    """Check component names against ``plugins.registries`` and run plugins' ``rlinf_validate_config``.

    Raises:
        ConfigError: with one message per problem, each naming its config key.
    """
    problems: list[str] = []
    try:
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg)))
    except OmegaConfBaseException as exc:
        problems.append(f"config key '{getattr(exc, 'full_key', '?')}': cannot resolve interpolation: {exc}")
    for key, kind in COMPONENT_KEYS.items():
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if value is None or (key == "cluster.placement" and value == AUTO):
            continue
        try:
            plugins.registries.get_spec(kind, str(value))
        except ComponentError as exc:
            problems.append(f"{key}: {exc}")
    executor = cfg.cluster.executor
    if executor not in EXECUTORS:
        problems.append(
            f"cluster.executor: unknown executor {executor!r}."
            f"{suggestion_text(executor, EXECUTORS)} Valid: {', '.join(EXECUTORS)}"
        )
    for plugin, messages in plugins.call_each("rlinf_validate_config", config=cfg):
        for message in messages or ():
            problems.append(f"{message} (reported by plugin {plugin!r})")
    if problems:
        raise ConfigError(problems)
