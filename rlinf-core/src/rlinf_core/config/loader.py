"""Load a config (YAML + ``key=value`` overrides) onto the schema, and validate it.

Errors name the key path at fault, one line each: unknown keys get the valid keys of their
section and a "did you mean"; values outside their range (``ranges.py``) name it; YAML errors give
the line and column (or the override). ``validate_config`` adds what needs the installed plugins:
component names, interpolations, and ``cluster.component_placement`` as the Runtime will read it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from rlinf_core.config.checks import cross_field_problems, interpolation_problems, placement_problems
from rlinf_core.config.compat import apply_renames, get_path
from rlinf_core.config.compose import compose_file, has_defaults
from rlinf_core.config.migrate import rlinf_only_keys
from rlinf_core.config.options import chosen_components, option_problems, options_path
from rlinf_core.config.ranges import range_problems
from rlinf_core.config.schema import COMPONENT_KEYS, RlinfConfig
from rlinf_core.config.sections import check_keys, first_line
from rlinf_core.errors import ComponentError, ConfigError, suggestion_text
from rlinf_core.runtime.executors import EXECUTORS
from rlinf_core.runtime.placement import AUTO

HYDRA_HINT = (
    ". (A Hydra 'defaults' list is composed only when the config is a file: pass its path. The 'hydra' section "
    "configures Hydra itself; an RLinf config goes through `rlinf config migrate FILE -o NEW.yaml` first.)"
)


def _yaml_error(exc: BaseException, position: bool = True) -> str:
    """One line from a YAML error: ``line L, column C: problem (context)``; other errors: their first line."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or problem is None:
        return first_line(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if position else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def _libyaml_error(text: str) -> Exception | None:
    """The syntax error libyaml (PyYAML's C parser) finds in ``text``, if any: the same wording whichever
    parser the installed OmegaConf uses (2.3 parses with pure-Python PyYAML, 2.4 with libyaml)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return None
    try:
        yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        return exc
    return None


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict (values parsed as YAML)."""
    merged = OmegaConf.create()
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} must look like key=value, e.g. algorithm.adv_type=grpo")
        key, value = item.split("=", 1)
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"override {item!r}: {first_line(exc)}") from exc
        except Exception as exc:  # a YAML error in the value
            exc = _libyaml_error(value) or exc
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {_yaml_error(exc, position=False)}; "
                              f"quote it to pass a string: {key}='{value}'") from exc
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def _merge_into(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Deep-merge ``update`` into ``base``: mappings merge key by key, any other value replaces."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = value


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping a config file holds; an empty file, bad YAML or a non-mapping is a ConfigError."""
    name = repr(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {name}: {first_line(exc)}") from exc
    if not [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
            and ln.strip() not in ("---", "...")]:
        raise ConfigError(f"config file {name} is empty; write the sections to set (e.g. 'cluster: "
                          "{executor: inline}'), or '{}' to use every default")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as exc:
        kind = str(exc).partition("Invalid loaded object type: ")[2]
        if kind:  # OmegaConf refuses a YAML scalar
            raise ConfigError(f"config file {name} must hold a mapping of sections (cluster:, actor:, ...), "
                              f"not a {kind}") from exc
        raise ConfigError(f"config file {name} is not valid YAML: {_yaml_error(_libyaml_error(text) or exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {name} must hold a mapping of sections (cluster:, actor:, ...), "
                          f"not a {type(data).__name__}")
    return data  # type: ignore[return-value]


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    plugins: Any = None,
    notes: list[str] | None = None,
) -> DictConfig:
    """Read a YAML file (or a mapping), apply overrides and RLinf renames, and type-check it.

    A file with a Hydra ``defaults`` list is composed first (``compose.py``; needs the ``[hydra]``
    extra). An RLinf config that fails for RLinf-only keys says to run ``rlinf config migrate``.

    Plugins' ``rlinf_configure`` hooks run on the result when ``plugins`` (a
    :class:`~rlinf_core.plugins.PluginSet`) is given. Renames are described in ``notes``.

    Raises:
        ConfigError: every unknown key (with its section's valid keys), every value of the
            wrong type or outside its range, naming the key path; YAML errors with their line.
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
        data = _read_yaml(path)
        if has_defaults(data):
            data = compose_file(path)
            notes.append(f"composed {str(path)!r} from its Hydra defaults list")
    if overrides:
        _merge_into(data, parse_overrides(overrides))
    apply_renames(data, notes)
    component_sections = _component_sections(data, plugins)
    problems: list[str] = []
    check_keys(data, RlinfConfig, "", problems, allowed=component_sections,
               hints={"defaults": HYDRA_HINT, "hydra": HYDRA_HINT})
    if problems:
        if not isinstance(source, Mapping) and source is not None and rlinf_only_keys(data):
            problems.append(f"{str(source)!r} looks like an RLinf config: `rlinf config migrate {source} -o NEW.yaml` "
                            "writes it with rlinf's keys and reports what happens to each key")
        raise ConfigError(problems)
    own = {path: _pop_path(data, path) for path in component_sections}  # not in the schema: added after the merge
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(RlinfConfig), data)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"config key '{key}': {first_line(exc)}" if key else f"config: {first_line(exc)}") from exc
    assert isinstance(cfg, DictConfig)
    for path, value in own.items():
        parent, _, key = path.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        with open_dict(node):
            node[key] = value
    problems = range_problems(cfg, RlinfConfig) + cross_field_problems(cfg)
    if problems:
        raise ConfigError(problems)
    if plugins is not None:
        plugins.call_each("rlinf_configure", config=cfg)
    return cfg


def _component_sections(data: dict[str, Any], plugins: Any) -> set[str]:
    """Paths of the option sections (``options.py``) of the components ``data`` chooses that the
    schema does not hold (a third-party engine's ``rollout.<name>``): accepted when given."""
    if plugins is None:
        return set()
    paths = set()
    for key, spec in chosen_components(lambda k: get_path(data, k), plugins.registries):
        path = options_path(key, spec)
        if get_path(data, path) is not None and not _in_schema(path):
            paths.add(path)
    return paths


def _in_schema(path: str) -> bool:
    schema: Any = RlinfConfig
    for part in path.split("."):
        fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
        if fields is None:
            return True  # under a free-form dict field
        if part not in fields:
            return False
        schema = typing.get_type_hints(schema)[part]
    return True


def _pop_path(data: dict[str, Any], path: str) -> Any:
    parent, _, key = path.rpartition(".")
    return (get_path(data, parent) if parent else data).pop(key)


def validate_config(cfg: DictConfig, plugins: Any, notes: list[str] | None = None) -> None:
    """Check what the run would hit: ``${...}`` interpolations, component names against
    ``plugins.registries``, ``cluster.component_placement`` (with the Runtime's parser and the
    placement strategy), then plugins' ``rlinf_validate_config``. Limits of the check go to ``notes``.

    Raises:
        ConfigError: with one message per problem, each naming its config key.
    """
    problems = interpolation_problems(cfg)
    unresolved = bool(problems)
    for key, kind in COMPONENT_KEYS.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=False)
        except OmegaConfBaseException:  # an unresolvable interpolation, reported above
            continue
        if value is None or (key == "cluster.placement" and value == AUTO):
            continue
        try:
            plugins.registries.get_spec(kind, str(value))
        except ComponentError as exc:
            problems.append(f"{key}: {exc}")
    problems += placement_problems(cfg, plugins, notes)
    if not unresolved:
        problems += option_problems(cfg, plugins.registries)
    executor = OmegaConf.select(cfg, "cluster.executor", throw_on_resolution_failure=False)
    if executor is not None and executor not in EXECUTORS:
        problems.append(
            f"cluster.executor: unknown executor {executor!r}."
            f"{suggestion_text(executor, EXECUTORS)} Valid: {', '.join(EXECUTORS)}"
        )
    if unresolved:  # plugins' checks would read the unresolvable values
        raise ConfigError(problems)
    for plugin, messages in plugins.call_each("rlinf_validate_config", config=cfg):
        for message in messages or ():
            problems.append(f"{message} (reported by plugin {plugin!r})")
    if problems:
        raise ConfigError(problems)
