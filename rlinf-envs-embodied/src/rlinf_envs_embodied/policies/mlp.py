"""The ``mlp`` policy: an actor-critic MLP over the ``state`` observation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from gymnasium import spaces
from rlinf_core.errors import ConfigError

from rlinf_envs_embodied.policies.actor_critic import ActorCriticPolicy, mlp


class MLPPolicy(ActorCriticPolicy):
    """Separate actor and critic MLPs (``num_layers`` x ``hidden_dim``, tanh) over ``obs["state"]``.

    Constructed as ``MLPPolicy(config, *, observation_space, action_space)`` with the
    ``actor.model`` section; keys and action distributions: :class:`ActorCriticPolicy`.
    """

    def _build(self, observation_space: spaces.Dict) -> int:
        state = observation_space.spaces.get("state")
        if state is None:
            raise ConfigError(f"{self.key}.model_type: mlp needs a 'state' observation and the env gives only "
                              f"{sorted(observation_space.spaces)}; use model_type: cnn for images")
        in_dim = int(state.shape[0])
        self.actor = mlp(in_dim, self.hidden_dim, self.num_layers)
        self.critic = mlp(in_dim, self.hidden_dim, self.num_layers) if self.has_value_head else None
        out_dim = self.hidden_dim if self.num_layers else in_dim
        self._value_dim = out_dim
        return out_dim

    def _features(self, obs: Mapping[str, Any], with_value: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        state = self._obs_tensor(obs["state"])
        return self.actor(state), (self.critic(state) if with_value and self.critic is not None else None)

    def _value_features(self, obs: Mapping[str, Any]) -> torch.Tensor:
        """The critic MLP alone (the actor's is not run for values)."""
        return self.critic(self._obs_tensor(obs["state"]))
