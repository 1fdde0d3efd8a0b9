"""The ``embodied`` flow: PPO on CartPole learns, GAE bootstraps truncations (not terminations),
embodied GRPO groups share initial states, resume reproduces, Ray runs it, bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from rlinf_core.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("rlinf_envs_embodied")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "embodied"


# --------------------------------------------------------------------------- helpers


class Counter(gym.Env):
    """obs = [steps taken in the episode]; reward 1 a step; ``terminate_at`` ends the episode (terminated)."""

    def __init__(self, terminate_at: int | None = None):
        self.observation_space = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.terminate_at, self.t = terminate_at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return np.array([float(self.t)], np.float32), 1.0, terminated, False, {}


class Camera(Counter):
    """A :class:`Counter` that also shows a 6x8 camera image whose pixels hold the step count."""

    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Dict({"state": self.observation_space,
                                                  "cam": gym.spaces.Box(0, 255, (6, 8, 3), np.uint8)})

    def _obs(self, state):
        return {"state": state, "cam": np.full((6, 8, 3), 10 * self.t, np.uint8)}

    def reset(self, *, seed=None, options=None):
        state, info = super().reset(seed=seed)
        return self._obs(state), info

    def step(self, action):
        state, *rest = super().step(action)
        return (self._obs(state), *rest)


gym.register("H1Terminating-v0", entry_point=lambda: Counter(terminate_at=3))
gym.register("H1Camera-v0", entry_point=Camera)
gym.register("H1Endless-v0", entry_point=lambda: Counter(terminate_at=None))


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    *path, last = dotted.split(".")
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value


def _config(run_root: Path, name: str = "cartpole_ppo_cpu.yaml", **overrides: Any) -> dict[str, Any]:
    cfg = yaml.safe_load((EXAMPLES / name).read_text())
    _set(cfg, "runner.logger.log_path", str(run_root))
    _set(cfg, "runner.logger.experiment_name", "t")
    for dotted, value in overrides.items():
        _set(cfg, dotted, value)
    return cfg


def _make_flow(cfg: dict[str, Any]):
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.flows.embodied import EmbodiedFlow
    from rlinf_core.plugins import get_plugins

    plugins = get_plugins()
    conf = load_config(cfg, plugins=plugins)
    validate_config(conf, plugins)
    run_dir = Path(conf.runner.logger.log_path) / conf.runner.logger.experiment_name
    return EmbodiedFlow(conf, plugins=plugins, run_dir=run_dir), run_dir


def _rows(run_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- learning


def test_examples_validate():
    from click.testing import CliRunner
    from rlinf_core.cli import main

    for path in (EXAMPLES / "cartpole_ppo_cpu.yaml", EXAMPLES / "metaworld_reach_ppo_cpu.yaml"):
        result = CliRunner().invoke(main, ["config", "validate", str(path)])
        assert result.exit_code == 0 and "valid" in result.output, result.output


def test_cartpole_ppo_return_rises(tmp_path):
    """The example config with 8 envs, 7 steps: the episode return at least doubles (measured: 20 -> 42, 50, 68
    at steps 3-5, 200 by step 10)."""
    flow, run_dir = _make_flow(_config(tmp_path, **{"runner.max_epochs": 7, "runner.save_interval": -1,
                                                    "env.train.total_num_envs": 8, "actor.global_batch_size": 400,
                                                    "actor.micro_batch_size": 400}))
    final = flow.train()
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 8))
    first = rows[0]["env/episode_return"]
    best_late = max(r.get("env/episode_return", 0.0) for r in rows[-3:])
    assert first < 40, first  # random CartPole policies fall within ~20 steps
    assert best_late > 2 * first and best_late > 45, [r.get("env/episode_return") for r in rows]
    assert final["throughput/env_steps_per_s"] > 0 and (run_dir / "reward_curve.png").is_file()
    assert 0 < final["actor/entropy"] < np.log(2) + 1e-6


# --------------------------------------------------------------------------- GAE bootstrapping


def _reference_gae(rewards, values, dones_terminated, dones_truncated, final_values, last_value, gamma, lam):
    """Plain-loop GAE of one sub-env (the reference for the flow's vectorised one)."""
    t_max = len(rewards)
    adv = [0.0] * t_max
    running = 0.0
    for t in reversed(range(t_max)):
        if dones_terminated[t]:
            next_v, cont = 0.0, 0.0
        elif dones_truncated[t]:
            next_v, cont = final_values[t], 0.0
        else:
            next_v = values[t + 1] if t + 1 < t_max else last_value
            cont = 1.0
        delta = rewards[t] + gamma * next_v - values[t]
        running = delta + gamma * lam * cont * running
        adv[t] = running
    return adv


@pytest.mark.parametrize("env_id,horizon,terminal", [("H1Terminating-v0", 10, "terminated"), ("H1Endless-v0", 3, "truncated")])
def test_gae_bootstraps_truncation_not_termination(tmp_path, env_id, horizon, terminal):
    """Episodes of 3 steps, 5 steps per rollout: the 3rd step ends an episode (terminated by the env,
    or truncated by max_episode_steps), the sub-env auto-resets. Checked against a plain loop with
    values the policy gives for the observations it saw: V(final observation [3]) bootstraps a
    truncation, nothing bootstraps a termination."""
    gamma, lam = 0.9, 0.8
    cfg = _config(tmp_path, **{"env.train.env_id": env_id, "env.train.total_num_envs": 2, "env.train.max_episode_steps": horizon,
                               "env.train.max_steps_per_rollout_epoch": 5, "env.train.reward_coef": 1.0,
                               "env.eval.env_id": env_id, "actor.global_batch_size": 10, "actor.micro_batch_size": 10,
                               "algorithm.gamma": gamma, "algorithm.gae_lambda": lam})
    flow, _ = _make_flow(cfg)
    with flow._start("train"):
        data = flow._rollout(1)[0]
        value_of = flow.rt["rollout"].call("act", {"obs": {"state": torch.tensor([[3.0], [0.0]])}, "final_obs": None}).result()[0]
        v_final = float(value_of["values"][0])
        out = flow._advantages(data)
    assert data["rewards"].shape == (2, 5, 1) and data["rewards"].sum() == 10
    flags = data[terminal].any(-1)
    assert flags[:, 2].all() and int(flags.sum()) == 2  # step 3 of 5 ends the episode of both sub-envs
    other = "truncated" if terminal == "terminated" else "terminated"
    assert not data[other].any()
    states = data["rows"]["obs"]["state"].reshape(2, 5)
    assert states[0].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]  # auto-reset after the 3rd step
    # V(final observation) is asked for and recorded only for the truncation (a termination needs none)
    expected_final = [v_final, v_final] if terminal == "truncated" else [0.0, 0.0]
    assert data["final_values"][:, 2].tolist() == pytest.approx(expected_final, abs=1e-6)
    assert (data["final_values"][:, [0, 1, 3, 4]] == 0).all()
    for i in range(2):
        values = data["values"][i].tolist()
        ref = _reference_gae([1.0] * 5, values, [terminal == "terminated" and t == 2 for t in range(5)],
                             [terminal == "truncated" and t == 2 for t in range(5)], [v_final] * 5,
                             float(data["last_values"][i]), gamma, lam)
        assert out["advantages"].reshape(2, 5)[i].tolist() == pytest.approx(ref, abs=1e-5)
        assert out["returns"].reshape(2, 5)[i].tolist() == pytest.approx([a + v for a, v in zip(ref, values, strict=True)], abs=1e-5)
    # the 3rd step's advantage: r - V(s2) (terminated) or r + gamma V(final) - V(s2) (truncated), no recursion
    v2 = float(data["values"][0, 2])
    expected = 1.0 - v2 + (gamma * v_final if terminal == "truncated" else 0.0)
    assert float(out["advantages"].reshape(2, 5)[0, 2]) == pytest.approx(expected, abs=1e-5)


# --------------------------------------------------------------------------- embodied GRPO


def test_embodied_grpo_groups_share_initial_states(tmp_path):
    cfg = _config(tmp_path, **{"algorithm.adv_type": "embodied_grpo", "env.train.group_size": 4, "env.train.total_num_envs": 8,
                               "env.train.max_steps_per_rollout_epoch": 60, "actor.model.add_value_head": False,
                               "actor.global_batch_size": 240, "actor.micro_batch_size": 240, "runner.max_epochs": 2,
                               "algorithm.normalize_advantages": False})
    flow, run_dir = _make_flow(cfg)
    with flow._start("train"):
        data = flow._rollout(1)[0]
        out = flow._advantages(data)
        again = flow._rollout(2)[0]
    first_obs = data["rows"]["obs"]["state"].reshape(8, 60, 4)[:, 0]
    for g in range(2):
        group = first_obs[4 * g: 4 * g + 4]
        assert torch.equal(group, group[:1].expand_as(group))  # one initial state per group
    assert not torch.equal(first_obs[0], first_obs[4])
    assert not torch.equal(again["rows"]["obs"]["state"].reshape(8, 60, 4)[0, 0], first_obs[0])  # new states next step
    scores = data["first_return"]
    adv = out["advantages"].reshape(8, 60)
    valid = data["valid"]
    for i in range(8):
        g = scores[4 * (i // 4): 4 * (i // 4) + 4]
        expected = (scores[i] - g.mean()) / (g.std() + 1e-6)
        assert adv[i][valid[i]].tolist() == pytest.approx([float(expected)] * int(valid[i].sum()), abs=1e-5)
        assert (adv[i][~valid[i]] == 0).all()
        ended = int(valid[i].sum())  # the first episode's steps count; the rest of the rollout is masked
        assert ended == 60 or (data["terminated"][i, ended - 1].any() or data["truncated"][i, ended - 1].any())
    assert torch.equal(out["loss_mask"].reshape(8, 60).bool(), valid)
    metrics = flow.train()  # trains end to end without a value head
    assert "actor/value_loss" not in metrics and np.isfinite(metrics["actor/loss"])


# --------------------------------------------------------------------------- env worker processes


def test_env_worker_processes_and_inline_pipelining_train_exactly_as_in_process(tmp_path):
    """``vectorization: async`` with two slices per micro-batch (one stepped in a worker process, one in
    this process) and two pipeline stages (the inline executor's split steps): the metrics equal those of
    the same run stepping every sub-env in this process."""
    keys = ("env/episode_return", "env/episodes", "actor/loss", "actor/entropy", "actor/grad_norm")
    runs = []
    for name, params in (("sync", {"vectorization": "sync"}), ("async", {"vectorization": "async", "num_workers": 2})):
        cfg = _config(tmp_path / name, **{"runner.max_epochs": 2, "runner.save_interval": -1, "env.train.total_num_envs": 6,
                                          "env.train.max_steps_per_rollout_epoch": 30, "env.train.init_params": params,
                                          "rollout.pipeline_stage_num": 2, "actor.global_batch_size": 90,
                                          "actor.micro_batch_size": 90})
        flow, run_dir = _make_flow(cfg)
        flow.train()
        runs.append(_rows(run_dir))
    for a, b in zip(*runs, strict=True):
        for key in keys:
            assert a[key] == b[key], key
    assert all(r["env/episodes"] > 0 for r in runs[0])  # CartPole episodes ended (and auto-reset) in every rollout


def test_inline_rollout_leaves_the_env_worker_processes_their_cores(tmp_path, monkeypatch):
    """Under the inline executor the policy runs with torch's threads capped at the cores the env's
    worker processes leave free (their OpenMP threads would spin on them); the update gets them back."""
    import torch
    from rlinf_core.flows import embodied_workers
    from rlinf_core.runtime import threads

    monkeypatch.setattr(threads, "usable_cpus", lambda: 3)
    seen = {"act": set(), "train": set()}
    act, train = embodied_workers.PolicyRolloutWorker.act, embodied_workers.PolicyActorWorker.train_step

    def recording(kind, method):
        def wrapper(self, *args, **kwargs):
            seen[kind].add(torch.get_num_threads())
            return method(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(embodied_workers.PolicyRolloutWorker, "act", recording("act", act))
    monkeypatch.setattr(embodied_workers.PolicyActorWorker, "train_step", recording("train", train))
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        for workers, expected in ((2, 2), (1, 4)):  # 2 slices: one worker process; 1 slice: all in this process
            seen["act"].clear()
            cfg = _config(tmp_path / str(workers), **{"runner.max_epochs": 1, "runner.save_interval": -1,
                                                      "env.train.total_num_envs": 4,
                                                      "env.train.max_steps_per_rollout_epoch": 10,
                                                      "actor.global_batch_size": 20, "actor.micro_batch_size": 20,
                                                      "env.train.init_params": {"vectorization": "async", "num_workers": workers}})
            flow, _ = _make_flow(cfg)
            flow.train()
            assert seen["act"] == {expected}, workers
            assert seen["train"] == {4}
            assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


class ResetCounter(Counter):
    """A :class:`Counter` (no termination) that counts the resets of every instance."""

    resets = 0

    def reset(self, *, seed=None, options=None):
        ResetCounter.resets += 1
        return super().reset(seed=seed, options=options)


gym.register("H1ResetCounter-v0", entry_point=ResetCounter)


def test_the_last_step_of_a_rollout_leaves_ended_episodes_for_the_next_reset(tmp_path, monkeypatch):
    """Episodes of 10 steps, rollouts of 20: the episodes that end at a rollout's last step are not
    auto-reset (the next rollout resets every sub-env from its own seeds), and training is the same as
    with that reset done (the ``reset_done`` keyword hidden from the env worker)."""
    from rlinf_core.flows import embodied_workers

    keys = ("env/episode_return", "env/episodes", "actor/loss", "actor/entropy", "actor/grad_norm", "actor/value_loss")
    runs, resets = [], []
    for name in ("skip", "reset"):
        if name == "reset":
            monkeypatch.setattr(embodied_workers, "_takes", lambda env, keyword: False)
        cfg = _config(tmp_path / name, **{"runner.max_epochs": 3, "runner.save_interval": -1, "env.train.total_num_envs": 4,
                                          "env.train.env_id": "H1ResetCounter-v0", "env.train.max_episode_steps": 10,
                                          "env.train.max_steps_per_rollout_epoch": 20, "actor.global_batch_size": 80,
                                          "actor.micro_batch_size": 80})
        flow, run_dir = _make_flow(cfg)
        ResetCounter.resets = 0
        flow.train()
        runs.append(_rows(run_dir))
        resets.append(ResetCounter.resets)
    for a, b in zip(*runs, strict=True):
        for key in keys:
            assert a[key] == b[key], key
    # per rollout and sub-env: the rollout's reset, the auto-reset at step 10, and (only with it done) at step 20
    assert resets[1] - resets[0] == 3 * 4 and all(r["env/episodes"] == 8 for r in runs[0])


# --------------------------------------------------------------------------- resume


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    keys = ("env/episode_return", "actor/loss", "actor/entropy", "actor/grad_norm")
    cfg = _config(tmp_path / "a", **{"runner.max_epochs": 4, "runner.save_interval": 2, "env.train.total_num_envs": 8,
                                     "env.train.max_steps_per_rollout_epoch": 40, "actor.global_batch_size": 160,
                                     "actor.micro_batch_size": 80})
    flow, run_a = _make_flow(cfg)
    flow.train()
    straight = {r["step"]: r for r in _rows(run_a)}
    run_b = tmp_path / "b" / "t"
    (run_b / "checkpoints").mkdir(parents=True)
    shutil.copytree(run_a / "checkpoints" / "global_step_2", run_b / "checkpoints" / "global_step_2")
    cfg["runner"]["logger"]["log_path"] = str(tmp_path / "b")
    flow_b, _ = _make_flow(cfg)
    flow_b.train(resume=True)
    resumed = {r["step"]: r for r in _rows(run_b)}
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        for key in keys:
            assert resumed[step][key] == pytest.approx(straight[step][key], rel=1e-6), (step, key)


# --------------------------------------------------------------------------- eval


def test_evaluate_is_deterministic_on_held_out_seeds(tmp_path):
    cfg = _config(tmp_path, **{"runner.max_epochs": 1, "runner.save_interval": 1, "env.train.total_num_envs": 4,
                               "env.train.max_steps_per_rollout_epoch": 40, "actor.global_batch_size": 160,
                               "actor.micro_batch_size": 160, "env.eval.total_num_envs": 4, "env.eval.max_episode_steps": 50})
    flow, run_dir = _make_flow(cfg)
    flow.train()
    first = flow.evaluate()
    second = flow.evaluate(str(run_dir / "checkpoints" / "global_step_1"))
    assert first == second and first["episodes"] == 4 and first["step"] == 1
    assert 0 < first["episode_return"] <= 50


# --------------------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_two_env_ranks_one_rollout_rank(tmp_path):
    """2 env ranks (one micro-batch each, pipelined) + 1 rollout rank + 1 actor rank, under Ray."""
    ray = pytest.importorskip("ray")
    ours = not ray.is_initialized()  # tests/runtime's session-wide Ray, when it ran first in this process, serves
    if ours:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = _config(tmp_path, **{"cluster.executor": "ray", "cluster.num_devices_per_node": 2,
                                   "cluster.component_placement": {"env": "0-1", "rollout,actor": "0"},
                                   "rollout.pipeline_stage_num": 2, "runner.max_epochs": 2, "runner.save_interval": -1,
                                   "env.train.total_num_envs": 8, "env.train.max_steps_per_rollout_epoch": 30,
                                   "actor.global_batch_size": 120, "actor.micro_batch_size": 120})
        flow, run_dir = _make_flow(cfg)
        metrics = flow.train()
        assert flow.stage_num == 2
    finally:
        if ours:
            ray.shutdown()
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2] and metrics["env/episodes"] > 0
    assert np.isfinite(metrics["actor/loss"])


# --------------------------------------------------------------------------- bad input


def test_unknown_simulator_is_one_line_with_did_you_mean(tmp_path):
    from rlinf_core.config import load_config
    from rlinf_core.flows.embodied import EmbodiedFlow
    from rlinf_core.plugins import get_plugins

    plugins = get_plugins()
    conf = load_config(_config(tmp_path, **{"env.train.simulator_type": "gymnasiun"}), plugins=plugins)
    with pytest.raises(ConfigError) as info:
        EmbodiedFlow(conf, plugins=plugins, run_dir=tmp_path / "r")
    (line,) = info.value.problems
    assert line.startswith("env.train.simulator_type:") and "gymnasium" in line and "did you mean" in line.lower()
    assert "metaworld" in line and "\n" not in line


def test_an_env_error_in_a_rank_is_one_line_in_the_driver(tmp_path):
    flow, _ = _make_flow(_config(tmp_path, **{"env.train.init_params": {"images": True}}))
    try:
        flow.train()  # CartPole cannot render without pygame
    except ConfigError as exc:
        (line,) = exc.problems
    else:
        pytest.skip("pygame is installed: CartPole renders")
    assert line.startswith("env.train.init_params.images: 'CartPole-v1' cannot render") and "\n" not in line


def test_action_dim_mismatch_names_the_key(tmp_path):
    flow, _ = _make_flow(_config(tmp_path, **{"actor.model.action_dim": 3}))
    with pytest.raises(ConfigError) as info:
        flow.train()
    (line,) = info.value.problems
    assert line.startswith("actor.model.action_dim: 3 does not match") and "set it to 1" in line and "\n" not in line


def test_unknown_precision_names_the_key_and_the_choices(tmp_path):
    with pytest.raises(ConfigError) as info:  # at validation, before any worker starts
        _make_flow(_config(tmp_path, **{"actor.model.precision": "bf61"}))
    (line,) = info.value.problems
    assert line.startswith("actor.model.precision: unknown precision 'bf61'.") and "Did you mean 'bf16'?" in line
    assert line.endswith("Valid: fp32, bf16, fp16") and "\n" not in line


def test_gae_without_value_head_and_unknown_adv_type(tmp_path):
    with pytest.raises(ConfigError) as info:
        _make_flow(_config(tmp_path, **{"actor.model.add_value_head": False}))
    assert any(p.startswith("actor.model.add_value_head") for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        _make_flow(_config(tmp_path, **{"env.train.auto_reset": False}))
    assert any(p.startswith("env.train.auto_reset is false") for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        _make_flow(_config(tmp_path, **{"algorithm.adv_type": "grpo", "env.train.group_size": 3}))
    assert any(p.startswith("env.train.total_num_envs=16 must be a multiple of env.train.group_size=3")
               for p in info.value.problems)


# --------------------------------------------------------------------------- videos, auto placement


def test_eval_writes_mp4_videos(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    cfg = _config(tmp_path, **{"env.train.env_id": "H1Camera-v0", "env.eval.env_id": "H1Camera-v0",
                               "env.eval.total_num_envs": 2, "env.eval.max_episode_steps": 12,
                               "env.eval.video_cfg": {"save_video": True, "video_base_dir": "vids"}})
    flow, run_dir = _make_flow(cfg)
    result = flow.evaluate()  # no checkpoint: the initial policy
    videos = sorted((run_dir / "vids").glob("*.mp4"))
    assert result["videos"] == 2 and [v.name for v in videos] == ["step0_env0.mp4", "step0_env1.mp4"]
    frames = imageio.mimread(videos[0])
    assert len(frames) == 13 and frames[0].shape == (6, 8, 3)  # the reset frame + one a step
    assert [int(np.median(f)) for f in frames[:3]] == pytest.approx([0, 10, 20], abs=3)  # lossy codec


def test_video_without_imageio_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a))
    flow, _ = _make_flow(_config(tmp_path, **{"env.eval.video_cfg": {"save_video": True}}))
    with pytest.raises(ConfigError, match=r"needs imageio_ffmpeg.*pip install 'rlinf-envs-embodied\[video\]'"):
        flow.evaluate()


def test_auto_placement_profiles_and_trains(tmp_path, caplog):
    cfg = _config(tmp_path, **{"cluster.placement": "auto", "cluster.num_devices_per_node": 2, "runner.max_epochs": 1,
                               "runner.save_interval": -1, "env.train.total_num_envs": 8,
                               "env.train.max_steps_per_rollout_epoch": 20, "actor.global_batch_size": 160,
                               "actor.micro_batch_size": 40})
    flow, _ = _make_flow(cfg)
    with caplog.at_level("INFO", logger="rlinf.runtime"):
        metrics = flow.train()
    assert flow.rt.auto_choice is not None and flow.stage_num == flow.rt.auto_choice.stage_num
    assert flow.rt.placement.mode == flow.rt.auto_choice.mode
    assert set(flow.rt.placement.groups) == {"env", "rollout", "actor"}
    assert "auto placement chose" in caplog.text and "x predicted" in caplog.text
    assert np.isfinite(metrics["actor/loss"])


def test_same_results_under_every_placement_mode(tmp_path):
    """Inline executor, pipeline_stage_num 2: placement changes where groups run, not what they compute."""
    placements = {"collocated": {"env,rollout,actor": "all"}, "disaggregated": {"env": "0", "rollout": "1", "actor": "2"},
                  "hybrid": {"env": "0", "rollout,actor": "1-2:0"}}
    results = {}
    for mode, spec in placements.items():
        cfg = _config(tmp_path / mode, **{"cluster.num_devices_per_node": 3, "cluster.component_placement": spec,
                                          "rollout.pipeline_stage_num": 2, "runner.max_epochs": 2, "runner.save_interval": -1,
                                          "env.train.total_num_envs": 4, "env.train.max_steps_per_rollout_epoch": 30,
                                          "actor.global_batch_size": 60, "actor.micro_batch_size": 30})
        flow, _ = _make_flow(cfg)
        metrics = flow.train()
        assert flow.rt.placement.mode == mode and flow.stage_num == 2
        results[mode] = {k: metrics[k] for k in ("actor/loss", "actor/grad_norm", "env/reward_per_step")}
    assert results["collocated"] == results["disaggregated"] == results["hybrid"]


@pytest.mark.parametrize("logprob_type", ["action_level", "chunk_level"])
def test_action_chunks_train_at_chunk_level(tmp_path, logprob_type):
    """K = 3 actions a policy call: rewards (N, T, K) summed into one GAE step per chunk, log-probs per
    action (or summed per chunk with logprob_type chunk_level)."""
    cfg = _config(tmp_path, **{"actor.model.num_action_chunks": 3, "algorithm.logprob_type": logprob_type,
                               "env.train.total_num_envs": 4, "env.train.max_steps_per_rollout_epoch": 30,
                               "actor.global_batch_size": 20, "actor.micro_batch_size": 10, "runner.max_epochs": 1,
                               "runner.save_interval": -1})
    flow, _ = _make_flow(cfg)
    with flow._start("train"):
        data = flow._rollout(1)[0]
        out = flow._advantages(data)
    assert flow.rollout_steps() == 10 and data["rewards"].shape == (4, 10, 3)
    assert data["rows"]["actions"].shape == (40, 3) and data["rows"]["log_probs"].shape == (40, 3)
    assert out["advantages"].shape == (40,)
    metrics = flow.train()
    assert np.isfinite(metrics["actor/loss"]) and metrics["throughput/env_steps_per_s"] > 0


def test_action_level_rewards_with_chunks_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        _make_flow(_config(tmp_path, **{"actor.model.num_action_chunks": 2, "algorithm.reward_type": "action_level"}))
    assert any(p.startswith("algorithm.reward_type=action_level with actor.model.num_action_chunks=2")
               for p in info.value.problems)


def test_periodic_validation_plays_the_eval_episodes_of_rlinf_eval(tmp_path):
    cfg = _config(tmp_path, **{"runner.max_epochs": 2, "runner.save_interval": 2, "runner.val_check_interval": 1,
                               "env.train.total_num_envs": 4, "env.train.max_steps_per_rollout_epoch": 40,
                               "actor.global_batch_size": 160, "actor.micro_batch_size": 160,
                               "env.eval.total_num_envs": 2, "env.eval.max_episode_steps": 50})
    flow, run_dir = _make_flow(cfg)
    flow.train()
    rows = {r["step"]: r for r in _rows(run_dir)}
    assert all(rows[s]["val/episodes"] == 2 for s in (1, 2))
    # validation after step 2 is what `rlinf eval` gives for the step-2 checkpoint: same policy, same episodes
    evaluated = flow.evaluate(str(run_dir / "checkpoints" / "global_step_2"))
    assert rows[2]["val/episode_return"] == pytest.approx(evaluated["episode_return"], rel=1e-9)
    assert rows[2]["val/success_rate"] == pytest.approx(evaluated["success_rate"])
    # training was not disturbed by the switches: the run's step-2 return equals a run without validation
    cfg_plain = _config(tmp_path / "plain", **{k: v for k, v in (("runner.max_epochs", 2), ("runner.save_interval", 2),
                        ("env.train.total_num_envs", 4), ("env.train.max_steps_per_rollout_epoch", 40),
                        ("actor.global_batch_size", 160), ("actor.micro_batch_size", 160))})
    plain_flow, plain_dir = _make_flow(cfg_plain)
    plain_flow.train()
    plain = {r["step"]: r for r in _rows(plain_dir)}
    assert rows[2]["env/episode_return"] == pytest.approx(plain[2]["env/episode_return"], rel=1e-9)
    assert "val/episode_return" not in plain[2]
