"""Actor-critic base of the small policies (``mlp``, ``cnn``): action distributions, chunking, values.

A subclass builds the networks that turn an observation dict into features (:meth:`ActorCriticPolicy._features`);
this base turns features into an action distribution over a chunk of ``K`` steps
(``actor.model.num_action_chunks``) and implements :class:`rlinf_core.interfaces.Policy`.

Action distributions, chosen from the env's action space:

- ``Box`` (continuous): a diagonal Gaussian with a state-independent, learned ``log_std``
  (``actor.model.log_std_init``). It is **not** squashed: sampled actions are unbounded and the
  env clips them to the bounds (``init_params.clip_actions``), while log-probs and entropy are those
  of the Gaussian itself. This keeps log-probs exact and the entropy in closed form, avoids the
  ``atanh`` of actions at the bounds that a tanh-squashed Gaussian needs to re-score them, and is
  what stable-baselines3's and CleanRL's PPO do.
- ``Box`` with ``actor.model.num_action_bins: B``: each dim is discretized into ``B`` evenly spaced
  values from ``low`` to ``high`` (a categorical per dim, as VLA action tokens are). The bin indices
  ride along in ``ActionSample.extras["action_bins"]``.
- ``Discrete`` / ``MultiDiscrete``: a categorical per dim.

Shapes: with ``K = 1`` actions are ``(N, D)`` (``(N,)`` for ``Discrete``) and log-probs / entropy
``(N,)``; with ``K > 1`` actions are ``(N, K, D)`` (``(N, K)``) and log-probs / entropy ``(N, K)``,
summed over action dims. Values are ``(N,)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import ActionSample
from torch import nn
from torch.distributions import Categorical, Normal

from rlinf_envs_embodied.options import cfg_get


def init_layer(layer: nn.Module, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights, constant bias (the usual PPO initialisation)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_dim: int, num_layers: int, activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """``num_layers`` hidden layers of ``hidden_dim`` units (an empty Sequential when 0)."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [init_layer(nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim)), activation()]
    return nn.Sequential(*layers)


class ActorCriticPolicy(nn.Module):
    """Base of the small policies. Constructed as ``cls(config, *, observation_space, action_space)``.

    ``config`` is the ``actor.model`` section (a DictConfig or a mapping): ``hidden_dim`` (256),
    ``num_layers`` (2), ``num_action_chunks`` (1), ``add_value_head`` (false), ``num_action_bins``,
    ``log_std_init`` (0.0), and ``obs_dim`` / ``action_dim``, which are checked against the spaces
    when given and stand in for them when a space is ``None``.
    """

    #: The config key of the model section, for messages.
    key = "actor.model"

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any):
        super().__init__()
        self.hidden_dim = int(cfg_get(config, "hidden_dim", 256))
        self.num_layers = int(cfg_get(config, "num_layers", 2))
        self.num_chunks = int(cfg_get(config, "num_action_chunks", 1))
        self.has_value_head = bool(cfg_get(config, "add_value_head", False))
        bins = cfg_get(config, "num_action_bins")
        for name, value, low in (("hidden_dim", self.hidden_dim, 1), ("num_layers", self.num_layers, 0),
                                 ("num_action_chunks", self.num_chunks, 1), ("num_action_bins", bins or 2, 2)):
            if value < low:
                raise ConfigError(f"{self.key}.{name}: must be >= {low}, got {value}")
        self.observation_space = self._obs_space(observation_space, cfg_get(config, "obs_dim"))
        self.action_space = self._act_space(action_space, cfg_get(config, "action_dim"))

        space = self.action_space
        self._discrete = isinstance(space, spaces.Discrete)
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1:
                raise ConfigError(f"{self.key}.model_type: {type(self).__name__} needs a flat action space, the env "
                                  f"has shape {space.shape}")
            self.action_dim = space.shape[0]
            if bins is not None:
                self._bins = [int(bins)] * self.action_dim
                self.register_buffer("_low", torch.as_tensor(space.low, dtype=torch.float32), persistent=False)
                self.register_buffer("_high", torch.as_tensor(space.high, dtype=torch.float32), persistent=False)
                if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                    raise ConfigError(f"{self.key}.num_action_bins: the action space {space} has infinite bounds; "
                                      "bins need finite ones (unset num_action_bins for a Gaussian)")
            else:
                self._bins = None
        elif isinstance(space, spaces.Discrete):
            self.action_dim, self._bins, self._start = 1, [int(space.n)], int(space.start)
        elif isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self.action_dim, self._bins = len(space.nvec), [int(n) for n in space.nvec]
            self.register_buffer("_mstart", torch.as_tensor(space.start, dtype=torch.long), persistent=False)
        else:
            raise ConfigError(f"{self.key}.model_type: {type(self).__name__} supports Box, Discrete and 1-D "
                              f"MultiDiscrete action spaces, not {space}")

        feat_dim = self._build(self.observation_space)
        k, d = self.num_chunks, self.action_dim
        if self._bins is None:
            self.action_mean = init_layer(nn.Linear(feat_dim, k * d), gain=0.01)
            self.log_std = nn.Parameter(torch.full((d,), float(cfg_get(config, "log_std_init", 0.0))))
        else:
            self.action_logits = init_layer(nn.Linear(feat_dim, k * sum(self._bins)), gain=0.01)
        self.value_head = init_layer(nn.Linear(self._value_dim, 1), gain=1.0) if self.has_value_head else None

    # ------------------------------------------------------------------ for subclasses

    def _build(self, observation_space: spaces.Dict) -> int:
        """Build the networks; return the actor feature size and set ``self._value_dim``."""
        raise NotImplementedError

    def _features(self, obs: Mapping[str, Any], with_value: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(actor features (N, F), critic features (N, F') or None)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ Policy interface

    @torch.no_grad()
    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions for a batch of observations, with their log-probs (and values); no gradient."""
        feats, vfeats = self._features(obs, self.has_value_head)
        extras: dict[str, Any] = {}
        if self._bins is None:
            mean, std = self._dists(feats)
            actions = mean if deterministic else mean + std * torch.randn_like(mean)
            log_probs = Normal(mean, std, validate_args=False).log_prob(actions).sum(-1)
        else:
            if len(self._bins) == 1:  # one categorical (Discrete): no list of distributions, stack or sum
                logits = self._logits(feats)
                probs = logits.softmax(-1)  # what Categorical.sample / .probs compute
                idx = (probs.argmax(-1, keepdim=True) if deterministic
                       else torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, True).view(*probs.shape[:-1], 1))
                log_probs = logits.gather(-1, idx).squeeze(-1)
            else:
                dists = self._dists(feats)
                idx = torch.stack([c.probs.argmax(-1) if deterministic else c.sample() for c in dists], dim=-1)
                log_probs = sum(c.log_prob(idx[..., i]) for i, c in enumerate(dists))
            actions, extras = self._from_bins(idx), {"action_bins": self._squeeze(idx)}
        values = self.value_head(vfeats).squeeze(-1) if vfeats is not None else None
        return ActionSample(actions=self._squeeze(actions), log_probs=self._squeeze(log_probs), values=values,
                            extras=extras)

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of the given actions, with gradient."""
        feats, vfeats = self._features(obs, self.has_value_head)
        if self._bins is None:
            mean, std = self._dists(feats)
            acts = self._unsqueeze(self._tensor(actions, torch.float32))
            normal = Normal(mean, std, validate_args=False)
            log_probs, entropy = normal.log_prob(acts).sum(-1), normal.entropy().sum(-1)
        else:
            given = (extras or {}).get("action_bins")
            idx = (self._unsqueeze(self._tensor(given, torch.long)) if given is not None
                   else self._to_bins(actions))
            if len(self._bins) == 1:  # one categorical: Categorical's log_prob and entropy, inline
                logits = self._logits(feats)
                log_probs = logits.gather(-1, idx).squeeze(-1)
                p_log_p = logits.clamp(min=torch.finfo(logits.dtype).min) * logits.softmax(-1)
                entropy = -p_log_p.sum(-1)
            else:
                dists = self._dists(feats)
                log_probs = sum(c.log_prob(idx[..., i]) for i, c in enumerate(dists))
                entropy = sum(c.entropy() for c in dists)
        values = self.value_head(vfeats).squeeze(-1) if vfeats is not None else None
        return {"log_probs": self._squeeze(log_probs), "entropy": self._squeeze(entropy), "values": values}

    def values(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Value estimates ``(N,)`` (e.g. of ``info["final_observation"]`` to bootstrap a truncation)."""
        if self.value_head is None:
            raise ConfigError(f"{self.key}.add_value_head: {type(self).__name__} has no value head; set it to true")
        _, vfeats = self._features(obs, True)
        return self.value_head(vfeats).squeeze(-1)

    # ------------------------------------------------------------------ helpers

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _tensor(self, value: Any, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.to(self.device, dtype)
        return torch.as_tensor(np.asarray(value), dtype=dtype, device=self.device)

    def _dists(self, feats: torch.Tensor) -> Any:
        n, k = feats.shape[0], self.num_chunks
        if self._bins is None:
            mean = self.action_mean(feats).view(n, k, self.action_dim)
            return mean, self.log_std.exp().expand_as(mean)
        logits = self.action_logits(feats).view(n, k, sum(self._bins))
        return [Categorical(logits=part, validate_args=False) for part in logits.split(self._bins, dim=-1)]

    def _logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Normalised logits ``(N, K, B)`` of a single categorical (as ``Categorical(logits=...).logits``)."""
        logits = self.action_logits(feats).view(feats.shape[0], self.num_chunks, self._bins[0])
        return logits - logits.logsumexp(dim=-1, keepdim=True)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """Drop the chunk dim when ``K = 1`` and the action dim of a ``Discrete`` space."""
        if self._discrete and x.dim() == 3:
            x = x[..., 0]
        return x[:, 0] if self.num_chunks == 1 else x

    def _unsqueeze(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K, D)`` from the shapes :meth:`_squeeze` returns."""
        if self._discrete:
            x = x.unsqueeze(-1)
        if self.num_chunks == 1:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != self.num_chunks or x.shape[2] != self.action_dim:
            raise ConfigError(f"{self.key}: actions of shape {tuple(x.shape)} do not match num_action_chunks="
                              f"{self.num_chunks} x action_dim={self.action_dim}")
        return x

    def _from_bins(self, idx: torch.Tensor) -> torch.Tensor:
        """Env actions from bin indices ``(N, K, D)``."""
        space = self.action_space
        if isinstance(space, spaces.Box):
            return self._low + idx.to(torch.float32) * (self._high - self._low) / (self._bins[0] - 1)
        if isinstance(space, spaces.Discrete):
            return idx + self._start
        return idx + self._mstart

    def _to_bins(self, actions: Any) -> torch.Tensor:
        """Bin indices ``(N, K, D)`` of env actions (the nearest bin for continuous ones)."""
        space = self.action_space
        if isinstance(space, spaces.Box):
            acts = self._unsqueeze(self._tensor(actions, torch.float32))
            scaled = (acts - self._low) / (self._high - self._low) * (self._bins[0] - 1)
            return scaled.round().clamp(0, self._bins[0] - 1).long()
        acts = self._unsqueeze(self._tensor(actions, torch.long))
        return acts - (self._start if isinstance(space, spaces.Discrete) else self._mstart)

    def _obs_space(self, space: Any, obs_dim: Any) -> spaces.Dict:
        if space is None:
            if obs_dim is None:
                raise ConfigError(f"{self.key}.obs_dim: no observation space was given; set obs_dim (the state size)")
            return spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (int(obs_dim),), np.float32)})
        if not isinstance(space, spaces.Dict):
            raise ConfigError(f"{self.key}: {type(self).__name__} takes rlinf's observation dict space "
                              f"(an env component's observation_space), got {space}")
        state = space.spaces.get("state")
        if obs_dim is not None and (state is None or int(obs_dim) != state.shape[0]):
            have = "no state" if state is None else f"a state of {state.shape[0]} values"
            raise ConfigError(f"{self.key}.obs_dim: {obs_dim} does not match the env, which has {have}; "
                              f"remove obs_dim or set it to {state.shape[0] if state is not None else 'null'}")
        return space

    def _act_space(self, space: Any, action_dim: Any) -> spaces.Space:
        if space is None:
            if action_dim is None:
                raise ConfigError(f"{self.key}.action_dim: no action space was given; set action_dim")
            return spaces.Box(-1.0, 1.0, (int(action_dim),), np.float32)
        if action_dim is not None:
            have = 1 if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))
            if int(action_dim) != have:
                raise ConfigError(f"{self.key}.action_dim: {action_dim} does not match the env's action space {space} "
                                  f"({have} dims); remove action_dim or set it to {have}")
        return space
