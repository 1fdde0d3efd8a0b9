"""Executors: the same flow under inline and Ray and every placement; faults; shutdown; channels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from rlinf_core import ConfigError, PluginError, get_plugins
from rlinf_core.runtime import AutoPlacement, ChannelTimeout, RankInfo, Runtime, Worker, WorkerError, WorkerSpec
from rlinf_core.runtime.pipeline import run_env_rollout_loop
from rlinf_core.runtime.worker import construct_worker
from rlinf_core.testing.demo_flow import WORKERS, profile_env_rollout, run_demo_flow

NUM_ENVS = 8


def _cluster(executor, spec, devices):
    return SimpleNamespace(executor=executor, component_placement=spec, placement=None, num_nodes=1,
                           num_devices_per_node=devices, ray_address=None)


def _run(executor, spec, devices, stage_num=2):
    workers = {
        "env": WorkerSpec(WORKERS["env"], (NUM_ENVS,)),
        "rollout": WorkerSpec(WORKERS["rollout"]),
        "actor": WorkerSpec(WORKERS["actor"]),
    }
    with Runtime(_cluster(executor, spec, devices), get_plugins(), workers) as rt:
        mode = rt.placement.mode
        sizes = {name: g.world_size for name, g in rt.groups.items()}
        return mode, sizes, run_demo_flow(rt, stage_num=stage_num)


def _same(a, b):
    assert a["rewards"] == pytest.approx(b["rewards"], rel=1e-10)
    for key in a["weights"]:
        torch.testing.assert_close(a["weights"][key], b["weights"][key], rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def inline_result():
    mode, sizes, result = _run("inline", {}, 2)
    assert mode == "collocated" and sizes == {"env": 1, "rollout": 1, "actor": 1}
    assert result["rewards"][1] != result["rewards"][0]  # the update changed the policy
    return result


def test_inline_is_deterministic(inline_result):
    _same(inline_result, _run("inline", {}, 2)[2])


@pytest.mark.parametrize("spec, devices, mode, sizes", [
    ({"env,rollout,actor": "all"}, 2, "collocated", {"env": 2, "rollout": 2, "actor": 2}),
    ({"env": 0, "rollout": 1, "actor": 2}, 3, "disaggregated", {"env": 1, "rollout": 1, "actor": 1}),
    ({"env": "0-1", "rollout,actor": "2-3"}, 4, "hybrid", {"env": 2, "rollout": 2, "actor": 2}),
])
def test_ray_gives_the_inline_result_under_every_placement(ray_session, inline_result, spec, devices, mode, sizes):
    got_mode, got_sizes, result = _run("ray", spec, devices)
    assert (got_mode, got_sizes) == (mode, sizes)
    _same(result, inline_result)


def test_pipelining_does_not_change_results(inline_result):
    one = _run("inline", {}, 2, stage_num=1)[2]
    four = _run("inline", {}, 2, stage_num=4)[2]
    assert one["rewards"][0] == pytest.approx(four["rewards"][0], rel=1e-12)  # same envs, same first policy


def test_online_scaling_adds_rollout_ranks_and_stays_on_policy(ray_session, inline_result):
    workers = {"env": WorkerSpec(WORKERS["env"], (NUM_ENVS,)), "rollout": WorkerSpec(WORKERS["rollout"]),
               "actor": WorkerSpec(WORKERS["actor"])}
    sizes = []

    def grow_rollout(rt, i):
        rt["rollout"].scale_to([1, 3])  # device 3 was free
        sizes.append(rt["rollout"].world_size)
        assert sorted(r[1] for r in rt["rollout"].call("ping").result()) == [0, 1]  # ranks renumbered

    with Runtime(_cluster("ray", {"env": 0, "rollout": 1, "actor": 2}, 4), get_plugins(), workers) as rt:
        result = run_demo_flow(rt, between_iterations=grow_rollout)
        rt["rollout"].scale_to([3])  # and shrink again
        assert rt["rollout"].world_size == 1 and rt["rollout"].call("ping").result()[0][1] == 0
    assert sizes == [2]
    _same(result, inline_result)


def test_inline_groups_cannot_scale():
    with Runtime(_cluster("inline", {}, 1), get_plugins(), {"env": WorkerSpec(Faulty)}) as rt:
        with pytest.raises(RuntimeError, match="online scaling needs cluster.executor=ray"):
            rt["env"].scale_to([0])


def _auto_cluster(executor, spec=None):
    return SimpleNamespace(executor=executor, component_placement=spec or {}, placement="auto", num_nodes=1,
                           num_devices_per_node=2, ray_address=None)


@pytest.mark.parametrize("executor", ["inline", "ray"])
def test_auto_placement_profiles_chooses_and_runs(executor, request, caplog):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    auto = AutoPlacement(profile_env_rollout, num_envs=NUM_ENVS, stage_nums=(1, 2, 4))
    workers = {"env": WorkerSpec(WORKERS["env"], (NUM_ENVS,), {"cost": 20}), "rollout": WorkerSpec(WORKERS["rollout"], kwargs={"cost": 20})}
    with caplog.at_level("INFO", logger="rlinf.runtime"):
        with Runtime(_auto_cluster(executor), get_plugins(), workers, auto=auto) as rt:
            choice = rt.auto_choice
            assert choice is not None and choice.stage_num in (1, 2, 4)
            assert rt.placement.mode == choice.mode
            start = time.perf_counter()
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=3, stage_num=choice.stage_num)
            message = rt.report_throughput(3 * NUM_ENVS / (time.perf_counter() - start))
    assert "auto placement chose" in caplog.text and "x predicted" in message


def _fixed_profile(num_envs, stage_nums):
    """1 ms + 1 ms per row for each stage, whatever the machine does."""
    from rlinf_core.runtime.scheduler import StageProfile

    return StageProfile("env", 1e-3, 1e-3), StageProfile("rollout", 1e-3, 1e-3)


def test_inline_auto_placement_counts_one_device():
    """The inline executor runs one call at a time: two devices in the config do not let two micro-batches run at
    once (which would make 2 stages on 2 devices twice as fast), so auto keeps one stage, predicted as env + policy."""
    from rlinf_core.runtime.scheduler import choose

    env, policy = _fixed_profile(NUM_ENVS, (1, 2))
    assert choose(env, policy, num_envs=NUM_ENVS, num_devices=2, stage_nums=(1, 2))[0].stage_num == 2  # devices at once
    auto = AutoPlacement(_fixed_profile, num_envs=NUM_ENVS, stage_nums=(1, 2))
    workers = {"env": WorkerSpec(WORKERS["env"], (NUM_ENVS,)), "rollout": WorkerSpec(WORKERS["rollout"])}
    with Runtime(_auto_cluster("inline"), get_plugins(), workers, auto=auto) as rt:
        choice = rt.auto_choice
    assert rt.num_devices == 2 and choice is not None and (choice.mode, choice.stage_num) == ("collocated", 1)
    serial = env.time(NUM_ENVS) + policy.time(NUM_ENVS)
    assert NUM_ENVS / (serial + 1e-3) < choice.predicted_steps_per_s <= NUM_ENVS / serial  # + 2 inline call overheads


def _profile_where(path, num_envs, stage_nums):
    """profile_env_rollout, noting the process it ran in and its thread settings."""
    import json

    path.write_text(json.dumps({"pid": os.getpid(), "omp": os.environ.get("OMP_NUM_THREADS"),
                                "lp": os.environ.get("LP_NUM_THREADS")}))
    return profile_env_rollout(num_envs, stage_nums)


def test_ray_auto_placement_profiles_in_a_rank_with_its_thread_settings(ray_session, by_value, tmp_path, monkeypatch):
    """Under Ray the stages are timed in a rank's process (one CPU: OMP_NUM_THREADS and llvmpipe's
    LP_NUM_THREADS 1), not the driver, so that the profile sees the threads the ranks will have."""
    import json
    from functools import partial

    by_value(__name__)
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    where = tmp_path / "where.json"
    auto = AutoPlacement(partial(_profile_where, where), num_envs=NUM_ENVS, stage_nums=(1, 2))
    workers = {"env": WorkerSpec(WORKERS["env"], (NUM_ENVS,)), "rollout": WorkerSpec(WORKERS["rollout"])}
    with Runtime(_auto_cluster("ray"), get_plugins(), workers, auto=auto) as rt:
        assert rt.auto_choice is not None
    seen = json.loads(where.read_text())
    assert seen["pid"] != os.getpid() and seen["omp"] == "1" and seen["lp"] == "1"


def test_auto_placement_errors():
    workers = {"env": WorkerSpec(WORKERS["env"], (NUM_ENVS,))}
    with pytest.raises(ConfigError, match="this flow cannot profile its stages"):
        Runtime(_auto_cluster("inline"), get_plugins(), workers)
    auto = AutoPlacement(profile_env_rollout, num_envs=NUM_ENVS)
    with pytest.raises(ConfigError, match="chooses the placement itself; remove cluster.component_placement"):
        Runtime(_auto_cluster("inline", {"env": 0}), get_plugins(), workers, auto=auto)


class Faulty(Worker):
    def __init__(self, fail_in_init: bool = False):
        if fail_in_init and self.rank == 1:
            raise RuntimeError("cannot start rank 1")

    def boom(self, rank_to_fail: int) -> int:
        if self.rank == rank_to_fail:
            raise ValueError(f"boom on rank {self.rank}")
        return self.rank

    def pid(self) -> int:
        return os.getpid()

    def produce(self, channel, n: int) -> int:
        for i in range(n):
            channel.put(i, torch.full((2,), float(i)))
        return n

    def demo_plugin_workers(self) -> list[str]:
        from rlinf_demo_plugin import plugin

        return list(plugin.INITIALISED_WORKERS)


def _faulty_runtime(executor, devices=2, **kwargs):
    return Runtime(_cluster(executor, {"env": "all"}, devices), get_plugins(), {"env": WorkerSpec(Faulty, kwargs=kwargs)})


def test_inline_worker_error_names_group_rank_method_and_traceback():
    with _faulty_runtime("inline") as rt:
        with pytest.raises(WorkerError) as err:
            rt["env"].call("boom", 0).result()
    msg = str(err.value)
    assert msg.startswith("worker group 'env' rank 0 raised in boom():")
    assert "Traceback" in msg and "ValueError: boom on rank 0" in msg


def test_ray_worker_error_names_group_rank_method_and_remote_traceback(ray_session, by_value):
    by_value(__name__)
    with _faulty_runtime("ray") as rt:
        assert rt["env"].call("boom", 5).result() == [0, 1]
        with pytest.raises(WorkerError) as err:
            rt["env"].call("boom", 1).result()
    assert str(err.value).startswith("worker group 'env' rank 1 raised in boom():")
    assert "ValueError: boom on rank 1" in str(err.value)
    assert not err.value.died


def test_ray_constructor_failure_names_the_rank(ray_session, by_value):
    by_value(__name__)
    with pytest.raises(WorkerError, match="(?s)worker group 'env' rank 1 .*__init__.*cannot start rank 1"):
        _faulty_runtime("ray", fail_in_init=True)


def test_ray_killed_rank_is_reported(ray_session, by_value):
    by_value(__name__)
    with _faulty_runtime("ray") as rt:
        pids = rt["env"].call("pid").result()
        os.kill(pids[1], signal.SIGKILL)
        with pytest.raises(WorkerError) as err:
            rt["env"].call("pid").result()
    assert err.value.died and err.value.rank == 1 and err.value.group == "env"
    assert "rank 1 died (killed or crashed) in pid()" in str(err.value)


def test_plugins_worker_init_hook_runs_in_every_ray_rank(ray_session, by_value):
    by_value(__name__)
    with _faulty_runtime("ray") as rt:
        seen = rt["env"].call("demo_plugin_workers").result()
    assert seen == [["env/0"], ["env/1"]]


def test_plugin_selection_reaches_ray_ranks(ray_session, by_value, monkeypatch):
    by_value(__name__)
    monkeypatch.setenv("RLINF_DISABLE_PLUGINS", "demo")
    from rlinf_core import reset_plugins

    reset_plugins()  # the driver now sees 'demo' disabled; its ranks must too, or they refuse to start
    with _faulty_runtime("ray", devices=1) as rt:
        assert rt["env"].call("demo_plugin_workers").result() == [[]]  # demo's worker-init hook did not run


def test_worker_refuses_other_plugins_than_the_driver():
    info = RankInfo("env", 0, 1, (0,), plugin_fingerprint="not-the-driver")
    with pytest.raises(PluginError, match="sees different rlinf plugins than the driver"):
        construct_worker(Faulty, info, (), {})
    with pytest.raises(TypeError, match="must subclass rlinf_core.runtime.Worker"):
        construct_worker(dict, RankInfo("env", 0, 1, (0,)), (), {})


ORPHAN_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, types
    # Ctrl-C as in a terminal: a process started in the background by a non-interactive shell (`cmd &`, as CI
    # runners and scripts may) inherits SIGINT ignored, and Python then leaves it ignored (the child exited 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import ray
    sys.path.insert(0, {tests!r})
    import test_executors as t
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(t)
    node = ray._private.worker._global_node
    rt = t._faulty_runtime("ray")
    pids = rt["env"].call("pid").result()
    pids += [p.process.pid for infos in node.all_processes.values() for p in infos]
    print(json.dumps(pids), flush=True)
    try:
        with rt:
            if {mode!r} == "error":
                rt["env"].call("boom", 0).result()
            else:
                os.kill(os.getpid(), signal.SIGINT)
                import time; time.sleep(30)
    finally:
        ray.shutdown()
""")


@pytest.mark.parametrize("mode", ["error", "ctrl-c"])
def test_no_process_outlives_an_error_or_ctrl_c(mode):
    pytest.importorskip("ray")
    script = ORPHAN_SCRIPT.format(tests=os.path.dirname(__file__), mode=mode)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0
    assert ("WorkerError" in proc.stderr) if mode == "error" else ("KeyboardInterrupt" in proc.stderr)
    import json

    pids = json.loads(proc.stdout.strip().splitlines()[0])
    assert len(pids) >= 4
    deadline = time.time() + 20
    alive = pids
    while alive and time.time() < deadline:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read().lower()]
        time.sleep(0.5)
    assert alive == [], f"processes left behind: {alive}"


# --- channels


def test_inline_channel_back_pressure_blocks_the_producer_and_keeps_order():
    with _faulty_runtime("inline") as rt:
        ch = rt.channel("obs", maxsize=2)
        ch.put(0, "a")
        ch.put(1, "b")
        with pytest.raises(ChannelTimeout, match="channel 'obs' stayed full \\(maxsize 2\\)"):
            ch.put(2, "c", timeout=0.05)
        assert ch.qsize() == 2
        produced = []

        def producer():
            for i in range(2, 6):
                ch.put(i, i * 10)
                produced.append(i)

        thread = threading.Thread(target=producer)
        thread.start()
        time.sleep(0.2)
        assert produced == [] and ch.qsize() == 2  # blocked, nothing dropped, no growth
        got = [ch.get(timeout=5) for _ in range(6)]
        thread.join(timeout=5)
        assert [k for k, _ in got] == [0, 1, 2, 3, 4, 5]
        assert got[0][1] == "a" and got[-1][1] == 50
        assert ch.stats.max_depth <= 2 and ch.stats.gets == 6
        with pytest.raises(ChannelTimeout, match="stayed empty"):
            ch.get(timeout=0.05)


def test_inline_channel_passes_references():
    with _faulty_runtime("inline") as rt:
        ch = rt.channel("x", maxsize=1)
        payload = torch.zeros(3)
        ch.put("k", payload)
        assert ch.get()[1] is payload


def test_ray_channel_back_pressure_between_a_worker_and_the_driver(ray_session, by_value):
    by_value(__name__)
    with _faulty_runtime("ray", devices=1) as rt:
        ch = rt.channel("obs", maxsize=2)
        future = rt["env"].call("produce", ch, 6)
        time.sleep(2.0)
        assert ch.qsize() == 2  # the producer is blocked on a full channel
        got = []
        for _ in range(6):
            got.append(ch.get(timeout=30))
            assert ch.qsize() <= 2
        assert future.result() == [6]
        assert [k for k, _ in got] == list(range(6))
        torch.testing.assert_close(got[5][1], torch.full((2,), 5.0))


# --- collocated phases: offload / onload between groups that share devices


class Recording(Worker):
    log: list[str] = []

    def offload(self):
        Recording.log.append(f"offload {self.group_name}")

    def onload(self):
        Recording.log.append(f"onload {self.group_name}")


def test_phases_offload_only_groups_sharing_devices_and_only_on_transitions():
    Recording.log = []
    workers = {g: WorkerSpec(Recording) for g in ("env", "rollout", "actor")}
    cluster = _cluster("inline", {"rollout,actor": 0, "env": 1}, 2)
    with Runtime(cluster, get_plugins(), workers, offload=True) as rt:
        with rt.phase("rollout", "env"):
            pass
        assert Recording.log == ["offload actor"]  # env is on another device: untouched
        with rt.phase("rollout", "env"):
            pass
        assert Recording.log == ["offload actor"]  # no transition, no call
        with rt.phase("actor"):
            pass
        assert Recording.log == ["offload actor", "offload rollout", "onload actor"]
        with pytest.raises(KeyError, match="no worker group critic"):
            with rt.phase("critic"):
                pass
    Recording.log = []
    with Runtime(cluster, get_plugins(), workers) as rt:  # CPU: offloading is off by default
        with rt.phase("actor"):
            pass
    assert Recording.log == []


def test_offload_helpers_round_trip_weights_and_optimizer_state():
    from rlinf_core.runtime.offload import offload_to_host, reload_to_device

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    offload_to_host(model, opt)
    assert all(p.device.type == "cpu" for p in model.parameters())
    reload_to_device(model, "cpu", opt)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert all(t.device.type == "cpu" for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))


@pytest.mark.gpu
def test_offload_frees_gpu_memory_and_restores_exactly():
    from rlinf_core.runtime.offload import offload_to_host, reload_to_device

    model = torch.nn.Linear(1024, 1024).cuda()
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(4, 1024, device="cuda")).sum().backward()
    opt.step()
    before = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    used = torch.cuda.memory_allocated()
    offload_to_host(model, opt)
    assert torch.cuda.memory_allocated() < used / 4
    reload_to_device(model, "cuda", opt)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v.cpu(), before[k])
    model(torch.ones(4, 1024, device="cuda")).sum().backward()
    opt.step()  # optimizer state is usable on the device again


JOIN_SCRIPT = textwrap.dedent("""
    import sys, types
    from rlinf_core import get_plugins
    from rlinf_core.runtime import Runtime, Worker, WorkerSpec
    import ray
    cluster = types.SimpleNamespace(executor="ray", component_placement={{"env": "all"}}, placement=None, num_nodes=1,
                                    num_devices_per_node=2, ray_address={address!r})
    with Runtime(cluster, get_plugins(), {{"env": WorkerSpec(Worker)}}) as rt:
        print("pids", [r[2] for r in rt["env"].call("ping").result()])
        print("gcs", ray.get_runtime_context().gcs_address)
""")


HEAD_SCRIPT = textwrap.dedent("""
    import sys, ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(ray.get_runtime_context().gcs_address, flush=True)
    sys.stdin.read()  # keep the cluster up until the test closes stdin
    ray.shutdown()
""")


def test_ray_executor_joins_a_running_cluster_when_ray_address_is_set():
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # both sides of this local test cluster
    head = subprocess.Popen([sys.executable, "-c", HEAD_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        address = head.stdout.readline().strip()
        assert address, "the head cluster did not start"
        proc = subprocess.run([sys.executable, "-c", JOIN_SCRIPT.format(address=address)],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"gcs {address}" in proc.stdout and "pids [" in proc.stdout
        assert head.poll() is None  # the cluster outlives the run that joined it
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def test_a_different_ray_address_than_the_connected_cluster_is_refused(ray_session):
    from rlinf_core.runtime.executors.ray import RayExecutor

    with pytest.raises(ConfigError, match="already connected to the Ray cluster"):
        RayExecutor(1, address="10.255.255.1:1")


class Stage(Worker):
    def __init__(self, scale: float, fail_on: float | None = None):
        self.scale, self.fail_on = scale, fail_on

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_on is not None and bool((x == self.fail_on).any()):
            raise ValueError(f"bad micro-batch in {self.group_name}")
        return x * self.scale


@pytest.mark.parametrize("executor, spec, devices", [
    ("inline", {}, 1),
    ("ray", {"rollout": 0, "reward": 1, "actor": "0-1"}, 2),
])
def test_linear_stage_pipeline_matches_sequential(executor, spec, devices, request):
    from rlinf_core.runtime.pipeline import run_stage_pipeline

    if executor == "ray":
        request.getfixturevalue("by_value")(__name__)
    workers = {"rollout": WorkerSpec(Stage, (2.0,)), "reward": WorkerSpec(Stage, (3.0,)),
               "actor": WorkerSpec(Stage, (-1.0,), {"fail_on": 600.0})}
    batches = [torch.full((2,), float(j)) for j in range(5)]
    with Runtime(_cluster(executor, spec, devices), get_plugins(), workers) as rt:
        stages = [(rt["rollout"], "apply"), (rt["reward"], "apply"), (rt["actor"], "apply")]
        out = run_stage_pipeline(stages, batches)
        assert [o.tolist() for o in out] == [[-6.0 * j] * 2 for j in range(5)]
        with pytest.raises(WorkerError, match="worker group 'actor' rank .* raised in apply"):
            run_stage_pipeline(stages, [torch.full((2,), 100.0)])  # the actor stage receives 100 * 2 * 3 = 600
