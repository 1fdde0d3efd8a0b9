"""Checking a config section against a dataclass schema: unknown keys, types, ranges.

Used for rlinf's own sections (:class:`~rlinf_core.config.schema.RlinfConfig`) and for the option
sections components declare (``options.py``), so both give the same one-line errors: the full key
path, a "did you mean" and the section's valid keys.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlinf_core.config.access import plain
from rlinf_core.config.ranges import range_problems
from rlinf_core.errors import ConfigError, suggestion_text


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (OmegaConf appends a multi-line context)."""
    lines = str(getattr(exc, "msg", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_keys(data: dict[str, Any], schema: type, prefix: str, problems: list[str], *,
               allowed: Collection[str] = (), hints: Mapping[str, str] | None = None) -> None:
    """Append one line to ``problems`` per unknown key of ``data`` (nested sections too).

    ``prefix`` is the section's dotted path with a trailing dot (``""`` at the top); ``allowed``
    holds full dotted paths accepted although ``schema`` lacks them (sections of chosen components);
    ``hints`` maps full paths to text appended to their unknown-key line. A dataclass-typed key given
    ``null`` is removed from ``data`` (``actor:`` with nothing under it: the section's defaults).
    """
    types = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    for key in [k for k in names if k in data and data[k] is None and dataclasses.is_dataclass(types[k])]:
        del data[key]
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            if path in allowed:
                continue
            section = prefix[:-1] or "the top level"
            problems.append(f"unknown config key '{path}'.{suggestion_text(str(key), names)} "
                            f"Valid keys of {section}: {', '.join(names)}{(hints or {}).get(path, '')}")
        elif dataclasses.is_dataclass(types[key]) and isinstance(value, dict):
            check_keys(value, types[key], f"{path}.", problems, allowed=allowed, hints=hints)
        elif dataclasses.is_dataclass(types[key]) and not (isinstance(value, str) and "${" in value):
            keys = ", ".join(f.name for f in dataclasses.fields(types[key]))
            problems.append(f"config key '{path}' is a section and must hold keys, not {value!r}. Valid keys of {path}: {keys}")


def _writable(node: DictConfig) -> None:
    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            _writable(child)


def _merged(schema: type, raw: Mapping[str, Any], path: str) -> tuple[Any, list[str]]:
    base = OmegaConf.structured(schema)
    _writable(base)  # a frozen dataclass gives read-only nodes
    try:
        merged = OmegaConf.merge(base, dict(raw))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        return None, [f"config key '{path}.{key}': {first_line(exc)}" if key else f"{path}: {first_line(exc)}"]
    return merged, range_problems(merged, schema, f"{path}.")


def section_problems(value: Any, schema: type, path: str) -> list[str]:
    """Every problem of the section ``value`` (a mapping, a DictConfig or ``None``) at ``path``
    against the dataclass ``schema``: unknown keys, values of the wrong type, values out of range,
    then what the schema's own ``problems(path)`` method reports (cross-field checks, choices)."""
    raw = plain(value)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return [f"config key '{path}' is a section and must hold keys, not {raw!r}"]
    problems: list[str] = []
    check_keys(dict(raw), schema, f"{path}.", problems)  # a misspelt key is unknown even when null
    if problems:
        return problems
    raw = {k: v for k, v in raw.items() if v is not None}  # null: the default
    merged, problems = _merged(schema, raw, path)
    if problems:
        return problems
    instance = OmegaConf.to_object(merged)
    own = getattr(instance, "problems", None)
    return list(own(path)) if callable(own) else []


def read_section(value: Any, schema: type, path: str) -> Any:
    """The dataclass ``schema`` filled from the section ``value`` at ``path`` (missing keys: the
    defaults; ``null`` values: the defaults).

    Raises:
        ConfigError: every problem :func:`section_problems` finds, one line each.
    """
    problems = section_problems(value, schema, path)
    if problems:
        raise ConfigError(problems)
    merged, _ = _merged(schema, {k: v for k, v in (plain(value) or {}).items() if v is not None}, path)
    return OmegaConf.to_object(merged)
