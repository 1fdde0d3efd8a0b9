"""The ``fsdp`` training backend: a Hugging Face causal LM (actor / reference) or value model (critic)
trained with FSDP2 (``fully_shard`` per decoder layer, then the root) when the group has several
ranks, and as a plain module at world size 1 (same code paths otherwise).

Config it reads (the critic reads ``critic.model`` / ``critic.optim`` and the rest from ``actor``):

- ``actor.model.model_path`` / ``actor.model.config`` / ``actor.model.precision`` (see ``hf_model``);
- ``actor.micro_batch_size``: rows per forward/backward; gradients accumulate over a step;
- ``actor.optim.{lr, adam_beta1, adam_beta2, adam_eps, weight_decay, clip_grad}`` (AdamW; clip 0 = off);
- ``actor.lr_sched.{lr_decay_style (constant / cosine / linear), lr_warmup_fraction, min_lr, max_lr}``,
  over ``total_steps`` optimizer steps (constructor argument, else
  ``runner.max_steps * algorithm.n_minibatches * algorithm.update_epoch``);
- ``actor.fsdp_config.{mixed_precision.{param_dtype, reduce_dtype}, gradient_checkpointing,
  reshard_after_forward}``. At world size 1 a ``param_dtype`` other than the weights' runs the
  forward under ``torch.autocast`` instead of FSDP's parameter casting.

**Policy mode** (:mod:`rlinf_backends_fsdp.policy_training`): when ``actor.model.model_type`` names a
``model`` component that is a :class:`~rlinf_core.interfaces.Policy` (``mlp``, ``cnn``, a VLA), the backend
builds it with the env's spaces (``observation_space`` / ``action_space`` constructor arguments) and
``train_step`` calls ``policy.evaluate(obs, actions, extras)`` per micro-batch of rows; optimizer,
schedule, clipping, ``fully_shard`` at world size > 1, DCP checkpoints and ``export_weights`` (the
policy's ``state_dict``) are the same as for a language model. The policy's own value head is
trained by the same loss (actor-critic in one module): there is no critic role in policy mode.

Padding: each forward drops the columns that are padding in every row (common left padding of the
prompts, common right padding of the responses) and computes logits only at response positions
(``logits_to_keep``); rows are not packed (no varlen attention).

Shared prompts (GRPO groups: a prompt in several rows of a micro-batch): the actor / reference at world
size 1 without activation checkpointing runs each distinct prompt once (its KV cache, with gradient in
``train_step``), indexes the cache out to the rows and runs only the response tokens against it, so a
group's prompt costs one forward / backward instead of one per row. The same function as the full
forward (equal up to float rounding); batches whose prompts are all distinct take the ordinary path.
A loss function whose ``entropy_grad`` is false gets the entropy computed without gradient.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from rlinf_core.lr_schedule import LRSchedule
from torch import nn

from rlinf_backends_fsdp.hf_model import (
    ValueModel,
    _get,
    enable_checkpointing,
    hidden_size_of,
    load_causal_lm,
    load_hf_config,
    parse_dtype,
    resolve_model_source,
)
from rlinf_backends_fsdp.options import FSDPOptions

log = logging.getLogger(__name__)

ROLES = ("actor", "critic", "reference")


def _fsdp_settings(options: FSDPOptions) -> dict[str, Any]:
    """``actor.fsdp_config`` (:class:`~rlinf_backends_fsdp.options.FSDPOptions`) with torch dtypes."""
    mp = options.mixed_precision
    return {
        "param_dtype": parse_dtype(mp.param_dtype, "actor.fsdp_config.mixed_precision.param_dtype") if mp.param_dtype else None,
        "reduce_dtype": parse_dtype(mp.reduce_dtype, "actor.fsdp_config.mixed_precision.reduce_dtype")
        if mp.reduce_dtype else None,
        "gradient_checkpointing": options.gradient_checkpointing,
        "reshard_after_forward": options.reshard_after_forward,
    }


def _decoder_layer_classes(model: nn.Module) -> set[str]:
    """Class names of the transformer blocks (HF's ``_no_split_modules``)."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
    return names


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()
        return float(value.detach().float().mean())
    return float(value)


class FSDPBackend:
    """Trains or scores a Hugging Face model; implements :class:`rlinf_core.interfaces.TrainingBackend`.

    ``role``: ``actor`` (trainable causal LM), ``critic`` (trainable value model: the decoder and a
    linear value head) or ``reference`` (frozen causal LM, no optimizer). At world size > 1 the
    default ``torch.distributed`` process group (set up by the runtime) must hold exactly the
    group's ``world_size`` ranks.
    """

    def __init__(self, config: Any, *, role: str = "actor", rank: int = 0, world_size: int = 1,
                 device: str = "cpu", total_steps: int | None = None, observation_space: Any = None,
                 action_space: Any = None):
        if role not in ROLES:
            raise ValueError(f"fsdp backend: role {role!r} is not one of {', '.join(ROLES)}")
        self.config, self.role, self.rank, self.world_size = config, role, rank, world_size
        self.device = torch.device(device)
        if world_size > 1:
            if not dist.is_initialized() or dist.get_world_size() != world_size:
                got = dist.get_world_size() if dist.is_initialized() else "no process group"
                raise RuntimeError(
                    f"fsdp backend ({role}, rank {rank}): world_size={world_size} needs an initialised "
                    f"torch.distributed process group of that size (got {got}); the runtime sets it up for "
                    "groups with several ranks"
                )
        section = "critic" if role == "critic" else "actor"
        self.micro_batch_size = int(_get(config, "actor.micro_batch_size", 1))
        self.fsdp = _fsdp_settings(FSDPOptions.from_config(config))
        precision_key = f"{section}.model.precision"
        self.dtype = parse_dtype(_get(config, precision_key, "fp32"), precision_key)
        self.global_step = 0

        from rlinf_backends_fsdp import policy_training

        policy_cls = policy_training.policy_class(config, section)
        #: A :class:`~rlinf_core.interfaces.Policy` trained through ``evaluate`` (see the module docstring).
        self.policy_mode = policy_cls is not None
        if self.policy_mode:
            if role == "critic":
                raise ValueError(f"fsdp backend: critic.model.model_type={_get(config, 'critic.model.model_type')} is a "
                                 "policy; an embodied policy carries its own value head (actor.model.add_value_head), "
                                 "so set critic.use_critic_model: false")
            self.hf_config = None
            model = policy_training.build_policy(policy_cls, config, section, observation_space=observation_space,
                                                 action_space=action_space, seed=int(_get(config, "actor.seed", 1)))
            if role == "reference":
                model.requires_grad_(False)
            model.to(self.device)
            self._keep_logits = False
            self._shared_prompt_arg = None
            self.model = self._shard(model) if world_size > 1 else model
            self.model.eval()
            self.optimizer = None
            self.scheduler = None
            if role != "reference":
                self._build_optimizer(section, total_steps)
            return

        source = resolve_model_source(config, role)
        self.hf_config = load_hf_config(source)
        if role == "critic":
            decoder = load_causal_lm(source, dtype=self.dtype, base_only=True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(source.seed)
                model: nn.Module = ValueModel(decoder, hidden_size_of(self.hf_config))
        else:
            model = load_causal_lm(source, dtype=self.dtype)
        if role == "reference":
            model.requires_grad_(False)
        elif self.fsdp["gradient_checkpointing"]:
            enable_checkpointing(model)
        model.to(self.device)
        params = inspect.signature(model.forward).parameters
        self._keep_logits = "logits_to_keep" in params
        # transformers >= 5.2x names the KV cache argument ``cache`` (``past_key_values`` before)
        cache_arg = "cache" if "cache" in params else "past_key_values" if "past_key_values" in params else None
        #: The KV-cache argument when each distinct prompt may be forwarded once (see the module docstring).
        self._shared_prompt_arg = (cache_arg if role != "critic" and world_size == 1
                                   and not self.fsdp["gradient_checkpointing"] else None)
        self.model = self._shard(model) if world_size > 1 else model
        self.model.eval()

        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        if role != "reference":
            self._build_optimizer(section, total_steps)

    # ------------------------------------------------------------------ construction

    def _shard(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(self.device.type, (self.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=self.fsdp["param_dtype"], reduce_dtype=self.fsdp["reduce_dtype"])
        kwargs = {"mesh": mesh, "mp_policy": mp, "reshard_after_forward": self.fsdp["reshard_after_forward"]}
        if self.policy_mode:
            from rlinf_backends_fsdp.policy_training import shard_policy

            return shard_policy(model, **kwargs)
        layers = _decoder_layer_classes(model)
        for module in list(model.modules()):
            if type(module).__name__ in layers:
                fully_shard(module, **kwargs)
        fully_shard(model, **kwargs)
        return model

    def _build_optimizer(self, section: str, total_steps: int | None) -> None:
        optim = _get(self.config, f"{section}.optim")
        lr = float(_get(optim, "value_lr") or _get(optim, "lr", 1e-6)) if section == "critic" else float(_get(optim, "lr", 1e-6))
        sched = _get(self.config, "actor.lr_sched")
        peak = _get(sched, "max_lr")
        lr = float(peak) if peak is not None and section == "actor" else lr
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=lr,
            betas=(float(_get(optim, "adam_beta1", 0.9)), float(_get(optim, "adam_beta2", 0.999))),
            eps=float(_get(optim, "adam_eps", 1e-8)), weight_decay=float(_get(optim, "weight_decay", 0.0)),
            # torch picks its per-tensor loop on the CPU; foreach gives the same bits in fewer kernels (193 vs 279 us
            # a step for a 64-wide actor-critic MLP). fused (60 us) rounds differently, and the tiny VLA runs of
            # tests/envs_embodied/vla are sensitive to that (OpenVLA-OFT GRPO eval 0.87 -> 0.66, measured).
            foreach=True,
        )
        self.clip_grad = float(_get(optim, "clip_grad", 1.0))
        self.scheduler = self._build_scheduler(sched, lr, total_steps)

    def _build_scheduler(self, sched: Any, lr: float, total_steps: int | None) -> torch.optim.lr_scheduler.LambdaLR:
        """``actor.lr_sched`` (:class:`rlinf_core.lr_schedule.LRSchedule`) as a LambdaLR on the optimizer."""
        schedule = LRSchedule.from_config(self.config, peak=lr, total_steps=total_steps)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: schedule.factor(step))

    # ------------------------------------------------------------------ forward

    def _autocast(self):
        param_dtype = self.fsdp["param_dtype"]
        if self.world_size == 1 and param_dtype is not None and param_dtype != self.dtype:
            return torch.autocast(device_type=self.device.type, dtype=param_dtype)
        return contextlib.nullcontext()

    def _forward(self, mb: Mapping[str, Any], *, temperature: float, with_entropy: bool,
                 entropy_grad: bool = True) -> dict[str, torch.Tensor]:
        """Per-response-token outputs ``(B, R)`` of one micro-batch (with gradient if enabled; the
        entropy without gradient unless ``entropy_grad``)."""
        from rlinf_algos import entropy_from_logits, log_probs_from_logits

        ids = mb["input_ids"].to(self.device)
        attn = mb["attention_mask"].to(self.device)
        response_mask = mb["response_mask"].to(self.device)
        rows, total = ids.shape
        resp = response_mask.shape[1]
        prompt = total - resp
        if prompt < 1:
            raise ValueError(f"batch: input_ids has {total} columns but response_mask {resp}: no prompt column left")
        # drop columns that are padding in every row, keeping at least the last prompt column
        used = attn.bool().any(dim=0).nonzero().flatten()
        lo = min(int(used[0]), prompt - 1) if used.numel() else prompt - 1
        hi = max(int(used[-1]) + 1, prompt) if used.numel() else prompt
        kept = hi - prompt  # response columns actually computed
        out: dict[str, torch.Tensor] = {}
        if kept == 0:
            zeros = torch.zeros(rows, resp, device=self.device)
            if self.role == "critic":
                return {"values": zeros}
            return {"log_probs": zeros, **({"entropy": zeros} if with_entropy else {})}
        ids_t, attn_t = ids[:, lo:hi], attn[:, lo:hi]
        pos = (attn_t.long().cumsum(-1) - 1).clamp(min=0)
        pad = (0, resp - kept)
        with self._autocast():
            if self.role == "critic":
                values = self.model(input_ids=ids_t, attention_mask=attn_t, position_ids=pos)
                values = values[:, prompt - 1 - lo: hi - 1 - lo].float()
                out["values"] = torch.nn.functional.pad(values, pad) * response_mask
                return out
            shared = self._shared_prompts(ids[:, lo:prompt], attn_t[:, :prompt - lo])
            if shared is not None:
                logits = self._shared_prompt_logits(ids_t, attn_t, pos, prompt - lo, *shared)
            else:
                kwargs = {"logits_to_keep": kept + 1} if self._keep_logits else {}
                logits = self.model(input_ids=ids_t, attention_mask=attn_t, position_ids=pos, use_cache=False,
                                    **kwargs).logits
                logits = logits[:, -(kept + 1):-1] if self._keep_logits else logits[:, prompt - 1 - lo: hi - 1 - lo]
        if temperature != 1.0:
            logits = logits / temperature
        labels = ids[:, prompt:hi]
        out["log_probs"] = torch.nn.functional.pad(log_probs_from_logits(logits, labels), pad) * response_mask
        if with_entropy:
            with contextlib.nullcontext() if entropy_grad else torch.no_grad():
                entropy = entropy_from_logits(logits if entropy_grad else logits.detach())
            out["entropy"] = torch.nn.functional.pad(entropy, pad) * response_mask
        return out

    def _shared_prompts(self, prompt_ids: torch.Tensor, prompt_attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(first, inverse)`` when some rows share a prompt (same tokens and padding): ``first`` the
        index of one row per distinct prompt, ``inverse`` each row's distinct prompt; ``None`` when every
        prompt is distinct or the shared-prompt forward is off for this backend."""
        if self._shared_prompt_arg is None or prompt_ids.shape[0] < 2:
            return None
        key = prompt_ids.masked_fill(prompt_attn == 0, -1)
        uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
        if uniq.shape[0] == key.shape[0]:
            return None
        rows = torch.arange(key.shape[0], device=key.device)
        first = torch.full((uniq.shape[0],), key.shape[0], dtype=torch.long, device=key.device)
        first = first.scatter_reduce(0, inverse, rows, reduce="amin")
        return first, inverse

    def _shared_prompt_logits(self, ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor, prompt: int,
                              first: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """The logits ``(B, kept, V)`` predicting the response columns ``ids[:, prompt:]`` (``kept`` of them),
        from one forward of each distinct prompt (rows ``first``) and one of the response columns of every
        row against its prompt's KV cache (``inverse``). The same function as the full forward."""
        from transformers import DynamicCache

        kept = ids.shape[1] - prompt
        cache = DynamicCache(config=getattr(self.model, "config", None))
        kwargs = {"logits_to_keep": 1} if self._keep_logits else {}
        head = self.model(input_ids=ids[first, :prompt], attention_mask=attn[first, :prompt],
                          position_ids=pos[first, :prompt], use_cache=True, **{self._shared_prompt_arg: cache},
                          **kwargs).logits[:, -1:]
        head = head[inverse]
        if kept == 1:
            return head
        cache.batch_select_indices(inverse)  # differentiable: the rows' gradients sum into their prompt's
        tail = self.model(input_ids=ids[:, prompt:-1], attention_mask=attn[:, :-1], position_ids=pos[:, prompt:-1],
                          use_cache=True, **{self._shared_prompt_arg: cache}).logits
        return torch.cat([head, tail], dim=1)

    def _micro_batches(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.policy_mode:
            from rlinf_backends_fsdp.policy_training import num_rows, take_rows

            rows = num_rows(batch)
        else:
            rows = int(batch["input_ids"].shape[0])
        m = self.micro_batch_size
        if rows % m:
            raise ValueError(
                f"actor.micro_batch_size={m} x world size {self.world_size} does not divide the batch of "
                f"{rows * self.world_size} rows ({rows} on rank {self.rank}): choose a micro_batch_size that "
                f"divides {rows}, or change data.rollout_batch_size / algorithm.group_size / algorithm.n_minibatches"
            )
        out = []
        if self.policy_mode:
            return [take_rows(dict(batch), slice(start, start + m), rows) for start in range(0, rows, m)]
        for start in range(0, rows, m):
            out.append({k: (v[start:start + m] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == rows else v)
                        for k, v in batch.items()})
        return out

    def _policy_forward(self, mb: Mapping[str, Any]) -> dict[str, Any]:
        from rlinf_backends_fsdp.policy_training import evaluate, to_device

        with self._autocast():
            return evaluate(self.model, to_device(mb, self.device))

    @torch.no_grad()
    def compute_log_probs(self, batch: Mapping[str, Any], *, temperature: float = 1.0,
                          with_entropy: bool = False) -> dict[str, torch.Tensor]:
        """``{"log_probs": (B, R)}`` (and ``"entropy"``) of the response tokens under ``logits / temperature``;
        0 where ``response_mask`` is 0. Runs in ``micro_batch_size`` chunks."""
        if self.role == "critic":
            raise RuntimeError("fsdp backend: compute_log_probs is for role actor/reference; a critic has compute_values")
        self.model.eval()
        if self.policy_mode:
            outs = [self._policy_forward(mb) for mb in self._micro_batches(batch)]
            keys = ["log_probs"] + (["entropy"] if with_entropy else [])
            return {k: torch.cat([o[k].detach() for o in outs]).cpu() for k in keys}
        parts = [self._forward(mb, temperature=temperature, with_entropy=with_entropy) for mb in self._micro_batches(batch)]
        return {k: torch.cat([p[k] for p in parts]).cpu() for k in parts[0]}

    @torch.no_grad()
    def compute_values(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Values ``(B, R)``: ``values[:, t]`` is V of the state before response token ``t`` (0 where masked)."""
        self.model.eval()
        if self.policy_mode:
            outs = [self._policy_forward(mb) for mb in self._micro_batches(batch)]
            if any(o.get("values") is None for o in outs):
                raise RuntimeError("fsdp backend: the policy has no value head (set actor.model.add_value_head: true)")
            return torch.cat([o["values"].detach() for o in outs]).cpu()
        if self.role != "critic":
            raise RuntimeError(f"fsdp backend: compute_values needs role critic (this backend is the {self.role})")
        return torch.cat([self._forward(mb, temperature=1.0, with_entropy=False)["values"]
                          for mb in self._micro_batches(batch)]).cpu()

    # ------------------------------------------------------------------ training

    def _all_reduce(self, value: torch.Tensor, op=None) -> torch.Tensor:
        if self.world_size > 1:
            value = value.to(self.device)
            dist.all_reduce(value, op=op or dist.ReduceOp.SUM)
        return value

    def train_step(self, batch: Mapping[str, Any], loss_fn: Any, *, temperature: float = 1.0,
                   global_tokens: int | None = None, global_seqs: int | None = None) -> dict[str, float]:
        """One optimizer step over ``batch`` (see :class:`~rlinf_core.interfaces.TrainingBackend`).

        ``global_tokens`` / ``global_seqs`` default to the counts of the step's batch over all
        ranks (valid response tokens; rows with at least one). The loss of each micro-batch is
        summed (backward on each); gradients are summed across ranks. Returns ``loss`` (the step's
        total, over all ranks), ``grad_norm`` (before clipping), ``lr`` (used by this step) and
        the loss function's metrics averaged over micro-batches and ranks. A non-finite gradient
        norm skips the update (``skipped`` = 1).
        """
        if self.optimizer is None:
            raise RuntimeError("fsdp backend: the reference model is frozen (role reference has no optimizer)")
        micro = self._micro_batches(batch)
        if self.policy_mode:  # one row per env step; loss_mask (B,) marks the rows that count
            from rlinf_backends_fsdp.policy_training import num_rows

            mask = batch.get("loss_mask")
            mask = torch.ones(num_rows(batch), 1) if mask is None else mask.reshape(mask.shape[0], -1)
        else:
            mask = batch["response_mask"]
        if global_tokens is None:
            global_tokens = int(self._all_reduce(mask.sum().to(torch.float64)).item())
        if global_seqs is None:
            global_seqs = int(self._all_reduce(mask.bool().any(dim=1).sum().to(torch.float64)).item())
        with_entropy = bool(getattr(loss_fn, "with_entropy", False)) and self.role != "critic"
        entropy_grad = bool(getattr(loss_fn, "entropy_grad", True))
        self.model.train()
        total_loss = torch.zeros((), dtype=torch.float64)
        sums: dict[str, float] = {}
        for i, mb in enumerate(micro):
            last = i == len(micro) - 1
            if self.world_size > 1:
                self.model.set_requires_gradient_sync(last)
            mb["global_tokens"], mb["global_seqs"] = global_tokens, global_seqs
            if self.policy_mode:
                from rlinf_backends_fsdp.policy_training import to_device

                mb = to_device(mb, self.device)
                outputs = self._policy_forward(mb)
            else:
                mb = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in mb.items()}
                outputs = self._forward(mb, temperature=temperature, with_entropy=with_entropy,
                                        entropy_grad=entropy_grad)
            loss, metrics = loss_fn(outputs, mb)
            # FSDP averages gradients over ranks; the loss is normalised by global counts: sum instead
            (loss * self.world_size if self.world_size > 1 else loss).backward()
            total_loss += float(loss.detach())
            for k, v in (metrics or {}).items():
                sums[k] = sums.get(k, 0.0) + _to_float(v)
        lr = float(self.optimizer.param_groups[0]["lr"])
        max_norm = self.clip_grad if self.clip_grad > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, max_norm, foreach=True)
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        skipped = not torch.isfinite(torch.tensor(grad_norm))
        if not skipped:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1
        self.model.eval()
        names = sorted(sums)
        reduced = self._all_reduce(torch.tensor([total_loss.item()] + [sums[k] / len(micro) for k in names],
                                                dtype=torch.float64)).cpu()
        result = {"loss": float(reduced[0]), "grad_norm": grad_norm, "lr": lr, "skipped": float(skipped)}
        result.update({k: float(reduced[1 + j]) / self.world_size for j, k in enumerate(names)})
        return result

    # ------------------------------------------------------------------ weights and checkpoints

    def export_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full weights with Hugging Face names, in the model's ``state_dict`` order (layer by layer).

        A collective at world size > 1: every rank must consume the iterator to the end (each
        tensor is gathered in turn); rank 0 yields ``(name, tensor)``, other ranks nothing. The
        tensors are views of the live weights at world size 1: copy them to keep them past the next
        ``train_step``.
        """
        for name, tensor in self.model.state_dict().items():
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if self.rank == 0:
                yield name, tensor.detach()

    def _dcp_state(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

        if self.optimizer is None:
            return {"model": get_model_state_dict(self.model)}
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optimizer": optim_sd}

    def save_checkpoint(self, path: str) -> None:
        """Model + optimizer (torch.distributed.checkpoint, sharded), scheduler + step + RNG
        (``extra_state_rank{r}.pt``) under ``path``. Every rank calls it."""
        import torch.distributed.checkpoint as dcp

        os.makedirs(path, exist_ok=True)
        dcp.save(self._dcp_state(), checkpoint_id=path, no_dist=self.world_size == 1)
        extra = {"global_step": self.global_step, "rng": _rng_state(), "world_size": self.world_size,
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}
        torch.save(extra, os.path.join(path, f"extra_state_rank{self.rank}.pt"))

    def load_checkpoint(self, path: str) -> None:
        """Restore :meth:`save_checkpoint`'s state (any world size for the sharded part; the RNG of
        this rank, or rank 0's when the checkpoint had fewer ranks)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

        if not os.path.isdir(path):
            raise FileNotFoundError(f"fsdp backend: checkpoint directory {path} does not exist")
        state = self._dcp_state()
        dcp.load(state, checkpoint_id=path, no_dist=self.world_size == 1)
        if self.optimizer is None:
            set_model_state_dict(self.model, state["model"])
        else:
            set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        extra_path = os.path.join(path, f"extra_state_rank{self.rank}.pt")
        if not os.path.exists(extra_path):
            extra_path = os.path.join(path, "extra_state_rank0.pt")
        extra = torch.load(extra_path, weights_only=False)
        self.global_step = int(extra["global_step"])
        if self.scheduler is not None and extra.get("scheduler") is not None:
            self.scheduler.load_state_dict(extra["scheduler"])
        _set_rng_state(extra["rng"])

    # ------------------------------------------------------------------ memory

    def offload(self) -> None:
        """Move weights, gradients and optimizer state to host memory (a no-op on a CPU device)."""
        if self.device.type != "cpu":
            from rlinf_core.runtime.offload import offload_to_host

            offload_to_host(self.model, self.optimizer)

    def onload(self) -> None:
        """Undo :meth:`offload`."""
        if self.device.type != "cpu":
            from rlinf_core.runtime.offload import reload_to_device

            reload_to_device(self.model, self.device, self.optimizer)


__all__ = ["FSDPBackend"]
