"""Config sections that components declare: ``ComponentSpec(..., options="pkg.module:Options")``.

A component chosen by a config key (:data:`~rlinf_core.config.schema.COMPONENT_KEYS`) owns one
section beside that key: the key's parent plus the spec's ``options_key``, which defaults to the
component's name (envs: ``init_params``; models: ``config``)::

    rollout.rollout_backend: vllm          -> rollout.vllm
    actor.training_backend: megatron       -> actor.megatron
    env.train.simulator_type: maniskill    -> env.train.init_params
    runner.task_type: my_flow              -> runner.my_flow

``rlinf config validate`` (and ``rlinf run``, before anything starts) checks that section against
the component's options class with the same errors as rlinf's own sections: unknown keys with a
"did you mean" and the valid keys, wrong types, out-of-range values, each naming the full key. A
third-party component's section needs no place in rlinf's schema: it is accepted because the
config chooses that component.

An **options class** is a dataclass whose fields are the section's keys:

- it lives in a module that imports nothing heavy (validation imports it; no torch, no simulator);
- field types are checked as OmegaConf does for rlinf's schema (``int``, ``float``, ``bool``,
  ``str``, ``X | None``, ``list[...]``, ``dict[str, Any]``, nested dataclasses as sub-sections);
- ranges come from :func:`~rlinf_core.config.ranges.bounded` (``lr: float = bounded(1e-3, gt=0)``),
  documentation from ``#:`` comments above each field;
- an optional method ``problems(self, path: str) -> list[str]`` adds checks types and ranges cannot
  express (a choice among names, two keys that must agree), one line per problem naming the key.

At build time the component reads its section with :func:`read_options` (``read_options(MyOptions,
config, "rollout.fastgen")``; an env handed ``cfg.env.eval``: ``read_options(MySimOptions, section,
"init_params")``), so what validation accepts is exactly what the run gets.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from typing import Any

from rlinf_core.components import ComponentSpec
from rlinf_core.config.access import get, path_of
from rlinf_core.config.schema import COMPONENT_KEYS
from rlinf_core.config.sections import read_section, section_problems
from rlinf_core.errors import ComponentError, ConfigError

#: Where a component's options live under the parent of the key that chose it, when its spec gives
#: no ``options_key``: these kinds use a fixed key, every other kind the component's name.
DEFAULT_OPTIONS_KEY: dict[str, str] = {"env": "init_params", "model": "config"}


def options_key(spec: ComponentSpec) -> str:
    """The key of ``spec``'s section under the parent of its choosing key."""
    return spec.options_key or DEFAULT_OPTIONS_KEY.get(spec.kind, spec.name)


def options_path(choice_key: str, spec: ComponentSpec) -> str:
    """The dotted path of the section of ``spec`` when ``choice_key`` chose it."""
    parent = choice_key.rpartition(".")[0]
    return f"{parent}.{options_key(spec)}" if parent else options_key(spec)


def chosen_components(select: Callable[[str], Any], registries: Any) -> Iterator[tuple[str, ComponentSpec]]:
    """``(choosing key, spec)`` for every component the config names by a registered name.

    ``select(key)`` reads a dotted key (``None`` when absent). Names that are not registered, or
    not plain strings (an unresolved ``${...}``), are skipped: ``validate_config`` reports them.
    """
    for key, kind in COMPONENT_KEYS.items():
        try:
            value = select(key)
        except Exception:  # noqa: BLE001 - an interpolation that does not resolve: reported elsewhere
            continue
        if not isinstance(value, str) or "${" in value:
            continue
        try:
            yield key, registries.get_spec(kind, value)
        except ComponentError:
            continue


def load_options_class(spec: ComponentSpec) -> type:
    """Import the options class a spec declares.

    Raises:
        ConfigError: the module does not import or the attribute is not a dataclass, naming the
            plugin and distribution that registered the component.
    """
    assert spec.options is not None
    module_name, _, attr_path = spec.options.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            obj = getattr(obj, attr)
    except Exception as exc:  # noqa: BLE001 - any import-time failure is the plugin's, reported as such
        raise ConfigError(f"{spec.kind} {spec.name!r} from {spec.origin}: its options class {spec.options!r} "
                          f"does not load ({type(exc).__name__}: {exc}); report it to the plugin's authors") from exc
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ConfigError(f"{spec.kind} {spec.name!r} from {spec.origin}: options {spec.options!r} is not a dataclass; "
                          "report it to the plugin's authors")
    return obj


def option_problems(cfg: Any, registries: Any) -> list[str]:
    """Every problem in the option sections of the components ``cfg`` chooses."""
    problems: list[str] = []
    for key, spec in chosen_components(lambda k: get(cfg, k), registries):
        if spec.options is None:
            continue
        try:
            cls = load_options_class(spec)
        except ConfigError as exc:
            problems += exc.problems
            continue
        path = options_path(key, spec)
        problems += section_problems(get(cfg, path), cls, path)
    return problems


def read_options(options: type, config: Any, path: str, *, where: str | None = None) -> Any:
    """The options dataclass ``options`` filled from the section at ``path`` of ``config``; absent or
    null keys take their defaults.

    ``config`` is the whole config or one of its sections (an env is handed ``cfg.env.eval`` and
    reads ``path="init_params"``), a DictConfig, nested mappings or an object. Messages name the
    full key: the section's own path (an OmegaConf node knows it; for a plain mapping, ``where``)
    followed by ``path``.

    Raises:
        ConfigError: unknown keys, wrong types, values out of range, the class's own
            ``problems(path)``: one line each, naming the full key.
    """
    prefix = path_of(config, where or "")
    return read_section(get(config, path), options, f"{prefix}.{path}" if prefix else path)
