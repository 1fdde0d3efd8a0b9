"""Fault injection on the runtime: killed, raising, hung and late ranks; bad calls; leaks on long runs.

Each fault asserts that the message names the right group / rank / method (and the config key that
raises a limit), and that no rank process is left behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest
from rlinf_core import ConfigError, get_plugins
from rlinf_core.runtime import Runtime, Worker, WorkerCallError, WorkerError, WorkerSpec, WorkerTimeout

ray = pytest.importorskip("ray")


def _cluster(executor="ray", spec=None, devices=2, **limits):
    return SimpleNamespace(executor=executor, component_placement=spec or {"env": "all"}, placement=None, num_nodes=1,
                           num_devices_per_node=devices, ray_address=None, **limits)


@pytest.fixture(scope="module")
def ray_here():
    """Ray for this module (started here unless another module's fixture already did)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module is not importable in ranks
    yield ray
    if started:
        ray.shutdown()


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                if "zombie" not in f.read().lower():
                    alive.append(pid)
        except OSError:
            pass
    return alive


def _assert_gone(pids, within=20.0):
    deadline = time.time() + within
    while _alive(pids) and time.time() < deadline:
        time.sleep(0.25)
    assert _alive(pids) == [], f"processes left behind: {_alive(pids)}"


class Victim(Worker):
    def pid(self) -> int:
        return os.getpid()

    def sleep(self, seconds: float) -> int:
        time.sleep(seconds)
        return self.rank

    def collective(self, rounds: int) -> float:
        import torch
        import torch.distributed as dist

        t = torch.ones(1)
        for _ in range(rounds):
            dist.all_reduce(t)
            t /= 2
            time.sleep(0.01)
        return float(t)

    def coloured(self) -> None:
        raise ValueError("\x1b[31mred\x1b[0m failure")

    def exit(self, code: int) -> None:
        sys.exit(code)

    def take(self, value) -> str:
        return type(value).__name__

    def _secret(self) -> None:
        """Private: never callable through the group."""


class BadStart(Worker):
    def __init__(self):
        if self.rank == 1:
            raise RuntimeError("rank 1 cannot start")


def _kill_later(pid: int, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (pid, signal.SIGKILL))
    timer.start()
    return timer


# --- rank failures


def test_a_rank_killed_mid_call_is_reported_at_once_not_after_the_slow_ranks(ray_here):
    with Runtime(_cluster(), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        pids = rt["env"].call("pid").result()
        future = rt["env"].call("sleep", 30)
        _kill_later(pids[1], 1.0)
        start = time.monotonic()
        with pytest.raises(WorkerError) as err:
            future.result()
        took = time.monotonic() - start
    assert took < 10, f"reported after {took:.1f} s: the killed rank was awaited behind rank 0's 30 s call"
    e = err.value
    assert (e.group, e.rank, e.method, e.died) == ("env", 1, "sleep", True)
    msg = str(e)
    assert msg.startswith("worker group 'env' rank 1 died (killed or crashed) in sleep():")
    assert f"pid {pids[1]}" in msg and "SIGKILL" in msg  # Ray has no exit code for it: the likely signals are named
    assert e.outcomes == {0: "still running", 1: "died"}
    _assert_gone(pids)


def test_a_rank_killed_mid_collective_is_the_cause_and_the_survivor_a_consequence(ray_here):
    with Runtime(_cluster(), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        pids = rt["env"].call("pid").result()
        assert rt["env"].call("collective", 3).result() == [0.125 * 8] * 2  # the gloo group works
        future = rt["env"].call("collective", 3000)
        _kill_later(pids[1], 1.5)
        with pytest.raises(WorkerError) as err:
            future.result()
    e = err.value
    assert (e.group, e.rank, e.method, e.died) == ("env", 1, "collective", True), str(e)
    assert e.outcomes[1] == "died"
    assert e.outcomes[0] != "ok"  # rank 0 lost its peer: raised (gloo) or still blocked, either way a consequence
    _assert_gone(pids)


def test_killing_an_env_rank_in_the_pipelined_flow_blames_the_env_rank_not_rollout(ray_here):
    from rlinf_core.runtime.pipeline import run_env_rollout_loop
    from rlinf_core.testing.demo_flow import WORKERS

    workers = {"env": WorkerSpec(WORKERS["env"], (8,), {"cost": 200}), "rollout": WorkerSpec(WORKERS["rollout"])}
    spec = {"env,rollout": "all"}
    with Runtime(_cluster(spec=spec), get_plugins(), workers) as rt:
        pids = [r[2] for g in ("env", "rollout") for r in rt[g].call("ping").result()]
        start = time.monotonic()
        run_env_rollout_loop(rt["env"], rt["rollout"], steps=10, stage_num=2)
        # about 20 s of work at the measured pace, so that the kill at 1 s lands inside the loop even when the
        # machine speeds up after the warm-up (CI saw a loaded run finish a 3 s budget before the kill)
        steps = int(10 * 20.0 / (time.monotonic() - start)) + 10
        _kill_later(pids[1], 1.0)
        with pytest.raises(WorkerError) as err:
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=steps, stage_num=2)
    e = err.value
    assert (e.group, e.rank, e.died) == ("env", 1, True), str(e)
    assert e.method in ("step", "reset")
    assert str(e).startswith("worker group 'env' rank 1 died (killed or crashed) in ")
    _assert_gone(pids)


def test_a_raise_is_traced_through_the_inputs_of_the_calls_that_received_it(ray_here):
    workers = {"env": WorkerSpec(Victim), "rollout": WorkerSpec(Victim)}
    with Runtime(_cluster(spec={"env": 0, "rollout": 1}), get_plugins(), workers) as rt:
        bad = rt["env"].call("coloured")
        downstream = rt["rollout"].call("take", bad.handles[0])
        with pytest.raises(WorkerError) as err:
            downstream.result()
    e = err.value
    assert (e.group, e.rank, e.method, e.died) == ("env", 0, "coloured", False)
    assert "found by worker group 'rollout' rank 0 in take()" in str(e)
    assert "\x1b" not in str(e) and "ValueError: red failure" in str(e)  # plain text, no ANSI colour codes


def test_a_worker_sys_exit_is_a_worker_error_and_the_rank_stays_up(ray_here):
    with Runtime(_cluster(devices=1), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        with pytest.raises(WorkerError, match=r"(?s)worker group 'env' rank 0 raised in exit\(\):.*SystemExit: 3"):
            rt["env"].call("exit", 3).result()
        assert rt["env"].call("sleep", 0).result() == [0]


def test_inline_worker_sys_exit_does_not_end_the_driver():
    with Runtime(_cluster("inline", devices=1), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        with pytest.raises(WorkerError, match=r"(?s)worker group 'env' rank 0 raised in exit\(\):.*SystemExit: 4"):
            rt["env"].call("exit", 4).result()
        assert rt["env"].call("sleep", 0).result() == [0]


# --- calls that cannot be sent: one line naming group, rank, method


@pytest.mark.parametrize("executor", ["inline", "ray"])
def test_bad_calls_get_one_clear_line(executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_here")
    with Runtime(_cluster(executor, devices=2), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        group = rt["env"]
        last = group.world_size - 1
        cases = [
            (lambda: group.call("pid", ranks=[5]), "worker group 'env': pid() on ranks=[5]: rank 5 does not exist"),
            (lambda: group.call("__init__"), "worker group 'env': cannot call __init__(): names starting with '_'"),
            (lambda: group.call("_secret"), "worker group 'env': cannot call _secret()"),
            (lambda: group.call("sleeep", 0), "worker group 'env' (Victim) has no method sleeep(). Did you mean 'sleep'?"),
        ]
        for make, message in cases:
            with pytest.raises(WorkerCallError) as err:
                make()
            assert str(err.value).startswith(message) and "\n" not in str(err.value)
        assert group.call("pid", ranks=[last]).result()  # the group still works
        if executor == "ray":
            with pytest.raises(WorkerCallError) as err:
                group.call("take", threading.Lock())
            msg = str(err.value)
            assert msg.startswith("worker group 'env' rank 0: cannot send the arguments of take(): argument <unlocked")
            assert "cannot be pickled" in msg and "\n" not in msg and "\x1b" not in msg


# --- timeouts and the watchdog


def test_a_hung_call_times_out_naming_rank_method_and_key_and_its_group_is_stopped(ray_here):
    cluster = _cluster(call_timeout_s=2.0)
    with Runtime(cluster, get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        pids = rt["env"].call("pid").result()
        start = time.monotonic()
        with pytest.raises(WorkerTimeout) as err:
            rt["env"].call("sleep", 600, ranks=[1]).result()
        assert time.monotonic() - start < 8
        e = err.value
        assert (e.group, e.rank, e.method) == ("env", 1, "sleep")
        assert "sleep() did not finish within 2 s (cluster.call_timeout_s" in str(e)
        _assert_gone(pids)  # the hung rank (and its group) were stopped: nothing wedges
        with pytest.raises(WorkerCallError, match="worker group 'env' cannot run pid\\(\\): the runtime stopped it after "
                                                  "rank 1 timed out in sleep\\(\\)"):
            rt["env"].call("pid")


def test_an_explicit_result_timeout_names_itself(ray_here):
    with Runtime(_cluster(devices=1), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        with pytest.raises(WorkerTimeout, match=r"did not finish within 0.5 s \(the timeout given to result\(\)"):
            rt["env"].call("sleep", 600).result(timeout=0.5)


def test_a_constructor_that_hangs_hits_the_startup_timeout(ray_here):
    class SlowStart(Worker):
        def __init__(self):
            time.sleep(600)

    with pytest.raises(WorkerTimeout, match=r"rank 0 timed out in __init__\(\):\n__init__\(\) did not finish within 1 s "
                                            r"\(cluster.startup_timeout_s"):
        Runtime(_cluster(devices=1, startup_timeout_s=1.0), get_plugins(), {"env": WorkerSpec(SlowStart)})


def test_ray_watchdog_reports_a_late_call_with_the_rank_stack(ray_here):
    cluster = _cluster(devices=1, watchdog_min_s=0.5, watchdog_factor=10)
    with Runtime(cluster, get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        assert rt["env"].call("sleep", 2.0).result() == [0]
        reports = rt["env"].watchdog_reports()[0]
    assert reports, "the watchdog did not report a 2 s call with watchdog_min_s=0.5"
    assert reports[0].startswith("watchdog: worker group 'env' rank 0: sleep() has run")
    assert "cluster.watchdog_min_s=0.5" in reports[0]
    assert "in sleep\n    time.sleep(seconds)" in reports[0]  # the rank's Python stack, innermost last


def test_inline_watchdog_logs_a_late_call_and_learns_typical_durations(caplog):
    cluster = _cluster("inline", devices=1, watchdog_min_s=0.3, watchdog_factor=3)
    with caplog.at_level(logging.WARNING, logger="rlinf.runtime"):
        with Runtime(cluster, get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
            rt["env"].call("sleep", 1.0).result()
            late = [r.getMessage() for r in caplog.records if "watchdog" in r.getMessage()]
            assert late and late[0].startswith("watchdog: worker group 'env' rank 0: sleep() has run")
            assert "time.sleep(seconds)" in late[0]
            caplog.clear()
            rt["env"].call("sleep", 1.0).result()  # now typical: 1 s x factor 3 = 3 s limit, not late
            assert not [r for r in caplog.records if "watchdog" in r.getMessage()]


# --- whole-process cleanup (subprocesses: each starts and must end its own Ray)

HANG_SCRIPT = textwrap.dedent("""
    import json, sys, types
    sys.path.insert(0, {here!r})
    import ray
    import test_runtime as t
    ray.cloudpickle.register_pickle_by_value(t)
    from rlinf_core import get_plugins
    from rlinf_core.runtime import Runtime, WorkerSpec
    cluster = t._cluster(devices=2, call_timeout_s=3.0, watchdog_min_s=1.0)
    ray_pids = []
    try:
        with Runtime(cluster, get_plugins(), {{"env": WorkerSpec(t.Victim)}}) as rt:
            node = ray._private.worker._global_node
            ray_pids = [p.process.pid for infos in node.all_processes.values() for p in infos]
            print(json.dumps(rt["env"].call("pid").result() + ray_pids), flush=True)
            rt["env"].call("sleep", 600, ranks=[0]).result()
    finally:
        print("ray still initialised:", ray.is_initialized(), flush=True)
""")


def _run_script(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)


def test_a_hung_rank_does_not_wedge_the_run_and_the_watchdog_reaches_the_driver_console():
    start = time.monotonic()
    proc = _run_script(HANG_SCRIPT.format(here=os.path.dirname(__file__)))
    assert time.monotonic() - start < 90
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rlinf_core.runtime.worker.WorkerTimeout: worker group 'env' rank 0 timed out in sleep():" in proc.stderr
    assert "sleep() did not finish within 3 s (cluster.call_timeout_s" in proc.stderr
    # the rank's watchdog line, forwarded by Ray to the driver's console, with the rank's stack
    assert "watchdog: worker group 'env' rank 0: sleep() has run" in proc.stderr and "time.sleep(seconds)" in proc.stderr
    assert "ray still initialised: False" in proc.stdout
    _assert_gone(json.loads(proc.stdout.splitlines()[0]))


STARTUP_SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    sys.path.insert(0, {here!r})
    import ray
    import test_runtime as t
    ray.cloudpickle.register_pickle_by_value(t)
    from rlinf_core import get_plugins
    from rlinf_core.runtime import Runtime, WorkerSpec
    try:
        Runtime(t._cluster(devices={devices}), get_plugins(), {{"env": WorkerSpec(t.BadStart)}})
    except Exception as exc:
        print(type(exc).__name__, str(exc).splitlines()[0])
    print("ray still initialised:", ray.is_initialized())
    print("raylets:", subprocess.run(["pgrep", "-f", "-P", str(__import__("os").getpid()), "raylet"],
                                     capture_output=True, text=True).stdout.split())
""")


@pytest.mark.parametrize("devices, message", [
    (2, "WorkerError worker group 'env' rank 1 raised in __init__():"),
    (-2, "ConfigError cluster.num_devices_per_node: the Ray executor needs at least one device, got -2"),
])
def test_a_failure_right_after_ray_init_leaves_no_ray_running(devices, message):
    proc = _run_script(STARTUP_SCRIPT.format(here=os.path.dirname(__file__), devices=devices))
    assert message in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "ray still initialised: False" in proc.stdout and "raylets: []" in proc.stdout


def test_an_unreachable_ray_address_fails_within_its_timeout_in_one_line():
    script = textwrap.dedent("""
        import time
        from rlinf_core.runtime.executors.ray import RayExecutor
        from rlinf_core.runtime import Limits
        start = time.monotonic()
        try:
            RayExecutor(1, address="127.0.0.1:1", limits=Limits(ray_init_timeout_s=1.5))
        except Exception as exc:
            print(type(exc).__name__, str(exc))
        print("took", round(time.monotonic() - start, 1))
    """)
    proc = _run_script(script, timeout=60)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("ConfigError cluster.ray_address: no Ray cluster answers at '127.0.0.1:1' (")
    assert "within 1.5 s" in lines[0] and "cluster.ray_init_timeout_s" in lines[0]
    assert float(lines[1].split()[1]) < 10
    assert "Failed to connect to GCS" not in proc.stderr  # no retry log spam


# --- long runs


def _queue_actor_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "^ray::_QueueActor"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_dropped_channels_release_their_processes(ray_here):
    import gc

    with Runtime(_cluster(devices=1), get_plugins(), {"env": WorkerSpec(Victim)}) as rt:
        before = set(_queue_actor_pids())
        kept = rt.channel("kept", maxsize=2)
        for i in range(20):
            ch = rt.channel(f"tmp{i}", maxsize=1)
            ch.put(i, i)
            assert ch.get(timeout=30) == (i, i)
        del ch
        gc.collect()
        deadline = time.time() + 30
        while len(set(_queue_actor_pids()) - before) > 1 and time.time() < deadline:
            time.sleep(0.5)
        assert len(set(_queue_actor_pids()) - before) == 1  # only the channel still referenced
        kept.put("k", 1)
        assert kept.get(timeout=30) == ("k", 1)
    deadline = time.time() + 20
    while set(_queue_actor_pids()) - before and time.time() < deadline:
        time.sleep(0.5)
    assert not set(_queue_actor_pids()) - before  # shutdown closes the rest


def test_cluster_limits_are_config_keys_with_documented_defaults():
    from rlinf_core.config import load_config
    from rlinf_core.runtime import Limits

    cfg = load_config(None, ["cluster.call_timeout_s=5", "cluster.watchdog_min_s=0"])
    limits = Limits.from_cluster(cfg.cluster)
    assert limits.call_timeout_s == 5 and limits.watchdog_min_s == 0
    assert Limits().seconds("call_timeout_s") == 3600 and Limits(call_timeout_s=0).seconds("call_timeout_s") is None
    with pytest.raises(ConfigError, match="cluster.call_timeout_s"):
        load_config(None, ["cluster.call_timeout_s=-1"])
