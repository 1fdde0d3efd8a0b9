"""PPO on a small control task: rlinf's embodied flow against stable-baselines3's ``PPO``, in one process.

Run in the venv of ``nox -s bench_sb3`` (rlinf + stable-baselines3, CPU torch):
    .venv-nox/bin/nox -s bench_sb3 -- [--total-steps 100000 --seeds 3]
    .nox/bench_sb3/bin/python benchmarks/ppo_vs_sb3.py --total-steps 100000 --seeds 3
    .nox/bench_sb3/bin/python benchmarks/ppo_vs_sb3.py --simulator metaworld   # reach-v3; needs [metaworld]

Both sides get, per seed, the same task and hyper-parameters (the flags below):

- the env: ``--n-envs`` sub-envs of gymnasium ``--env-id`` (CartPole-v1; or Meta-World ``reach-v3``
  through rlinf's own sub-env factory on both sides), time limit ``--max-episode-steps``, sub-env ``i``
  seeded ``seed + i``; rewards scaled by ``--reward-scale`` for training (rlinf ``env.train.reward_coef``,
  SB3 a ``TransformReward`` outside its ``Monitor``), returns reported unscaled;
- the update: ``--n-steps`` steps per sub-env per rollout, ``--minibatches`` mini-batches per pass,
  ``--epochs`` passes, Adam (eps 1e-5, SB3's) at ``--lr``, gradient norm clipped to 0.5, ``--gamma``,
  ``--gae-lambda``, PPO clip ``--clip``, entropy bonus ``--ent-coef``, advantages normalised, no value clipping;
  value loss ``--vf-coef`` x ``(V - R)^2 / 2`` (rlinf ``algorithm.value_loss_coef``; SB3 squares without the
  half, so its ``vf_coef`` is twice this);
- the policy: rlinf's ``mlp`` (separate actor and critic MLPs of ``--layers`` x ``--hidden`` tanh, orthogonal
  init, gains sqrt(2) / 0.01 / 1) and SB3's ``MlpPolicy`` with ``net_arch=dict(pi=[h]*L, vf=[h]*L)``,
  ``Tanh``, ``ortho_init`` (the same construction);
- one torch thread each by default (``--threads``, ``--sb3-threads``); seeds alternate rlinf / SB3 so that a
  change of machine load hits both.

rlinf runs the public path of ``rlinf run``: ``examples/embodied/cartpole_ppo_cpu.yaml`` (or
``metaworld_reach_ppo_cpu.yaml``) with key=value overrides, ``load_config`` + ``validate_config``, the
``runner.task_type`` flow's ``train()``, its ``metrics.jsonl``; then ``evaluate()`` on the saved checkpoint.

Known differences that stay: rlinf starts fresh episodes at every training step (an episode never spans
two rollouts; the last one is bootstrapped with V), SB3 carries episodes over; rlinf normalises
advantages over the whole rollout, SB3 per mini-batch.

Reported per side: wall time (build + train; rlinf's includes starting its workers), env steps per second
of that wall time and of rollout time alone, the update's share; the mean return of the last
``--last-episodes`` finished training episodes (whole rollouts, counted back until that many), env steps
to the first rollout whose finished episodes average ``--threshold`` or more, and the mean return of
``--eval-episodes`` deterministic episodes of the final policy on held-out seeds (the same measure both sides).

Measured 2026-12-02 (the 2-core dev machine shared with other jobs, load average 2-4; torch 2.13.0+cpu,
stable-baselines3 2.9.2; ``--total-steps 200000 --seeds 3``, 3 minutes). First run: rlinf 5984 env steps/s
(6826 per CPU second), SB3 9714 (11244): 0.61x per CPU second, 0.56x in the rollout alone. After the
speed-ups of that day (a one-categorical fast path and no distribution validation in the policy, a
single-step path in the env worker and the vector env, cached loss signatures, no transformers import
for the LR schedule): rlinf 9265 env steps/s (9778 per CPU second), SB3 11478 (11556): 0.81x wall, 0.85x
per CPU second, 0.85x in the rollout alone; the update 4.1 vs 3.2 ms per optimizer step (the gap left).
Learning is unchanged by the speed-ups (bit-identical results): both solve the task (deterministic eval
return 500 on every seed); env steps to a rollout averaging 475: rlinf 101k (136k / 96k / 72k), SB3 109k
(100k / 124k / 104k), 0.93x.

Measured 2026-12-03 (same machine and versions, load average ~4; ``--total-steps 200000 --seeds 3``). Before
the speed-ups of that day: 0.82x per CPU second (``--total-steps 50000 --seeds 1``: rlinf 11414, SB3 13935).
After them (the policy runs its MLPs' weights directly and caches its device, values-only calls run the
critic alone, V(final observation) only for truncated episodes, per-step records stacked once per rollout,
a direct single-step path in the vector env, one host sync per loss call and per update pass instead of
several per mini-batch, the mini-batches sliced from one gather per pass): rlinf 8971 env steps/s (13085 per
CPU second), SB3 8725 (12763): 1.03x wall, 1.03x per CPU second, 1.14x in the rollout alone; the update
8.9 vs 8.5 s (CPU time per optimizer step, measured apart: 3.05 vs 2.77 ms). Learning unchanged in kind:
both solve the task (deterministic eval return 500 on every seed); env steps to a rollout averaging 475:
rlinf 99k (108k / 112k / 76k), SB3 109k (100k / 124k / 104k), 0.90x.

Measured 2026-12-03, later (load average 2-3, a VLA run on the other core; same command), after the fsdp
backend moved AdamW and gradient clipping from torch's per-tensor CPU loop to its foreach kernels (the same
bits: learning identical to the run above, env steps to 475 again 108k / 112k / 76k): rlinf 14220 env steps/s
(14352 per CPU second), SB3 13689 (13759): 1.04x wall, 1.04x per CPU second, 1.13x in the rollout alone; the
update 5.5 vs 5.4 s. AdamW's fused kernel would save about 130 us more per optimizer step but rounds
differently (see fsdp_backend). What is left to the 1.5x goal is not in one place: both sides run the same
torch ops on the same small MLPs, and per optimizer step they now take about the same time.

Meta-World, measured 2026-12-03 (quiet machine, load average under 1): ``--simulator metaworld --total-steps
50000 --seeds 1`` (both stepping in one process), before the env worker left the rollout's last auto-reset
undone: rlinf 0.89x wall and per CPU second (Meta-World's reset costs 8 ms a sub-env, 25 steps' worth, and
rlinf reset every sub-env twice per 150-step rollout); after: 0.96x (rlinf 2099 env steps/s, SB3 2188).
With ``--vectorization async --sb3-vectorization sync --total-steps 100000 --seeds 3`` (rlinf: two slices of 8
sub-envs, one stepped in a worker process and one in the env worker's own; SB3: DummyVecEnv, its fastest here:
its SubprocVecEnv, one process per sub-env, measured 1934 env steps/s against DummyVecEnv's 2043): rlinf 3217
env steps/s, SB3 2304: 1.40x wall, 1.48x in the rollout alone, 0.86x per CPU second (the second core pays for
itself in wall time, not in CPU time); the same learning (last 50 episodes 1208 vs 1139, deterministic eval
1213 vs 1198). The update, 3.6 vs 3.3 s, is what keeps the wall ratio under the rollout's.

Meta-World again (2026-12-03, quiet machine), after the embodied flow learned to cap torch's threads during
an inline rollout at the cores the env's worker processes leave free (torch's default of one thread per core
had halved the async env's rollout: 1782 vs 3557 env steps/s in an 8-step run), so that rlinf can keep two
threads for its update: ``--vectorization async --sb3-vectorization sync --total-steps 100000 --seeds 3
--threads 2 --sb3-threads 2`` (SB3 at its fastest: 2365 env steps/s with two threads, 2269 with one): rlinf 3384
env steps/s, SB3 2365: **1.43x wall, 1.51x in the rollout alone**, 1.31x per CPU second; learning equal within
the seeds' spread (last 50 episodes 1161 vs 1173, deterministic eval 1211 vs 1224); the update 3.1 vs 2.8 s.
(``--threads 2 --sb3-threads 1``, a noisier run: 1.38x wall, 1.44x rollout.) Where the rest of the 1.5x goal
is: per vector step of 16 sub-envs, Meta-World's own Python step costs 5.2 ms in one process (both sides run the
same sub-env factory); rlinf steps two slices of 8 in parallel (2.6 ms, plus 0.2-0.3 ms for the worker slice's
pipe round trip), then runs the policy (about 0.45 ms) and its bookkeeping (about 0.3 ms) while the worker
process idles, and resets (8 ms a sub-env, 11% of its rollout, already split over both cores): a sampling
profile (py-spy) of the rollout puts 59% in the in-process slice's Meta-World step, 11% in resets, 10% in the
policy, 8% waiting for the worker slice. Balanced slices are the best split (uneven ones measured slower), and
two pipeline stages gain nothing here (the policy's cost per call hardly shrinks with half the rows), so the
rollout ratio is near what 2 cores allow for this env (about 1.55x); the update (0.3 s behind SB3's) and
startup keep the wall ratio at 1.43x.

The same command three times on 2026-12-04, on a machine whose speed drifted during the runs (SB3 2304-2365 env
steps/s on 12-03; 1469, 1311 and 1078 here, with load average under 2: the host, not this machine's jobs):
1.53x, 1.49x and 1.37x wall (rollout alone 1.63x, 1.57x, 1.45x); the slower the machine ran, the lower the
ratio. The table now also has success rates (Meta-World's ``info["success"]``: an episode succeeds at its first
successful step, as rlinf's env worker counts it; CartPole has none): last 50 training episodes 0.74 vs 0.77,
deterministic eval (16 episodes a seed) 0.65 vs 0.77, per seed 0.31 / 0.69 / 0.94 vs 0.81 / 0.62 / 0.88 (same
returns as the runs before: 1176 vs 1245 eval). At 100k env steps reach-v3 is not solved on every seed by
either side, so 16 episodes a seed leave the success rates within each other's spread, not equal.

A later session of 2026-12-04 (SB3 at 1338-1370 env steps/s): the same command twice gave 1.36x and 1.35x wall
(rollout alone 1.45x, 1.42x). With 32 sub-envs (``--n-envs 32 --minibatches 8``: the same 600-row mini-batches,
21 rollouts of 32 x 150): **1.53x wall, 1.65x in the rollout alone** (rlinf 2057 env steps/s, SB3 1343), success
equal within the seeds' spread (last 50 training episodes 0.74 vs 0.71, deterministic eval 0.88 vs 0.92, eval
return 1234 vs 1199). Why more sub-envs raise the ratio: per vector step the env worker steps its in-process
slice, waits for the worker process's slice, then the policy and the bookkeeping run while that process idles.
Timed inside the flow (perf_counter around the calls, 16 sub-envs, 12 training steps): the in-process slice 4.7
ms, the wait 0.86 ms (the worker's result coming back through its pipe, 0.25-0.45 ms, and its later start), the
policy 0.66 ms, the rest 0.45 ms; SB3 steps all 16 sub-envs in 8-9 ms and pays a similar fixed cost per step. 32
sub-envs spread that fixed cost over twice the env work. Tried and dropped: every slice in a worker process
(three processes on two cores: rollouts 1.2-1.6x slower), spinning on the pipes instead of blocking, and a 7 / 9
split that would leave the worker's slice time for its pipe (no measurable change either: 4 runs each way).

2026-12-04, a third session (SB3 at 1250-1389 env steps/s): the 32 sub-env command again, ``--n-envs 32
--minibatches 8`` with the flags above: 1.56x wall, 1.66x in the rollout alone (rlinf 2122 env steps/s, SB3 1363;
the same learning as the run before, seed for seed: success 0.74 vs 0.71 and 0.88 vs 0.92). Then with ``--seeds 5
--eval-episodes 50`` for success rates that 16 episodes a seed leave loose: **1.58x wall, 1.68x in the rollout
alone** (rlinf 2013 env steps/s, SB3 1275), success 0.72 vs 0.68 over the last 50 training episodes and 0.80 vs
0.79 in the deterministic eval (250 episodes a side; per seed 0.96 / 0.76 / 0.72 / 0.70 / 0.86 vs 0.86 / 0.90 /
0.70 / 0.70 / 0.80), returns 1153 vs 1108 (training) and 1208 vs 1178 (eval). The team goal (equal or better
success at 1.5x the env steps per second) holds at 32 sub-envs on this 2-core machine; at 16 it does not reliably.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Per simulator: the base config and the defaults of the flags left unset (CartPole: solved in ~100k steps;
#: reach-v3: the hyper-parameters of examples/embodied/metaworld_reach_ppo_cpu.yaml).
PRESETS: dict[str, dict[str, Any]] = {
    "gymnasium": {"base_config": REPO / "examples" / "embodied" / "cartpole_ppo_cpu.yaml", "env_id": "CartPole-v1",
                  "max_episode_steps": 500, "reward_scale": 1.0, "threshold": 475.0, "n_envs": 8, "n_steps": 500,
                  "minibatches": 4, "epochs": 10, "lr": 1e-3, "hidden": 64, "log_std_init": 0.0},
    "metaworld": {"base_config": REPO / "examples" / "embodied" / "metaworld_reach_ppo_cpu.yaml", "env_id": "reach-v3",
                  "max_episode_steps": 150, "reward_scale": 0.01, "threshold": None, "n_envs": 16, "n_steps": 150,
                  "minibatches": 4, "epochs": 5, "lr": 1e-3, "hidden": 128, "log_std_init": -0.5},
}
EVAL_SEED = 100_000


def reports_success(args: argparse.Namespace) -> bool:
    """Whether the env has ``info["success"]`` (Meta-World); CartPole has none, and rlinf would count it 0."""
    return args.simulator == "metaworld"


def cpu_time() -> float:
    """CPU seconds of this process and of its children that have been waited for (env worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ---------------------------------------------------------------------------------------------- rlinf


def rlinf_overrides(args: argparse.Namespace, seed: int, updates: int, run_root: Path) -> list[str]:
    rows = args.n_envs * args.n_steps
    train, ev = "env.train", "env.eval"
    return [
        f"runner.max_steps={updates}", f"runner.seed={seed}", f"actor.seed={seed}",
        f"runner.save_interval={updates if args.eval_episodes else -1}",
        f"runner.logger.log_path={run_root}", "runner.logger.experiment_name=run", "runner.logger.logger_backends=[]",
        f"{train}.env_id={args.env_id}", f"{train}.total_num_envs={args.n_envs}", f"{train}.seed={seed}",
        f"{train}.max_episode_steps={args.max_episode_steps}", f"{train}.max_steps_per_rollout_epoch={args.n_steps}",
        f"{train}.reward_coef={args.reward_scale}", f"{train}.rollout_epoch=1",
        f"{ev}.env_id={args.env_id}", f"{ev}.total_num_envs={max(1, args.eval_episodes)}",
        f"{ev}.max_episode_steps={args.max_episode_steps}", f"{ev}.seed={EVAL_SEED + seed}",
        "algorithm.adv_type=gae", "algorithm.loss_type=actor_critic", "algorithm.normalize_advantages=true",
        f"algorithm.gamma={args.gamma}", f"algorithm.gae_lambda={args.gae_lambda}",
        f"algorithm.clip_ratio_low={args.clip}", f"algorithm.clip_ratio_high={args.clip}",
        f"algorithm.entropy_bonus={args.ent_coef}", f"algorithm.value_loss_coef={args.vf_coef}",
        "algorithm.value_clip=null", f"algorithm.update_epoch={args.epochs}",
        f"actor.global_batch_size={rows // args.minibatches}", f"actor.micro_batch_size={rows // args.minibatches}",
        "actor.model.model_type=mlp", f"actor.model.hidden_dim={args.hidden}", f"actor.model.num_layers={args.layers}",
        "actor.model.add_value_head=true", f"actor.model.log_std_init={args.log_std_init}",
        f"actor.optim.lr={args.lr}", "actor.optim.adam_eps=1e-5", "actor.optim.weight_decay=0.0",
        "actor.optim.clip_grad=0.5", "actor.lr_sched.lr_decay_style=constant", "actor.lr_sched.lr_warmup_fraction=0.0",
        "rollout.pipeline_stage_num=1", "cluster.executor=inline",
        f"{train}.init_params.vectorization={args.vectorization}",
        *([f"{train}.init_params.num_workers={args.workers}"] if args.vectorization == "async" and args.workers else []),
    ]


def run_rlinf(args: argparse.Namespace, seed: int, updates: int, run_root: Path) -> dict[str, Any]:
    import torch
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.plugins import get_plugins

    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), cpu_time()
    plugins = get_plugins()
    cfg = load_config(args.base_config, rlinf_overrides(args, seed, updates, run_root), plugins=plugins)
    validate_config(cfg, plugins)
    flow_cls = plugins.registries.load("flow", cfg.runner.task_type)  # what `rlinf run` builds
    run_dir = Path(cfg.runner.logger.log_path) / cfg.runner.logger.experiment_name
    flow = flow_cls(cfg, plugins=plugins, run_dir=run_dir)
    flow.train()  # its workers, the env's worker processes with them, have stopped when it returns
    wall, cpu = time.perf_counter() - start, cpu_time() - cpu
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/rollout_s" in r]
    if len(rows) != updates:
        raise RuntimeError(f"rlinf: metrics.jsonl has {len(rows)} training steps, expected {updates}")
    per_rollout = args.n_envs * args.n_steps
    has_success = reports_success(args)
    rollouts = [{"steps": per_rollout * (i + 1), "episodes": int(r["env/episodes"]),
                 "mean_return": r.get("env/episode_return"), "success": r.get("env/success_rate") if has_success else None}
                for i, r in enumerate(rows)]
    out = {"wall_s": wall, "cpu_s": cpu, "env_steps": per_rollout * updates, "rollouts": rollouts,
           "rollout_s": sum(r["time/rollout_s"] for r in rows), "update_s": sum(r["time/update_s"] for r in rows),
           "sync_s": sum(r["time/weight_sync_s"] for r in rows)}
    if args.eval_episodes:
        result = flow.evaluate()
        if int(result["step"]) != updates:
            raise RuntimeError(f"rlinf: evaluate() restored step {result['step']}, expected {updates}")
        out["eval_return"] = float(result["episode_return"])
        out["eval_success"] = float(result["success_rate"]) if has_success else None
    return out


# ---------------------------------------------------------------------------------------------- SB3


def sb3_env_fn(args: argparse.Namespace, seed: int, index: int) -> Any:
    """A factory of sub-env ``index``: what rlinf's env component builds for it."""
    import gymnasium as gym

    if args.simulator == "metaworld":
        from rlinf_envs_embodied.envs.metaworld_env import make_env, mt1_benchmark

        bench = mt1_benchmark(args.env_id, seed)
        return partial(make_env, bench.train_classes[args.env_id], bench.train_tasks, seed=seed + index,
                       max_episode_steps=args.max_episode_steps, terminate_on_success=False, one_hot=None, camera=None)
    return partial(gym.make, args.env_id, max_episode_steps=args.max_episode_steps, disable_env_checker=True)


def sb3_vec_env(args: argparse.Namespace, seed: int, n: int, scale: float, vectorization: str = "sync") -> Any:
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    def build(i: int) -> gym.Env:
        env = Monitor(sb3_env_fn(args, seed, i)())  # episode returns before the reward scale
        return gym.wrappers.TransformReward(env, lambda r: r * scale) if scale != 1.0 else env

    fns = [partial(build, i) for i in range(n)]
    # async: SB3's SubprocVecEnv, one process per sub-env (forked, so that their CPU time is this process's children's)
    venv = SubprocVecEnv(fns, start_method="fork") if vectorization == "async" else DummyVecEnv(fns)
    venv.seed(seed)  # sub-env i: seed + i at its first reset
    return venv


def run_sb3(args: argparse.Namespace, seed: int, updates: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Recorder(BaseCallback):
        """Per rollout: finished episodes' returns, rollout and update times."""

        def __init__(self) -> None:
            super().__init__()
            self.rollouts: list[dict[str, Any]] = []
            self.rollout_s = self.update_s = 0.0
            self._returns: list[float] = []
            self._successes: list[bool] = []
            self._succeeded = None  # per sub-env: any step of its current episode with info["success"]
            self._has_success = reports_success(args)
            self._t = None

        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if self._t is not None:
                self.update_s += now - self._t
            self._t, self._returns, self._successes = now, [], []

        def _on_step(self) -> bool:
            infos = self.locals["infos"]
            if self._succeeded is None:
                self._succeeded = [False] * len(infos)
            for j, info in enumerate(infos):
                self._succeeded[j] = self._succeeded[j] or bool(info.get("success", False))
                if "episode" in info:  # the episode ended at this step (Monitor)
                    self._returns.append(float(info["episode"]["r"]))
                    self._successes.append(self._succeeded[j])
                    self._succeeded[j] = False
            return True

        def _on_rollout_end(self) -> None:
            now = time.perf_counter()
            self.rollout_s += now - self._t
            self._t = now
            self.rollouts.append({"steps": self.num_timesteps, "episodes": len(self._returns),
                                  "mean_return": statistics.fmean(self._returns) if self._returns else None,
                                  "success": statistics.fmean(self._successes)
                                  if self._successes and self._has_success else None})

        def _on_training_end(self) -> None:
            self.update_s += time.perf_counter() - self._t

    torch.set_num_threads(args.sb3_threads)
    start, cpu = time.perf_counter(), cpu_time()
    venv = sb3_vec_env(args, seed, args.n_envs, args.reward_scale, args.sb3_vectorization or args.vectorization)
    rows = args.n_envs * args.n_steps
    model = PPO(
        "MlpPolicy", venv, learning_rate=args.lr, n_steps=args.n_steps, batch_size=rows // args.minibatches,
        n_epochs=args.epochs, gamma=args.gamma, gae_lambda=args.gae_lambda, clip_range=args.clip,
        clip_range_vf=None, normalize_advantage=True, ent_coef=args.ent_coef, vf_coef=2 * args.vf_coef,
        max_grad_norm=0.5, seed=seed, device="cpu", verbose=0,
        policy_kwargs={"net_arch": {"pi": [args.hidden] * args.layers, "vf": [args.hidden] * args.layers},
                       "activation_fn": torch.nn.Tanh, "ortho_init": True, "log_std_init": args.log_std_init,
                       "optimizer_kwargs": {"eps": 1e-5}})
    recorder = Recorder()
    model.learn(total_timesteps=rows * updates, callback=recorder)
    wall = time.perf_counter() - start
    venv.close()  # joins SubprocVecEnv's processes: their CPU time is counted from here
    cpu = cpu_time() - cpu
    if model.num_timesteps != rows * updates:
        raise RuntimeError(f"SB3: ran {model.num_timesteps} env steps, expected {rows * updates}")
    out = {"wall_s": wall, "cpu_s": cpu, "env_steps": model.num_timesteps, "rollouts": recorder.rollouts,
           "rollout_s": recorder.rollout_s, "update_s": recorder.update_s, "sync_s": 0.0}
    if args.eval_episodes:
        out["eval_return"], out["eval_success"] = sb3_evaluate(args, model, seed)
    return out


def sb3_evaluate(args: argparse.Namespace, model: Any, seed: int) -> tuple[float, float | None]:
    """One deterministic episode per sub-env of ``--eval-episodes`` sub-envs seeded ``EVAL_SEED + seed + i``: the
    mean return and the success rate (an episode succeeds at its first step with ``info["success"]``, as rlinf's
    env worker counts it; None for envs without one)."""
    import numpy as np

    venv = sb3_vec_env(args, EVAL_SEED + seed, args.eval_episodes, 1.0)
    obs = venv.reset()
    returns = np.zeros(args.eval_episodes)
    done = np.zeros(args.eval_episodes, dtype=bool)
    success = np.zeros(args.eval_episodes, dtype=bool)
    while not done.all():
        actions, _ = model.predict(obs, deterministic=True)
        obs, rewards, dones, infos = venv.step(actions)
        returns += np.where(done, 0.0, rewards)
        success |= ~done & np.array([bool(i.get("success", False)) for i in infos])
        done |= dones
    venv.close()
    return float(returns.mean()), (float(success.mean()) if reports_success(args) else None)


# ---------------------------------------------------------------------------------------------- report


def last_episodes_mean(rollouts: list[dict[str, Any]], key: str, last: int) -> float | None:
    """Mean of ``key`` (a per-rollout mean: ``mean_return``, ``success``) over the finished episodes of the last
    rollouts, counted back until ``last`` episodes; None without any."""
    total, count = 0.0, 0
    for r in reversed(rollouts):
        if r["episodes"] and r.get(key) is not None:
            total += r[key] * r["episodes"]
            count += r["episodes"]
        if count >= last:
            break
    return total / count if count else None


def final_return(rollouts: list[dict[str, Any]], last: int) -> float:
    mean = last_episodes_mean(rollouts, "mean_return", last)
    return float("nan") if mean is None else mean


def steps_to(rollouts: list[dict[str, Any]], threshold: float | None) -> int | None:
    if threshold is None:
        return None
    return next((r["steps"] for r in rollouts if r["episodes"] and r["mean_return"] >= threshold), None)


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wall_s": statistics.fmean(r["wall_s"] for r in runs),
        "steps_per_s": statistics.fmean(r["env_steps"] / r["wall_s"] for r in runs),
        "steps_per_cpu_s": statistics.fmean(r["env_steps"] / r["cpu_s"] for r in runs),
        "rollout_steps_per_s": statistics.fmean(r["env_steps"] / r["rollout_s"] for r in runs),
        "rollout_s": statistics.fmean(r["rollout_s"] for r in runs),
        "update_s": statistics.fmean(r["update_s"] for r in runs),
        "other_s": statistics.fmean(r["wall_s"] - r["rollout_s"] - r["update_s"] for r in runs),
        "final_return_per_seed": [final_return(r["rollouts"], args.last_episodes) for r in runs],
        "steps_to_threshold_per_seed": [steps_to(r["rollouts"], args.threshold) for r in runs],
        "wall_s_per_seed": [r["wall_s"] for r in runs],
    }
    out["final_return"] = statistics.fmean(out["final_return_per_seed"])
    successes = [last_episodes_mean(r["rollouts"], "success", args.last_episodes) for r in runs]
    out["final_success"] = None if None in successes else statistics.fmean(successes)
    if args.eval_episodes:
        out["eval_return_per_seed"] = [r["eval_return"] for r in runs]
        out["eval_return"] = statistics.fmean(out["eval_return_per_seed"])
        out["eval_success_per_seed"] = [r["eval_success"] for r in runs]
        out["eval_success"] = None if None in out["eval_success_per_seed"] else statistics.fmean(out["eval_success_per_seed"])
    return out


def fmt_rate(x: float | None, width: int) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.2f}"


def fmt_steps(xs: list[int | None]) -> str:
    """Mean env steps over the seeds that reached the threshold, and how many did."""
    reached = [x for x in xs if x is not None]
    return f"{statistics.fmean(reached):.0f} ({len(reached)}/{len(xs)})" if reached else f"never (0/{len(xs)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Flags without a default take the --simulator's (PRESETS in the script).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--simulator", choices=sorted(PRESETS), default="gymnasium")
    parser.add_argument("--env-id")
    parser.add_argument("--total-steps", type=int, default=100_000, help="env steps per run (whole rollouts)")
    parser.add_argument("--seeds", default="3", help="a count (seeds 1..N) or a comma-separated list")
    parser.add_argument("--n-envs", type=int)
    parser.add_argument("--n-steps", type=int,
                        help="steps per sub-env per rollout; rlinf restarts episodes every rollout, so below the time "
                             "limit its episodes cannot reach the full return")
    parser.add_argument("--max-episode-steps", type=int, help="time limit")
    parser.add_argument("--minibatches", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.0)
    parser.add_argument("--vf-coef", type=float, default=0.5, help="x (V - R)^2 / 2 (rlinf's convention)")
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--log-std-init", type=float, help="continuous actions only")
    parser.add_argument("--reward-scale", type=float, help="training reward scale")
    parser.add_argument("--threshold", type=float, help="return for steps-to-threshold (none for reach-v3)")
    parser.add_argument("--last-episodes", type=int, default=50)
    parser.add_argument("--eval-episodes", type=int, default=16, help="0: no final evaluation")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (rlinf's flow lowers them during a rollout to the cores its env "
                             "worker processes leave free)")
    parser.add_argument("--sb3-threads", type=int, help="SB3's own (default: --threads)")
    parser.add_argument("--vectorization", choices=("sync", "async"), default="sync",
                        help="sub-envs stepped in this process, or in parallel: rlinf's init_params.vectorization "
                             "(--workers slices, one in the env worker's process), SB3's SubprocVecEnv (one per sub-env)")
    parser.add_argument("--sb3-vectorization", choices=("sync", "async"),
                        help="SB3's own (default: --vectorization): its SubprocVecEnv is slower than DummyVecEnv "
                             "for Meta-World on 2 cores")
    parser.add_argument("--workers", type=int, help="rlinf's init_params.num_workers with --vectorization async: "
                                                    "slices stepped in parallel (default: one per CPU core)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    for key, value in PRESETS[args.simulator].items():  # flags left unset: the simulator's defaults
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    rows = args.n_envs * args.n_steps
    if rows % args.minibatches:
        parser.error(f"--n-envs x --n-steps = {rows} must split into --minibatches={args.minibatches} equal parts")
    updates = max(1, math.ceil(args.total_steps / rows))
    seeds = [int(s) for s in args.seeds.split(",")] if "," in args.seeds else list(range(1, int(args.seeds) + 1))
    if args.simulator == "metaworld":
        import importlib.util

        if importlib.util.find_spec("metaworld") is None:
            parser.error("--simulator metaworld needs metaworld: pip install 'rlinf-envs-embodied[metaworld]'")

    import logging

    import stable_baselines3
    import torch
    from rlinf_core.runtime.threads import usable_cpus

    logging.basicConfig(level=logging.WARNING)
    if args.sb3_threads is None:
        args.sb3_threads = args.threads
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="ppo_vs_sb3_") as tmp:
        # one untimed rollout + update per side first: the process's one-off imports (torch's optimizer
        # machinery, which whichever side comes first would pay; rlinf's plugins) stay out of the table
        cold = {"rlinf": time.perf_counter()}
        run_rlinf(argparse.Namespace(**{**vars(args), "eval_episodes": 0}), seeds[0], 1, Path(tmp) / "warmup")
        cold["sb3"] = time.perf_counter()
        cold["rlinf"] = cold["sb3"] - cold["rlinf"]
        run_sb3(argparse.Namespace(**{**vars(args), "eval_episodes": 0}), seeds[0], 1)
        cold["sb3"] = time.perf_counter() - cold["sb3"]
        print(f"warm-up (1 rollout + update, first in the process): rlinf {cold['rlinf']:.1f} s, SB3 {cold['sb3']:.1f} s",
              flush=True)
        for k, seed in enumerate(seeds):
            order = ("rlinf", "sb3") if k % 2 == 0 else ("sb3", "rlinf")
            for side in order:
                if side == "rlinf":
                    ours.append(run_rlinf(args, seed, updates, Path(tmp) / f"rlinf_{seed}"))
                    r = ours[-1]
                else:
                    theirs.append(run_sb3(args, seed, updates))
                    r = theirs[-1]
                ev = f", eval return {r['eval_return']:.1f}" if args.eval_episodes else ""
                if args.eval_episodes and r["eval_success"] is not None:
                    ev += f" success {r['eval_success']:.2f}"
                print(f"seed {seed} {side:5}: {r['wall_s']:6.1f} s, {r['env_steps'] / r['wall_s']:7.0f} env steps/s "
                      f"(rollout {r['env_steps'] / r['rollout_s']:.0f}, update {r['update_s']:.1f} s), last "
                      f"{args.last_episodes} episodes {final_return(r['rollouts'], args.last_episodes):.1f}, "
                      f"steps to {args.threshold}: {steps_to(r['rollouts'], args.threshold)}{ev}", flush=True)
    r, s = summarize(ours, args), summarize(theirs, args)
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "seeds": seeds,
              "updates": updates, "env_steps": rows * updates, "torch": torch.__version__,
              "sb3": stable_baselines3.__version__, "warmup_s": cold, "rlinf": r, "sb3_ppo": s,
              "throughput_ratio": r["steps_per_s"] / s["steps_per_s"],
              "throughput_ratio_cpu": r["steps_per_cpu_s"] / s["steps_per_cpu_s"],
              "rollout_throughput_ratio": r["rollout_steps_per_s"] / s["rollout_steps_per_s"]}
    both = [(a, b) for a, b in zip(r["steps_to_threshold_per_seed"], s["steps_to_threshold_per_seed"], strict=True)
            if a is not None and b is not None]
    result["steps_to_threshold_ratio"] = (statistics.fmean(a for a, _ in both) / statistics.fmean(b for _, b in both)
                                          if both else None)

    print(f"\n{args.env_id}, {rows * updates} env steps ({updates} rollouts of {args.n_envs} x {args.n_steps}), "
          f"seeds {seeds}, torch threads rlinf {args.threads}, SB3 {args.sb3_threads}; env stepping: rlinf {args.vectorization}"
          f"{f' ({args.workers or usable_cpus()} slices)' if args.vectorization == 'async' else ''}, "
          f"SB3 {'SubprocVecEnv' if (args.sb3_vectorization or args.vectorization) == 'async' else 'DummyVecEnv'}; "
          "means over seeds")
    head = (f"{'':7}{'wall s':>8}{'steps/s':>9}{'per CPU s':>10}{'rollout/s':>10}{'rollout s':>10}{'update s':>9}"
            f"{'other s':>8}{'last ' + str(args.last_episodes) + ' ep':>11}{'success':>8}{'eval':>8}{'success':>8}"
            f"   steps to return {args.threshold}")
    print(head)
    for name, x in (("rlinf", r), ("SB3", s)):
        ev = (f"{x['eval_return']:>8.1f}{fmt_rate(x['eval_success'], 8)}" if args.eval_episodes else f"{'-':>8}{'-':>8}")
        print(f"{name:7}{x['wall_s']:>8.1f}{x['steps_per_s']:>9.0f}{x['steps_per_cpu_s']:>10.0f}"
              f"{x['rollout_steps_per_s']:>10.0f}{x['rollout_s']:>10.1f}{x['update_s']:>9.1f}{x['other_s']:>8.1f}"
              f"{x['final_return']:>11.1f}{fmt_rate(x['final_success'], 8)}{ev}   {fmt_steps(x['steps_to_threshold_per_seed'])}")
    ratio = result["steps_to_threshold_ratio"]
    reach = ("no --threshold" if args.threshold is None else
             f"{'n/a' if ratio is None else f'{ratio:.2f}x'} (seeds where both reached it: {len(both)}/{len(seeds)})")
    print(f"rlinf / SB3 env steps/s: {result['throughput_ratio']:.2f}x wall, {result['throughput_ratio_cpu']:.2f}x per CPU "
          f"second, {result['rollout_throughput_ratio']:.2f}x rollout alone; env steps to return {args.threshold}: {reach}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
