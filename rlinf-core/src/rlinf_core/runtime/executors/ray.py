"""The Ray executor: every rank is a Ray actor, placed on a Ray placement group.

One bundle per device (``{"CPU": cpus_per_device}`` plus ``{"GPU": 1}`` on GPU machines); a rank
asks for ``1/k`` of its device's bundle when ``k`` ranks share that device (collocated groups).
Starts a local Ray when ``address`` is unset, joins a running cluster otherwise. Groups with
several ranks get a ``torch.distributed`` process group (gloo on CPU, NCCL on GPU).

Faults. A call's ranks are awaited together: the first failure is reported at once, after a short
look (``FAILURE_GRACE_S``) at the other ranks, so that a rank that died is named as the cause and
the survivors' errors (a collective's "connection closed by peer") as its consequences. A failure
is traced back through a call's inputs: a call whose argument came from a dead or raising rank
names that rank. A call that outlives its time limit (``cluster.call_timeout_s``, or the
``timeout`` given to ``result``) stops its whole group (a rank stuck in a collective cannot be
interrupted, and its peers would wait on it), so that the run ends instead of wedging; later calls
to that group fail at once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import time
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlinf_core.errors import ConfigError
from rlinf_core.runtime.channel import RayChannel
from rlinf_core.runtime.executors.base import Executor, GroupFuture, WorkerGroup
from rlinf_core.runtime.limits import Limits
from rlinf_core.runtime.placement import GroupPlacement
from rlinf_core.runtime.watchdog import Watchdog
from rlinf_core.runtime.worker import (
    RankInfo,
    RemoteFailure,
    WorkerCallError,
    WorkerError,
    WorkerTimeout,
    check_call,
    construct_worker,
    leave_process_group,
    plain,
)

log = logging.getLogger("rlinf.runtime")

#: After a first failure, how long to wait for the other ranks' outcomes (and for Ray to notice a
#: death) before reporting. Survivors of a killed peer fail within milliseconds.
FAILURE_GRACE_S = 2.0


class _RankActor:
    """Hosts one rank of a worker group inside a Ray actor process (on the process's main thread)."""

    def __init__(self, cls: type, info: RankInfo, args: tuple, kwargs: dict[str, Any], limits: Limits):
        self.label = f"{info.group_name}/{info.rank}"
        self.watchdog = Watchdog(limits.watchdog_factor, limits.watchdog_min_s)
        self.failure: RemoteFailure | None = None
        try:
            self.worker = construct_worker(cls, info, args, kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # reported by identity(), naming the rank, instead of killing the actor
            self.failure = RemoteFailure(info.group_name, info.rank, "__init__", os.getpid(), traceback.format_exc())

    def __repr__(self) -> str:  # Ray prefixes this rank's log lines with it
        return self.label

    def identity(self) -> tuple[int, str, str]:
        """``(pid, node ip, actor id)``; raises the constructor's failure, if any."""
        import ray

        if self.failure is not None:
            raise self.failure
        return os.getpid(), ray.util.get_node_ip_address(), ray.get_runtime_context().get_actor_id()

    def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        worker = self.worker
        with self.watchdog.track(f"group {worker.group_name!r} rank {worker.rank}", method):
            try:
                return getattr(worker, method)(*args, **kwargs)
            except KeyboardInterrupt:
                raise
            except BaseException:  # SystemExit included: the rank reports it and stays up
                raise RemoteFailure(worker.group_name, worker.rank, method, os.getpid(), traceback.format_exc()) from None

    def close(self) -> None:
        """The worker's ``close()`` (engines free memory and subprocesses there), then leave the
        ``torch.distributed`` process group, so that nothing is torn down mid-collective at exit."""
        close = getattr(self.worker, "close", None) if self.failure is None else None
        try:
            if callable(close):
                close()
        finally:
            leave_process_group()

    def watchdog_reports(self) -> list[str]:
        return self.watchdog.reports()

    def resize(self, rank: int, world_size: int) -> None:
        self.worker.rank, self.worker.world_size = rank, world_size
        self.label = f"{self.worker.group_name}/{rank}"

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


def _reach(address: str, timeout: float | None) -> None:
    """Wait until something listens at ``host:port`` (Ray itself retries an unreachable GCS for minutes)."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + (timeout or 0)
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, max(0.1, deadline - time.monotonic()))):
                return
        except (OSError, ValueError) as exc:
            if timeout is not None and time.monotonic() >= deadline:
                raise ConfigError(
                    f"cluster.ray_address: no Ray cluster answers at {address!r} ({exc}) within {timeout:g} s. "
                    "Start one (`ray start --head`), fix the address, or raise cluster.ray_init_timeout_s"
                ) from None
            time.sleep(0.5)


@dataclass
class _Failure:
    """One failed rank, after tracing: where the failure started and what it says."""

    group: str
    rank: int
    method: str
    detail: str
    died: bool

    def summary(self) -> str:
        if self.died:
            return "died"
        lines = self.detail.strip().splitlines()
        return f"raised {lines[-1].strip() if lines else '?'}"


class RayFuture(GroupFuture):
    def __init__(self, group: RayGroup, method: str, ranks: list[int], refs: list[Any], key: str = "call_timeout_s"):
        self.group, self.method, self.ranks, self.refs = group.name, method, ranks, refs
        #: The ``cluster`` key whose limit applies to this call's ``result()``.
        self._group, self.key = group, key

    @property
    def handles(self) -> list[Any]:
        return list(self.refs)

    def result(self, timeout: float | None = None) -> list[Any]:
        """Every rank's result. Waits at most ``timeout`` s (default ``cluster.call_timeout_s``); on a
        timeout the group is stopped and :class:`WorkerTimeout` names the late ranks."""
        return self._group._executor._await(self, timeout)


class RayGroup(WorkerGroup):
    def __init__(self, name: str, placement: GroupPlacement, actors: list[Any], executor: RayExecutor,
                 cls: type, args: tuple, kwargs: dict[str, Any], has_process_group: bool = False):
        super().__init__(name, placement, cls)
        self.actors = actors
        self._executor, self._cls, self._args, self._kwargs = executor, cls, args, kwargs
        self.has_process_group = has_process_group
        #: Why the runtime stopped this group (a timeout), or None while it runs.
        self.stopped: str | None = None
        self.last_method: dict[int, str] = {}  # id(actor) -> the last method sent to it

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
        actors, new = [], []
        for rank, device in enumerate(devices):
            if device in current:
                actors.append(current[device])
            else:
                actors.append(self._executor._start_rank(self.name, self._cls, placement, rank, device, share,
                                                         self._args, self._kwargs))
                new.append(rank)
        self.actors, self.placement = actors, placement
        self._executor._identify(self, new)
        self._executor._await(RayFuture(self, "resize", list(range(len(actors))),
                                        [a.resize.remote(rank, len(actors)) for rank, a in enumerate(actors)]))

    @property
    def world_size(self) -> int:
        return len(self.actors)

    def _submit(self, method: str, per_rank: list[tuple[int, tuple]], kwargs: dict[str, Any]) -> RayFuture:
        ranks = [r for r, _ in per_rank]
        check_call(self.name, self._cls, method, ranks, self.world_size)
        if self.stopped:
            raise WorkerCallError(f"worker group {self.name!r} cannot run {method}(): the runtime stopped it after "
                                  f"{self.stopped}; end the run (leave the Runtime) and start a new one")
        refs = []
        for rank, args in per_rank:
            try:
                ref = self.actors[rank].run.remote(method, *args, **kwargs)
            except TypeError as exc:  # Ray could not pickle an argument
                raise WorkerCallError(f"worker group {self.name!r} rank {rank}: cannot send the arguments of "
                                      f"{method}(): {_serialization_problem(exc)}; pass picklable data "
                                      "(tensors, arrays, plain Python, handles)") from None
            self.last_method[id(self.actors[rank])] = method
            refs.append(ref)
        return RayFuture(self, method, ranks, refs)

    def call(self, method: str, *args: Any, ranks: Sequence[int] | None = None, **kwargs: Any) -> GroupFuture:
        chosen = list(range(self.world_size)) if ranks is None else list(ranks)
        return self._submit(method, [(r, args) for r in chosen], kwargs)

    def scatter(self, method: str, per_rank: Sequence[Any], **kwargs: Any) -> GroupFuture:
        if len(per_rank) != self.world_size:
            raise ValueError(f"scatter to group {self.name!r}: {len(per_rank)} items for {self.world_size} ranks")
        return self._submit(method, [(r, (item,)) for r, item in enumerate(per_rank)], kwargs)

    def watchdog_reports(self) -> list[list[str]]:
        """Every rank's last watchdog reports (late calls and their stacks)."""
        return self._executor._ray.get([a.watchdog_reports.remote() for a in self.actors])


def _serialization_problem(exc: BaseException) -> str:
    text = plain(str(exc))
    what = re.search(r"Could not serialize the argument (.*?) for a task", text)
    why = re.search(r"FAIL serialization: (.*)", text)
    if what:
        return f"argument {what.group(1)} cannot be pickled" + (f" ({why.group(1).strip()})" if why else "")
    return text.splitlines()[0] if text else type(exc).__name__


class _Consequences(logging.Filter):
    """Drops Ray's "Unhandled error" lines for calls that failed only because an input failed: the
    failed input is reported on its own, and a pipelined flow poisons hundreds of downstream calls."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("Unhandled error") and "input arguments for this task could not be computed" in msg)


_RAY_WORKER_LOG = logging.getLogger("ray._private.worker")


def _exit_detail(text: str) -> str:
    """Ray's words on how a rank's process ended, without its generic advice."""
    kind = re.search(r"Worker exit type: (\S+)", text)
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes| There are some potential|$)", text, re.S)
    out = (f"{kind.group(1)}: " if kind else "") + (detail.group(1).strip() if detail else text.strip().splitlines()[0])
    if "connection error" in out or "End of file" in out:
        out += " (no exit code: killed by a signal such as SIGKILL or the OOM killer, or crashed)"
    return out


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, num_devices: int, *, address: str | None = None, device_type: str = "cpu",
                 cpus_per_device: int = 1, plugin_fingerprint: str | None = None, limits: Limits | None = None):
        import ray

        if num_devices < 1:
            raise ConfigError(f"cluster.num_devices_per_node: the Ray executor needs at least one device, got "
                              f"{num_devices} in all; set a positive number, or leave it unset to detect them")
        self._ray = ray
        self._actor_cls = ray.remote(_RankActor)  # wrapped once, not per rank
        self._started_ray = False
        self.num_devices, self.device_type, self.cpus_per_device = num_devices, device_type, cpus_per_device
        self.limits = limits or Limits()
        self._fingerprint = plugin_fingerprint
        self._actors: list[Any] = []
        self._channels: weakref.WeakSet[RayChannel] = weakref.WeakSet()  # a dropped channel's actor ends with it
        self._groups: list[RayGroup] = []
        self._ranks: dict[str, tuple[RayGroup, Any]] = {}  # actor id -> (group, actor)
        self._where: dict[str, str] = {}  # actor id -> "pid N on IP"
        self._pg = None
        self._quiet = _Consequences()
        _RAY_WORKER_LOG.addFilter(self._quiet)
        if ray.is_initialized() and address and address != "auto":
            connected = ray.get_runtime_context().gcs_address
            if not _same_cluster(connected, address):
                raise ConfigError(f"cluster.ray_address is {address!r}, but this process is already connected to the "
                                  f"Ray cluster at {connected!r}; call ray.shutdown() first or unset cluster.ray_address")
        if not ray.is_initialized():
            if address:
                _reach(address, self.limits.seconds("ray_init_timeout_s"))
                ray.init(address=address, include_dashboard=False, log_to_driver=True)
            else:
                system = {"task_events_max_num_task_in_gcs": int(self.limits.ray_task_events_max)}
                ray.init(num_cpus=max(num_devices * cpus_per_device, os.cpu_count() or 1),
                         num_gpus=num_devices if device_type == "cuda" else 0,
                         include_dashboard=False, log_to_driver=True, _system_config=system)
            self._started_ray = True  # ours to shut down (or to disconnect from, when joined)
        try:
            self._reserve()
        except BaseException:
            self.shutdown()
            raise

    def _reserve(self) -> None:
        from ray.util.placement_group import placement_group

        bundle = {"CPU": self.cpus_per_device, **({"GPU": 1} if self.device_type == "cuda" else {})}
        self._pg = placement_group([dict(bundle) for _ in range(self.num_devices)], strategy="PACK")
        limit = self.limits.seconds("startup_timeout_s")
        ready, _ = self._ray.wait([self._pg.ready()], timeout=limit)
        if not ready:
            raise ConfigError(
                f"cluster: Ray could not reserve {self.num_devices} device(s) of {bundle} within {limit:g} s "
                f"(cluster.startup_timeout_s); the cluster has {self._ray.cluster_resources()}. "
                "Lower cluster.num_devices_per_node or add nodes."
            )

    # --- ranks

    def _start_rank(self, name: str, cls: type, placement: GroupPlacement, rank: int, device: int, share: int,
                    args: tuple, kwargs: dict[str, Any]) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        threads = max(1, self.cpus_per_device // share)
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_device / share,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(placement_group=self._pg,
                                                                    placement_group_bundle_index=device),
            # a rank's CPU share: torch's threads, and Mesa llvmpipe's (software rendering) unless the user set them
            "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                                         "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS") or str(threads),
                                         **_plugin_selection_env()}},
            "max_concurrency": 1,
        }
        if self.device_type == "cuda":
            options["num_gpus"] = 1 / share
        info = RankInfo(name, rank, placement.world_size, (device,), self.device_type, self.name, self._fingerprint)
        actor = self._actor_cls.options(**options).remote(cls, info, args, kwargs, self.limits)
        self._actors.append(actor)
        return actor

    def _identify(self, group: RayGroup, ranks: Sequence[int]) -> None:
        """Wait for ``ranks`` of ``group`` to be constructed (``cluster.startup_timeout_s``); note who they are."""
        ranks = list(ranks)
        refs = [group.actors[r].identity.remote() for r in ranks]
        for rank, (pid, ip, actor_id) in zip(ranks, self._await(RayFuture(group, "__init__", ranks, refs,
                                                                           key="startup_timeout_s")), strict=True):
            self._where[actor_id] = f"pid {pid} on {ip}"
            self._ranks[actor_id] = (group, group.actors[rank])

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
        wants_dist = dist_backend is not None and placement.world_size > 1 and importlib.util.find_spec("torch") is not None
        group = RayGroup(name, placement, actors, self, cls, args, kwargs, has_process_group=wants_dist)
        self._groups.append(group)
        try:
            for rank, devices in enumerate(placement.ranks):
                share = max(1, share_counts.get(devices[0], 1))
                actors.append(self._start_rank(name, cls, placement, rank, devices[0], share, args, kwargs))
            self._identify(group, range(len(actors)))  # constructor failures surface now, naming the rank
            if wants_dist:
                addr, port = self._ray.get(actors[0].master_address.remote())
                backend = None if dist_backend == "auto" else dist_backend
                future = group.call("init_process_group", addr, port, backend)
                future.key = "init_process_group_timeout_s"
                future.result()
        except BaseException:
            self.remove_group(group)
            raise
        return group

    def remove_group(self, group: WorkerGroup) -> None:
        self._close(group)
        for actor in getattr(group, "actors", []):
            self._kill(actor)
        if group in self._groups:
            self._groups.remove(group)

    def _close(self, group: WorkerGroup) -> None:
        """Every live rank of ``group`` runs :meth:`_RankActor.close` (within ``cluster.close_timeout_s``);
        a failure is logged, never raised, so that one group cannot keep the others open."""
        actors = [a for a in getattr(group, "actors", []) if a in self._actors]
        if getattr(group, "stopped", None) or not actors:
            return
        refs = [actor.close.remote() for actor in actors]
        ready, pending = self._ray.wait(refs, num_returns=len(refs), timeout=self.limits.seconds("close_timeout_s"))
        for ref in ready:
            try:
                self._ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - logged: closing goes on
                log.warning("worker group %r: close() failed: %s", group.name, str(exc).strip().splitlines()[-1])
        if pending:
            log.warning("worker group %r: %d rank(s) did not close within %s s (cluster.close_timeout_s); killed",
                        group.name, len(pending), self.limits.close_timeout_s)

    # --- awaiting calls, tracing failures

    def _rank_of(self, actor_id: str | None) -> tuple[RayGroup, int] | None:
        entry = self._ranks.get(actor_id or "")
        if entry is None:
            return None
        group, actor = entry
        rank = next((r for r, a in enumerate(group.actors) if a is actor), None)
        return (group, rank) if rank is not None else None

    def _classify(self, future: RayFuture, rank: int, exc: BaseException, in_call: bool = True) -> _Failure:
        """Where ``exc`` (rank ``rank``'s outcome of ``future``, or of a probe) started."""
        from ray.exceptions import RayActorError, RayTaskError

        cause = exc.cause if isinstance(exc, RayTaskError) else exc
        if isinstance(cause, RemoteFailure):
            return _Failure(cause.group, cause.rank, cause.method, f"(pid {cause.pid}) {cause.text}", died=False)
        if isinstance(cause, RayActorError):
            found = self._rank_of(getattr(cause, "actor_id", None))
            group, dead_rank = (found[0].name, found[1]) if found else (future.group, rank)
            if in_call and (group, dead_rank) == (future.group, rank):
                method = future.method
            else:  # an input's producer, or a rank seen dead by a probe: what it was last asked to run
                method = found[0].last_method.get(id(found[0].actors[dead_rank]), "__init__") if found else "?"
            where = self._where.get(getattr(cause, "actor_id", None) or "", "its process")
            stopped = found[0].stopped if found else None
            detail = (f"{where} was stopped by the runtime after {stopped}" if stopped
                      else f"{where} ended: {_exit_detail(plain(str(cause)))}")
            return _Failure(group, dead_rank, method, detail, died=True)
        return _Failure(future.group, rank, future.method, plain(str(exc)) or type(exc).__name__, died=False)

    def _probe(self, group: RayGroup, skip: set[int]) -> dict[int, Any]:
        """A cheap call on every rank of ``group`` not in ``skip``: a dead rank's fails within moments."""
        return {r: a.identity.remote() for r, a in enumerate(group.actors) if r not in skip}

    def _settle(self, future: RayFuture, pending: list[Any], failures: dict[int, _Failure],
                values: dict[int, Any]) -> dict[int, str]:
        """After a failure or a timeout: give the other ranks ``FAILURE_GRACE_S`` to finish or to be seen
        dead; returns each rank's outcome (``failures`` gains the ranks that failed meanwhile)."""
        ray = self._ray
        index = {ref.hex(): r for r, ref in zip(future.ranks, future.refs, strict=True)}
        probes = self._probe(future._group, set(future.ranks))
        waiting = pending + list(probes.values())
        if waiting:
            ray.wait(waiting, num_returns=len(waiting), timeout=FAILURE_GRACE_S)
        done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0) if waiting else ([], [])
        done_ids = {ref.hex() for ref in done}
        outcomes: dict[int, str] = {}
        for ref in pending:
            rank = index[ref.hex()]
            if ref.hex() not in done_ids:
                outcomes[rank] = "still running"
                continue
            try:
                values[rank] = ray.get(ref)
            except Exception as exc:
                failures[rank] = self._classify(future, rank, exc)
        for rank, ref in probes.items():
            if ref.hex() in done_ids:
                try:
                    ray.get(ref)
                except Exception as exc:
                    failure = self._classify(future, rank, exc, in_call=False)
                    if failure.died:
                        failures[rank] = failure
                        outcomes[rank] = "died (not in this call)"
        for rank in future.ranks:
            if rank in failures:
                outcomes[rank] = failures[rank].summary()
            elif rank in values:
                outcomes[rank] = "ok"
        return outcomes

    def _error(self, future: RayFuture, failures: dict[int, _Failure], outcomes: dict[int, str],
               order: list[int]) -> WorkerError:
        """The cause among ``failures`` (a death first, then the first failure), its observers as consequences."""
        ranked = [failures[r] for r in order if r in failures] + [f for r, f in failures.items() if r not in order]
        cause = next((f for f in ranked if f.died), ranked[0])
        observer = next(r for r, f in failures.items() if f is cause)
        seen_by = None
        if (cause.group, cause.rank, cause.method) != (future.group, observer, future.method):
            seen_by = f"worker group {future.group!r} rank {observer} in {future.method}()"
        if len(outcomes) <= 1 and seen_by is None:
            outcomes = {}
        return WorkerError(cause.group, cause.rank, cause.method, cause.detail, cause.died, seen_by=seen_by,
                           outcomes=outcomes)

    def _await(self, future: RayFuture, timeout: float | None = None) -> list[Any]:
        from ray.exceptions import GetTimeoutError

        ray = self._ray
        limit = timeout if timeout is not None else self.limits.seconds(future.key)
        deadline = None if limit is None else time.monotonic() + limit
        index = {ref.hex(): r for r, ref in zip(future.ranks, future.refs, strict=True)}
        values: dict[int, Any] = {}
        failures: dict[int, _Failure] = {}
        order: list[int] = []
        pending = list(future.refs)
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if len(pending) == 1:  # one rank: a plain get (the common case in pipelines; one round trip)
                ready, pending = pending, []
                try:
                    values[index[ready[0].hex()]] = ray.get(ready[0], timeout=remaining)
                    continue
                except GetTimeoutError:
                    raise self._timed_out(future, ready, limit, explicit=timeout is not None) from None
                except Exception:
                    pass  # classified below
            else:
                ready, pending = ray.wait(pending, num_returns=1, timeout=remaining)
            if not ready:
                raise self._timed_out(future, pending, limit, explicit=timeout is not None)
            for ref in ready:
                rank = index[ref.hex()]
                try:
                    values[rank] = ray.get(ref)
                except Exception as exc:
                    failures[rank] = self._classify(future, rank, exc)
                    order.append(rank)
            if failures:
                outcomes = self._settle(future, pending, failures, values)
                raise self._error(future, failures, outcomes, order)
        return [values[r] for r in future.ranks]

    def _timed_out(self, future: RayFuture, pending: list[Any], limit: float, explicit: bool) -> WorkerError:
        index = {ref.hex(): r for r, ref in zip(future.ranks, future.refs, strict=True)}
        late = sorted(index[ref.hex()] for ref in pending)
        failures: dict[int, _Failure] = {}
        outcomes = self._settle(future, [], failures, {})
        for rank in future.ranks:
            outcomes.setdefault(rank, "ok")
        for rank in late:
            outcomes[rank] = "still running (timed out)"
        if any(f.died for f in failures.values()):  # a dead peer, not the late ranks, is the cause
            error = self._error(future, failures, outcomes, [])
        else:
            key = "the timeout given to result()" if explicit else f"cluster.{future.key}"
            where = ", ".join(str(r) for r in late)
            detail = (f"{future.method}() did not finish within {limit:g} s ({key}; raise it if the call is only slow). "
                      f"Late rank(s): {where}. The watchdog logs a late call's stack after cluster.watchdog_min_s.")
            if future.method == "__init__":
                detail += " A rank that never started may be waiting for resources (see `ray status`)."
            error = WorkerTimeout(future.group, late[0], future.method, detail,
                                  outcomes=outcomes if len(outcomes) > 1 else None)
        group = future._group
        group.stopped = (f"rank {late[0]} timed out in {future.method}() after {limit:g} s" if isinstance(error, WorkerTimeout)
                         else f"rank {error.rank} of group {error.group!r} died")
        log.error("stopping worker group %r: %s", group.name, group.stopped)
        for actor in group.actors:
            self._kill(actor)
        return error

    # --- channels, shutdown

    def channel(self, name: str, maxsize: int = 0) -> RayChannel:
        ch = RayChannel(name, maxsize)
        self._channels.add(ch)
        return ch

    def shutdown(self) -> None:
        ray = self._ray
        _RAY_WORKER_LOG.removeFilter(self._quiet)
        if not ray.is_initialized():
            return
        for group in self._groups[::-1]:  # last created first, as the inline executor does
            self._close(group)
        self._groups = []
        for actor in list(self._actors):
            self._kill(actor)
        for ch in list(self._channels):
            try:
                ch.close()
            except Exception as exc:
                log.debug("closing channel: %s", exc)
        self._channels = weakref.WeakSet()
        if self._pg is not None:
            try:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(self._pg)
            except Exception as exc:
                log.debug("removing placement group: %s", exc)
            self._pg = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
