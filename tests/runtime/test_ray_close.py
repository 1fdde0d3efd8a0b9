"""The Ray executor closes its workers on shutdown: each rank runs ``Worker.close()``, then leaves its
``torch.distributed`` process group (barrier, destroy), before the actors are killed."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from rlinf_core import get_plugins
from rlinf_core.runtime import RankInfo, Runtime, Worker, WorkerSpec
from rlinf_core.runtime.executors.ray import _RankActor
from rlinf_core.runtime.limits import Limits

torch = pytest.importorskip("torch")


class Closing(Worker):
    def __init__(self, out: str, fail: bool = False):
        self.out, self.fail = out, fail

    def close(self) -> None:
        import torch.distributed as dist

        grouped = dist.is_available() and dist.is_initialized()
        Path(self.out, f"{self.group_name}-{self.rank}").write_text(f"{grouped} {os.getpid()}")
        if self.fail:
            raise RuntimeError("could not free the engine")


def _cluster(spec, devices):
    return SimpleNamespace(executor="ray", component_placement=spec, placement=None, num_nodes=1,
                           num_devices_per_node=devices, ray_address=None, close_timeout_s=60.0)


def test_shutdown_closes_every_rank_while_its_process_group_is_up(by_value, tmp_path, caplog):
    by_value(__name__)
    workers = {"actor": WorkerSpec(Closing, (str(tmp_path),)), "rollout": WorkerSpec(Closing, (str(tmp_path), True))}
    with caplog.at_level("WARNING", logger="rlinf.runtime"):
        with Runtime(_cluster({"actor": "0-1", "rollout": 2}, 3), get_plugins(), workers) as rt:
            assert rt["actor"].world_size == 2
            assert sorted(p.name for p in tmp_path.iterdir()) == []
    closed = {p.name: p.read_text().split()[0] for p in tmp_path.iterdir()}
    # the two actor ranks share a gloo group, closed before it goes; rollout (one rank) has none
    assert closed == {"actor-0": "True", "actor-1": "True", "rollout-0": "False"}
    assert "worker group 'rollout': close() failed" in caplog.text  # logged; the other groups still closed


def test_a_rank_leaves_its_process_group_after_close(tmp_path):
    import torch.distributed as dist

    info = RankInfo(group_name="actor", rank=0, world_size=1, devices=(0,), device_type="cpu", executor="ray")
    rank = _RankActor(Closing, info, (str(tmp_path),), {}, Limits())
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        rank.close()
        assert not dist.is_initialized()
        assert (tmp_path / "actor-0").read_text().startswith("True")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
