"""Shared-base actor-critic features for Cave Escape observations (note B.5, network).

The authors' agent (``models/multigrid_models.py``): Conv2d(16 filters, 3x3, valid) on the 5x5x3
egocentric image -> flatten -> ReLU; the direction one-hot through a linear embedding of size
5; concatenated and fed to an LSTM(256) shared by actor and critic; heads FC(32) -> logits and
FC(32) -> value.

Here the LSTM is replaced by a feed-forward Linear(., 256) + ReLU layer in the same place (a
*feed-forward shared base*): stable-baselines3's recurrent PPO lives in sb3-contrib, which is
not a dependency of this package. The base is an SB3 ``BaseFeaturesExtractor`` shared by actor
and critic (``share_features_extractor=True``), so the mutual-information argument's "shared
representation Z" is this 256-d feature; the heads are ``net_arch=dict(pi=[32], vf=[32])``.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["CaveEscapeExtractor", "policy_kwargs"]


class CaveEscapeExtractor(BaseFeaturesExtractor):
    """Conv(16, 3x3) on the image + Linear(4 -> 5) direction embedding -> Linear(256) + ReLU.

    Accepts the image channel-last ``(v, v, 3)`` (as the env emits it) or channel-first
    ``(3, v, v)`` (after SB3's ``VecTransposeImage``). Image codes are used as raw floats
    (MiniGrid object/colour/state indices, as in the authors' model), so build the policy with
    ``normalize_images=False``.
    """

    def __init__(self, observation_space: gym.spaces.Dict, features_dim: int = 256,
                 conv_filters: int = 16, direction_dim: int = 5) -> None:
        super().__init__(observation_space, features_dim)
        shape = observation_space["image"].shape
        self._channels_last = shape[-1] == 3 and shape[0] != 3
        channels = shape[-1] if self._channels_last else shape[0]
        side = shape[0] if self._channels_last else shape[1]
        self.conv = nn.Sequential(nn.Conv2d(channels, conv_filters, kernel_size=3),
                                  nn.Flatten(), nn.ReLU())
        conv_out = conv_filters * (side - 2) * (side - 2)
        n_dir = observation_space["direction"].n
        self.direction = nn.Linear(n_dir, direction_dim)
        self.base = nn.Sequential(nn.Linear(conv_out + direction_dim, features_dim), nn.ReLU())

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
