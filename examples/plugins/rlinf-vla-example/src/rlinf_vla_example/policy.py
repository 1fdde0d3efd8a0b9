"""``tiny_vla``: a small vision-language-action policy for rlinf's embodied flow.

Architecture (our own; sizes in :class:`~rlinf_vla_example.options.TinyVLAOptions`):

- **language**: the instruction, tokenized one character at a time (:class:`CharTokenizer`, vocabulary
  = the env's ``instruction`` charset), embedded with learned positions and run through ``text_layers``
  pre-norm self-attention blocks; the mean over its tokens is the instruction vector ``t``;
- **vision**: one camera image, uint8 ``(N, H, W, 3)``, through stride-2 3x3 convolutions; after each,
  FiLM: ``relu(conv(x) * (1 + gamma(t)) + beta(t))``, so the instruction decides which features
  (e.g. which colour) the encoder passes on; the last map is pooled to ``pooled_size``^2 cells and flattened;
- **fusion**: ``[image features, t, state]`` feed two MLPs: the actor (the mean of a diagonal Gaussian
  over a chunk of ``K x D`` actions, with a learned state-independent ``log_std`` per action dim) and,
  with ``actor.model.add_value_head``, the critic (a value per observation).

Implements :class:`rlinf_core.interfaces.Policy`, constructed as ``TinyVLAPolicy(config, *,
observation_space, action_space)`` with the ``actor.model`` section: ``num_action_chunks`` (K, 1),
``add_value_head`` (false), ``log_std_init`` (0.0), and ``config`` (this model's own keys). Shapes: with
``K = 1`` actions ``(N, D)`` and log-probs / entropy ``(N,)``; with ``K > 1`` actions ``(N, K, D)`` and
log-probs / entropy ``(N, K)`` (summed over action dims); values ``(N,)``. Actions are not squashed:
the env clips them to its bounds, log-probs are those of the Gaussian.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import ActionSample
from torch import nn
from torch.distributions import Normal

from rlinf_vla_example.options import TinyVLAOptions, read_tiny_vla_options
from rlinf_vla_example.tokenizer import DEFAULT_CHARSET, PAD, CharTokenizer

KEY = "actor.model"


def _get(config: Any, key: str, default: Any = None) -> Any:
    """``config[key]`` of a DictConfig, a mapping or an object; ``default`` when absent or null."""
    value = config.get(key) if hasattr(config, "get") else getattr(config, key, None)
    return default if value is None else value


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention then a GELU MLP, both residual; padded keys are masked out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        n, length, dim = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        h = h + self.out(att.transpose(1, 2).reshape(n, length, dim))
        return h + self.mlp(self.norm2(h))


class InstructionEncoder(nn.Module):
    """Token ids ``(N, L)`` -> the instruction vector ``(N, text_dim)`` (mean over the non-pad tokens)."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ids != PAD
        h = self.embed(ids) + self.position[: ids.shape[1]]
        for block in self.blocks:
            h = block(h, keep)
        h = self.norm(h) * keep[..., None]
        return h.sum(1) / keep.sum(1, keepdim=True)


class FiLMImageEncoder(nn.Module):
    """uint8 images ``(N, H, W, 3)`` and a condition ``(N, C)`` -> features ``(N, channels[-1] * pooled**2)``."""

    def __init__(self, channels: list[int], cond_dim: int, pooled: int):
        super().__init__()
        ins = [3, *channels[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, stride=2, padding=1) for i, o in zip(ins, channels, strict=True))
        self.channels, self.pooled = list(channels), pooled
        self.film = nn.Linear(cond_dim, 2 * sum(channels))
        self.out_dim = channels[-1] * pooled**2

    def forward(self, pixels: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() / 255.0
        gammas, betas = self.film(cond).chunk(2, dim=-1)
        for conv, gamma, beta in zip(self.convs, gammas.split(self.channels, -1), betas.split(self.channels, -1),
                                     strict=True):
            x = F.relu(conv(x) * (1 + gamma)[..., None, None] + beta[..., None, None])
        return F.adaptive_avg_pool2d(x, self.pooled).flatten(1)


def _head(in_dim: int, hidden: int, out_dim: int, gain: float) -> nn.Sequential:
    """``Linear -> ReLU -> Linear -> ReLU -> Linear(out_dim)``, orthogonal init, the last layer scaled by ``gain``."""
    layers = [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)]
    for layer, g in zip(layers[::2], (math.sqrt(2), math.sqrt(2), gain), strict=True):
        nn.init.orthogonal_(layer.weight, g)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class TinyVLAPolicy(nn.Module):
    """See the module docstring."""

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any):
        super().__init__()
        opts: TinyVLAOptions = read_tiny_vla_options(config)
        self.num_chunks = int(_get(config, "num_action_chunks", 1))
        if self.num_chunks < 1:
            raise ConfigError(f"{KEY}.num_action_chunks: must be >= 1, got {self.num_chunks}")
        self.has_value_head = bool(_get(config, "add_value_head", False))
        if not (isinstance(action_space, spaces.Box) and len(action_space.shape) == 1):
            raise ConfigError(f"{KEY}.model_type: tiny_vla needs a flat continuous (Box) action space, the env has "
                              f"{action_space}")
        self.action_dim = int(action_space.shape[0])
        if not isinstance(observation_space, spaces.Dict):
            raise ConfigError(f"{KEY}.model_type: tiny_vla takes rlinf's observation dict space, got {observation_space}")
        self.camera = self._camera(observation_space, opts.camera)
        text_space = observation_space.spaces.get("instruction")
        charset = opts.charset or (text_space.character_set if isinstance(text_space, spaces.Text) else None)
        max_length = opts.max_text_length or (text_space.max_length if isinstance(text_space, spaces.Text) else 64)
        self.tokenizer = CharTokenizer(charset or DEFAULT_CHARSET, max_length)
        self.default_instruction = opts.instruction
        state = observation_space.spaces.get("state")
        self.state_dim = int(state.shape[0]) if opts.use_state and state is not None else 0

        self.text = InstructionEncoder(self.tokenizer.vocab_size, max_length + 1, opts.text_dim, opts.text_layers,
                                       opts.text_heads)
        self.vision = FiLMImageEncoder(list(opts.conv_channels), opts.text_dim, opts.pooled_size)
        fused = self.vision.out_dim + opts.text_dim + self.state_dim
        self.actor = _head(fused, opts.trunk_dim, self.num_chunks * self.action_dim, gain=0.01)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), float(_get(config, "log_std_init", 0.0))))
        self.critic = _head(fused, opts.trunk_dim, 1, gain=1.0) if self.has_value_head else None
        self._token_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ Policy interface

    @torch.no_grad()
    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions for a batch of observations with their log-probs (and values); no gradient."""
        fused = self._fuse(obs)
        mean, std = self._gaussian(fused)
        actions = mean if deterministic else mean + std * torch.randn_like(mean)
        log_probs = Normal(mean, std).log_prob(actions).sum(-1)
        values = self.critic(fused).squeeze(-1) if self.critic is not None else None
        return ActionSample(actions=self._squeeze(actions), log_probs=self._squeeze(log_probs), values=values)

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of the given actions, with gradient."""
        fused = self._fuse(obs)
        mean, std = self._gaussian(fused)
        dist = Normal(mean, std)
        acts = self._chunked(torch.as_tensor(np.asarray(actions) if not isinstance(actions, torch.Tensor) else actions,
                                             dtype=torch.float32, device=mean.device))
        values = self.critic(fused).squeeze(-1) if self.critic is not None else None
        return {"log_probs": self._squeeze(dist.log_prob(acts).sum(-1)),
                "entropy": self._squeeze(dist.entropy().sum(-1)), "values": values}

    def values(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Value estimates ``(N,)`` (the flow bootstraps truncated episodes with them)."""
        if self.critic is None:
            raise ConfigError(f"{KEY}.add_value_head: tiny_vla was built without a value head; set it to true")
        return self.critic(self._fuse(obs)).squeeze(-1)

    # ------------------------------------------------------------------ pieces

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids ``(N, L)`` of the instructions (cached per distinct string)."""
        rows = []
        for t in texts:
            if t not in self._token_cache:
                self._token_cache[t] = self.tokenizer.encode(t)
            rows.append(self._token_cache[t])
        width = max(len(r) for r in rows)
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long, device=self.log_std.device)

    def _fuse(self, obs: Mapping[str, Any]) -> torch.Tensor:
        device = self.log_std.device
        images = obs.get("images") or {}
        if self.camera not in images:
            raise ValueError(f"tiny_vla: obs['images'] has no camera {self.camera!r} (it has {sorted(images)}); "
                             f"set {KEY}.config.camera")
        pixels = torch.as_tensor(np.asarray(images[self.camera]) if not isinstance(images[self.camera], torch.Tensor)
                                 else images[self.camera], device=device)
        n = pixels.shape[0]
        text = self.text(self.tokenize(self._instructions(obs, n)))
        parts = [self.vision(pixels, text), text]
        if self.state_dim:
            state = obs["state"]
            parts.append(torch.as_tensor(np.asarray(state) if not isinstance(state, torch.Tensor) else state,
                                         dtype=torch.float32, device=device))
        return torch.cat(parts, dim=-1)

    def _instructions(self, obs: Mapping[str, Any], n: int) -> list[str]:
        text = obs.get("instruction", self.default_instruction)
        if text is None:
            raise ConfigError(f"{KEY}.config.instruction: the env gives no obs['instruction']; set a fixed instruction "
                              "there or use an env with instructions (e.g. rlinf/InstructionTargets-v0)")
        rows = [text] * n if isinstance(text, str) else [str(t) for t in text]
        if len(rows) != n:
            raise ValueError(f"tiny_vla: obs['instruction'] has {len(rows)} entries for {n} observations")
        return rows

    def _gaussian(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.actor(fused).view(-1, self.num_chunks, self.action_dim)
        return mean, self.log_std.exp().expand_as(mean)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.num_chunks == 1 else x

    def _chunked(self, actions: torch.Tensor) -> torch.Tensor:
        if self.num_chunks == 1 and actions.dim() == 2:
            actions = actions.unsqueeze(1)
        if tuple(actions.shape[1:]) != (self.num_chunks, self.action_dim):
            raise ValueError(f"tiny_vla: actions of shape {tuple(actions.shape)} do not match {KEY}.num_action_chunks="
                             f"{self.num_chunks} x action_dim={self.action_dim}")
        return actions

    def _camera(self, observation_space: spaces.Dict, wanted: str | None) -> str:
        images = observation_space.spaces.get("images")
        have = sorted(images.spaces) if isinstance(images, spaces.Dict) else []
        if not have:
            raise ConfigError(f"{KEY}.model_type: tiny_vla needs camera images and the env gives none (observation keys: "
                              f"{sorted(observation_space.spaces)}); enable images in env.train.init_params")
        if wanted is None:
            if len(have) > 1:
                raise ConfigError(f"{KEY}.config.camera: the env has several cameras {have}; choose one")
            return have[0]
        if wanted not in have:
            raise ConfigError(f"{KEY}.config.camera: {wanted!r} is not a camera of the env; it has {have}")
        return wanted
