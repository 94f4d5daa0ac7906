"""DRED (Garcin et al., ICML 2024) and its baselines on Cave Escape (arXiv:2402.03479;
docs/algorithms/dred.md).

* :class:`LevelBuffer` (``level_buffer``): the prioritised level buffer, pure NumPy;
* :class:`LevelReplayPPO` (``training``): stable-baselines3 PPO with a level curriculum chosen by
  name (``dred``, ``dr``, ``uniform``, ``plr``, ``robust_plr``, ``accel``) and
  :func:`evaluate_levels` (zero-shot, one episode per level);
* ``LevelVAE``, ``train_vae`` (``vae``) and ``LevelGenerator`` (``generator``): the level VAE and
  DRED's latent-interpolation generator; imported lazily (they need torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from robustrl.agents.dred.level_buffer import LevelBuffer
from robustrl.agents.dred.training import METHODS, LevelReplayPPO, evaluate_levels

__all__ = ["LevelBuffer", "LevelReplayPPO", "METHODS", "evaluate_levels", "LevelVAE",
           "train_vae", "LevelGenerator"]

_LAZY = {"LevelVAE": "vae", "train_vae": "vae", "LevelGenerator": "generator"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"robustrl.agents.dred.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'robustrl.agents.dred' has no attribute {name!r}")
