"""The ``cnn`` policy: an actor-critic over camera images (and ``state`` when the env has one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from gymnasium import spaces
from rlinf_core.errors import ConfigError
from torch import nn

from rlinf_envs_embodied.policies.actor_critic import MLP, ActorCriticPolicy, init_layer, mlp

#: Output channels of the three stride-2 3x3 convolutions of each camera's encoder.
CHANNELS = (32, 64, 64)
#: The feature map is average-pooled to this size, so any image size works.
POOLED = 4


def conv_encoder() -> nn.Sequential:
    """uint8-derived ``(N, 3, H, W)`` in [0, 1] -> ``(N, CHANNELS[-1] * POOLED**2)``."""
    layers: list[nn.Module] = []
    in_ch = 3
    for out_ch in CHANNELS:
        layers += [init_layer(nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)), nn.ReLU()]
        in_ch = out_ch
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(POOLED), nn.Flatten())


class CNNPolicy(ActorCriticPolicy):
    """One convolutional encoder per camera plus an MLP over ``state``, fused into ``hidden_dim``
    features shared by the actor and the value head (``num_layers`` further ReLU layers for the actor).

    Constructed as ``CNNPolicy(config, *, observation_space, action_space)`` with the
    ``actor.model`` section; keys and action distributions: :class:`ActorCriticPolicy`.
    """

    def _build(self, observation_space: spaces.Dict) -> int:
        images = observation_space.spaces.get("images")
        if images is None or not len(images.spaces):
            raise ConfigError(f"{self.key}.model_type: cnn needs camera images and the env gives none; enable them "
                              f"(e.g. env.train.init_params.images: true) or use model_type: mlp")
        self.cameras = sorted(images.spaces)
        self.encoders = nn.ModuleDict({cam: conv_encoder() for cam in self.cameras})
        fused = len(self.cameras) * CHANNELS[-1] * POOLED**2
        state = observation_space.spaces.get("state")
        self.state_encoder = None
        if state is not None:
            self.state_encoder = mlp(int(state.shape[0]), self.hidden_dim, 1, nn.ReLU)
            fused += self.hidden_dim
        self.fuse = MLP(init_layer(nn.Linear(fused, self.hidden_dim)), nn.ReLU())
        self.actor = mlp(self.hidden_dim, self.hidden_dim, self.num_layers, nn.ReLU)
        self._value_dim = self.hidden_dim
        return self.hidden_dim

    def _shared(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """The fused features ``(N, hidden_dim)`` of the cameras (and state) that actor and value head share."""
        parts = []
        for cam in self.cameras:
            pixels = self._obs_tensor(obs["images"][cam])  # (N, H, W, 3), 0..255
            parts.append(self.encoders[cam](pixels.permute(0, 3, 1, 2) / 255.0))
        if self.state_encoder is not None:
            parts.append(self.state_encoder(self._obs_tensor(obs["state"])))
        return self.fuse(torch.cat(parts, dim=-1))

    def _features(self, obs: Mapping[str, Any], with_value: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        shared = self._shared(obs)
        return self.actor(shared), (shared if with_value else None)

    def _value_features(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """The shared features alone (the actor's layers are not run for values)."""
        return self._shared(obs)
