"""Put a flow's worker groups on devices: placement + executor + groups, as one context manager."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlinf_core.runtime.executors import Executor, WorkerGroup, make_executor
from rlinf_core.runtime.placement import KNOWN_GROUPS, Placement, resolve_placement

log = logging.getLogger("rlinf.runtime")


@dataclass(frozen=True)
class WorkerSpec:
    """A worker class and its constructor arguments."""

    cls: type
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def detect_devices(cluster: Any) -> tuple[int, str]:
    """``(number of devices, device type)``: ``cluster.num_devices_per_node`` x ``num_nodes`` when set,
    else this machine's GPUs, else its CPU cores (a CPU slot is a device)."""
    nodes = int(getattr(cluster, "num_nodes", 1) or 1)
    per_node = getattr(cluster, "num_devices_per_node", None)
    gpus = 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        import importlib.util

        if importlib.util.find_spec("torch") is not None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device_type = "cuda" if gpus else "cpu"
    if per_node:
        return int(per_node) * nodes, device_type
    return (gpus or os.cpu_count() or 1) * nodes, device_type


class Runtime:
    """Placed, running worker groups. Use as a context manager: every worker stops on exit,
    including on an error or Ctrl-C."""

    def __init__(self, cluster: Any, plugins: Any, workers: Mapping[str, WorkerSpec],
                 known_groups: tuple[str, ...] = KNOWN_GROUPS, num_devices: int | None = None):
        detected, device_type = detect_devices(cluster)
        self.num_devices = num_devices or detected
        self.placement: Placement = resolve_placement(cluster, plugins, workers, self.num_devices, known_groups)
        log.info("%s", self.placement.describe())
        share: dict[int, int] = {}
        for g in self.placement.groups.values():
            for devices in g.ranks:
                for d in devices:
                    share[d] = share.get(d, 0) + 1
        self.executor: Executor = make_executor(
            cluster.executor, self.num_devices, address=getattr(cluster, "ray_address", None),
            device_type=device_type, plugin_fingerprint=plugins.fingerprint(),
        )
        self.groups: dict[str, WorkerGroup] = {}
        try:
            for name, spec in workers.items():
                self.groups[name] = self.executor.create_group(
                    name, spec.cls, self.placement.groups[name], *spec.args, share_counts=share, **dict(spec.kwargs)
                )
        except BaseException:
            self.executor.shutdown()
            raise

    def __getitem__(self, name: str) -> WorkerGroup:
        return self.groups[name]

    def channel(self, name: str, maxsize: int = 0) -> Any:
        return self.executor.channel(name, maxsize)

    def shutdown(self) -> None:
        self.executor.shutdown()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
