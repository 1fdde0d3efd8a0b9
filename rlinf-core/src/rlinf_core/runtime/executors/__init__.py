"""Executors: ``inline`` (the embedded default) and ``ray`` (several processes or machines)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlinf_core.errors import ConfigError, suggestion_text
from rlinf_core.runtime.executors.base import Executor, GroupFuture, WorkerGroup

if TYPE_CHECKING:
    from rlinf_core.runtime.limits import Limits

EXECUTORS = ("inline", "ray")


def make_executor(name: str, num_devices: int, *, address: str | None = None, device_type: str = "cpu",
                  plugin_fingerprint: str | None = None, limits: Limits | None = None, **options: Any) -> Executor:
    """The executor ``cluster.executor`` names; ``limits``: its timeouts and watchdog (``cluster.*``)."""
    if name == "inline":
        from rlinf_core.runtime.executors.inline import InlineExecutor

        return InlineExecutor(plugin_fingerprint, limits)
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(
                "cluster.executor=ray needs Ray, which is not installed. Fix: pip install 'rlinf-core[ray]'"
            ) from None
        from rlinf_core.runtime.executors.ray import RayExecutor

        return RayExecutor(num_devices, address=address, device_type=device_type,
                           plugin_fingerprint=plugin_fingerprint, limits=limits, **options)
    raise ConfigError(
        f"cluster.executor: unknown executor {name!r}.{suggestion_text(name, EXECUTORS)} Valid: {', '.join(EXECUTORS)}"
    )


__all__ = ["EXECUTORS", "Executor", "GroupFuture", "WorkerGroup", "make_executor"]
