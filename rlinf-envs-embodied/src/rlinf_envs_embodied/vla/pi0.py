"""The ``pi0`` policy (kind ``model``): transformers' PI0 (PaliGemma + flow-matching action expert) with
a stochastic denoising chain for RL.

transformers' convention: ``x_t = t * noise + (1 - t) * action``, the expert predicts ``v = noise - action``,
and sampling integrates from ``t = 1`` to ``0`` in ``num_steps`` Euler steps (``dt = -1 / num_steps``). For
RL each step instead samples ``x_{t+dt} ~ N(mean, std^2)`` so that the chain has a Gaussian log-prob
(as pi-RL does), with ``noise_method``:

- ``flow_sde`` (default): the SDE with the flow's marginals (Flow-GRPO's form),
  ``mean = x + dt * (v + s_t^2 / (2 t) * (x + (1 - t) v))``, ``std = s_t * sqrt(-dt)``,
  ``s_t = noise_level * sqrt(t / (1 - t))`` (at ``t = 1`` the next step's ``t`` is used in ``1 - t``);
- ``flow_noise``: the Euler mean ``x + dt * v`` with a fixed ``std = noise_level``.

Noise is injected only in the env's ``D`` action dims (the padding dims up to ``max_action_dim`` follow
the mean), and ``log_probs (N, K)`` sum the per-step Gaussian log-densities over steps and dims. The
chain ``(N, num_steps + 1, chunk_size, max_action_dim)`` is returned in ``extras["chain"]`` and
:meth:`Pi0Policy.evaluate` re-scores it with gradient. ``values (N,)``: a head on the masked mean of
the VLM's prefix hidden states.

``actor.model`` keys: ``model_path`` (a local checkpoint as transformers writes PI0:
``config.json`` with ``model_type: pi0``, ``*.safetensors`` with openpi / lerobot's key names
(``paligemma_with_expert.*``, ``state_proj``, ``action_in_proj``...; transformers maps them), the tokenizer files and
``processor_config.json`` with ``state_mean/state_std/actions_mean/actions_std``, as ``PI0Processor``
stores them); without it a tiny random model sized by ``config`` (``hidden_size``, ``num_layers``,
``num_heads``, ``head_dim``, ``intermediate_size``, ``expert_hidden_size``, ``vision_hidden``,
``vision_layers``, ``image_size``, ``patch_size``, ``max_dim``); ``num_action_chunks`` (K, at most the
model's ``chunk_size``; a tiny model's chunk is K), ``add_value_head``, ``is_lora`` / ``lora_rank``
(peft on the whole model), ``precision``; in ``config`` (its keys: :mod:`.options`, checked by ``rlinf config
validate``): ``num_steps`` (denoising steps; the checkpoint's
``num_inference_steps``, 4 for a tiny model), ``noise_method``, ``noise_level`` (0.5), ``cameras`` (all),
``value_hidden`` (256), ``instruction`` (for envs that give none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rlinf_core.errors import ConfigError, suggestion_text
from rlinf_core.interfaces import ActionSample
from torch import nn

from rlinf_envs_embodied.vla import common
from rlinf_envs_embodied.vla.common import HALF_MEAN, HALF_STD, KEY, Normalizer, ValueHead, option
from rlinf_envs_embodied.vla.options import NOISE_METHODS, Pi0Options

PROCESSOR_FILE = "processor_config.json"


def _pi0_classes() -> tuple[Any, Any]:
    try:
        from transformers import PI0Config, PI0ForConditionalGeneration
    except ImportError as exc:
        import transformers

        raise ConfigError(f"{KEY}.model_type: pi0 needs transformers with models.pi0 (5.24 has it; found "
                          f"{transformers.__version__}): pip install -U 'transformers>=5.24'") from exc
    return PI0Config, PI0ForConditionalGeneration


class Pi0Policy(nn.Module):
    """pi0 with a noise-injected denoising chain (see the module docstring)."""

    #: The keys of ``actor.model.config`` (:mod:`.options`; the component's declared ``options``).
    options_class: type = Pi0Options

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any):
        super().__init__()
        self.options = opts = common.vla_options(config, self.options_class)
        self.action_dim = common.action_dim_of(config, action_space)
        self.cameras = common.camera_names(config, observation_space, None)
        self.default_instruction = option(config, "instruction")
        self.state_dim = common.state_dim(observation_space)
        self.noise_method = str(option(config, "noise_method", opts.noise_method))
        if self.noise_method not in NOISE_METHODS:
            raise ConfigError(f"{KEY}.noise_method: {self.noise_method!r} is not one of {list(NOISE_METHODS)}."
                              f"{suggestion_text(self.noise_method, NOISE_METHODS)}")
        self.noise_level = float(option(config, "noise_level", opts.noise_level))
        if self.noise_level <= 0:
            raise ConfigError(f"{KEY}.noise_level: must be > 0 (log-probs need noise), got {self.noise_level}")
        if option(config, "model_path"):
            self._load(config)
        else:
            self._build_tiny(config, action_space)
        cfg = self.model.config
        self.num_chunks = int(option(config, "num_action_chunks", cfg.chunk_size))
        if not 1 <= self.num_chunks <= cfg.chunk_size:
            raise ConfigError(f"{KEY}.num_action_chunks: must be in 1..{cfg.chunk_size} (the model's chunk_size), "
                              f"got {self.num_chunks}")
        self.num_steps = int(option(config, "num_steps", cfg.num_inference_steps))
        if self.num_steps < 1:
            raise ConfigError(f"{KEY}.num_steps: must be >= 1, got {self.num_steps}")
        for what, have, limit in (("action_dim", self.action_dim, cfg.max_action_dim),
                                  ("state", self.state_dim, cfg.max_state_dim)):
            if have > limit:
                raise ConfigError(f"{KEY}.model_path: the env's {what} has {have} dims, the model at most {limit}")
        vision = cfg.vlm_config.vision_config
        self.image_size = int(vision.image_size)
        self.tokens_per_image = (vision.image_size // vision.patch_size) ** 2
        self.image_token_id = int(cfg.vlm_config.image_token_id)
        self.action_norm = Normalizer("mean_std", {"mean": self.stats["actions_mean"], "std": self.stats["actions_std"]},
                                      self.action_dim)
        self.state_norm = (Normalizer("mean_std", {"mean": self.stats["state_mean"], "std": self.stats["state_std"]},
                                      self.state_dim) if self.state_dim else None)
        self.model = self.model.to(common.torch_dtype(config))
        self._pi0().model.dit.get_input_embeddings().requires_grad_(False)  # the expert takes embeddings only
        self.model = common.maybe_lora(self.model, config)
        hidden = cfg.vlm_config.text_config.hidden_size
        self.value_head = (ValueHead(hidden, int(option(config, "value_hidden", opts.value_hidden)))
                           if option(config, "add_value_head", True) else None)
        self._prompt_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ construction

    def _build_tiny(self, config: Any, action_space: Any) -> None:
        pi0_config, pi0_model = _pi0_classes()
        t = self.options
        self.tokenizer = common.byte_tokenizer(extra_special=["<image>"])
        image_id = self.tokenizer.convert_tokens_to_ids("<image>")
        dim = max(int(t.max_dim), self.action_dim, self.state_dim)
        gemma = {"model_type": "gemma", "num_hidden_layers": t.num_layers, "num_attention_heads": t.num_heads,
                 "num_key_value_heads": 1, "head_dim": t.head_dim, "intermediate_size": t.intermediate_size}
        cfg = pi0_config(
            vlm_config={"model_type": "paligemma", "image_token_id": image_id, "projection_dim": t.hidden_size,
                        "text_config": {**gemma, "hidden_size": t.hidden_size, "vocab_size": len(self.tokenizer)},
                        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": t.vision_hidden,
                                          "intermediate_size": 2 * t.vision_hidden, "num_hidden_layers": t.vision_layers,
                                          "num_attention_heads": 2, "patch_size": t.patch_size,
                                          "image_size": t.image_size, "vision_use_head": False}},
            dit_config={**gemma, "hidden_size": t.expert_hidden_size},
            chunk_size=int(option(config, "num_action_chunks", 4)), max_state_dim=dim, max_action_dim=dim,
            num_inference_steps=int(option(config, "num_steps", 4)))
        cfg._attn_implementation = "sdpa"
        self.model = pi0_model(cfg)
        stats = common.default_norm_stats(action_space, self.action_dim)["action"]
        low, high = torch.tensor(stats["q01"]), torch.tensor(stats["q99"])
        self.stats = {"actions_mean": ((low + high) / 2).tolist(), "actions_std": ((high - low) / 2).tolist(),
                      "state_mean": [0.0] * self.state_dim, "state_std": [1.0] * self.state_dim}

    def _load(self, config: Any) -> None:
        _, pi0_model = _pi0_classes()
        path = common.checkpoint_dir(config, ["config.json", PROCESSOR_FILE], "pi0 (transformers PI0)")
        cfg = common.read_json(path / "config.json")
        if cfg.get("model_type") != "pi0":
            raise ConfigError(f"{KEY}.model_path: {path}/config.json has model_type {cfg.get('model_type')!r}, "
                              "not 'pi0'; convert openpi / lerobot checkpoints to transformers' PI0 format first")
        proc = common.read_json(path / PROCESSOR_FILE)
        missing = [k for k in ("state_mean", "state_std", "actions_mean", "actions_std") if proc.get(k) is None]
        if missing:
            raise ConfigError(f"{KEY}.model_path: {path}/{PROCESSOR_FILE} lacks {missing}: the dataset statistics "
                              "the checkpoint was trained with")
        self.stats = {k: proc[k] for k in ("state_mean", "state_std", "actions_mean", "actions_std")}
        try:
            self.model = pi0_model.from_pretrained(str(path), local_files_only=True, attn_implementation="sdpa")
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{KEY}.model_path: cannot load the PI0 weights in {path}: {exc}") from exc
        self.tokenizer = common.load_tokenizer(path)

    def save_pretrained(self, path: str | Path) -> None:
        """Write transformers' PI0 format: ``config.json``, safetensors, tokenizer, ``processor_config.json``."""
        path = Path(path)
        if hasattr(self.model, "merge_and_unload"):
            raise ConfigError(f"{KEY}.lora_rank: merge the LoRA adapters before save_pretrained")
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        cfg = self.model.config
        (path / PROCESSOR_FILE).write_text(json.dumps(
            {"processor_class": "PI0Processor", "max_state_dim": cfg.max_state_dim, "chunk_size": cfg.chunk_size,
             **self.stats}, indent=2))

    # ------------------------------------------------------------------ inputs

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _pi0(self) -> nn.Module:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def prompt_ids(self, instruction: str) -> list[int]:
        """PI0's prompt: the image tokens of every camera, BOS, the instruction, a newline."""
        ids = self._prompt_cache.get(instruction)
        if ids is None:
            text = list(self.tokenizer(f"{instruction}\n", add_special_tokens=False)["input_ids"])
            bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
            ids = [self.image_token_id] * (self.tokens_per_image * len(self.cameras)) + bos + text
            self._prompt_cache[instruction] = ids
        return ids

    def inputs(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The tensors PI0 takes: ``input_ids``, ``attention_mask`` (right-padded), ``pixel_values``
        ``(N, cameras, 3, S, S)``, ``pixel_attention_mask``, ``state`` ``(N, max_state_dim)``."""
        images = obs["images"]
        n = len(next(iter(images.values())))
        device, dtype, cfg = self.device, self.dtype, self._pi0().config
        pixels = torch.stack([common.preprocess_images(images[c], self.image_size, HALF_MEAN, HALF_STD, device, dtype)
                              for c in self.cameras], dim=1)
        rows = [self.prompt_ids(t) for t in common.instructions(obs, n, self.default_instruction)]
        length = max(len(r) for r in rows)
        ids = torch.zeros(n, length, dtype=torch.long, device=device)
        mask = torch.zeros(n, length, dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, device=device)
            mask[i, :len(r)] = 1
        state = torch.zeros(n, cfg.max_state_dim, device=device)
        if self.state_norm is not None:
            state[:, :self.state_dim] = self.state_norm.normalize(common.to_tensor(obs["state"], torch.float32, device))
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels,
                "pixel_attention_mask": torch.ones(n, len(self.cameras), dtype=torch.bool, device=device),
                "state": state.to(dtype)}

    # ------------------------------------------------------------------ the chain

    def _prefix(self, x: Mapping[str, torch.Tensor]) -> tuple[Any, torch.Tensor | None]:
        """Run the VLM over the prompt once: its KV cache and the value (when there is a head)."""
        core = self._pi0().model
        embeds = core.embed_prefix(x["input_ids"], x["pixel_values"], x["pixel_attention_mask"])
        mask = x["attention_mask"]
        out = core.vlm(inputs_embeds=embeds, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                       token_type_ids=torch.zeros_like(mask), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        values = None
        if self.value_head is not None:
            hidden = out.last_hidden_state.float()
            m = mask[..., None].float()
            values = self.value_head((hidden * m).sum(1) / m.sum(1))
        return cache, values

    def _velocity(self, x: Mapping[str, torch.Tensor], cache: Any, sample: torch.Tensor, t: float) -> torch.Tensor:
        prefix_len = cache.get_seq_length()
        n = sample.shape[0]
        time = torch.full((n,), t, dtype=torch.float32, device=sample.device)
        out = self._pi0()(state=x["state"], noise=sample.to(self.dtype), timestep=time, attention_mask=x["attention_mask"],
                          pixel_attention_mask=x["pixel_attention_mask"], cache=cache)
        cache.crop(prefix_len - cache.get_seq_length())  # drop the expert's tokens, keep the prompt
        return out.logits.float()

    def _step(self, sample: torch.Tensor, v: torch.Tensor, t: float, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of ``x_{t+dt}`` given ``x_t`` (see the module docstring)."""
        if self.noise_method == "flow_noise":
            return sample + dt * v, torch.full_like(sample, self.noise_level)
        one_minus = 1.0 - (t if t < 1.0 else t + dt)
        sigma = self.noise_level * math.sqrt(t / one_minus)
        mean = sample + dt * (v + sigma**2 / (2 * t) * (sample + (1 - t) * v))
        return mean, torch.full_like(sample, sigma * math.sqrt(-dt))

    def _times(self) -> list[float]:
        return [1.0 - s / self.num_steps for s in range(self.num_steps)]

    @torch.no_grad()
    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions ``(N, K, D)``, the chain's log-probs ``(N, K)``, values ``(N,)``; no gradient."""
        x = self.inputs(obs)
        cache, values = self._prefix(x)
        cfg = self._pi0().config
        n, k, d = x["state"].shape[0], self.num_chunks, self.action_dim
        dt = -1.0 / self.num_steps
        shape = (n, cfg.chunk_size, cfg.max_action_dim)  # deterministic: the ODE from the noise's mean
        sample = torch.zeros(shape, device=self.device) if deterministic else torch.randn(shape, device=self.device)
        chain, log_probs = [sample], torch.zeros(n, k, device=self.device)
        for t in self._times():
            v = self._velocity(x, cache, sample, t)
            mean, std = self._step(sample, v, t, dt)
            nxt = mean.clone()  # noise only where actions are used: the first K steps, the env's D dims
            if not deterministic:
                nxt[:, :k, :d] = mean[:, :k, :d] + std[:, :k, :d] * torch.randn_like(mean[:, :k, :d])
            log_probs += common.gaussian_log_prob(nxt[:, :k, :d], mean[:, :k, :d], std[:, :k, :d]).sum(-1)
            chain.append(nxt)
            sample = nxt
        actions = self.action_norm.unnormalize(sample[:, :k, :d])
        return ActionSample(actions=actions, log_probs=log_probs, values=values,
                            extras={"chain": torch.stack(chain, dim=1)})

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of a sampled chain (``extras["chain"]``), with gradient.
        ``entropy`` is that of the per-step Gaussians (summed over steps and dims; constant in the weights)."""
        chain = (extras or {}).get("chain")
        if chain is None:
            raise ValueError("pi0's evaluate needs extras['chain'] (the denoising chain from sample): the actions "
                             "alone do not determine the log-prob of a flow policy")
        chain = common.to_tensor(chain, torch.float32, self.device)
        x = self.inputs(obs)
        cache, values = self._prefix(x)
        k, d, dt = self.num_chunks, self.action_dim, -1.0 / self.num_steps
        log_probs = torch.zeros(chain.shape[0], self.num_chunks, device=self.device)
        entropy = torch.zeros_like(log_probs)
        for s, t in enumerate(self._times()):
            v = self._velocity(x, cache, chain[:, s], t)
            mean, std = self._step(chain[:, s], v, t, dt)
            log_probs = log_probs + common.gaussian_log_prob(chain[:, s + 1, :k, :d], mean[:, :k, :d],
                                                             std[:, :k, :d]).sum(-1)
            entropy = entropy + (0.5 * math.log(2 * math.pi * math.e) + torch.log(std[:, :k, :d])).sum(-1)
        return {"log_probs": log_probs, "entropy": entropy, "values": values}

    def values(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Value estimates ``(N,)``."""
        if self.value_head is None:
            raise ConfigError(f"{KEY}.add_value_head: the policy has no value head; set it to true")
        return self._prefix(self.inputs(obs))[1]
