"""The ``openvla`` and ``openvla_oft`` policies (kind ``model``): a Prismatic VLA with discrete action tokens.

Both read the ``actor.model`` section (keys rlinf's schema has no place for live in ``actor.model.config``,
with the tiny model's sizes; a plain mapping may also hold them at the top level):

- ``model_path``: a local checkpoint in OpenVLA's published format (see :mod:`.prismatic`); without
  it a random model at ``config.architecture``: ``tiny`` (default; a byte-level tokenizer), sized by
  ``config`` (``hidden_size``, ``num_layers``, ``num_heads``, ``intermediate_size``, ``vision`` = ``siglip``
  or ``dinosiglip``, ``vision_hidden``, ``vision_layers``, ``image_size``, ``patch_size``), or ``openvla_7b``
  (the published 7B architecture, :func:`.prismatic.openvla_7b_config`, for throughput and memory tests:
  prompts of Llama-2's length, not its tokens; build it where it runs, e.g. under ``torch.device("cuda")``:
  the weights are made there, in ``precision``);
- ``unnorm_key``: which dataset's ``norm_stats`` un-normalise actions (required when there are several);
- ``num_action_chunks`` (K), ``action_dim`` (from the env), ``num_action_bins`` (random models only, 256;
  a checkpoint's ``n_action_bins`` otherwise), ``add_value_head``, ``is_lora`` / ``lora_rank`` (peft
  LoRA on the language model), ``precision`` (``fp32`` / ``bf16``);
- in ``config`` (its keys: :mod:`.options`, checked by ``rlinf config validate``): ``temperature`` (1.0),
  ``cameras`` (default: the env's first camera for ``openvla``, all for ``openvla_oft``), ``use_proprio``
  (``openvla_oft``: feed ``state`` through the proprio projector; default: when the checkpoint has one),
  ``value_hidden`` (256), ``lora_alpha`` (2 x rank), ``lora_target_modules`` (every linear layer but the LM
  head), ``instruction`` (for envs that give none), ``architecture`` and the tiny sizes (above).

Actions: the language model's logits over the last ``num_action_bins - 1`` vocabulary ids (OpenVLA's action
tokens, one per bin centre) at ``temperature``, one categorical per action dimension; the sampled bin is decoded to its
centre in ``[-1, 1]`` and un-normalised with the q01/q99 statistics. ``openvla`` decodes the ``K * D``
tokens one after another (causal, KV cache); ``openvla_oft`` decodes them all in one forward pass
from empty (zero) placeholder embeddings that attend to each other bidirectionally. Shapes:
``actions (N, K, D)``, ``log_probs`` / ``entropy (N, K)`` (summed over dims), ``values (N,)`` (a head
on the last prompt position's hidden state), ``extras["action_tokens"] (N, K, D)`` (bin indices).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import ActionSample
from torch import nn
from torch.distributions import Categorical

from rlinf_envs_embodied.vla import common
from rlinf_envs_embodied.vla.common import KEY, ActionBins, Normalizer, ValueHead, option
from rlinf_envs_embodied.vla.options import OpenVLAOFTOptions, OpenVLAOptions
from rlinf_envs_embodied.vla.prismatic import (
    ARCHITECTURES,
    PrismaticVLA,
    action_vocab_end,
    build_from_config_json,
    config_json,
    save_prismatic,
    timm_to_hf,
    tower_specs,
    vision_config,
)

#: The prompt OpenVLA (and OFT) were trained with.
OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
#: Llama-2's "▁" token, which OpenVLA appends to a prompt that does not already end with it.
LLAMA_EMPTY_TOKEN = 29871

#: The linear layers LoRA adapts (every one of the towers, projector and LLM but the LM head).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "gate_proj", "up_proj", "down_proj",
                "fc1", "fc2", "fc3"]


def _cache_kw() -> str:
    from transformers import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


class PrismaticPolicy(nn.Module):
    """Shared base of :class:`OpenVLAPolicy` and :class:`OpenVLAOFTPolicy` (see the module docstring)."""

    default_chunks = 1
    all_cameras = False
    #: The keys of ``actor.model.config`` (:mod:`.options`; the component's declared ``options``).
    options_class: type = OpenVLAOptions

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any):
        super().__init__()
        self.options = opts = common.vla_options(config, self.options_class)
        self.action_dim = common.action_dim_of(config, action_space)
        self.num_chunks = int(option(config, "num_action_chunks", self.default_chunks))
        if self.num_chunks < 1:
            raise ConfigError(f"{KEY}.num_action_chunks: must be >= 1, got {self.num_chunks}")
        self.cameras = common.camera_names(config, observation_space, None if self.all_cameras else 1)
        self.default_instruction = option(config, "instruction")
        self.temperature = float(option(config, "temperature", opts.temperature))
        if self.temperature <= 0:
            raise ConfigError(f"{KEY}.temperature: must be > 0 (use deterministic sampling for greedy), "
                              f"got {self.temperature}")
        self.state_dim = common.state_dim(observation_space)
        self.proprio_projector: nn.Module | None = None
        dtype = common.torch_dtype(config)
        with common.default_dtype(dtype):  # weights made in the target dtype (under torch.device(...): there)
            if option(config, "model_path"):
                self._load(config, action_space)
            elif opts.architecture == "tiny":
                self._build_tiny(config, action_space)
            else:
                self._build_published(config, action_space, opts.architecture)
        self.vla = self.vla.to(dtype)
        if self.proprio_projector is not None:
            self.proprio_projector.to(dtype)
        self.vla = common.maybe_lora(self.vla, config, LORA_TARGETS)
        for tower in self.vla.vision_backbone.towers():
            tower.freeze_unused()
        self.value_head = (ValueHead(self.vla.llm_dim, int(option(config, "value_hidden", opts.value_hidden)))
                           if option(config, "add_value_head", True) else None)
        self._cache_kw = _cache_kw()
        self._prompt_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ construction

    def _build_tiny(self, config: Any, action_space: Any) -> None:
        from transformers import LlamaConfig

        t = self.options
        n_bins = int(option(config, "num_action_bins", 256))
        self.tokenizer = common.byte_tokenizer()
        vocab = len(self.tokenizer) + n_bins - 1  # action ids after the text ids
        towers = ["dinov2_with_registers", "siglip_vision_model"] if t.vision == "dinosiglip" else ["siglip_vision_model"]
        self.tower_specs = []
        for kind in towers:
            spec = {"model_type": kind, "hidden_size": t.vision_hidden, "num_hidden_layers": t.vision_layers,
                    "num_attention_heads": 2, "patch_size": t.patch_size}
            spec.update({"num_register_tokens": 4, "mlp_ratio": 2} if kind == "dinov2_with_registers"
                        else {"intermediate_size": 2 * t.vision_hidden})
            self.tower_specs.append(spec)
        text = LlamaConfig(vocab_size=vocab, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                           num_hidden_layers=t.num_layers, num_attention_heads=t.num_heads,
                           num_key_value_heads=t.num_heads, max_position_embeddings=512,
                           pad_token_id=self.tokenizer.pad_token_id, bos_token_id=self.tokenizer.bos_token_id,
                           eos_token_id=self.tokenizer.eos_token_id)
        text._attn_implementation = "sdpa"
        self.vla = PrismaticVLA([vision_config(s, t.image_size) for s in self.tower_specs], text)
        self.tower_kinds = towers
        self._random_heads(config, action_space, n_bins, vocab)

    def _build_published(self, config: Any, action_space: Any, name: str) -> None:
        """Random weights at a published architecture (:data:`.prismatic.ARCHITECTURES`). No checkpoint, so no
        Llama-2 tokenizer: :func:`.common.word_tokenizer` gives prompts of about its length (not its ids)."""
        cfg = ARCHITECTURES[name]()
        self.vla, self.tower_kinds = build_from_config_json(cfg)
        self.tower_specs = tower_specs(cfg)
        self.tokenizer = common.word_tokenizer()
        n_bins = int(option(config, "num_action_bins", cfg["n_action_bins"]))
        self._random_heads(config, action_space, n_bins, action_vocab_end(cfg, self.vla.language_model.config.vocab_size))

    def _random_heads(self, config: Any, action_space: Any, n_bins: int, vocab_end: int) -> None:
        """What a randomly initialised model adds to its VLA: statistics for the env's action space, the action
        bins, the proprio projector (when used)."""
        self.norm_stats = {"rlinf_tiny": common.default_norm_stats(action_space, self.action_dim)}
        self.unnorm_key = "rlinf_tiny"
        self.bins = ActionBins(n_bins, vocab_end)
        if self.uses_proprio(config, has_checkpoint_projector=True):
            self.proprio_projector = ProprioProjector(self.state_dim, self.vla.llm_dim)
        self._set_normalizers()

    def _load(self, config: Any, action_space: Any) -> None:
        path = common.checkpoint_dir(config, ["config.json"], "OpenVLA")
        cfg = common.read_json(path / "config.json")
        if "norm_stats" not in cfg and (path / "dataset_statistics.json").exists():
            cfg["norm_stats"] = common.read_json(path / "dataset_statistics.json")
        if not (cfg.get("timm_model_ids") or cfg.get("rlinf_vision_configs")) or "text_config" not in cfg:
            raise ConfigError(f"{KEY}.model_path: {path}/config.json is not an OpenVLA (Prismatic) config: it lacks "
                              "timm_model_ids / text_config")
        self.vla, self.tower_kinds = build_from_config_json(cfg)
        self.tower_specs = tower_specs(cfg)  # written back as rlinf_vision_configs by save_pretrained
        state = timm_to_hf(common.load_safetensors(path), self.tower_kinds)
        common.load_state(self.vla, state, f"{path}/*.safetensors", allow_missing=(
            "vision_backbone.featurizer.model.embeddings.mask_token",
            "vision_backbone.fused_featurizer.model.embeddings.mask_token"))
        self.tokenizer = common.load_tokenizer(path)
        vocab_end = action_vocab_end(cfg, self.vla.language_model.config.vocab_size)
        self.bins = ActionBins(int(cfg.get("n_action_bins", 256)), vocab_end)
        self.norm_stats = cfg["norm_stats"]
        self.unnorm_key, _ = common.pick_stats(self.norm_stats, option(config, "unnorm_key"))
        files = sorted(path.glob("proprio_projector--*_checkpoint.pt"))
        if self.uses_proprio(config, has_checkpoint_projector=bool(files)):
            if not files:
                raise ConfigError(f"{KEY}.use_proprio: {path} has no proprio_projector--*_checkpoint.pt; set use_proprio: false")
            weights = torch.load(files[-1], map_location="cpu", weights_only=True)
            weights = {k.removeprefix("module."): v for k, v in weights.items()}
            self.proprio_projector = ProprioProjector(weights["fc1.weight"].shape[1], self.vla.llm_dim)
            common.load_state(self.proprio_projector, weights, str(files[-1]))
        self._set_normalizers()

    def uses_proprio(self, config: Any, has_checkpoint_projector: bool) -> bool:
        return False

    def _set_normalizers(self) -> None:
        stats = self.norm_stats[self.unnorm_key]
        self.action_norm = Normalizer("bounds_q99", stats["action"], self.action_dim)
        self.proprio_norm = None
        if self.proprio_projector is not None:
            dim = self.proprio_projector.fc1.in_features
            if self.state_dim != dim:
                raise ConfigError(f"{KEY}.use_proprio: the proprio projector takes {dim} values, the env's state has "
                                  f"{self.state_dim}")
            if "proprio" in stats:
                self.proprio_norm = Normalizer("bounds_q99", stats["proprio"], dim)

    def save_pretrained(self, path: str | Path) -> None:
        """Write the model in OpenVLA's published format (config.json, timm-named safetensors, tokenizer)."""
        path = Path(path)
        if hasattr(self.vla, "merge_and_unload"):
            raise ConfigError(f"{KEY}.lora_rank: merge the LoRA adapters before save_pretrained")
        extra = {"rlinf_action_vocab_end": self.bins.vocab_end}
        cfg = config_json(self.vla, self.tower_specs, self.norm_stats, self.bins.n_bins, extra)
        save_prismatic(self.vla, self.tower_kinds, path, cfg)
        self.tokenizer.save_pretrained(str(path))
        if self.proprio_projector is not None:
            torch.save({f"module.{k}": v for k, v in self.proprio_projector.state_dict().items()},
                       path / "proprio_projector--0_checkpoint.pt")

    # ------------------------------------------------------------------ inputs

    @property
    def device(self) -> torch.device:
        return next(self.vla.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vla.parameters()).dtype

    def prompt_ids(self, instruction: str) -> list[int]:
        """Token ids of OpenVLA's prompt for ``instruction`` (BOS first, Llama's "▁" last as OpenVLA does)."""
        ids = self._prompt_cache.get(instruction)
        if ids is None:
            text = OPENVLA_PROMPT.format(instruction=instruction.lower())
            ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
            bos = self.tokenizer.bos_token_id
            if bos is not None and (not ids or ids[0] != bos):
                ids = [bos, *ids]
            if (len(self.tokenizer) > LLAMA_EMPTY_TOKEN
                    and self.tokenizer.convert_ids_to_tokens(LLAMA_EMPTY_TOKEN) == "\u2581" and ids[-1] != LLAMA_EMPTY_TOKEN):
                ids.append(LLAMA_EMPTY_TOKEN)
            self._prompt_cache[instruction] = ids
        return ids

    def _lm(self) -> nn.Module:
        return self.vla.language_model

    def prefix(self, obs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt embeddings ``(N, T, H)`` (BOS, image patches [, proprio], text) and mask ``(N, T)``."""
        images = obs["images"]
        n = len(next(iter(images.values())))
        device, dtype = self.device, self.dtype
        patches = []
        for cam in self.cameras:
            pixels = [common.preprocess_images(images[cam], t.image_size, t.mean, t.std, device, dtype)
                      for t in self.vla.vision_backbone.towers()]
            patches.append(self.vla.patch_embeddings(pixels))
        if self.proprio_projector is not None:
            state = common.to_tensor(obs["state"], torch.float32, device)
            if self.proprio_norm is not None:
                state = self.proprio_norm.normalize(state)
            patches.append(self.proprio_projector(state.to(dtype))[:, None])
        visual = torch.cat(patches, dim=1)
        texts = common.instructions(obs, n, self.default_instruction)
        embed = self._lm().get_input_embeddings()
        rows = []
        for i, text in enumerate(texts):
            tok = embed(torch.tensor(self.prompt_ids(text), device=device))
            rows.append(torch.cat([tok[:1], visual[i], tok[1:]], dim=0))
        length = max(r.shape[0] for r in rows)
        out = visual.new_zeros(n, length, visual.shape[-1])
        mask = torch.zeros(n, length, dtype=torch.long, device=device)
        for i, r in enumerate(rows):
            out[i, length - r.shape[0]:] = r
            mask[i, length - r.shape[0]:] = 1
        return out, mask

    def _action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the action slice of the vocabulary (at ``temperature``), float32."""
        head = self._lm().get_output_embeddings()
        weight = head.weight[self.bins.first:self.bins.vocab_end]
        bias = head.bias[self.bins.first:self.bins.vocab_end] if getattr(head, "bias", None) is not None else None
        return (nn.functional.linear(hidden, weight, bias).float()) / self.temperature

    def _decode(self, idx: torch.Tensor) -> torch.Tensor:
        return self.action_norm.unnormalize(self.bins.index_to_action(idx)).float()

    def values(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Value estimates ``(N,)`` (e.g. to bootstrap a truncated episode)."""
        if self.value_head is None:
            raise ConfigError(f"{KEY}.add_value_head: the policy has no value head; set it to true")
        embeds, mask = self.prefix(obs)
        h = self._run(embeds, mask).last_hidden_state[:, -1]
        return self.value_head(h)

    def _run(self, embeds: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> Any:
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return self._lm().model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, **kwargs)

    def _actions_to_index(self, actions: Any, extras: Mapping[str, Any] | None) -> torch.Tensor:
        given = (extras or {}).get("action_tokens")
        if given is not None:
            return common.to_tensor(given, torch.long, self.device).view(-1, self.num_chunks, self.action_dim)
        acts = common.to_tensor(actions, torch.float32, self.device).view(-1, self.num_chunks, self.action_dim)
        return self.bins.action_to_index(self.action_norm.normalize(acts))


class OpenVLAPolicy(PrismaticPolicy):
    """OpenVLA: ``K * D`` action tokens decoded autoregressively (see the module docstring)."""

    @torch.no_grad()
    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions ``(N, K, D)`` with log-probs ``(N, K)`` and values ``(N,)``; no gradient."""
        embeds, mask = self.prefix(obs)
        n, steps = embeds.shape[0], self.num_chunks * self.action_dim
        out = self._run(embeds, mask, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        hidden = out.last_hidden_state[:, -1]
        values = self.value_head(hidden) if self.value_head is not None else None
        pos = (mask.cumsum(-1) - 1)[:, -1:]
        embed = self._lm().get_input_embeddings()
        idx_list, logp_list = [], []
        for step in range(steps):
            dist = Categorical(logits=self._action_logits(hidden))
            idx = dist.probs.argmax(-1) if deterministic else dist.sample()
            idx_list.append(idx)
            logp_list.append(dist.log_prob(idx))
            if step + 1 == steps:
                break
            mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
            pos = pos + 1
            out = self._lm().model(inputs_embeds=embed(self.bins.first + idx)[:, None], attention_mask=mask,
                                   position_ids=pos, use_cache=True, **{self._cache_kw: cache})
            cache = getattr(out, "cache", None) or out.past_key_values
            hidden = out.last_hidden_state[:, -1]
        idx = torch.stack(idx_list, 1).view(n, self.num_chunks, self.action_dim)
        log_probs = torch.stack(logp_list, 1).view(n, self.num_chunks, self.action_dim).sum(-1)
        return ActionSample(actions=self._decode(idx), log_probs=log_probs, values=values,
                            extras={"action_tokens": idx})

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of the given actions (teacher-forced), with gradient."""
        idx = self._actions_to_index(actions, extras)
        embeds, mask = self.prefix(obs)
        n, t, steps = embeds.shape[0], embeds.shape[1], self.num_chunks * self.action_dim
        tokens = self._lm().get_input_embeddings()(self.bins.first + idx.view(n, steps))
        full = torch.cat([embeds, tokens.to(embeds.dtype)], dim=1)
        hidden = self._run(full, torch.cat([mask, mask.new_ones(n, steps)], dim=1)).last_hidden_state
        dist = Categorical(logits=self._action_logits(hidden[:, t - 1:t - 1 + steps]))
        shape = (n, self.num_chunks, self.action_dim)
        log_probs = dist.log_prob(idx.view(n, steps)).view(shape).sum(-1)
        entropy = dist.entropy().view(shape).sum(-1)
        values = self.value_head(hidden[:, t - 1]) if self.value_head is not None else None
        return {"log_probs": log_probs, "entropy": entropy, "values": values}


class ProprioProjector(nn.Module):
    """OFT's proprio projector: ``fc1 -> GELU -> fc2`` from the robot state to one LLM token."""

    def __init__(self, proprio_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class OpenVLAOFTPolicy(PrismaticPolicy):
    """OpenVLA-OFT: the whole chunk decoded in parallel from placeholder tokens (see the module docstring)."""

    default_chunks = 8
    all_cameras = True
    options_class = OpenVLAOFTOptions

    def uses_proprio(self, config: Any, has_checkpoint_projector: bool) -> bool:
        wanted = option(config, "use_proprio")
        if wanted is None:
            return has_checkpoint_projector and self.state_dim > 0
        if wanted and self.state_dim == 0:
            raise ConfigError(f"{KEY}.use_proprio: the env gives no state; set use_proprio: false")
        return bool(wanted)

    def _forward(self, obs: Mapping[str, Any]) -> tuple[Categorical, torch.Tensor | None]:
        embeds, mask = self.prefix(obs)
        n, t, steps = embeds.shape[0], embeds.shape[1], self.num_chunks * self.action_dim
        full = torch.cat([embeds, embeds.new_zeros(n, steps, embeds.shape[-1])], dim=1)
        keys = torch.cat([mask, mask.new_ones(n, steps)], dim=1).bool()
        length = t + steps
        q = torch.arange(length, device=embeds.device)
        allowed = (q[None, :] <= q[:, None]) | ((q[:, None] >= t) & (q[None, :] >= t))
        allowed = allowed[None] & keys[:, None, :]
        bias = torch.zeros(allowed.shape, dtype=embeds.dtype, device=embeds.device)
        bias = bias.masked_fill(~allowed, torch.finfo(embeds.dtype).min)[:, None]
        pos = (keys.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self._lm().model(inputs_embeds=full, attention_mask=bias, position_ids=pos).last_hidden_state
        values = self.value_head(hidden[:, t - 1]) if self.value_head is not None else None
        return Categorical(logits=self._action_logits(hidden[:, t:])), values

    @torch.no_grad()
    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions ``(N, K, D)`` with log-probs ``(N, K)`` and values ``(N,)``, one forward pass; no gradient."""
        dist, values = self._forward(obs)
        idx = dist.probs.argmax(-1) if deterministic else dist.sample()
        n = idx.shape[0]
        log_probs = dist.log_prob(idx).view(n, self.num_chunks, self.action_dim).sum(-1)
        idx = idx.view(n, self.num_chunks, self.action_dim)
        return ActionSample(actions=self._decode(idx), log_probs=log_probs, values=values,
                            extras={"action_tokens": idx})

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of the given actions, with gradient."""
        idx = self._actions_to_index(actions, extras)
        dist, values = self._forward(obs)
        n = idx.shape[0]
        shape = (n, self.num_chunks, self.action_dim)
        log_probs = dist.log_prob(idx.view(n, -1)).view(shape).sum(-1)
        return {"log_probs": log_probs, "entropy": dist.entropy().view(shape).sum(-1), "values": values}

