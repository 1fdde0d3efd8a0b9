"""Time limits and the hang watchdog's settings, read from ``cluster.*`` (defaults: ``ClusterConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from rlinf_core.config.schema import ClusterConfig

_DEFAULT = {f.name: f.default for f in fields(ClusterConfig)}  # the defaults live in the config schema


@dataclass(frozen=True)
class Limits:
    """How long the runtime waits before it calls something hung. ``None`` (or 0) = no limit.

    Every field is the ``cluster`` key of the same name (documented in ``ClusterConfig``, which
    holds the defaults); an error that hits a limit names its key.
    """

    call_timeout_s: float | None = _DEFAULT["call_timeout_s"]
    startup_timeout_s: float | None = _DEFAULT["startup_timeout_s"]
    init_process_group_timeout_s: float | None = _DEFAULT["init_process_group_timeout_s"]
    ray_init_timeout_s: float | None = _DEFAULT["ray_init_timeout_s"]
    close_timeout_s: float | None = _DEFAULT["close_timeout_s"]
    watchdog_factor: float = _DEFAULT["watchdog_factor"]
    watchdog_min_s: float = _DEFAULT["watchdog_min_s"]
    ray_task_events_max: int = _DEFAULT["ray_task_events_max"]

    @classmethod
    def from_cluster(cls, cluster: Any) -> Limits:
        """The limits a ``cluster`` config (or any object with some of these attributes) sets."""
        missing = object()
        values = {f.name: getattr(cluster, f.name, missing) for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if v is not missing})

    def seconds(self, key: str) -> float | None:
        """The limit ``key`` in seconds, or ``None`` when it is unset or 0 (wait forever)."""
        value = getattr(self, key)
        return float(value) if value else None
