"""The embodied flow's workers: env ranks (vector envs, one per micro-batch), rollout ranks (a copy of
the policy that samples actions) and the actor (the training backend in policy mode). Needs torch.

Env ranks follow :func:`rlinf_core.runtime.pipeline.run_env_rollout_loop`: micro-batch ``j`` of
``stage_num`` lives on env rank ``j % E`` and holds ``total_num_envs / stage_num`` sub-envs, global
env indices ``j * n .. (j + 1) * n - 1``. Each training step starts fresh episodes, reset from seeds
derived from ``(env seed, step, rollout epoch)`` (so a resumed run sees the same episodes;
``use_fixed_reset_state_ids``: from those of step 0 at every step); within the step, sub-envs
auto-reset. What an env rank records per micro-batch (``collect``):

- per sub-env and step ``(N, T)``: ``values`` V(s_t) from the rollout, ``final_values`` V(final
  observation) where the sub-env's episode was truncated (not terminated) during the step, the only
  ends GAE bootstraps (0 elsewhere: the policy is not asked for the others), ``valid`` (False after
  the first episode's end in ``group`` mode, embodied GRPO);
- rewards, terminated, truncated ``(N, T, K)`` (``K`` = action chunk, 1 for single steps);
- ``last_values`` ``(N,)``: V of the observation after the horizon (bootstraps the unfinished episodes);
- ``rows``: the training rows, env-major (row ``i * T + t``): ``obs``, ``actions``, ``log_probs``, ``extras``;
- ``episodes``: (return, length, success) of every episode that ended, and per sub-env the
  first episode's return / success (the GRPO score); returns are the env's own rewards (before
  ``use_rel_reward`` and ``reward_coef``, which change only what the policy is trained on).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rlinf_core.runtime import Worker

log = logging.getLogger("rlinf.flow")


def _config(container: Mapping[str, Any]) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.create(dict(container))


def _load(kind: str, name: str) -> Any:
    from rlinf_core.plugins import get_plugins

    return get_plugins(strict=False).registries.load(kind, name)


def to_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A CPU tensor from a numpy array, list or tensor (on any device)."""
    if isinstance(x, torch.Tensor):
        t = x if x.is_cpu and not x.requires_grad else x.detach().cpu()
    else:
        t = torch.as_tensor(x if isinstance(x, np.ndarray) else np.asarray(x))
    return t if dtype is None or t.dtype == dtype else t.to(dtype)


def obs_to_cpu(obs: Mapping[str, Any]) -> dict[str, Any]:
    """An observation dict with CPU tensors (``instruction`` stays a list of strings)."""
    out: dict[str, Any] = {}
    for k, v in obs.items():
        if isinstance(v, Mapping):
            out[k] = obs_to_cpu(v)
        elif k == "instruction" or isinstance(v, (list, tuple)) and v and isinstance(v[0], str):
            out[k] = list(v)
        else:
            out[k] = to_tensor(v)
    return out


def stack_steps(items: list[Any]) -> Any:
    """``T`` per-step values (tensors ``(N, ...)``, dicts of them, lists of ``N`` strings) -> env-major
    rows ``(N * T, ...)`` (lists: ``N * T`` items)."""
    first = items[0]
    if isinstance(first, Mapping):
        return {k: stack_steps([it[k] for it in items]) for k in first}
    if isinstance(first, list):
        n, t = len(first), len(items)
        return [items[s][i] for i in range(n) for s in range(t)]
    stacked = torch.stack([to_tensor(it) for it in items], dim=1)  # (N, T, ...)
    return stacked.reshape(stacked.shape[0] * stacked.shape[1], *stacked.shape[2:])


def _per_step(x: Any, n: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    t = to_tensor(x, dtype)
    return t.reshape(n, k) if t.dim() == 2 else t.reshape(n, 1).expand(n, k).clone()


_NP_DTYPES = {torch.float32: np.float32, torch.bool: np.bool_}


def _column(x: Any, n: int, dtype: torch.dtype) -> np.ndarray:
    """A fresh numpy copy ``(n,)`` of one value per sub-env (cast as :func:`to_tensor` casts)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", dtype).numpy().reshape(n).copy()
    return np.array(x, dtype=_NP_DTYPES[dtype]).reshape(n)


def _takes(env: Any, keyword: str) -> bool:
    """Whether the env's ``step`` (and ``step_async``, where it has one) accept ``keyword``: an optional part of
    the :class:`~rlinf_core.interfaces.VectorEnv` protocol (``reset_done``)."""
    import inspect

    methods = [env.step] + ([env.step_async] if callable(getattr(env, "step_async", None)) else [])
    try:
        return all(keyword in inspect.signature(m).parameters for m in methods)
    except (TypeError, ValueError):
        return False


class EmbodiedEnvWorker(Worker):
    """Holds the vector envs of ``env.<split>`` for the micro-batches this rank serves.

    Args:
        config: the experiment config as a plain container.
        split: ``train`` or ``eval``.
        mode: ``continue`` (PPO: sub-envs auto-reset for the whole rollout), ``group`` (embodied GRPO:
            groups of ``env.<split>.group_size`` sub-envs reset from the same seed, only the first
            episode counts) or ``episode`` (evaluation: one episode per sub-env from seed + index).
    """

    def __init__(self, config: Mapping[str, Any], split: str = "train", mode: str = "continue",
                 validation: Mapping[str, Any] | None = None):
        self.device_name = "cpu" if self.device_type == "cpu" else "cuda"
        self.step_id, self.epoch_id = 0, 0
        self.horizon: int | None = None
        self._configure(config, split, mode)
        #: ``validation``: the config whose ``env.eval`` serves periodic validation in a training run
        #: (:meth:`use_split`); the other split's envs and state wait here meanwhile.
        self._validation, self._parked = validation, None

    def _configure(self, config: Mapping[str, Any], split: str, mode: str) -> None:
        cfg = _config(config)
        self.section = cfg.env[split]
        self.split, self.mode = split, mode
        self.env_cls = _load("env", str(self.section.simulator_type))
        self.total = int(self.section.total_num_envs)
        self.group_size = int(self.section.group_size)
        self.reward_coef = float(self.section.reward_coef)
        self.ignore_terminations = bool(self.section.ignore_terminations)
        self.use_rel_reward = bool(self.section.use_rel_reward)
        self.fixed_resets = bool(self.section.use_fixed_reset_state_ids)
        self.seed = int(self.section.seed)
        self.envs: dict[int, Any] = {}
        self.per_mb = 0
        self.video = bool(self.section.video_cfg.save_video) and mode == "episode"
        self._state: dict[int, dict[str, Any]] = {}

    _SPLIT_STATE = ("section", "split", "mode", "env_cls", "total", "group_size", "reward_coef", "ignore_terminations",
                    "use_rel_reward", "fixed_resets", "seed", "envs", "per_mb", "video", "_state")

    def use_split(self, split: str) -> None:
        """Serve ``eval`` (evaluation episodes on ``env.eval``) or ``train`` again: periodic validation
        (``runner.val_check_interval``) in a training run. Each split keeps its envs between switches."""
        if split == self.split:
            return
        current = {name: getattr(self, name) for name in self._SPLIT_STATE}
        if self._parked is not None and self._parked["split"] == split:
            for name, value in self._parked.items():
                setattr(self, name, value)
        elif split == "eval" and self._validation is not None:
            self._configure(self._validation, "eval", "episode")
        else:
            raise ValueError(f"env worker: no {split!r} split to switch to (built for {self.split!r})")
        self._parked = current

    # ------------------------------------------------------------------ setup

    def setup(self, stage_num: int) -> list[int]:
        """Build one vector env per micro-batch ``j`` with ``j % world_size == rank``; returns their ids."""
        if self.total % stage_num:
            raise ValueError(f"env.{self.split}.total_num_envs={self.total} must split into rollout.pipeline_stage_num="
                             f"{stage_num} equal micro-batches")
        self.per_mb = self.total // stage_num
        mine = [j for j in range(stage_num) if j % self.world_size == self.rank]
        for j in mine:
            if j not in self.envs:
                self.envs[j] = self.env_cls(self.section, num_envs=self.per_mb, seed=self.seed + j * self.per_mb,
                                            device=self.device_name)
        return mine

    def spaces(self) -> tuple[Any, Any]:
        """The observation and action spaces of one sub-env (gymnasium spaces)."""
        env = next(iter(self.envs.values()))
        return env.observation_space, env.action_space

    def worker_processes(self) -> int:
        """Processes of its envs' own that step sub-envs (the VectorEnv's optional ``worker_processes``)."""
        return sum(int(getattr(env, "worker_processes", 0) or 0) for env in self.envs.values())

    def begin(self, step: int, epoch: int = 0, steps: int | None = None) -> None:
        """Set the training step and rollout epoch the next resets draw their seeds from, and the
        number of steps of the coming rollout (``steps``: its last step leaves ended sub-envs unreset)."""
        self.step_id, self.epoch_id = int(step), int(epoch)
        self.horizon = None if steps is None else int(steps)

    def _reset_seeds(self, mb: int) -> list[int]:
        idx = [mb * self.per_mb + i for i in range(self.per_mb)]
        # use_fixed_reset_state_ids: every rollout starts from the same initial states (those of step 0)
        step = 0 if self.fixed_resets else self.step_id
        if self.mode == "group":  # the sub-envs of a group share a seed: the same initial state
            base = self.seed + 1_000_003 * (step * 97 + self.epoch_id + 1)
            return [base + i // self.group_size for i in idx]
        if self.mode == "episode":
            return [self.seed + 1_000_003 * self.epoch_id + i for i in idx]
        return [self.seed + 1_000_003 * (step * 97 + self.epoch_id + 1) + i for i in idx]

    # ------------------------------------------------------------------ the loop (run_env_rollout_loop)

    def reset(self, mb: int, num_micro_batches: int = 1) -> dict[str, Any]:
        if mb not in self.envs:
            self.setup(num_micro_batches)
        env = self.envs[mb]
        obs, _ = env.reset(seed=self._reset_seeds(mb))
        n = self.per_mb
        self._state[mb] = {
            "obs": obs_to_cpu(obs), "rows": [], "values": [], "final_values": [], "rewards": [], "terminated": [],
            "truncated": [], "pending_final": None, "last_values": None,
            "prev_reward": torch.zeros(n), "zeros": torch.zeros(n), "zeros_np": np.zeros(n, dtype=np.float32),
            "ep_return": np.zeros(n), "ep_len": np.zeros(n, dtype=np.int64), "ep_success": np.zeros(n, dtype=bool),
            "done_once": np.zeros(n, dtype=bool), "first_return": np.zeros(n), "first_success": np.zeros(n, dtype=bool),
            "valid": [], "episodes": [], "frames": [], "stepping": None,
        }
        if self.video:
            self._state[mb]["frames"].append(self._frame(obs))
        return {"obs": self._state[mb]["obs"], "final_obs": None}

    def _frame(self, obs: Mapping[str, Any]) -> np.ndarray | None:
        images = obs.get("images") or {}
        if not images:
            return None
        cam = sorted(images)[0]
        return np.asarray(to_tensor(images[cam]).numpy(), dtype=np.uint8)

    def _record_policy(self, st: dict[str, Any], out: Mapping[str, Any]) -> None:
        """The final values an ``act`` computed belong to the previous step's truncated sub-envs."""
        if st["pending_final"] is not None:
            fv = out.get("final_values")
            mask = st["pending_final"]
            vals = st["zeros_np"] if fv is None else _column(fv, self.per_mb, torch.float32)
            st["final_values"].append(np.where(mask, vals, np.float32(0.0)))
            st["pending_final"] = None
        elif st["rewards"]:
            st["final_values"].append(st["zeros_np"])

    def step(self, mb: int, out: Mapping[str, Any]) -> dict[str, Any]:
        """Record the policy's output for the current observation, step the envs, track episodes."""
        self.step_send(mb, out)
        return self.step_receive(mb)

    def step_send(self, mb: int, out: Mapping[str, Any]) -> None:
        """The first half of :meth:`step`: record the policy's output and start the step (an env with
        ``step_async`` steps meanwhile: the inline pipeline runs the policy on another micro-batch)."""
        st, env, n = self._state[mb], self.envs[mb], self.per_mb
        if st["stepping"] is not None:
            raise RuntimeError(f"env micro-batch {mb}: step_send before the previous step's step_receive")
        self._record_policy(st, out)
        values = out.get("values")
        st["values"].append(st["zeros"] if values is None else to_tensor(values, torch.float32).reshape(n))
        extras = out.get("extras")
        st["rows"].append({"obs": st["obs"], "actions": to_tensor(out["actions"]), "log_probs": to_tensor(out["log_probs"]),
                           "extras": {k: to_tensor(v) for k, v in extras.items()} if extras else {}})
        st["valid"].append(~st["done_once"])
        # the rollout's last step: the next one resets every sub-env, so an episode ending now needs no auto-reset
        last = self.horizon is not None and len(st["rows"]) == self.horizon
        kwargs = {"reset_done": False} if last and _takes(env, "reset_done") else {}
        if callable(getattr(env, "step_async", None)):
            env.step_async(out["actions"], **kwargs)
            st["stepping"] = True
        else:
            st["stepping"] = env.step(out["actions"], **kwargs)

    def step_receive(self, mb: int) -> dict[str, Any]:
        """The second half of :meth:`step`: the step's results, episodes tracked; the next observation."""
        st, env, n = self._state[mb], self.envs[mb], self.per_mb
        stepping, st["stepping"] = st["stepping"], None
        if stepping is None:
            raise RuntimeError(f"env micro-batch {mb}: step_receive without a step_send")
        obs, rew, term, trunc, info = env.step_wait() if stepping is True else stepping
        if np.ndim(rew) == 1:
            bootstrap = self._single_step(st, n, rew, term, trunc, info)
        else:
            bootstrap = self._chunk_step(st, n, rew, term, trunc, info)
        final_obs = None
        # V(final observation) only for truncated episodes: a terminated one has no value after its end.
        # No final observation from the env: the truncated ones cannot be bootstrapped (their value stays 0).
        if bootstrap.any() and "final_observation" in info:
            final_obs = obs_to_cpu(info["final_observation"])
            st["pending_final"] = bootstrap
        st["obs"] = obs_to_cpu(obs)
        if self.video:
            st["frames"].append(self._frame(obs))
        return {"obs": st["obs"], "final_obs": final_obs}

    def _single_step(self, st: dict[str, Any], n: int, rew: Any, term: Any, trunc: Any,
                     info: Mapping[str, Any]) -> np.ndarray:
        """One env step per sub-env (``K = 1``): record it (numpy ``(n, 1)``, stacked by :meth:`collect`);
        returns which sub-envs' episodes were truncated and not terminated (those GAE bootstraps)."""
        r = _column(rew, n, torch.float32)
        terminated = _column(term, n, torch.bool)
        truncated = _column(trunc, n, torch.bool)
        if self.ignore_terminations:
            terminated[:] = False
        done = terminated | truncated
        if self.use_rel_reward:
            rewards = self._relative(st, torch.from_numpy(r).view(n, 1), torch.from_numpy(done).view(n, 1)).numpy()
        else:
            rewards = r.reshape(n, 1)
        st["rewards"].append(rewards * np.float32(self.reward_coef) if self.reward_coef != 1.0 else rewards)
        st["terminated"].append(terminated.reshape(n, 1))
        st["truncated"].append(truncated.reshape(n, 1))
        succ = info["step_success"] if "step_success" in info else info.get("success")
        st["ep_return"] += r  # episode stats in the env's own reward
        st["ep_len"] += 1
        if succ is not None:
            st["ep_success"] |= _column(succ, n, torch.bool)
        if done.any():
            self._end_episodes(st, np.flatnonzero(done))
            return truncated & ~terminated
        return done

    def _chunk_step(self, st: dict[str, Any], n: int, rew: Any, term: Any, trunc: Any,
                    info: Mapping[str, Any]) -> np.ndarray:
        """An action chunk of ``K`` steps per sub-env: record them (numpy ``(n, K)``); returns the sub-envs
        with a truncation and no termination in the chunk (those GAE bootstraps, as the flow flags them)."""
        rew_t = to_tensor(rew, torch.float32)
        k = rew_t.shape[1]
        raw = _per_step(rew_t, n, k, torch.float32)
        terminated = _per_step(term, n, k, torch.bool)
        truncated = _per_step(trunc, n, k, torch.bool)
        if self.ignore_terminations:
            terminated = torch.zeros_like(terminated)
        rewards = (self._relative(st, raw, terminated | truncated) if self.use_rel_reward else raw) * self.reward_coef
        if "step_success" in info:
            succ = _per_step(info["step_success"], n, k, torch.bool)
        else:  # success of the whole call, counted at its last step
            succ = torch.zeros(n, k, dtype=torch.bool)
            succ[:, -1] = to_tensor(info.get("success", np.zeros(n, dtype=bool)), torch.bool).reshape(n)
        st["rewards"].append(rewards.numpy())
        st["terminated"].append(terminated.numpy())
        st["truncated"].append(truncated.numpy())
        done = (terminated | truncated).numpy()
        r, s = raw.numpy(), succ.numpy()  # episode stats in the env's own reward
        for j in range(k):
            st["ep_return"] += r[:, j]
            st["ep_len"] += 1
            st["ep_success"] |= s[:, j]
            if done[:, j].any():
                self._end_episodes(st, np.flatnonzero(done[:, j]))
        return st["truncated"][-1].any(axis=1) & ~st["terminated"][-1].any(axis=1)

    @staticmethod
    def _end_episodes(st: dict[str, Any], idx: np.ndarray) -> None:
        """Record the episodes of sub-envs ``idx`` (ascending) that just ended and start new ones."""
        ret, length, success = st["ep_return"], st["ep_len"], st["ep_success"]
        st["episodes"].extend(zip(ret[idx].tolist(), length[idx].tolist(), success[idx].tolist(), strict=True))
        first = idx[~st["done_once"][idx]]
        st["done_once"][first] = True
        st["first_return"][first], st["first_success"][first] = ret[first], success[first]
        ret[idx], length[idx], success[idx] = 0.0, 0, False

    @staticmethod
    def _relative(st: dict[str, Any], raw: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """``use_rel_reward``: each step is trained on the change of the env's reward since the
        previous step of the same episode (the first step's on the reward itself), as RLinf does
        for dense progress rewards. ``raw`` and ``done`` are ``(n, k)``."""
        rel, prev = torch.empty_like(raw), st["prev_reward"]
        for j in range(raw.shape[1]):
            rel[:, j] = raw[:, j] - prev
            prev = torch.where(done[:, j], torch.zeros(()), raw[:, j])
        st["prev_reward"] = prev
        return rel

    def finish(self, mb: int, out: Mapping[str, Any]) -> int:
        """After the last step: the final values of its ended sub-envs and V(last observation)."""
        st, n = self._state[mb], self.per_mb
        self._record_policy(st, out)
        values = out.get("values")
        st["last_values"] = torch.zeros(n) if values is None else to_tensor(values, torch.float32).reshape(n)
        return len(st["rewards"])

    def collect(self, mb: int) -> dict[str, Any]:
        """The micro-batch's trajectories (see the module docstring), CPU tensors."""
        st, n = self._state[mb], self.per_mb
        if st["last_values"] is None:
            raise RuntimeError("collect() before finish(): run the loop with finish='finish'")
        unfinished = ~st["done_once"]  # first episode still running: its score so far
        first_return = np.where(unfinished, st["ep_return"], st["first_return"])
        first_success = np.where(unfinished, st["ep_success"], st["first_success"])
        def steps(name: str) -> torch.Tensor:  # T per-step numpy records (n, ...) -> one tensor (n, T, ...)
            return torch.from_numpy(np.stack(st[name], 1))

        return {
            "rows": {k: stack_steps([r[k] for r in st["rows"]]) for k in ("obs", "actions", "log_probs", "extras")},
            "values": torch.stack(st["values"], 1), "final_values": steps("final_values"),
            "rewards": steps("rewards"), "terminated": steps("terminated"), "truncated": steps("truncated"),
            "valid": steps("valid"),
            "last_values": st["last_values"], "episodes": list(st["episodes"]),
            "first_return": torch.as_tensor(first_return, dtype=torch.float32),
            "first_success": torch.as_tensor(first_success),
            "env_index": torch.arange(mb * n, (mb + 1) * n),
        }

    def frames(self, mb: int) -> list[np.ndarray]:
        """Per sub-env, the frames ``(T + 1, H, W, 3)`` of the rollout (``episode`` mode with videos)."""
        frames = [f for f in self._state[mb]["frames"] if f is not None]
        if not frames:
            return []
        stacked = np.stack(frames, axis=1)  # (N, T+1, H, W, 3)
        return [stacked[i] for i in range(stacked.shape[0])]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


class _OnDevice(Worker):
    @property
    def device(self) -> str:
        if self.device_type == "cpu":
            return "cpu"
        return "cuda" if self.executor == "ray" else f"cuda:{self.devices[0]}"


def state_values(policy: Any, obs: Mapping[str, Any]) -> Any:
    """V(obs) ``(N,)`` of a policy: its ``values`` method when it has one, else ``sample(...).values``."""
    if callable(getattr(policy, "values", None)):
        return policy.values(obs)
    return policy.sample(obs, deterministic=True).values


class PolicyRolloutWorker(_OnDevice):
    """A copy of the policy (``actor.model.model_type``) that samples actions; weights come from the actor."""

    def __init__(self, config: Mapping[str, Any]):
        self.cfg = _config(config)
        self.policy: Any = None
        self.deterministic = False
        self.version = 0

    def build(self, observation_space: Any, action_space: Any) -> int:
        cls = _load("model", str(self.cfg.actor.model.model_type))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.cfg.actor.seed))
            self.policy = cls(self.cfg.actor.model, observation_space=observation_space, action_space=action_space)
        self.policy.to(self.device).eval()
        return sum(p.numel() for p in self.policy.parameters())

    def reseed(self, seed: int, deterministic: bool = False) -> None:
        """Seed the sampling RNG (per training step, so that a resumed run samples the same actions)."""
        torch.manual_seed(int(seed) + 7919 * self.rank)
        self.deterministic = bool(deterministic)

    @torch.no_grad()
    def act(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        sample = self.policy.sample(payload["obs"], deterministic=self.deterministic)
        out = {"actions": to_tensor(sample.actions), "log_probs": to_tensor(sample.log_probs),
               "values": None if sample.values is None else to_tensor(sample.values, torch.float32),
               "extras": {k: to_tensor(v) for k, v in (sample.extras or {}).items()}, "final_values": None}
        final = payload.get("final_obs")
        if final is not None and sample.values is not None:
            out["final_values"] = to_tensor(state_values(self.policy, final), torch.float32)
        return out

    def load_weights(self, state: Mapping[str, Any] | None, version: int) -> int:
        if state is None:
            raise RuntimeError("weight sync: the actor's rank 0 sent no weights")
        self.policy.load_state_dict(dict(state))
        self.version = int(version)
        return self.version

    def offload(self) -> None:
        if self.policy is not None and self.device != "cpu":
            self.policy.to("cpu")

    def onload(self) -> None:
        if self.policy is not None and self.device != "cpu":
            self.policy.to(self.device)


class PolicyActorWorker(_OnDevice):
    """The training backend (``actor.training_backend``) in policy mode, built once the env's spaces are known."""

    def __init__(self, config: Mapping[str, Any]):
        self.cfg = _config(config)
        self.backend: Any = None

    def build(self, observation_space: Any, action_space: Any, total_steps: int | None = None) -> dict[str, Any]:
        backend_cls = _load("training_backend", str(self.cfg.actor.training_backend))
        self.backend = backend_cls(self.cfg, role="actor", rank=self.rank, world_size=self.world_size, device=self.device,
                                   total_steps=total_steps, observation_space=observation_space, action_space=action_space)
        if not getattr(self.backend, "policy_mode", True):
            raise ValueError(f"actor.training_backend={self.cfg.actor.training_backend}: the backend did not build "
                             f"actor.model.model_type={self.cfg.actor.model.model_type} as a policy")
        return {"policy_mode": True}

    def train_step(self, batch: Mapping[str, Any], loss_fn: Any, global_tokens: int | None = None,
                   global_seqs: int | None = None) -> dict[str, float]:
        return self.backend.train_step(batch, loss_fn, global_tokens=global_tokens, global_seqs=global_seqs)

    def export_state(self) -> dict[str, Any] | None:
        """The full state dict on rank 0 (``None`` elsewhere); a collective: every rank calls it."""
        state = {name: t.detach().cpu().clone() for name, t in self.backend.export_weights()}
        return state if self.rank == 0 else None

    def save_checkpoint(self, path: str) -> None:
        self.backend.save_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        self.backend.load_checkpoint(path)

    def offload(self) -> None:
        if self.backend is not None:
            self.backend.offload()

    def onload(self) -> None:
        if self.backend is not None:
            self.backend.onload()
