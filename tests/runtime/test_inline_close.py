"""The inline executor closes its workers (``Worker.close()``) on shutdown and on ``remove_group``."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from rlinf_core import get_plugins
from rlinf_core.runtime import Runtime, Worker, WorkerSpec
from rlinf_core.runtime.executors.inline import InlineExecutor
from rlinf_core.runtime.placement import GroupPlacement

CLOSED: list[str] = []


class Closing(Worker):
    def __init__(self, fail: bool = False):
        self.fail = fail

    def close(self) -> None:
        CLOSED.append(self.group_name)
        if self.fail:
            raise RuntimeError(f"{self.group_name} could not free its engine")


class NoClose(Worker):
    """A worker without ``close()``: shutdown must not need one."""


@pytest.fixture(autouse=True)
def _reset():
    CLOSED.clear()
    yield
    CLOSED.clear()


def _cluster():
    return SimpleNamespace(executor="inline", component_placement={}, placement=None, num_nodes=1,
                           num_devices_per_node=1, ray_address=None)


def test_runtime_exit_closes_every_worker_once_last_created_first():
    workers = {"actor": WorkerSpec(Closing), "rollout": WorkerSpec(Closing), "reward": WorkerSpec(NoClose)}
    with Runtime(_cluster(), get_plugins(), workers, known_groups=("actor", "rollout", "reward")) as rt:
        assert CLOSED == []
        assert rt["rollout"].execute("ping")[0][0] == "rollout"
    assert CLOSED == ["rollout", "actor"]
    rt.shutdown()  # a second shutdown closes nothing again
    assert CLOSED == ["rollout", "actor"]


def test_a_failing_close_is_logged_and_the_others_still_close(caplog):
    ex = InlineExecutor()
    ex.create_group("first", Closing, GroupPlacement("first", (0,), ((0,),)))
    ex.create_group("broken", Closing, GroupPlacement("broken", (0,), ((0,),)), fail=True)
    with caplog.at_level(logging.WARNING, logger="rlinf.runtime"):
        ex.shutdown()
    assert CLOSED == ["broken", "first"]
    assert "worker group 'broken': close() failed" in caplog.text
    assert "could not free its engine" in caplog.text


def test_remove_group_closes_that_group_only():
    ex = InlineExecutor()
    kept = ex.create_group("kept", Closing, GroupPlacement("kept", (0,), ((0,),)))
    gone = ex.create_group("gone", Closing, GroupPlacement("gone", (0,), ((0,),)))
    ex.remove_group(gone)
    assert CLOSED == ["gone"]
    ex.remove_group(gone)  # already removed: not closed twice
    assert CLOSED == ["gone"]
    ex.shutdown()
    assert CLOSED == ["gone", "kept"]
    assert kept.worker.group_name == "kept"
