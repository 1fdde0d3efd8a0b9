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

Precision: ``actor.model.precision`` (``fp32``, the default; ``bf16`` or ``fp16``) is the dtype the
policy's parameters are cast to, and observations with them; the action distribution (log-probs,
entropy) and the values are computed from the network outputs in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from rlinf_core.config.precision import precision_dtype_name
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import ActionSample
from torch import nn
from torch.distributions import Categorical, Normal
from torch.nn import functional as F

from rlinf_envs_embodied.options import cfg_get


def init_layer(layer: nn.Module, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights, constant bias (the usual PPO initialisation)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def parse_precision(value: Any, key: str = "actor.model.precision") -> torch.dtype:
    """The parameter dtype of a precision name (``None``: fp32; the names of
    :mod:`rlinf_core.config.precision`); a one-line ConfigError naming ``key`` otherwise."""
    return torch.float32 if value is None else getattr(torch, precision_dtype_name(value, key))


#: Activations :class:`MLP` applies as a plain function (no module call per layer).
_ACTIVATIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}


#: torch's registries of hooks on every module (``register_module_forward_hook`` and the like), filled in place.
_GLOBAL_HOOKS: tuple[dict, ...] = tuple(
    getattr(torch.nn.modules.module, name) for name in ("_global_forward_pre_hooks", "_global_forward_hooks",
                                                        "_global_backward_pre_hooks", "_global_backward_hooks")
    if hasattr(torch.nn.modules.module, name))


def _hook_dicts(module: nn.Module) -> tuple[dict, ...]:
    """The module's own hook registries (filled in place when a hook is added, e.g. by FSDP2's ``fully_shard``)
    and torch's global ones: while any holds a hook, the module is called as usual."""
    return (module._forward_pre_hooks, module._forward_hooks, module._backward_pre_hooks, module._backward_hooks,
            *_GLOBAL_HOOKS)


def linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` for an ``nn.Linear`` without the module call's overhead, when nothing hooks the layer
    (a sharded or hooked layer, or any other module, is called as usual)."""
    if type(layer) is nn.Linear and not any(_hook_dicts(layer)):
        return F.linear(x, layer.weight, layer.bias)
    return layer(x)


class MLP(nn.Sequential):
    """``Linear, activation`` pairs as an ``nn.Sequential`` (same parameter names), whose forward runs the
    layers' weights directly: one module call for the whole MLP instead of one per layer (as long as none
    of its layers is hooked or sharded on its own; then each layer is called as usual)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = self.__dict__.get("_fast")
        if fast is None:  # decided at the first call: ([(weights' layer, activation fn)], hook registries) or False
            mods = list(self)
            fns = [_ACTIVATIONS.get(type(m)) for m in mods[1::2]]
            ok = (len(mods) % 2 == 0 and all(type(m) is nn.Linear for m in mods[0::2])
                  and all(type(m) in _ACTIVATIONS for m in mods[1::2]))
            fast = (list(zip(mods[0::2], fns, strict=True)), tuple(d for m in mods for d in _hook_dicts(m))) if ok else False
            self.__dict__["_fast"] = fast
        if fast is False or any(fast[1]):  # a layer hooked since (e.g. sharded on its own): the plain path
            return super().forward(x)
        for layer, act in fast[0]:
            x = act(F.linear(x, layer.weight, layer.bias))
        return x


def mlp(in_dim: int, hidden_dim: int, num_layers: int, activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """``num_layers`` hidden layers of ``hidden_dim`` units (an empty Sequential when 0)."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [init_layer(nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim)), activation()]
    return MLP(*layers)


class ActorCriticPolicy(nn.Module):
    """Base of the small policies. Constructed as ``cls(config, *, observation_space, action_space)``.

    ``config`` is the ``actor.model`` section (a DictConfig or a mapping): ``hidden_dim`` (256),
    ``num_layers`` (2), ``num_action_chunks`` (1), ``add_value_head`` (false), ``num_action_bins``,
    ``log_std_init`` (0.0), ``precision`` (fp32; bf16 / fp16 cast the parameters), and ``obs_dim`` /
    ``action_dim``, which are checked against the spaces when given and stand in for them when a
    space is ``None``.
    """

    #: The config key of the model section, for messages.
    key = "actor.model"

    def __init__(self, config: Any, *, observation_space: Any, action_space: Any):
        super().__init__()
        self.hidden_dim = int(cfg_get(config, "hidden_dim", 256))
        self.num_layers = int(cfg_get(config, "num_layers", 2))
        self.num_chunks = int(cfg_get(config, "num_action_chunks", 1))
        self.has_value_head = bool(cfg_get(config, "add_value_head", False))
        self.param_dtype = parse_precision(cfg_get(config, "precision"), f"{self.key}.precision")
        self._device: torch.device | None = None  # the parameters' device and dtype, cached by the device
        self._dtype: torch.dtype | None = None  # property; reset by to() / cuda() / half() ... (_apply)
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
        if self.param_dtype != torch.float32:
            self.to(self.param_dtype)

    # ------------------------------------------------------------------ for subclasses

    def _build(self, observation_space: spaces.Dict) -> int:
        """Build the networks; return the actor feature size and set ``self._value_dim``."""
        raise NotImplementedError

    def _features(self, obs: Mapping[str, Any], with_value: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(actor features (N, F), critic features (N, F') or None)``."""
        raise NotImplementedError

    def _value_features(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Critic features ``(N, F')`` alone (subclasses skip the actor's layers where they can)."""
        return self._features(obs, True)[1]

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
        values = self._value(vfeats) if vfeats is not None else None
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
                # probabilities as exp of the normalised logits: softmax over a short last dim is far slower on CPU
                p_log_p = logits.clamp(min=torch.finfo(logits.dtype).min) * logits.exp()
                entropy = -p_log_p.sum(-1)
            else:
                dists = self._dists(feats)
                log_probs = sum(c.log_prob(idx[..., i]) for i, c in enumerate(dists))
                entropy = sum(c.entropy() for c in dists)
        values = self._value(vfeats) if vfeats is not None else None
        return {"log_probs": self._squeeze(log_probs), "entropy": self._squeeze(entropy), "values": values}

    def values(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """Value estimates ``(N,)`` (e.g. of ``info["final_observation"]`` to bootstrap a truncation)."""
        if self.value_head is None:
            raise ConfigError(f"{self.key}.add_value_head: {type(self).__name__} has no value head; set it to true")
        return self._value(self._value_features(obs))

    # ------------------------------------------------------------------ helpers

    @property
    def device(self) -> torch.device:
        """The parameters' device (looked up once; :meth:`_apply`, behind ``to()`` and the like, resets it)."""
        if self._device is None:
            param = next(self.parameters())
            self._device, self._dtype = param.device, param.dtype
        return self._device

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> ActorCriticPolicy:
        self._device = self._dtype = None
        return super()._apply(fn, *args, **kwargs)

    def _tensor(self, value: Any, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.to(self.device, dtype)
        return torch.as_tensor(np.asarray(value), dtype=dtype, device=self.device)

    def _obs_tensor(self, value: Any) -> torch.Tensor:
        """A float observation entry on the policy's device, in its parameters' dtype."""
        self.device  # noqa: B018 -- looks up (and caches) self._dtype with the device
        return self._tensor(value, self._dtype)

    def _value(self, vfeats: torch.Tensor) -> torch.Tensor:
        """Values ``(N,)`` (float32) from critic features."""
        return linear(self.value_head, vfeats).squeeze(-1).float()

    def _dists(self, feats: torch.Tensor) -> Any:
        n, k = feats.shape[0], self.num_chunks
        if self._bins is None:
            mean = linear(self.action_mean, feats).view(n, k, self.action_dim).float()
            return mean, self.log_std.float().exp().expand_as(mean)
        logits = linear(self.action_logits, feats).view(n, k, sum(self._bins)).float()
        return [Categorical(logits=part, validate_args=False) for part in logits.split(self._bins, dim=-1)]

    def _logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Normalised logits ``(N, K, B)`` of a single categorical (as ``Categorical(logits=...).logits``)."""
        logits = linear(self.action_logits, feats).view(feats.shape[0], self.num_chunks, self._bins[0]).float()
        return logits.log_softmax(dim=-1)  # one kernel (x - logsumexp(x) is several, slow on small batches)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """Drop the chunk dim when ``K = 1`` and the action dim of a ``Discrete`` space."""
        if self._discrete and x.dim() == 3:
            x = x.select(-1, 0)
        return x.select(1, 0) if self.num_chunks == 1 else x

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
            low, high = self._low.float(), self._high.float()  # float32 bounds whatever the precision
            return low + idx.to(torch.float32) * (high - low) / (self._bins[0] - 1)
        if isinstance(space, spaces.Discrete):
            return idx + self._start
        return idx + self._mstart

    def _to_bins(self, actions: Any) -> torch.Tensor:
        """Bin indices ``(N, K, D)`` of env actions (the nearest bin for continuous ones)."""
        space = self.action_space
        if isinstance(space, spaces.Box):
            acts = self._unsqueeze(self._tensor(actions, torch.float32))
            low, high = self._low.float(), self._high.float()
            scaled = (acts - low) / (high - low) * (self._bins[0] - 1)
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
