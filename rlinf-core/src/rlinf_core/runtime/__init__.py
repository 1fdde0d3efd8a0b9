"""The runtime: worker groups joined by channels, placed on devices, run inline or on Ray.

Nothing here imports torch or Ray until an executor that needs them is created.
"""

from rlinf_core.runtime.channel import Channel, ChannelTimeout
from rlinf_core.runtime.executors import Executor, GroupFuture, WorkerGroup, make_executor
from rlinf_core.runtime.launch import AutoPlacement, Runtime, WorkerSpec, detect_devices
from rlinf_core.runtime.limits import Limits
from rlinf_core.runtime.placement import GroupPlacement, Placement, parse_component_placement, resolve_placement
from rlinf_core.runtime.worker import RankInfo, Worker, WorkerCallError, WorkerError, WorkerTimeout

__all__ = [
    "AutoPlacement", "Channel", "ChannelTimeout", "Executor", "GroupFuture", "GroupPlacement", "Limits", "Placement",
    "RankInfo", "Runtime", "Worker", "WorkerCallError", "WorkerError", "WorkerGroup", "WorkerSpec", "WorkerTimeout",
    "detect_devices", "make_executor", "parse_component_placement", "resolve_placement",
]
