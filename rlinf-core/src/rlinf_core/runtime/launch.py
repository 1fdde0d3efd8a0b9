"""Put a flow's worker groups on devices: placement + executor + groups, as one context manager."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from rlinf_core.errors import ConfigError
from rlinf_core.runtime.executors import Executor, WorkerGroup, make_executor
from rlinf_core.runtime.limits import Limits
from rlinf_core.runtime.placement import AUTO, KNOWN_GROUPS, GroupPlacement, Placement, resolve_placement
from rlinf_core.runtime.scheduler import Candidate, StageProfile, choose, measure_call_overhead
from rlinf_core.runtime.worker import Worker

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


@dataclass(frozen=True)
class AutoPlacement:
    """What ``cluster.placement: auto`` needs from a flow: a profile of its env and policy stages.

    ``profile(num_envs, stage_nums)`` returns the two :class:`~rlinf_core.runtime.scheduler.StageProfile`.
    It runs in a rank of the executor (under Ray a worker process with a rank's thread settings), so it
    must pickle: a module-level function, or a ``functools.partial`` of one.
    """

    profile: Callable[[int, Sequence[int]], tuple[StageProfile, StageProfile]]
    num_envs: int
    stage_nums: tuple[int, ...] = (1, 2, 4, 8)
    env_group: str = "env"
    policy_group: str = "rollout"


class _Probe(Worker):
    """The rank ``cluster.placement: auto`` profiles the stages in and times the executor's calls on."""

    def profile(self, profile: Callable[[int, Sequence[int]], tuple[StageProfile, StageProfile]], num_envs: int,
                stage_nums: Sequence[int]) -> tuple[StageProfile, StageProfile]:
        return profile(num_envs, stage_nums)


class Runtime:
    """Placed, running worker groups. Use as a context manager: every worker stops on exit,
    including on an error or Ctrl-C.

    With ``cluster.placement: auto`` (and ``auto`` given by the flow), the stages are profiled,
    the executor's per-call cost is measured, and the candidate with the best predicted throughput
    is used: ``auto_choice`` holds it (its ``stage_num`` is the pipeline_stage_num to run with).
    """

    def __init__(self, cluster: Any, plugins: Any, workers: Mapping[str, WorkerSpec],
                 known_groups: tuple[str, ...] = KNOWN_GROUPS, num_devices: int | None = None,
                 auto: AutoPlacement | None = None, offload: bool | None = None):
        detected, device_type = detect_devices(cluster)
        #: Offload groups that share devices between phases: on GPU by default (None), or forced.
        self.offload_enabled = (device_type == "cuda") if offload is None else offload
        self._offloaded: set[str] = set()
        self.num_devices = num_devices or detected
        self.auto_choice: Candidate | None = None
        is_auto = getattr(cluster, "placement", None) == AUTO
        if is_auto and auto is None:
            raise ConfigError("cluster.placement=auto: this flow cannot profile its stages; "
                              "choose one of collocated, disaggregated, hybrid")
        if is_auto and getattr(cluster, "component_placement", None):
            raise ConfigError("cluster.placement=auto chooses the placement itself; remove cluster.component_placement "
                              "or set cluster.placement to collocated, disaggregated or hybrid")
        self.executor: Executor = make_executor(
            cluster.executor, self.num_devices, address=getattr(cluster, "ray_address", None),
            device_type=device_type, plugin_fingerprint=plugins.fingerprint(), limits=Limits.from_cluster(cluster),
        )
        self.groups: dict[str, WorkerGroup] = {}
        try:
            if is_auto:
                assert auto is not None
                cluster = self._choose(auto)
            self.placement: Placement = resolve_placement(cluster, plugins, workers, self.num_devices, known_groups)
            log.info("%s", self.placement.describe())
            share: dict[int, int] = {}
            for g in self.placement.groups.values():
                for devices in g.ranks:
                    for d in devices:
                        share[d] = share.get(d, 0) + 1
            for name, spec in workers.items():
                self.groups[name] = self.executor.create_group(
                    name, spec.cls, self.placement.groups[name], *spec.args, share_counts=share, **dict(spec.kwargs)
                )
        except BaseException:
            self.executor.shutdown()
            raise

    def _choose(self, auto: AutoPlacement) -> Any:
        # the profile runs in a rank of the executor (under Ray: a worker process with a rank's thread
        # settings, OMP_NUM_THREADS and LP_NUM_THREADS, not the driver's), then the per-call overhead
        probe = self.executor.create_group("probe", _Probe, GroupPlacement("probe", (0,), ((0,),)),
                                           share_counts={0: self.num_devices * 1000})
        try:
            env, policy = probe.call("profile", auto.profile, auto.num_envs, tuple(auto.stage_nums)).result()[0]
            overhead = measure_call_overhead(probe)
        finally:
            self.executor.remove_group(probe)
        # the inline executor runs one call at a time in this process: to the cost model that is one device, whatever
        # cluster.num_devices_per_node says (measured on Meta-World with camera images, 2026-12-04: predictions 0.90x
        # and 0.91x of measured, the choice 0.96x and 0.99x the fastest stage count; benchmarks/vla_rollout.py)
        devices = self.num_devices if probe.concurrent else 1
        self.auto_choice = choose(env, policy, num_envs=auto.num_envs, num_devices=devices,
                                  stage_nums=auto.stage_nums, call_overhead_s=overhead,
                                  env_group=auto.env_group, policy_group=auto.policy_group)[0]
        return SimpleNamespace(component_placement=self.auto_choice.component_placement, placement=self.auto_choice.mode)

    @contextlib.contextmanager
    def phase(self, *active: str) -> Iterator[None]:
        """Run one phase of the flow (e.g. ``rt.phase("rollout", "env")``, then ``rt.phase("actor")``).

        With offloading enabled, every group that shares a device with an active group but is not
        active itself is offloaded first (``Worker.offload`` on all its ranks), and active groups that
        were offloaded are brought back (``Worker.onload``). Transitions only: a group already in
        place is not called again. Without offloading (CPU, or disaggregated groups) it does nothing.
        """
        unknown = [g for g in active if g not in self.groups]
        if unknown:
            raise KeyError(f"phase: no worker group {', '.join(unknown)} (groups: {', '.join(self.groups)})")
        if self.offload_enabled:
            # each group's own placement: it follows online scaling (self.placement is as launched)
            busy = {d for g in active for d in self.groups[g].placement.devices}
            leaving = [g for g in self.groups if g not in active and g not in self._offloaded
                       and busy & set(self.groups[g].placement.devices)]
            for future in [self.groups[g].call("offload") for g in leaving]:
                future.result()
            self._offloaded.update(leaving)
            arriving = [g for g in active if g in self._offloaded]
            for future in [self.groups[g].call("onload") for g in arriving]:
                future.result()
            self._offloaded.difference_update(arriving)
        yield

    def report_throughput(self, env_steps_per_s: float) -> str:
        """Log (and return) the measured throughput beside auto placement's prediction."""
        if self.auto_choice is None:
            msg = f"measured {env_steps_per_s:.1f} env steps/s ({self.placement.mode})"
        else:
            predicted = self.auto_choice.predicted_steps_per_s
            msg = (f"auto placement: {self.auto_choice.describe()}; measured {env_steps_per_s:.1f} env steps/s "
                   f"({env_steps_per_s / predicted:.2f} x predicted)")
        log.info("%s", msg)
        return msg

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
