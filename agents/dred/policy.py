"""Shared-base actor-critic features for Cave Escape observations (arXiv:2402.03479 App. B).

The authors' agent (``models/multigrid_models.py``): Conv2d(16 filters, 3x3, valid) on the 5x5x3
egocentric image -> flatten -> ReLU; the direction one-hot through a linear embedding of size
5; concatenated and fed to an LSTM(256) shared by actor and critic; heads FC(32) -> logits and
FC(32) -> value.

Two policies:

* ``policy_kwargs`` (feed-forward, SB3 ``PPO``): the LSTM is replaced by a Linear(., 256) + ReLU
  layer in the same place (a *feed-forward shared base*), an SB3 ``BaseFeaturesExtractor``
  shared by actor and critic (``share_features_extractor=True``), so the mutual-information
  argument's "shared representation Z" is this 256-d feature; the heads are
  ``net_arch=dict(pi=[32], vf=[32])``.
* :class:`SharedLstmPolicy` + ``lstm_policy_kwargs`` (sb3-contrib ``RecurrentPPO``, the authors'
  network, arXiv:2402.03479 App. B): conv + direction embedding -> one LSTM(256) shared by
  actor and critic -> FC(32) heads. sb3-contrib's ``shared_lstm=True`` detaches the critic's
  input from the LSTM (the value loss does not train it); the authors' shared LSTM is trained by
  both losses, so :class:`SharedLstmPolicy` lets the value gradient through.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

# SharedLstmPolicy is built lazily (sb3-contrib), see __getattr__
__all__ = ["CaveEscapeExtractor", "policy_kwargs", "lstm_policy_kwargs"]


class CaveEscapeExtractor(BaseFeaturesExtractor):
    """Conv(16, 3x3) on the image + Linear(4 -> 5) direction embedding -> Linear(256) + ReLU
    (``features_dim=None``: no Linear layer, the concatenated conv and direction features, the
    LSTM's input in the authors' network).

    Accepts the image channel-last ``(v, v, 3)`` (as the env emits it) or channel-first
    ``(3, v, v)`` (after SB3's ``VecTransposeImage``). Image codes are used as raw floats
    (MiniGrid object/colour/state indices, as in the authors' model), so build the policy with
    ``normalize_images=False``.
    """

    def __init__(self, observation_space: gym.spaces.Dict, features_dim: int | None = 256,
                 conv_filters: int = 16, direction_dim: int = 5) -> None:
        shape = observation_space["image"].shape
        last = shape[-1] == 3 and shape[0] != 3
        side0 = shape[0] if last else shape[1]
        raw_dim = conv_filters * (side0 - 2) * (side0 - 2) + direction_dim
        super().__init__(observation_space, raw_dim if features_dim is None else features_dim)
        self._channels_last = shape[-1] == 3 and shape[0] != 3
        channels = shape[-1] if self._channels_last else shape[0]
        side = shape[0] if self._channels_last else shape[1]
        self.conv = nn.Sequential(nn.Conv2d(channels, conv_filters, kernel_size=3),
                                  nn.Flatten(), nn.ReLU())
        conv_out = conv_filters * (side - 2) * (side - 2)
        n_dir = observation_space["direction"].n
        self.direction = nn.Linear(n_dir, direction_dim)
        self.base = (nn.Identity() if features_dim is None else
                     nn.Sequential(nn.Linear(conv_out + direction_dim, features_dim), nn.ReLU()))

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        image = observations["image"].float()
        if self._channels_last:
            image = image.permute(0, 3, 1, 2)
        # SB3 one-hot encodes Discrete: (B, 4) when acting, (B, 1, 4) from the rollout buffer
        direction = observations["direction"].float().reshape(image.shape[0], -1)
        return self.base(torch.cat([self.conv(image), self.direction(direction)], dim=1))


def policy_kwargs(features_dim: int = 256, head_dim: int = 32) -> dict:
    """``policy_kwargs`` for SB3 ``PPO("MultiInputPolicy", ...)``: shared base, small heads."""
    return dict(features_extractor_class=CaveEscapeExtractor,
                features_extractor_kwargs=dict(features_dim=features_dim),
                share_features_extractor=True, normalize_images=False,
                net_arch=dict(pi=[head_dim], vf=[head_dim]), activation_fn=nn.ReLU)


def lstm_policy_kwargs(hidden: int = 256, head_dim: int = 32) -> dict:
    """``policy_kwargs`` for ``RecurrentPPO(SharedLstmPolicy, ...)``: the authors' network."""
    return dict(features_extractor_class=CaveEscapeExtractor,
                features_extractor_kwargs=dict(features_dim=None),
                share_features_extractor=True, normalize_images=False,
                lstm_hidden_size=hidden, n_lstm_layers=1, shared_lstm=True,
                enable_critic_lstm=False, net_arch=dict(pi=[head_dim], vf=[head_dim]),
                activation_fn=nn.ReLU)


def _shared_lstm_policy():
    from sb3_contrib.common.recurrent.policies import RecurrentMultiInputActorCriticPolicy

    class SharedLstmPolicy(RecurrentMultiInputActorCriticPolicy):
        """sb3-contrib's recurrent multi-input policy with one LSTM shared by actor and critic
        and trained by both losses (sb3-contrib's ``shared_lstm`` detaches the critic)."""

        def evaluate_actions(self, obs, actions, lstm_states, episode_starts):
            features = self.extract_features(obs)
            latent, _ = self._process_sequence(features, lstm_states.pi, episode_starts,
                                               self.lstm_actor)
            distribution = self._get_action_dist_from_latent(
                self.mlp_extractor.forward_actor(latent))
            values = self.value_net(self.mlp_extractor.forward_critic(latent))
            return values, distribution.log_prob(actions), distribution.entropy()

    return SharedLstmPolicy


def __getattr__(name: str):
    if name == "SharedLstmPolicy":  # needs sb3-contrib: built on first use
        cls = _shared_lstm_policy()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
