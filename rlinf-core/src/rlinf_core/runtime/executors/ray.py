"""The Ray executor: every rank is a Ray actor, placed on a Ray placement group.

One bundle per device (``{"CPU": cpus_per_device}`` plus ``{"GPU": 1}`` on GPU machines); a rank
asks for ``1/k`` of its device's bundle when ``k`` ranks share that device (collocated groups).
Starts a local Ray when ``address`` is unset, joins a running cluster otherwise. Groups with
several ranks get a ``torch.distributed`` process group (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from rlinf_core.errors import ConfigError
from rlinf_core.runtime.channel import RayChannel
from rlinf_core.runtime.executors.base import Executor, GroupFuture, WorkerGroup
from rlinf_core.runtime.placement import GroupPlacement
from rlinf_core.runtime.worker import RankInfo, WorkerError, construct_worker

log = logging.getLogger("rlinf.runtime")


class _RankActor:
    """Hosts one rank of a worker group inside a Ray actor process."""

    def __init__(self, cls: type, info: RankInfo, args: tuple, kwargs: dict[str, Any]):
        self.worker = construct_worker(cls, info, args, kwargs)

    def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.worker, method)(*args, **kwargs)

    def resize(self, rank: int, world_size: int) -> None:
        self.worker.rank, self.worker.world_size = rank, world_size

    def master_address(self) -> tuple[str, int]:
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port


def _plugin_selection_env() -> dict[str, str]:
    """The driver's RLINF_*_PLUGINS variables, so that every rank loads the same plugins."""
    from rlinf_core.plugins import ENV_DISABLE, ENV_LOAD, ENV_STRICT

    return {k: os.environ[k] for k in (ENV_LOAD, ENV_DISABLE, ENV_STRICT) if k in os.environ}


def _same_cluster(connected: str, requested: str) -> bool:
    """Whether GCS address ``requested`` (``host:port``) names the cluster at ``connected``."""
    (host_c, port_c), (host_r, port_r) = connected.rsplit(":", 1), requested.rsplit(":", 1)
    if port_c != port_r:
        return False
    try:
        ip_r = socket.gethostbyname(host_r)
        return ip_r.startswith("127.") or ip_r == socket.gethostbyname(host_c)
    except OSError:
        return host_c == host_r


def _as_worker_error(group: str, rank: int, method: str, exc: BaseException) -> WorkerError:
    from ray.exceptions import RayActorError, RayTaskError

    if isinstance(exc, RayTaskError):
        return WorkerError(group, rank, method, str(exc))
    if isinstance(exc, RayActorError):
        return WorkerError(group, rank, method, str(exc), died=True)
    return WorkerError(group, rank, method, f"{type(exc).__name__}: {exc}")


class RayFuture(GroupFuture):
    def __init__(self, group: str, method: str, ranks: list[int], refs: list[Any]):
        self.group, self.method, self.ranks, self.refs = group, method, ranks, refs

    @property
    def handles(self) -> list[Any]:
        return list(self.refs)

    def result(self, timeout: float | None = None) -> list[Any]:
        import ray
        from ray.exceptions import GetTimeoutError

        out = []
        for rank, ref in zip(self.ranks, self.refs, strict=True):
            try:
                out.append(ray.get(ref, timeout=timeout))
            except GetTimeoutError:
                raise TimeoutError(
                    f"worker group {self.group!r} rank {rank}: {self.method}() took longer than {timeout} s"
                ) from None
            except Exception as exc:
                raise _as_worker_error(self.group, rank, self.method, exc) from None
        return out


class RayGroup(WorkerGroup):
    def __init__(self, name: str, placement: GroupPlacement, actors: list[Any], executor: RayExecutor,
                 cls: type, args: tuple, kwargs: dict[str, Any], has_process_group: bool = False):
        super().__init__(name, placement)
        self.actors = actors
        self._executor, self._cls, self._args, self._kwargs = executor, cls, args, kwargs
        self.has_process_group = has_process_group

    def scale_to(self, devices: Sequence[int], share: int = 1) -> None:
        """Online scaling: one rank per device of ``devices``, between steps, without touching other groups.

        Ranks on devices that stay are kept (and renumbered); the others are stopped; new devices
        get new ranks, constructed with the group's original arguments. The caller re-syncs state
        such as policy weights to the group afterwards (so training stays on-policy). Groups with
        a torch.distributed process group cannot be resized.
        """
        if self.has_process_group:
            raise RuntimeError(f"worker group {self.name!r} has a torch.distributed process group and cannot be resized")
        devices = list(devices)
        if not devices or len(set(devices)) != len(devices):
            raise ValueError(f"scale_to: give distinct devices for group {self.name!r}, got {devices}")
        if max(devices) >= self._executor.num_devices or min(devices) < 0:
            raise ValueError(f"scale_to: devices {devices} out of range 0-{self._executor.num_devices - 1}")
        current = {ranks[0]: actor for ranks, actor in zip(self.placement.ranks, self.actors, strict=True)}
        for device, actor in current.items():
            if device not in devices:
                self._executor._kill(actor)
        placement = GroupPlacement(self.name, tuple(devices), tuple((d,) for d in devices))
        actors = []
        for rank, device in enumerate(devices):
            if device in current:
                actors.append(current[device])
            else:
                actors.append(self._executor._start_rank(self.name, self._cls, placement, rank, device, share,
                                                         self._args, self._kwargs))
        self.actors, self.placement = actors, placement
        RayFuture(self.name, "scale_to", list(range(len(actors))),
                  [a.resize.remote(rank, len(actors)) for rank, a in enumerate(actors)]).result()

    @property
    def world_size(self) -> int:
        return len(self.actors)

    def call(self, method: str, *args: Any, ranks: Sequence[int] | None = None, **kwargs: Any) -> GroupFuture:
        chosen = list(range(self.world_size)) if ranks is None else list(ranks)
        refs = [self.actors[r].run.remote(method, *args, **kwargs) for r in chosen]
        return RayFuture(self.name, method, chosen, refs)

    def scatter(self, method: str, per_rank: Sequence[Any], **kwargs: Any) -> GroupFuture:
        if len(per_rank) != self.world_size:
            raise ValueError(f"scatter to group {self.name!r}: {len(per_rank)} items for {self.world_size} ranks")
        refs = [a.run.remote(method, item, **kwargs) for a, item in zip(self.actors, per_rank, strict=True)]
        return RayFuture(self.name, method, list(range(self.world_size)), refs)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, num_devices: int, *, address: str | None = None, device_type: str = "cpu",
                 cpus_per_device: int = 1, plugin_fingerprint: str | None = None, startup_timeout: float = 120.0):
        import ray
        from ray.util.placement_group import placement_group

        self._ray = ray
        self._actor_cls = ray.remote(_RankActor)  # wrapped once, not per rank
        self._started_ray = False
        self.num_devices, self.device_type, self.cpus_per_device = num_devices, device_type, cpus_per_device
        self._fingerprint = plugin_fingerprint
        self._actors: list[Any] = []
        self._channels: list[RayChannel] = []
        if ray.is_initialized() and address and address != "auto":
            connected = ray.get_runtime_context().gcs_address
            if not _same_cluster(connected, address):
                raise ConfigError(f"cluster.ray_address is {address!r}, but this process is already connected to the "
                                  f"Ray cluster at {connected!r}; call ray.shutdown() first or unset cluster.ray_address")
        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=True)
            else:
                ray.init(num_cpus=max(num_devices * cpus_per_device, os.cpu_count() or 1),
                         num_gpus=num_devices if device_type == "cuda" else 0,
                         include_dashboard=False, log_to_driver=True)
                self._started_ray = True
        bundle = {"CPU": cpus_per_device, **({"GPU": 1} if device_type == "cuda" else {})}
        self._pg = placement_group([dict(bundle) for _ in range(num_devices)], strategy="PACK")
        ready, _ = ray.wait([self._pg.ready()], timeout=startup_timeout)
        if not ready:
            self.shutdown()
            raise ConfigError(
                f"cluster: Ray could not reserve {num_devices} device(s) of {bundle} within {startup_timeout:.0f} s; "
                f"the cluster has {ray.cluster_resources()}. Lower cluster.num_devices_per_node or add nodes."
            )

    def _start_rank(self, name: str, cls: type, placement: GroupPlacement, rank: int, device: int, share: int,
                    args: tuple, kwargs: dict[str, Any]) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        threads = max(1, self.cpus_per_device // share)
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_device / share,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(placement_group=self._pg,
                                                                    placement_group_bundle_index=device),
            "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                                         **_plugin_selection_env()}},
            "max_concurrency": 1,
        }
        if self.device_type == "cuda":
            options["num_gpus"] = 1 / share
        info = RankInfo(name, rank, placement.world_size, (device,), self.device_type, self.name, self._fingerprint)
        actor = self._actor_cls.options(**options).remote(cls, info, args, kwargs)
        self._actors.append(actor)
        return actor

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor)
        except Exception as exc:  # already dead
            log.debug("killing actor: %s", exc)
        if actor in self._actors:
            self._actors.remove(actor)

    def create_group(self, name: str, cls: type, placement: GroupPlacement, *args: Any,
                     share_counts: dict[int, int] | None = None, dist_backend: str | None = "auto",
                     **kwargs: Any) -> WorkerGroup:
        share_counts = share_counts or {}
        actors = []
        for rank, devices in enumerate(placement.ranks):
            if len(devices) != 1:
                raise ConfigError(f"cluster.component_placement: worker group {name!r} rank {rank} spans devices "
                                  f"{devices}; the Ray executor places one device per rank for now")
            share = max(1, share_counts.get(devices[0], 1))
            actors.append(self._start_rank(name, cls, placement, rank, devices[0], share, args, kwargs))
        # Surface constructor failures now, naming the rank.
        RayFuture(name, "__init__", list(range(len(actors))), [a.run.remote("ping") for a in actors]).result()
        wants_dist = dist_backend is not None and placement.world_size > 1 and importlib.util.find_spec("torch") is not None
        group = RayGroup(name, placement, actors, self, cls, args, kwargs, has_process_group=wants_dist)
        if wants_dist:
            addr, port = self._ray.get(actors[0].master_address.remote())
            backend = None if dist_backend == "auto" else dist_backend
            group.call("init_process_group", addr, port, backend).result()
        return group

    def remove_group(self, group: WorkerGroup) -> None:
        for actor in getattr(group, "actors", []):
            self._kill(actor)

    def channel(self, name: str, maxsize: int = 0) -> RayChannel:
        ch = RayChannel(name, maxsize)
        self._channels.append(ch)
        return ch

    def shutdown(self) -> None:
        ray = self._ray
        if not ray.is_initialized():
            return
        for actor in list(self._actors):
            self._kill(actor)
        for ch in self._channels:
            try:
                ch.close()
            except Exception as exc:
                log.debug("closing channel: %s", exc)
        self._channels.clear()
        try:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._pg)
        except Exception as exc:
            log.debug("removing placement group: %s", exc)
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
