"""The ``embodied`` flow: PPO with GAE, or embodied GRPO, on vector envs with any
:class:`~rlinf_core.interfaces.Policy` (``mlp``, ``cnn``, VLAs), written once on the runtime's groups.

One training step::

    env ranks reset (seeded by step) -> [rollout.act -> env.step] x T   (pipelined: rollout.pipeline_stage_num)
    -> rollout.act on the last observations (bootstrap values) -> env.collect
    advantages: GAE (truncation bootstrapped with V(final observation), termination not) or
                GRPO (groups of env.train.group_size sub-envs reset from the same seed)
    actor.train_step per mini-batch x update_epoch (policy + value-head + entropy loss)
    actor.export_state -> rollout.load_weights (as a handle: under Ray it never passes the driver)

Worker groups: ``env``, ``rollout``, ``actor`` (``cluster.component_placement``); with
``cluster.placement: auto`` the env and policy stages are profiled and a placement is chosen (the
actor shares the rollout's devices).

Config keys it reads: ``runner.{max_steps, max_epochs, save_interval, val_check_interval, seed, resume_dir,
logger.*}``;
``algorithm.{adv_type, loss_type, reward_type, logprob_type, gamma, gae_lambda, normalize_advantages,
norm_by_std, clip_ratio_low (ratio_clip_eps), clip_ratio_high, clip_ratio_c, entropy_bonus,
value_loss_coef, value_clip, huber_delta, n_minibatches, update_epoch, embodied_score}``;
``actor.{training_backend, global_batch_size, micro_batch_size, seed, model.*, optim.*, lr_sched.*,
fsdp_config}``; ``rollout.pipeline_stage_num``; ``env.{train,eval}.{simulator_type, env_id,
total_num_envs, max_episode_steps, max_steps_per_rollout_epoch, rollout_epoch, group_size,
ignore_terminations, reward_coef, use_rel_reward, use_fixed_reset_state_ids, seed, video_cfg,
init_params}``; ``cluster.*``. With ``runner.val_check_interval: N > 0``, every N steps the policy
plays the evaluation episodes of ``rlinf eval`` (``env.eval``, deterministic) and ``val/success_rate``,
``val/episode_return`` join that step's metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlinf_core.errors import ConfigError, suggestion_text
from rlinf_core.flows import checkpoints as ckpt
from rlinf_core.flows.tracking import RunLogger, check_backends
from rlinf_core.runtime import AutoPlacement, Runtime, WorkerError, WorkerSpec

log = logging.getLogger("rlinf.flow")

#: Worker groups this flow places.
GROUPS = ("env", "rollout", "actor")
#: ``algorithm.adv_type`` values this flow runs, and the estimator each one means.
ADV_TYPES = {"gae": "gae", "grpo": "grpo", "embodied_grpo": "grpo"}
REWARD_TYPES = ("action_level", "chunk_level")
SCORES = ("return", "success")
#: On the console line of every step.
CONSOLE_KEYS = (("env/success_rate", "success"), ("env/episode_return", "return"), ("env/episode_length", "len"),
                ("actor/entropy", "ent"), ("actor/value_loss", "vloss"), ("throughput/env_steps_per_s", "steps/s"),
                ("time/step_s", "s/step"))


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


@dataclass
class EmbodiedObjective:
    """The actor's loss on a micro-batch of env-step rows (a ``LossFn`` in policy mode).

    Policy loss ``algorithm.loss_type`` on per-action (or per-chunk: ``logprob_type: chunk_level``)
    log-probs with the row's advantage, minus ``entropy_bonus`` x entropy, plus ``value_loss_coef`` x
    the clipped value loss of the policy's value head (when it has one and the batch has returns).
    Means are over the valid rows of the whole optimizer step (``global_seqs``), so micro-batches and
    ranks add up. The losses skip their NaN / inf checks of the inputs (``finite_checks(False)``): the flow
    checks the rollout's once per step (:func:`check_batch_finite`), and a non-finite policy output makes
    a non-finite loss, whose step the backend skips. The metrics come back as floats in one host sync.
    """

    loss_type: str = "ppo"
    clip_ratio_low: float = 0.2
    clip_ratio_high: float | None = None
    clip_ratio_c: float | None = None
    entropy_bonus: float = 0.0
    value_loss_coef: float = 0.5
    value_clip: float | None = None
    huber_delta: float | None = None
    chunk_logprob: bool = False
    with_entropy: bool = True

    def __call__(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from rlinf_algos.checks import finite_checks

        with finite_checks(False):
            return self._loss(outputs, mb)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to Ray ranks) without the looked-up loss function; each process looks it up again."""
        state = dict(self.__dict__)
        state.pop("_policy_loss", None)
        return state

    def _policy_loss_fn(self) -> Any:
        """The ``policy_loss`` component ``loss_type`` names, looked up in the registry once per instance."""
        fn = self.__dict__.get("_policy_loss")
        if fn is None:
            from rlinf_core.flows.objectives import _load

            fn = self.__dict__["_policy_loss"] = _load("policy_loss", self.loss_type)
        return fn

    def _loss(self, outputs: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from rlinf_algos import aggregate, masked_mean, value_loss

        from rlinf_core.flows.objectives import call_accepting

        logp = outputs["log_probs"]
        rows = logp.shape[0]
        valid = mb["loss_mask"].to(logp.device).bool().reshape(rows)
        old = mb["old_log_probs"].to(logp.device).reshape(logp.shape)
        if logp.dim() == 1:
            logp, old = logp[:, None], old[:, None]
        logp, old = logp.reshape(rows, -1), old.reshape(rows, -1)
        if self.chunk_logprob:
            logp, old = logp.sum(1, keepdim=True), old.sum(1, keepdim=True)
        k = logp.shape[1]
        mask = valid[:, None].expand(rows, k)
        adv = mb["advantages"].to(logp.device).reshape(rows, 1).expand(rows, k)
        seqs = mb.get("global_seqs") or int(valid.sum())
        loss, metrics = call_accepting(
            self._policy_loss_fn(), log_probs=logp, old_log_probs=old, advantages=adv, mask=mask,
            clip_ratio_low=self.clip_ratio_low, clip_ratio_high=self.clip_ratio_high, clip_ratio_c=self.clip_ratio_c,
            loss_agg="token-mean", global_tokens=seqs * k, global_seqs=seqs)
        out: dict[str, Any] = dict(metrics)  # tensors (or numbers) until the one conversion below
        out["policy_loss"] = loss.detach()
        entropy = outputs.get("entropy")
        if entropy is not None:
            ent = entropy.reshape(rows, -1)
            emask = valid[:, None].expand_as(ent)
            out["entropy"] = masked_mean(ent.detach(), emask)
            if self.entropy_bonus:
                loss = loss - self.entropy_bonus * aggregate(ent, emask, "token-mean", global_tokens=seqs * ent.shape[1])
        values = outputs.get("values")
        if values is not None and self.value_loss_coef > 0 and "returns" in mb:
            old_values = mb["old_values"].to(logp.device).reshape(rows, 1)
            vl, vm = value_loss(values=values.reshape(rows, 1).float(), old_values=old_values,
                                returns=mb["returns"].to(logp.device).reshape(rows, 1), mask=valid[:, None],
                                value_clip=self.value_clip, huber_delta=self.huber_delta, loss_agg="token-mean",
                                global_tokens=seqs, global_seqs=seqs)
            loss = loss + self.value_loss_coef * vl
            out.update(vm)
            out["value_loss"] = vl.detach()
        return loss, _to_floats(out)


def _to_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics (tensors or numbers) as floats, the tensors read back in one host sync."""
    import torch

    names = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    if names:
        values = torch.stack([metrics[k].detach().float().reshape(()) for k in names]).tolist()
        out.update(zip(names, values, strict=True))
    return out


def check_batch_finite(batch: Mapping[str, Any]) -> None:
    """No NaN / inf in a step's rollout values the loss reads (old log-probs, advantages, returns, old
    values) at valid rows: one host sync per step; a ValueError naming the first bad one otherwise."""
    import torch
    from rlinf_algos.checks import check_finite

    mask = batch["loss_mask"].bool()
    names = [k for k in ("old_log_probs", "advantages", "returns", "old_values") if k in batch]
    rows = mask.shape[0]
    parts = [batch[k].reshape(rows, -1) for k in names]
    if bool(torch.isfinite(torch.cat(parts, dim=1)[mask]).all()):
        return
    for name, x in zip(names, parts, strict=True):
        check_finite(x, name, mask[:, None].expand_as(x))


def _cat_rows(parts: Sequence[Any]) -> Any:
    """Concatenate row trees (tensors along dim 0, lists extended, dicts key by key)."""
    import torch

    first = parts[0]
    if isinstance(first, Mapping):
        return {k: _cat_rows([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [x for p in parts for x in p]
    return torch.cat(list(parts))


def space_dims(space: Any) -> int:
    """Action dims of a gymnasium space as ``actor.model.action_dim`` counts them."""
    import numpy as np

    shape = getattr(space, "shape", None)
    return 1 if not shape else int(np.prod(shape))


def profile_stages(container: Mapping[str, Any], num_envs: int, stage_nums: Sequence[int]):
    """``cluster.placement: auto``: time the env step and the policy's ``sample`` in this process at each
    micro-batch size ``num_envs / k``; returns the two :class:`~rlinf_core.runtime.scheduler.StageProfile`."""
    import torch

    from rlinf_core.flows.embodied_workers import _load
    from rlinf_core.runtime.scheduler import profile_stage

    cfg = OmegaConf.create(dict(container))
    section = cfg.env.train
    env_cls = _load("env", str(section.simulator_type))
    rows = sorted({num_envs // k for k in stage_nums if k >= 1 and num_envs % k == 0})
    envs = {r: env_cls(section, num_envs=r, seed=int(section.seed), device="cpu") for r in rows}
    obs = {r: envs[r].reset()[0] for r in rows}
    first = envs[rows[0]]
    policy_cls = _load("model", str(cfg.actor.model.model_type))
    policy = policy_cls(cfg.actor.model, observation_space=first.observation_space, action_space=first.action_space)
    actions = {}
    with torch.no_grad():
        for r in rows:
            actions[r] = policy.sample(obs[r]).actions

        def env_step(r: int) -> None:
            envs[r].step(actions[r])

        def act(r: int) -> None:
            policy.sample(obs[r])

        try:
            return profile_stage("env", env_step, rows, repeat=2), profile_stage("rollout", act, rows, repeat=2)
        finally:
            for env in envs.values():
                env.close()


class EmbodiedFlow:
    """Implements :class:`rlinf_core.interfaces.Flow` for ``runner.task_type: embodied``."""

    def __init__(self, config: Any, *, plugins: Any, run_dir: str | Path):
        self.cfg, self.plugins, self.run_dir = config, plugins, Path(run_dir)
        self.seed = int(config.runner.seed)
        self._check_config()
        self.version = 0

    # ------------------------------------------------------------------ setup

    def _component(self, key: str, kind: str, problems: list[str]) -> Any:
        """The spec named by ``key`` (None and a problem when unset, unknown or not installed)."""
        name = OmegaConf.select(self.cfg, key)
        if name is None:
            problems.append(f"{key} is not set (the embodied flow needs it)")
            return None
        try:
            spec = self.plugins.registries.get_spec(kind, str(name))
        except Exception as exc:  # noqa: BLE001 - ComponentError: unknown name, with did-you-mean and choices
            problems.append(f"{key}: {exc}")
            return None
        missing = spec.missing_requirements()
        if missing:
            problems.append(f"{key}={name}: needs {', '.join(missing)}. Fix: {spec.install_hint(missing)}")
            return None
        return spec

    def _check_config(self) -> None:
        cfg, a, problems = self.cfg, self.cfg.algorithm, []
        adv = str(a.adv_type or "gae")
        if adv not in ADV_TYPES:
            problems.append(f"algorithm.adv_type: {adv!r} is not run by the embodied flow.{suggestion_text(adv, ADV_TYPES)} "
                            f"Valid: {', '.join(ADV_TYPES)}")
        self.adv = ADV_TYPES.get(adv, "gae")
        self._component("env.train.simulator_type", "env", problems)
        if cfg.env.eval.simulator_type is not None:
            self._component("env.eval.simulator_type", "env", problems)
        self._component("actor.training_backend", "training_backend", problems)
        model = self._component("actor.model.model_type", "model", problems)
        if model is not None:
            try:
                cls = self.plugins.registries.load("model", str(cfg.actor.model.model_type))
            except Exception as exc:  # noqa: BLE001
                problems.append(f"actor.model.model_type: {exc}")
            else:
                if not hasattr(cls, "sample"):
                    problems.append(f"actor.model.model_type={cfg.actor.model.model_type} is not a policy (no sample()); "
                                    "the embodied flow trains Policy components such as mlp or cnn")
        if a.loss_type is not None:
            self._component("algorithm.loss_type", "policy_loss", problems)
        reward_type = str(a.reward_type)
        if reward_type not in REWARD_TYPES:
            problems.append(f"algorithm.reward_type: {reward_type!r} is not a level.{suggestion_text(reward_type, REWARD_TYPES)} "
                            f"Valid: {', '.join(REWARD_TYPES)}")
        self.K = int(cfg.actor.model.num_action_chunks)
        if self.adv == "gae" and reward_type == "action_level" and self.K > 1:
            problems.append(f"algorithm.reward_type=action_level with actor.model.num_action_chunks={self.K}: the policy gives "
                            "one value per chunk; use reward_type: chunk_level (or num_action_chunks: 1)")
        if self.adv == "gae" and not cfg.actor.model.add_value_head:
            problems.append("actor.model.add_value_head is false but algorithm.adv_type=gae needs values: set it to true "
                            "(or use adv_type: grpo)")
        e = cfg.env.train
        for split in ("train", "eval"):
            if not cfg.env[split].auto_reset:
                problems.append(f"env.{split}.auto_reset is false, but the embodied flow steps every sub-env for the whole "
                                "rollout (an ended episode must restart; GRPO and eval then mask what follows): set it to true")
        if self.adv == "grpo":
            if int(e.group_size) < 2:
                problems.append(f"env.train.group_size must be >= 2 for adv_type={adv} (got {e.group_size})")
            elif int(e.total_num_envs) % int(e.group_size):
                problems.append(f"env.train.total_num_envs={e.total_num_envs} must be a multiple of env.train.group_size="
                                f"{e.group_size} (one group of sub-envs per initial state)")
            if str(a.embodied_score) not in SCORES:
                problems.append(f"algorithm.embodied_score: {a.embodied_score!r} is not valid; valid: {', '.join(SCORES)}")
        if not (e.max_steps_per_rollout_epoch or e.max_episode_steps):
            problems.append("env.train.max_steps_per_rollout_epoch is not set (nor env.train.max_episode_steps): say how many "
                            "env steps each sub-env takes per rollout")
        if int(e.total_num_envs) % int(cfg.rollout.pipeline_stage_num) and cfg.cluster.placement != "auto":
            problems.append(f"env.train.total_num_envs={e.total_num_envs} must split into rollout.pipeline_stage_num="
                            f"{cfg.rollout.pipeline_stage_num} equal micro-batches")
        try:
            check_backends(list(cfg.runner.logger.logger_backends))
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)

    def rollout_steps(self, split: str = "train") -> int:
        """Policy calls per sub-env per rollout epoch: env steps / action chunk, rounded up."""
        e = self.cfg.env[split]
        steps = e.max_steps_per_rollout_epoch or e.max_episode_steps or self.cfg.env.train.max_episode_steps
        if split == "eval" and e.max_episode_steps:
            steps = e.max_episode_steps
        return math.ceil(int(steps) / self.K)

    def _eval_section_container(self) -> dict[str, Any]:
        """The config with ``env.eval`` filled from ``env.train`` where it is unset (held-out seeds)."""
        container = OmegaConf.to_container(self.cfg, resolve=True)
        train, ev = container["env"]["train"], container["env"]["eval"]
        if ev.get("simulator_type") is None:
            merged = dict(train)
            merged["seed"] = int(train.get("seed", 0)) + 1_000_000
            merged["video_cfg"] = ev.get("video_cfg", train.get("video_cfg"))
            container["env"]["eval"] = merged
        return container

    def _start(self, split: str = "train") -> Runtime:
        from rlinf_core.flows.embodied_workers import EmbodiedEnvWorker, PolicyActorWorker, PolicyRolloutWorker

        self.run_dir.mkdir(parents=True, exist_ok=True)
        container = self._eval_section_container() if split == "eval" else OmegaConf.to_container(self.cfg, resolve=True)
        mode = "episode" if split == "eval" else ("group" if self.adv == "grpo" else "continue")
        validation = self._eval_section_container() if split == "train" and self._validating() else None
        specs = {"env": WorkerSpec(EmbodiedEnvWorker, (container, split, mode), {"validation": validation}),
                 "rollout": WorkerSpec(PolicyRolloutWorker, (container,)),
                 "actor": WorkerSpec(PolicyActorWorker, (container,))}
        num_envs = int(container["env"][split]["total_num_envs"])
        auto = None
        if self.cfg.cluster.placement == "auto":
            auto = AutoPlacement(partial(profile_stages, container), num_envs=num_envs, stage_nums=(1, 2, 4, 8),
                                 env_group="env", policy_group="rollout,actor")
        rt = Runtime(self.cfg.cluster, self.plugins, specs, known_groups=GROUPS, auto=auto)
        try:
            self.stage_num = rt.auto_choice.stage_num if rt.auto_choice is not None else int(self.cfg.rollout.pipeline_stage_num)
            if num_envs % self.stage_num:
                raise ConfigError(f"env.{split}.total_num_envs={num_envs} must split into rollout.pipeline_stage_num="
                                  f"{self.stage_num} equal micro-batches")
            if validation is not None and int(validation["env"]["eval"]["total_num_envs"]) % self.stage_num:
                raise ConfigError(f"runner.val_check_interval: env.eval.total_num_envs="
                                  f"{validation['env']['eval']['total_num_envs']} must split into rollout.pipeline_stage_num="
                                  f"{self.stage_num} equal micro-batches (or set val_check_interval: -1)")
            if rt["env"].world_size > self.stage_num:
                log.warning("env group has %d ranks but rollout.pipeline_stage_num=%d: %d env rank(s) stay idle",
                            rt["env"].world_size, self.stage_num, rt["env"].world_size - self.stage_num)
            rt["env"].call("setup", self.stage_num).result()
            obs_space, act_space = rt["env"].call("spaces", ranks=[0]).result()[0]
            self._check_spaces(obs_space, act_space)
            a = self.cfg.algorithm
            train_envs = int(self.cfg.env.train.total_num_envs)  # the LR schedule's length, in eval too
            total = self.total_steps() * int(a.update_epoch) * self._n_minibatches(train_envs)
            rt["rollout"].call("build", obs_space, act_space).result()
            rt["actor"].call("build", obs_space, act_space, total).result()
            if split == "train":
                self._check_divisibility(rt, num_envs)
        except WorkerError as exc:
            rt.shutdown()
            one_line = _config_error_of(exc)
            if one_line is None:
                raise
            raise one_line from exc
        except BaseException:
            rt.shutdown()
            raise
        self.rt, self.version = rt, 0
        self._sync_weights()
        return rt

    def _check_spaces(self, obs_space: Any, act_space: Any) -> None:
        m = self.cfg.actor.model
        if m.action_dim is not None and int(m.action_dim) != space_dims(act_space):
            raise ConfigError(f"actor.model.action_dim: {m.action_dim} does not match env.train.simulator_type="
                              f"{self.cfg.env.train.simulator_type}'s action space {act_space} ({space_dims(act_space)} "
                              f"dims); remove it or set it to {space_dims(act_space)}")
        state = getattr(obs_space, "spaces", {}).get("state") if hasattr(obs_space, "spaces") else None
        if m.obs_dim is not None and state is not None and int(m.obs_dim) != int(state.shape[0]):
            raise ConfigError(f"actor.model.obs_dim: {m.obs_dim} does not match the env's state of {state.shape[0]} "
                              f"values; remove it or set it to {state.shape[0]}")

    def _rows_per_step(self, num_envs: int) -> int:
        return num_envs * self.rollout_steps() * int(self.cfg.env.train.rollout_epoch)

    def _n_minibatches(self, num_envs: int) -> int:
        rows = self._rows_per_step(num_envs)
        gbs = int(self.cfg.actor.global_batch_size)
        if gbs > 1:
            return max(1, rows // gbs)
        return int(self.cfg.algorithm.n_minibatches)

    def _minibatch_rows(self, num_envs: int) -> int:
        return self._rows_per_step(num_envs) // self._n_minibatches(num_envs)

    def _check_divisibility(self, rt: Runtime, num_envs: int) -> None:
        rows, n_mb = self._rows_per_step(num_envs), self._n_minibatches(num_envs)
        size, ws, mbs = rows // n_mb, rt["actor"].world_size, int(self.cfg.actor.micro_batch_size)
        gbs = int(self.cfg.actor.global_batch_size)
        if gbs > rows:
            raise ConfigError(f"actor.global_batch_size={gbs} is more than the {rows} rows a step collects "
                              f"(env.train.total_num_envs x steps per rollout x env.train.rollout_epoch); lower it")
        if rows % n_mb or size % (ws * mbs):
            raise ConfigError(
                f"env.train.total_num_envs x steps per rollout = {rows} rows must split into mini-batches of "
                f"actor.global_batch_size (or algorithm.n_minibatches={self.cfg.algorithm.n_minibatches} parts) = {size} "
                f"rows, each a multiple of actor.micro_batch_size x actor world size = {mbs} x {ws}; change one of these keys")

    @property
    def _collocated(self) -> bool:
        return self.rt.offload_enabled

    def _phase(self, *groups: str) -> Any:
        return self.rt.phase(*groups) if self._collocated else nullcontext()

    def _rollout_threads(self) -> Any:
        """Inline: torch's threads capped, for the rollout, at the cores the env's worker processes
        leave free (they would otherwise spin on those cores: ``rlinf_core.runtime.threads``)."""
        from rlinf_core.runtime.threads import torch_threads_at_most, usable_cpus

        env = self.rt["env"]
        if env.concurrent:  # Ray: each rank has its CPU share as OMP_NUM_THREADS
            return nullcontext()
        procs = sum(env.call("worker_processes").result())
        return torch_threads_at_most(usable_cpus() - procs) if procs else nullcontext()

    def _sync_weights(self) -> None:
        """Actor -> rollout: rank 0's state dict moves as a handle (never through the driver under Ray)."""
        self.version += 1
        actor, rollout = self.rt["actor"], self.rt["rollout"]
        with self._phase("actor", "rollout"):
            state = actor.call("export_state")
            versions = rollout.call("load_weights", state.handles[0], self.version).result()
            state.result()
        if any(v != self.version for v in versions):
            raise RuntimeError(f"weight sync: rollout ranks report versions {versions}, expected {self.version}")

    # ------------------------------------------------------------------ one step

    def _rollout(self, step: int, *, deterministic: bool = False, epochs: int | None = None,
                 split: str = "train") -> list[dict[str, Any]]:
        """Every rollout epoch's trajectories, by micro-batch, concatenated in env order."""
        from rlinf_core.runtime.pipeline import run_env_rollout_loop

        env, rollout = self.rt["env"], self.rt["rollout"]
        out = []
        for epoch in range(int(epochs if epochs is not None else self.cfg.env[split].rollout_epoch)):
            seed = self.seed * 1_000_003 + step * 101 + epoch
            for f in [rollout.call("reseed", seed, deterministic), env.call("begin", step, epoch, self.rollout_steps(split))]:
                f.result()
            with self._phase("env", "rollout"), self._rollout_threads():
                run_env_rollout_loop(env, rollout, steps=self.rollout_steps(split), stage_num=self.stage_num, finish="finish")
                parts = [env.call("collect", j, ranks=[j % env.world_size]) for j in range(self.stage_num)]
                parts = [p.result()[0] for p in parts]
            merged = {k: _cat_rows([p[k] for p in parts]) for k in parts[0] if k != "episodes"}
            merged["episodes"] = [e for p in parts for e in p["episodes"]]
            merged["epoch"] = epoch
            out.append(merged)
        return out

    def _advantages(self, data: dict[str, Any]) -> dict[str, Any]:
        """Per row (env-major): advantages, returns, loss mask, from one rollout epoch's trajectories."""
        import torch
        from rlinf_algos import gae, grpo

        a = self.cfg.algorithm
        n, t = data["values"].shape
        if self.adv == "gae":
            term = data["terminated"].any(-1)
            trunc = data["truncated"].any(-1) & ~term
            adv, ret = gae(rewards=data["rewards"], values=data["values"], gamma=float(a.gamma), gae_lambda=float(a.gae_lambda),
                           terminated=term, truncated=trunc, truncated_values=data["final_values"],
                           last_values=data["last_values"], level="chunk")
            adv, ret = adv[..., 0], ret[..., 0]
            valid = torch.ones(n, t, dtype=torch.bool)
        else:
            score = data["first_success"].float() if str(a.embodied_score) == "success" else data["first_return"]
            gsize = int(self.cfg.env.train.group_size)
            groups = (data["env_index"] + data["epoch"] * int(self.cfg.env.train.total_num_envs)) // gsize
            per_env, _ = grpo(rewards=score, index=groups, norm_by_std=bool(a.norm_by_std))
            valid = data["valid"]
            adv = torch.where(valid, per_env[:, None].expand(n, t), torch.zeros(()))
            ret = torch.zeros(n, t)
        return {"advantages": adv.reshape(-1).float(), "returns": ret.reshape(-1).float(),
                "old_values": data["values"].reshape(-1).float(), "loss_mask": valid.reshape(-1).float()}

    def _objective(self) -> EmbodiedObjective:
        a = self.cfg.algorithm
        low = a.clip_ratio_low if a.clip_ratio_low is not None else a.ratio_clip_eps
        return EmbodiedObjective(
            loss_type=str(a.loss_type or "ppo"), clip_ratio_low=float(low),
            clip_ratio_high=None if a.clip_ratio_high is None else float(a.clip_ratio_high),
            clip_ratio_c=None if a.clip_ratio_c is None else float(a.clip_ratio_c), entropy_bonus=float(a.entropy_bonus),
            value_loss_coef=float(a.value_loss_coef) if self.adv == "gae" else 0.0,
            value_clip=None if a.value_clip is None else float(a.value_clip),
            huber_delta=None if a.huber_delta is None else float(a.huber_delta),
            chunk_logprob=str(a.logprob_type) == "chunk_level")

    def _update(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """``update_epoch`` passes of mini-batches (rows shuffled per pass), each one optimizer step."""
        import torch

        a, g = self.cfg.algorithm, self.rt["actor"]
        rows = batch["loss_mask"].shape[0]
        size = self._minibatch_rows(int(self.cfg.env.train.total_num_envs))
        n_mb = rows // size
        loss_fn = self._objective()
        k = self.K if str(a.logprob_type) != "chunk_level" else 1
        per = size // g.world_size
        inline = str(self.cfg.cluster.executor) == "inline"
        totals: dict[str, list[float]] = {}
        for epoch in range(int(a.update_epoch)):
            perm = torch.randperm(rows, generator=torch.Generator().manual_seed(self.seed * 7919 + step * 31 + epoch))
            # one gather per pass (the rows in shuffled order); each mini-batch and rank share is then a slice
            used = n_mb * size
            shuffled = _take(batch, perm[:used], rows)
            counts = shuffled["loss_mask"].reshape(n_mb, size).sum(1).round().long().tolist()  # one host sync
            for m in range(n_mb):
                valid = counts[m]
                parts = [_take(shuffled, slice(m * size + r * per, m * size + (r + 1) * per), used)
                         for r in range(g.world_size)]
                if not inline:  # a pickled view carries its whole storage (the pass's rows): send copies
                    parts = [_compact(p) for p in parts]
                results = g.scatter("train_step", parts, loss_fn=loss_fn, global_tokens=max(1, valid) * k,
                                    global_seqs=max(1, valid)).result()
                for res in results:
                    for key, v in res.items():
                        totals.setdefault(key, []).append(float(v))
        return {f"actor/{k}": _mean(v) for k, v in totals.items()}

    def train_step(self, step: int) -> dict[str, float]:
        """One training step (``step`` counts from 1): rollout, advantages, update, weight sync."""
        import torch
        from rlinf_algos import normalize_advantages

        t0 = time.perf_counter()
        epochs = self._rollout(step)
        rollout_s = time.perf_counter() - t0
        parts = []
        for data in epochs:
            rows = dict(data["rows"])
            rows["old_log_probs"] = rows.pop("log_probs")
            rows.update(self._advantages(data))
            parts.append(rows)
        batch = _cat_rows(parts)
        if self.cfg.algorithm.normalize_advantages:
            mask = batch["loss_mask"].bool()
            if int(mask.sum()) > 1:
                batch["advantages"] = normalize_advantages(batch["advantages"], mask)
        check_batch_finite(batch)  # once per step: the loss does not re-check every mini-batch
        t = time.perf_counter()
        with self._phase("actor"):
            metrics = self._update(batch, step)
        update_s = time.perf_counter() - t
        t = time.perf_counter()
        self._sync_weights()
        sync_s = time.perf_counter() - t
        episodes = [e for d in epochs for e in d["episodes"]]
        env_steps = sum(int(d["rewards"].numel()) for d in epochs)
        first_success = torch.cat([d["first_success"].float() for d in epochs])
        step_s = time.perf_counter() - t0
        if episodes:  # episodes that ended during the step (none: every sub-env still runs its first one)
            metrics["env/episode_return"] = _mean([e[0] for e in episodes])
            metrics["env/episode_length"] = _mean([float(e[1]) for e in episodes])
        metrics.update({
            "env/success_rate": _mean([float(e[2]) for e in episodes]) if episodes else float(first_success.mean()),
            "env/episodes": float(len(episodes)),
            "env/reward_per_step": float(torch.cat([d["rewards"].flatten() for d in epochs]).mean())
            / (float(self.cfg.env.train.reward_coef) or 1.0),
            "advantage/mean": float(batch["advantages"][batch["loss_mask"].bool()].mean()),
            "throughput/env_steps_per_s": env_steps / rollout_s,
            "time/rollout_s": rollout_s, "time/update_s": update_s, "time/weight_sync_s": sync_s, "time/step_s": step_s,
        })
        return metrics

    # ------------------------------------------------------------------ train / evaluate

    def total_steps(self) -> int:
        r = self.cfg.runner
        return int(r.max_steps) if int(r.max_steps) > 0 else int(r.max_epochs)

    def _save(self, step: int) -> Path:
        return ckpt.save_groups(self.rt, self.run_dir, step, ["actor"], {"step": step, "weight_version": self.version})

    def _restore(self, path: Path) -> dict[str, Any]:
        state = ckpt.load_groups(self.rt, path, ["actor"])
        self.version = int(state["weight_version"]) - 1
        self._sync_weights()
        return state

    def train(self, *, resume: bool = False) -> dict[str, float]:
        cfg = self.cfg
        ckpt.start_run_dir(self.run_dir, cfg)
        total, start = self.total_steps(), 0
        metrics: dict[str, float] = {}
        resume_from = ckpt.resume_point(self.run_dir, cfg.runner.resume_dir) if resume else None
        with self._start("train"):
            logger = _EmbodiedLogger(self.run_dir, backends=list(cfg.runner.logger.logger_backends),
                                     project=cfg.runner.logger.project_name, experiment=cfg.runner.logger.experiment_name,
                                     total_steps=total, config=OmegaConf.to_container(cfg, resolve=True),
                                     start_step=0 if resume_from is None else int(ckpt.read_state(resume_from)["step"]))
            try:
                if resume_from is not None:
                    start = int(self._restore(resume_from)["step"])
                    log.info("resumed from %s (step %d)", resume_from, start)
                save_every = int(cfg.runner.save_interval)
                steps_per_s = []
                val_every = int(cfg.runner.val_check_interval)
                for step in range(start + 1, total + 1):
                    metrics = self.train_step(step)
                    steps_per_s.append(metrics["throughput/env_steps_per_s"])
                    if val_every > 0 and step % val_every == 0:
                        metrics.update({f"val/{k}": v for k, v in self._validate(step).items()})
                    logger.log(step, metrics)
                    if save_every > 0 and (step % save_every == 0 or step == total):
                        self._save(step)
                if steps_per_s:
                    self.rt.report_throughput(_mean(steps_per_s))
            finally:
                curve = logger.close(curve_title=str(cfg.runner.logger.experiment_name))
                if curve is not None:
                    log.info("curve: %s", curve)
        return metrics

    def evaluate(self, checkpoint: str | None = None) -> dict[str, float]:
        """Deterministic actions on ``env.eval`` (held-out seeds; ``env.train`` with seed + 1e6 when unset):
        one episode per sub-env and rollout epoch; success rate and return. MP4s with ``video_cfg.save_video``."""
        save_video = bool(self.cfg.env.eval.video_cfg.save_video)
        if save_video:
            import importlib.util

            missing = [m for m in ("imageio", "imageio_ffmpeg") if importlib.util.find_spec(m) is None]
            if missing:
                raise ConfigError(f"env.eval.video_cfg.save_video needs {' and '.join(missing)}, which is not installed. "
                                  "Fix: pip install 'rlinf-envs-embodied[video]'")
        with self._start("eval"):
            path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(self.run_dir)
            step = 0
            if path is not None:
                step = int(self._restore(path)["step"])
                log.info("evaluating %s (step %d)", path, step)
            else:
                log.warning("no checkpoint in %s: evaluating the initial policy", self.run_dir)
            result = {**self._eval_episodes(), "step": float(step)}
            if save_video:
                result["videos"] = float(self._save_videos(step))
        return result

    def _eval_episodes(self) -> dict[str, float]:
        """The env group serving ``env.eval``: deterministic actions, one episode per sub-env and
        rollout epoch (the same initial states every time); success rate and mean return."""
        epochs = self._rollout(0, deterministic=True, split="eval")
        success = [float(s) for d in epochs for s in d["first_success"].tolist()]
        returns = [float(r) for d in epochs for r in d["first_return"].tolist()]
        return {"success_rate": _mean(success), "episode_return": _mean(returns), "episodes": float(len(success))}

    def _validating(self) -> bool:
        return int(self.cfg.runner.val_check_interval) > 0

    def _validate(self, step: int) -> dict[str, float]:
        """Periodic validation in a training run: the env ranks switch to ``env.eval``, play the
        evaluation episodes with the current policy, and switch back (their training envs kept)."""
        env = self.rt["env"]
        env.call("use_split", "eval").result()
        try:
            env.call("setup", self.stage_num).result()
            result = self._eval_episodes()
        finally:
            env.call("use_split", "train").result()
        log.info("step %d validation: success %.3f, return %.3f over %d episodes", step, result["success_rate"],
                 result["episode_return"], int(result["episodes"]))
        return result

    def _save_videos(self, step: int) -> int:
        """One MP4 per sub-env of the eval rollout (its first camera), under ``<run_dir>/<video_base_dir>``."""
        import imageio.v2 as imageio  # checked by evaluate()
        env = self.rt["env"]
        out_dir = Path(self.cfg.env.eval.video_cfg.video_base_dir or "videos")
        out_dir = out_dir if out_dir.is_absolute() else self.run_dir / out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        written = 0
        for j in range(self.stage_num):
            videos = env.call("frames", j, ranks=[j % env.world_size]).result()[0]
            if not videos:
                log.warning("env.eval.video_cfg.save_video: the env gives no camera images; enable them "
                            "(e.g. env.eval.init_params.images: true)")
                return 0
            for i, frames in enumerate(videos):
                path = out_dir / f"step{step}_env{j * len(videos) + i}.mp4"
                try:
                    imageio.mimwrite(path, list(frames), fps=20, macro_block_size=1)
                except (ImportError, ValueError, RuntimeError) as exc:
                    raise ConfigError(f"env.eval.video_cfg.save_video: writing {path} failed ({exc}). "
                                      "Fix: pip install 'rlinf-envs-embodied[video]'") from exc
                written += 1
        log.info("wrote %d eval video(s) to %s", written, out_dir)
        return written


def _config_error_of(exc: WorkerError) -> ConfigError | None:
    """The one-line ConfigError a rank raised while building its component (env id, policy shape...),
    re-raised in the driver as it is, rather than as a multi-line traceback of the rank."""
    prefix = f"{ConfigError.__module__}.{ConfigError.__name__}: "
    lines = [line for line in exc.detail.splitlines() if line.startswith(prefix)]
    return ConfigError(lines[-1][len(prefix):]) if lines else None


def _compact(tree: Any) -> Any:
    """``tree`` with every tensor view copied to a storage of its own size (for pickling)."""
    import torch

    if isinstance(tree, torch.Tensor):
        return tree.clone() if tree.untyped_storage().nbytes() > tree.nbytes else tree
    if isinstance(tree, Mapping):
        return {k: _compact(v) for k, v in tree.items()}
    return tree


def _take(tree: Any, index: Any, rows: int) -> Any:
    """Rows ``index`` (an index tensor, or a slice: views) of every tensor / list of ``rows`` rows in ``tree``
    (nested dicts too)."""
    import torch

    if isinstance(tree, torch.Tensor):
        return tree[index] if tree.dim() and tree.shape[0] == rows else tree
    if isinstance(tree, Mapping):
        return {k: _take(v, index, rows) for k, v in tree.items()}
    if isinstance(tree, list) and len(tree) == rows:
        return tree[index] if isinstance(index, slice) else [tree[int(i)] for i in index.tolist()]
    return tree


class _EmbodiedLogger(RunLogger):
    """:class:`RunLogger` with the embodied metrics (success, return, env steps/s) on the progress line."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        progress, self._progress = self._progress, None
        try:
            super().log(step, metrics)  # metrics.jsonl, TensorBoard, wandb
        finally:
            self._progress = progress
        if progress is not None:
            text = "  ".join(f"{short} {metrics[k]:.3g}" for k, short in CONSOLE_KEYS if k in metrics)
            progress.update(self._task, completed=step, description=text)
            progress.console.print(f"step {step:>4}  {text}", highlight=False)

    def close(self, curve_title: str = "") -> Path | None:
        """Stop the display; ``reward_curve.png``: the success rate per step when the env ever reported a
        success, else the episode return."""
        from rlinf_core.flows.tracking import plot_curve, read_metrics

        progress, self._progress = self._progress, None
        if progress is not None:
            progress.stop()
        rows = read_metrics(self.path)
        super().close()  # TensorBoard / wandb; its reward/mean curve has no rows here
        key = "env/success_rate" if any(r.get("env/success_rate", 0) > 0 for r in rows) else "env/episode_return"
        name = "success rate" if key == "env/success_rate" else "episode return"
        return plot_curve(rows, self.run_dir / "reward_curve.png", key=key, title=f"{curve_title}: {name} per step")
