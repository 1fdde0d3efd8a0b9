"""Placement: which devices each worker group uses, parsed from ``cluster.component_placement``.

Syntax (RLinf's): keys name one or more worker groups (``"env,rollout,actor"``); values name
device (resource) ranks: ``all``, ``3``, ``0-3``, ``0-1,4-5``, optionally followed by
``:process_ranks`` to say how many processes share them (``0-3:0-1``: two processes, two devices
each). Without ``:``, each device gets one process. On a CPU-only machine a device is a CPU slot.

Strategies (kind ``placement``, chosen by ``cluster.placement``; inferred when unset):
``collocated`` (every group on the same devices, taking turns), ``disaggregated`` (no device
shared), ``hybrid`` (anything else: some groups share, others are split). ``auto`` is not a strategy:
the :class:`~rlinf_core.runtime.Runtime` profiles the flow's stages and picks one (``scheduler``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rlinf_core.errors import ConfigError, suggestion_text

KEY = "cluster.component_placement"
#: Worker groups a flow may place. Flows pass their own set; these are the built-in ones.
KNOWN_GROUPS = ("actor", "critic", "reference", "rollout", "env", "reward")
MODES = ("collocated", "disaggregated", "hybrid")
#: ``cluster.placement: auto``: chosen by the runtime from a profile (``runtime.scheduler``), not a strategy.
AUTO = "auto"
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class GroupPlacement:
    """The devices of one worker group, split among its process ranks."""

    name: str
    devices: tuple[int, ...]
    #: For each process rank, the devices it owns (``len(ranks)`` is the group's world size).
    ranks: tuple[tuple[int, ...], ...]

    @property
    def world_size(self) -> int:
        return len(self.ranks)


@dataclass(frozen=True)
class Placement:
    """Where every worker group runs, and the placement mode this amounts to."""

    mode: str
    num_devices: int
    groups: Mapping[str, GroupPlacement]

    def groups_on(self, device: int) -> list[str]:
        """The groups that use ``device``."""
        return [g.name for g in self.groups.values() if device in g.devices]

    def describe(self) -> str:
        parts = [f"{g.name}: devices {_fmt(g.devices)} x {g.world_size} rank(s)" for g in self.groups.values()]
        return f"{self.mode} placement on {self.num_devices} device(s): " + "; ".join(parts)


def _fmt(devices: Iterable[int]) -> str:
    devices = sorted(devices)
    if devices and devices == list(range(devices[0], devices[-1] + 1)) and len(devices) > 1:
        return f"{devices[0]}-{devices[-1]}"
    return ",".join(map(str, devices))


def _parse_ranks(text: str, limit: int, where: str, what: str) -> tuple[int, ...]:
    if text.strip() == "all":
        return tuple(range(limit))
    out: list[int] = []
    for part in text.split(","):
        m = _RANGE.match(part)
        if not m:
            raise ConfigError(f"{where}: cannot parse {what} {part.strip()!r}; use 'all', '3', '0-3' or '0-1,4-5'")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise ConfigError(f"{where}: range {part.strip()!r} runs backwards")
        if hi >= limit:
            raise ConfigError(f"{where}: {what} {hi} is out of range: there are {limit} ({_fmt(range(limit)) or 'none'})")
        out.extend(range(lo, hi + 1))
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: {what} {text!r} lists a rank twice")
    return tuple(out)


def parse_component_placement(
    spec: Mapping[str, Any], num_devices: int, known_groups: Iterable[str] = KNOWN_GROUPS,
) -> dict[str, GroupPlacement]:
    """Parse ``cluster.component_placement`` into one :class:`GroupPlacement` per group."""
    known = tuple(known_groups)
    groups: dict[str, GroupPlacement] = {}
    if "node_group" in spec or "placement" in spec:
        raise ConfigError(f"{KEY}: the node-group form ({{node_group: ..., placement: ...}}) is not supported yet; "
                          "map group names to device ranks, e.g. {actor: 0-3, rollout: 4-7}")
    for key, value in spec.items():
        names = [n.strip() for n in str(key).split(",") if n.strip()]
        where = f"{KEY}[{key!r}]"
        if not names:
            raise ConfigError(f"{where}: no worker group named")
        for name in names:
            if name not in known:
                raise ConfigError(
                    f"{where}: unknown worker group {name!r}.{suggestion_text(name, known)} Valid: {', '.join(known)}"
                )
            if name in groups:
                raise ConfigError(f"{where}: worker group {name!r} is placed twice")
        text = str(value)
        device_text, _, process_text = text.partition(":")
        devices = _parse_ranks(device_text, num_devices, where, "device")
        if process_text:
            processes = _parse_ranks(process_text, len(devices), where, "process rank")
            if processes != tuple(range(len(processes))):
                raise ConfigError(f"{where}: process ranks must be 0-N, got {process_text!r}")
            if len(devices) % len(processes):
                raise ConfigError(f"{where}: {len(devices)} devices cannot be split evenly among {len(processes)} processes")
            per = len(devices) // len(processes)
            ranks = tuple(devices[i * per:(i + 1) * per] for i in range(len(processes)))
        else:
            ranks = tuple((d,) for d in devices)
        for name in names:
            groups[name] = GroupPlacement(name, devices, ranks)
    return groups


def infer_mode(groups: Mapping[str, GroupPlacement]) -> str:
    """``collocated`` if all groups use the same devices, ``disaggregated`` if none share, else ``hybrid``."""
    sets = [set(g.devices) for g in groups.values()]
    if all(s == sets[0] for s in sets):
        return "collocated"
    if all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:]):
        return "disaggregated"
    return "hybrid"


def collocated(groups: Mapping[str, GroupPlacement], num_devices: int) -> Placement:
    """Every group on the same devices; they take turns (offloading between phases on GPU)."""
    items = list(groups.values())
    for g in items[1:]:
        if set(g.devices) != set(items[0].devices):
            raise ConfigError(
                f"{KEY}: cluster.placement=collocated puts every group on the same devices, but {items[0].name!r} is on "
                f"{_fmt(items[0].devices)} and {g.name!r} on {_fmt(g.devices)}; use 'hybrid', or place both on the same devices"
            )
    return Placement("collocated", num_devices, dict(groups))


def disaggregated(groups: Mapping[str, GroupPlacement], num_devices: int) -> Placement:
    """Groups on separate devices, pipelined by micro-batch."""
    items = list(groups.values())
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            shared = set(a.devices) & set(b.devices)
            if shared:
                raise ConfigError(
                    f"{KEY}: cluster.placement=disaggregated needs separate devices, but {a.name!r} and {b.name!r} "
                    f"both use device(s) {_fmt(shared)}; use 'hybrid' or 'collocated', or move one of them"
                )
    return Placement("disaggregated", num_devices, dict(groups))


def hybrid(groups: Mapping[str, GroupPlacement], num_devices: int) -> Placement:
    """Any mapping: some groups share devices, others are split."""
    return Placement("hybrid", num_devices, dict(groups))


def auto(groups: Mapping[str, GroupPlacement], num_devices: int) -> Placement:
    """``cluster.placement: auto`` (listed with the strategies): the :class:`~rlinf_core.runtime.Runtime`
    replaces it with the mode it chooses from a stage profile, so it is never called as a strategy."""
    raise ConfigError("cluster.placement=auto is resolved by the Runtime from a stage profile; this flow gave none: "
                      "choose one of collocated, disaggregated, hybrid")


def resolve_placement(
    cluster: Any, plugins: Any, needed: Iterable[str], num_devices: int, known_groups: Iterable[str] = KNOWN_GROUPS,
) -> Placement:
    """The :class:`Placement` for ``cluster`` (a config section), checked against the groups a flow ``needed``.

    An empty ``component_placement`` puts every needed group on all devices.
    """
    needed = list(needed)
    spec = dict(getattr(cluster, "component_placement", None) or {}) or {",".join(needed): "all"}
    groups = parse_component_placement(spec, num_devices, known_groups)
    missing = [n for n in needed if n not in groups]
    if missing:
        raise ConfigError(f"{KEY}: worker group(s) {', '.join(missing)} have no devices; add e.g. "
                          f"'{','.join(missing)}: all' (placed now: {', '.join(groups) or 'none'})")
    extra = [n for n in groups if n not in needed]
    if extra:
        raise ConfigError(f"{KEY}: this flow has no worker group(s) {', '.join(extra)} (it runs: {', '.join(needed)})")
    mode = getattr(cluster, "placement", None) or infer_mode(groups)
    if mode == AUTO:
        raise ConfigError("cluster.placement=auto is resolved by the Runtime from a stage profile (pass auto=...)")
    try:
        strategy = plugins.registries.load("placement", mode)
    except Exception as exc:
        raise ConfigError(f"cluster.placement: {exc}") from exc
    return strategy(groups, num_devices)
