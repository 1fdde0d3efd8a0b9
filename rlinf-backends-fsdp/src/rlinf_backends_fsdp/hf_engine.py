"""The ``huggingface`` rollout engine (alias ``hf``): batched sampling from a transformers causal LM.

Its own decoding loop over a KV cache (``DynamicCache``) rather than ``model.generate``, so the
returned log-prob of each sampled token is exactly ``log_softmax(logits / temperature)`` at that
token, the quantity the training backend computes teacher-forced (top-k / top-p / repetition
penalty change what is sampled, not the reported log-prob). Prompts are left-padded into one batch
with position ids from the attention mask, as the backend does. A prompt given several times in a
batch (a GRPO group) is prefilled once and its KV cache indexed out to its rows. Greedy decoding
reports log-probs at temperature 1.

Config: the model from ``rollout.model.model_path`` (else the actor's, see ``hf_model``), dtype
``rollout.model.precision``; ``rollout.hf.max_batch_size`` (default: all prompts at once) bounds
the rows decoded together; sampling is seeded by ``actor.seed`` + rank unless
``SamplingParams.seed`` is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from rlinf_core.interfaces import GenerationOutput, SamplingParams

from rlinf_backends_fsdp.hf_model import (
    _get,
    load_causal_lm,
    load_hf_config,
    parse_dtype,
    resolve_model_source,
    special_token_ids,
)
from rlinf_backends_fsdp.options import HFEngineOptions


def _filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """``logits`` with tokens outside the top-k / nucleus set to ``-inf`` (the most likely token is always kept)."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # mass before this token already exceeds top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already in the row (``seen``: bool ``(B, V)``)."""
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


class HFRolloutEngine:
    """Implements :class:`rlinf_core.interfaces.RolloutEngine` with transformers on any torch device."""

    def __init__(self, config: Any, *, rank: int = 0, world_size: int = 1, device: str = "cpu"):
        self.config, self.rank, self.world_size = config, rank, world_size
        self.device = torch.device(device)
        self.max_batch_size = HFEngineOptions.from_config(config).max_batch_size
        source = resolve_model_source(config, "rollout")
        self.dtype = parse_dtype(_get(config, "rollout.model.precision", "fp32"), "rollout.model.precision")
        hf_config = load_hf_config(source)
        self.eos_ids, self.pad_id = special_token_ids(source, hf_config)
        if self.pad_id is None:
            self.pad_id = 0
        self.model = load_causal_lm(source, dtype=self.dtype).to(self.device).eval()
        self.model.requires_grad_(False)
        # transformers >= 5.2x names the KV cache argument ``cache`` (``past_key_values`` before)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._generator = torch.Generator(device=self.device).manual_seed(int(_get(config, "actor.seed", 0)) + 7919 * rank)
        self._version = 0
        self._closed = False

    # ------------------------------------------------------------------ generation

    @property
    def weight_version(self) -> int:
        return self._version

    def generate(self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> GenerationOutput:
        """One response per prompt; see :class:`~rlinf_core.interfaces.RolloutEngine`."""
        if self._closed:
            raise RuntimeError("huggingface engine: generate() after close()")
        prompts = [list(map(int, p)) for p in prompt_ids]
        if any(not p for p in prompts):
            raise ValueError("huggingface engine: an empty prompt was given (every prompt needs at least one token)")
        gen = self._generator
        if sampling.seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(int(sampling.seed))
        step = self.max_batch_size or len(prompts) or 1
        out = GenerationOutput(prompt_ids=prompts, response_ids=[], response_logprobs=[] if sampling.logprobs else None,
                               finish_reasons=[], weight_version=self._version)
        for start in range(0, len(prompts), step):
            ids, lps, reasons = self._generate_batch(prompts[start:start + step], sampling, gen)
            out.response_ids.extend(ids)
            out.finish_reasons.extend(reasons)
            if out.response_logprobs is not None:
                out.response_logprobs.extend(lps)
        return out

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], sp: SamplingParams, gen: torch.Generator):
        from transformers import DynamicCache

        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((rows, width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            ids[i, width - len(p):] = torch.tensor(p)
            attn[i, width - len(p):] = 1
        ids, attn = ids.to(self.device), attn.to(self.device)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        greedy = not sp.do_sample or sp.temperature <= 0
        temperature = 1.0 if greedy else float(sp.temperature)
        stop = torch.tensor(sorted(set(self.eos_ids) | set(sp.stop_token_ids)), dtype=torch.long, device=self.device)
        seen = None
        if sp.repetition_penalty != 1.0:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            seen = torch.zeros(rows, vocab, dtype=torch.bool, device=self.device)
            seen.scatter_(1, ids, attn.bool())
        cache = DynamicCache()
        # prefill each distinct prompt once, then index its cache and last logits out to its rows
        distinct: dict[tuple[int, ...], int] = {}
        inverse = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompts], device=self.device)
        first = torch.zeros(len(distinct), dtype=torch.long, device=self.device)
        first[inverse] = torch.arange(rows, device=self.device)  # one row (any) per distinct prompt
        shared = len(distinct) < rows
        if shared:
            prefill = self.model(input_ids=ids[first], attention_mask=attn[first], position_ids=pos[first], use_cache=True,
                                 logits_to_keep=1, **{self._cache_arg: cache}).logits[:, -1].float()[inverse]
            cache.batch_select_indices(inverse)
        tokens = torch.empty(rows, 0, dtype=torch.long, device=self.device)
        logps = torch.empty(rows, 0, dtype=torch.float32, device=self.device)
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        finished_at = torch.full((rows,), -1, dtype=torch.long, device=self.device)
        step_ids, step_pos = ids, pos
        for t in range(sp.max_new_tokens):
            if t == 0 and shared:
                logits = prefill
            else:
                logits = self.model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos, use_cache=True,
                                    logits_to_keep=1, **{self._cache_arg: cache}).logits[:, -1].float()
            scaled = logits / temperature
            logprobs = torch.log_softmax(scaled, dim=-1)
            shaped = _repetition_penalty(scaled, seen, sp.repetition_penalty) if seen is not None else scaled
            if greedy:
                nxt = shaped.argmax(-1)
            else:
                shaped = _filter_top_k_top_p(shaped, sp.top_k, sp.top_p)
                nxt = torch.multinomial(shaped.softmax(-1), 1, generator=gen).squeeze(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            logps = torch.cat([logps, logprobs.gather(-1, nxt[:, None])], dim=1)
            if seen is not None:
                seen.scatter_(1, nxt[:, None], ~done[:, None])
            hit = ~done & torch.isin(nxt, stop) if stop.numel() else torch.zeros_like(done)
            finished_at = torch.where(hit, torch.full_like(finished_at, t), finished_at)
            done = done | hit
            if bool(done.all()):
                break
            attn = torch.cat([attn, (~done).long()[:, None] | hit.long()[:, None]], dim=1)
            step_ids, step_pos = nxt[:, None], step_pos[:, -1:] + 1
        tokens, logps, finished_at = tokens.cpu(), logps.cpu(), finished_at.cpu()
        out_ids, out_lps, reasons = [], [], []
        for i in range(rows):
            end = int(finished_at[i]) + 1 if finished_at[i] >= 0 else tokens.shape[1]
            out_ids.append(tokens[i, :end].tolist())
            out_lps.append(logps[i, :end].tolist())
            reasons.append("stop" if finished_at[i] >= 0 else "length")
        return out_ids, out_lps, reasons

    # ------------------------------------------------------------------ weights and memory

    @torch.no_grad()
    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        """Copy ``(hf_name, tensor)`` pairs into the model in place (cast to its dtype and device).
        Unknown names raise; names not given keep their current values."""
        unknown = []
        targets = self.model.state_dict(keep_vars=True)
        for name, tensor in weights:
            target = targets.get(name)
            if target is None:
                unknown.append(name)
                continue
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(f"huggingface engine: weight {name} has shape {tuple(tensor.shape)}, "
                                 f"the engine's model has {tuple(target.shape)}")
            target.copy_(tensor)
        if unknown:
            raise KeyError(f"huggingface engine: update_weights got names its model does not have: "
                           f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        self._version = int(version)

    def offload(self) -> None:
        """Move the weights to host memory (a no-op on a CPU device)."""
        if self.device.type != "cpu":
            from rlinf_core.runtime.offload import offload_to_host

            offload_to_host(self.model)

    def onload(self) -> None:
        """Undo :meth:`offload`."""
        if self.device.type != "cpu":
            from rlinf_core.runtime.offload import reload_to_device

            reload_to_device(self.model, self.device)

    def close(self) -> None:
        """Drop the model."""
        self._closed = True
        self.model = None  # type: ignore[assignment]


__all__ = ["HFRolloutEngine"]
