"""Checks of a loaded config beyond keys and types: rules between keys, ``${...}`` interpolations,
and ``cluster.component_placement`` (parsed by the Runtime's own placement code).

Each returns one line per problem, naming the key at fault. Field ranges are in ``ranges.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlinf_core.config.precision import precision_problem
from rlinf_core.errors import ComponentError, ConfigError
from rlinf_core.runtime.placement import AUTO, KEY, parse_component_placement, resolve_placement


def cross_field_problems(cfg: DictConfig) -> list[str]:
    """Rules that tie two keys together, and value checks shared by the components (precision names)."""
    problems: list[str] = []
    try:
        micro, total = int(cfg.actor.micro_batch_size), int(cfg.actor.global_batch_size)
    except Exception:  # unresolvable interpolation (reported by validate_config) or a bad value (range check)
        return problems
    if micro > 0 and total > 0 and total % micro:
        problems.append(f"actor.global_batch_size ({total}) must be a multiple of actor.micro_batch_size ({micro}): "
                        "each optimizer step accumulates whole micro-batches")
    for section in ("actor", "critic", "rollout"):
        try:
            value = cfg[section].model.precision
        except Exception:  # no such section, or an unresolvable interpolation (reported by validate_config)
            continue
        problem = precision_problem(value, f"{section}.model.precision") if value is not None else None
        if problem:
            problems.append(problem)
    return problems


def _one_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "msg", None) or exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    # a resolver's own error, e.g. oc.env's: KeyError raised while resolving interpolation: "Environment variable ..."
    wrapped = re.fullmatch(r'\w+ raised while resolving interpolation: "?(.*?)"?', line)
    return wrapped.group(1) if wrapped else line


def interpolation_problems(cfg: DictConfig | ListConfig) -> list[str]:
    """One line per ``${...}`` value of ``cfg`` that does not resolve (or resolves to the wrong type)."""
    problems: list[str] = []

    def walk(node: Any, raw: Any, path: str) -> None:
        items = raw.items() if isinstance(raw, dict) else enumerate(raw)
        for key, value in items:
            where = (f"{path}.{key}" if path else str(key)) if isinstance(raw, dict) else f"{path}[{key}]"
            if isinstance(value, (dict, list)):
                walk(node[key], value, where)
            elif isinstance(value, str) and "${" in value:
                try:
                    node[key]
                except Exception as exc:  # any resolver may raise
                    hint = ""
                    env = re.search(r"\$\{oc\.env:([^,}]+)\}", value)
                    if env and "Environment variable" in str(exc):
                        hint = f"; set {env.group(1)} or give a default: ${{oc.env:{env.group(1)},default}}"
                    problems.append(f"config key '{where}': cannot resolve interpolation {value!r}: {_one_line(exc)}{hint}")

    walk(cfg, OmegaConf.to_container(cfg, resolve=False), "")
    return problems


def _device_lower_bound(spec: Mapping[str, Any]) -> int:
    """The smallest device count the ranks in ``spec`` could run on (for an unknown device count).

    At least one more than the highest device rank named, and a multiple of every ``all:0-N``
    process split. Any error the placement strategies find at this count is one they find at every
    larger count that the spec allows, so no false error is reported.
    """
    bound, split = 1, 1
    for value in spec.values():
        devices, _, processes = str(value).partition(":")
        bound = max([bound, *(int(n) + 1 for n in re.findall(r"\d+", devices))])
        numbers = [int(n) for n in re.findall(r"\d+", processes)]
        if devices.strip() == "all" and numbers:
            split = math.lcm(split, max(numbers) + 1)
    return -(-bound // split) * split


def placement_problems(cfg: DictConfig, plugins: Any, notes: list[str] | None = None) -> list[str]:
    """``cluster.component_placement`` checked as the Runtime will: syntax, group names, backwards and
    out-of-range ranks (against ``num_nodes * num_devices_per_node`` when set), and the mode's rules.

    With ``num_devices_per_node`` unset the device count is detected at run time: everything but the
    upper bound is checked, and a note says so.
    """
    cluster = cfg.cluster
    try:
        spec = OmegaConf.to_container(cluster.component_placement, resolve=True) or {}
        mode, per_node, nodes = cluster.placement, cluster.num_devices_per_node, cluster.num_nodes
    except Exception:  # an unresolvable interpolation: reported by interpolation_problems
        return []
    assert isinstance(spec, dict)
    if mode == AUTO:
        return [f"cluster.placement=auto chooses the placement itself; remove {KEY} or set cluster.placement "
                "to collocated, disaggregated or hybrid"] if spec else []
    if not spec:
        return []
    known = isinstance(per_node, int) and per_node > 0 and isinstance(nodes, int) and nodes > 0
    if known:
        num_devices = per_node * nodes
    else:  # unset (or out of range, reported by range_problems)
        num_devices = _device_lower_bound(spec)
        if notes is not None and per_node is None:
            notes.append(f"cluster.num_devices_per_node is unset, so the device count is detected at run time: {KEY} "
                         "was checked for syntax, group names and overlaps, not against the number of devices")
    try:
        groups = parse_component_placement(spec, num_devices)
        if mode is not None:
            try:
                plugins.registries.get_spec("placement", str(mode))
            except ComponentError:
                return []  # an unknown strategy is reported with the other component names
        resolve_placement(SimpleNamespace(component_placement=spec, placement=mode), plugins, list(groups), num_devices)
    except ConfigError as exc:
        if not known:
            return list(exc.problems)
        return [f"{p} (cluster.num_nodes {nodes} x cluster.num_devices_per_node {per_node})" if "out of range" in p else p
                for p in exc.problems]
    except Exception as exc:  # a third-party strategy that raises something else
        return [f"{KEY}: placement strategy {mode!r} rejected it: {type(exc).__name__}: {_one_line(exc)}"]
    return []
