"""Neural fitted (robust) Q-iteration: the machinery shared by NeuralR2PVI and NeuralFQI.

Term by term against the linear backward pass (:mod:`robustrl.agents._offline`):

* ridge regression ``Xi y`` -> a regression network ``g_h(x)`` trained by (weighted) MSE on the
  same targets ``y(V)`` (:mod:`robustrl.agents.neural.targets`), where ``x`` is ``phi(s, a)``
  (``input="features"``, scalar heads) or the observation (``input="observation"``, heads for
  every action);
* the reward regression (or known ``theta``) -> a reward head of the same network;
* the per-factor dual ``nu_i`` -> the per-(s, a) dual applied to the network's prediction;
* the elliptical penalty ``beta Gamma_h`` -> ``beta`` times the standard deviation of ``Q`` over
  an ensemble of ``E`` independently initialised networks (lower confidence bound);
* truncation ``clip(., 0, H - h)`` -> ``clip(., lo_h, hi_h)`` from the reward range
  (``[0, r_max (H - h)]`` for nonnegative rewards; ``r / (1 - gamma)`` bounds when discounted).

``horizon=int``: backward over ``h = H-1 .. 0`` with one fresh ensemble per step;
``horizon=None``: discounted fitted Q-iteration on all transitions, one ensemble trained for
``n_iterations`` rounds, each round regressing the targets built from the previous round's
pessimistic ``V``. Either way a transition flagged ``terminal`` in the dataset is followed by
value 0 (the dataset format does not distinguish time-limit truncation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from robustrl._artifacts import load_state_dict_checked, load_torch_agent, save_torch
from robustrl.agents.base import BaseAgent, LinearAgent, Training, deprecated_progress
from robustrl.agents.estimators import check_v_min
from robustrl.agents.neural._torch import EnsembleMLP, check_hidden, draw_seed, resolve_device
from robustrl.agents.neural.targets import (
    DualStats,
    fit_stats,
    head_loss,
    initial_offset,
    log_mean_columns,
    regression_targets,
    robust_value,
)
from robustrl.data import OfflineDataset
from robustrl.validation import (
    check_bool,
    check_divergence,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
    check_scalar,
    check_seed,
)

INPUTS: tuple[str, ...] = ("observation", "features")


@dataclass
class _Transitions:
    """One regression problem's data as tensors on the agent's device."""

    inputs: torch.Tensor  # (n, in_dim)
    actions: torch.Tensor  # (n,) long
    rewards: torch.Tensor  # (n,)
    next_inputs: torch.Tensor  # (n, in_dim) observations or (n, A, d) features
    nonterminal: torch.Tensor  # (n,) bool


@dataclass
class _Head:
    """A fitted ensemble with the constants that turn its outputs into Q-values."""

    net: EnsembleMLP
    stats: DualStats | None  # None: no continuation value (last step)
    y_mean: torch.Tensor  # (1 + k,) target normalisation
    y_scale: torch.Tensor  # (1 + k,)


def train_regression(net: EnsembleMLP, inputs: torch.Tensor, targets: torch.Tensor,
                     *, actions: torch.Tensor | None, n_actions: int,
                     weights: torch.Tensor | None, steps: int, batch_size: int,
                     optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                     scale: torch.Tensor | None = None,
                     log_mask: torch.Tensor | None = None) -> float:
    """``steps`` Adam steps of the (weighted) :func:`~robustrl.agents.neural.targets.head_loss`
    (squared error; exponential Bregman in the ``log_mask`` columns, whose normalisation
    ``scale`` it needs) between ``net`` and the normalised ``targets (n, k)``. ``weights`` are
    per-sample ``(n,)`` or per-member ``(E, n)`` (bootstrap) nonnegative weights.

    With ``actions`` the network outputs ``A * k`` heads and the taken action's ``k`` are
    trained. Minibatches are drawn without replacement, epoch by epoch, from a torch generator
    on the data's device seeded from ``rng`` (deterministic order on a given device, and no
    host round trip per epoch); a dataset no larger than ``batch_size`` is used whole. Returns
    the last loss (read once, after the loop, so that the steps never wait for the device).
    """
    n, k = targets.shape
    loss = torch.tensor(float("nan"))
    perm = None
    pos = n
    gen = torch.Generator(device=inputs.device)
    gen.manual_seed(int(rng.integers(2**62)))
    for _ in range(steps):
        if n <= batch_size:
            idx = None
        else:
            if pos + batch_size > n:
                perm = torch.randperm(n, generator=gen, device=inputs.device)
                pos = 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
        x = inputs if idx is None else inputs[idx]
        y = targets if idx is None else targets[idx]
        out = net(x)  # (E, b, A*k) or (E, b, k)
        if actions is not None:
            a = actions if idx is None else actions[idx]
            out = out.view(out.shape[0], out.shape[1], n_actions, k)
            out = out.gather(2, a.view(1, -1, 1, 1).expand(out.shape[0], -1, 1, k)).squeeze(2)
        err = head_loss(out, y.unsqueeze(0), scale, log_mask)
        if weights is not None and weights.dim() == 2:  # per-member (bootstrap) weights
            w = weights if idx is None else weights[:, idx]
            loss = (err.mean(dim=2) * w).sum() / w.sum().clamp(min=1e-12)
        elif weights is not None:
            w = weights if idx is None else weights[idx]
            loss = (err.mean(dim=(0, 2)) * w).sum() / w.sum()
        else:
            loss = err.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


class NeuralFittedQ(BaseAgent):
    """Base of :class:`NeuralR2PVI` and :class:`NeuralFQI` (see the module docstring); the
    constructor arguments are documented on :class:`NeuralR2PVI`, whose signature this is."""

    _robust: ClassVar[bool] = True

    def __init__(
        self,
        env=None,
        *,
        divergence: str | None = "kl",
        lam: float = 0.1,
        input: str = "observation",
        horizon: int | None = None,
        gamma: float = 0.99,
        ensemble_size: int = 5,
        beta: float = 1.0,
        hidden=(256, 256),
        n_iterations: int = 50,
        gradient_steps: int = 500,
        batch_size: int = 256,
        lr: float = 1e-3,
        v_min: str | float = "data",
        n_alpha: int = 32,
        reward_range=None,
        bootstrap: bool = False,
        device="auto",
        seed: int | None = None,
    ) -> None:
        super().__init__(env, seed)
        self.bootstrap = check_bool(bootstrap, "bootstrap")
        if self._robust:
            self.divergence = check_divergence(divergence)
            self.lam = check_positive(lam, "lam")
        else:
            self.divergence, self.lam = None, 1.0
        if input not in INPUTS:
            raise ValueError(f"input must be 'observation' or 'features'; got {input!r}")
        self.input = input
        self.horizon = None if horizon is None else check_int(horizon, "horizon", low=1)
        self.gamma = 1.0 if horizon is not None else check_scalar(
            gamma, "gamma", low=0.0, high=1.0, high_inclusive=False)
        self.ensemble_size = check_int(ensemble_size, "ensemble_size", low=1)
        self.beta = check_nonnegative(beta, "beta")
        self.hidden = check_hidden(hidden)
        self.n_iterations = check_int(n_iterations, "n_iterations", low=1)
        self.gradient_steps = check_int(gradient_steps, "gradient_steps", low=1)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.lr = check_positive(lr, "lr")
        self.v_min = check_v_min(v_min)
        self.n_alpha = check_int(n_alpha, "n_alpha", low=2)
        self.reward_range = check_range(reward_range, "reward_range")
        self.device = resolve_device(device)
        self.seed = check_seed(seed)
        self._heads: list[_Head] = []
        self._fitted = False
        if env is not None and input == "features":
            base = getattr(env, "unwrapped", env)
            if not hasattr(base, "action_features"):
                raise ValueError(
                    "env must expose action_features(obs) on env.unwrapped for input='features'"
                )

    # ------------------------------------------------------------------ helpers
    def get_hyperparams(self) -> dict[str, Any]:
        out = super().get_hyperparams()
        out["hidden"] = list(self.hidden)
        out["reward_range"] = None if self.reward_range is None else list(self.reward_range)
        return out

    def _tensor(self, x, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    def _bounds(self, h: int | None) -> tuple[float, float]:
        lo_r, hi_r = self._r_range
        lo_r, hi_r = min(lo_r, 0.0), max(hi_r, 0.0)
        if self.horizon is None:
            return lo_r / (1.0 - self.gamma), hi_r / (1.0 - self.gamma)
        steps = self.horizon - h
        return lo_r * steps, hi_r * steps

    def _new_net(self, gen: torch.Generator) -> EnsembleMLP:
        k = 1 + (0 if self._k is None else self._k)
        out = k if self.input == "features" else self.n_actions * k
        return EnsembleMLP(self.ensemble_size, self.in_dim, out, self.hidden, gen).to(self.device)

    # ------------------------------------------------------------------ Q-values
    def _member_q(self, head: _Head, x: torch.Tensor) -> torch.Tensor:
        """Per-member Q of every action: ``x`` is ``(n, A, d)`` features or ``(n, obs_dim)``
        observations; returns ``(E, n, A)``."""
        k = 1 + (0 if head.stats is None else head.stats.n_outputs)
        if self.input == "features":
            n, A, d = x.shape
            out = head.net(x.reshape(n * A, d)).view(-1, n, A, k)
        else:
            out = head.net(x).view(-1, x.shape[0], self.n_actions, k)
        out = out * head.y_scale + head.y_mean
        q = out[..., 0]
        if head.stats is not None:
            q = q + self.gamma * robust_value(out[..., 1:], head.stats)
        return q

    def _lcb_q(self, head: _Head | None, x: torch.Tensor, h: int | None) -> torch.Tensor:
        """``clip(mean_E Q - beta std_E Q, lo_h, hi_h)``: ``(n, A)`` (0 for a step without
        data)."""
        if head is None:
            return torch.zeros(x.shape[0], self.n_actions, device=self.device)
        q = self._member_q(head, x)
        mean = q.mean(dim=0)
        if self.beta > 0.0 and q.shape[0] > 1:
            mean = mean - self.beta * q.std(dim=0, correction=0)
        lo, hi = self._bounds(h)
        return mean.clamp(min=lo, max=hi)

    def _head_for(self, h: int | None) -> _Head:
        return self._heads[0] if self.horizon is None else self._heads[h]

    # ---------------------------------------------------------------------- fit
    def fit(self, dataset: OfflineDataset, callback=None, progress_bar: bool = False, *,
            progress: bool | None = None):
        """Learn from an :class:`~robustrl.data.OfflineDataset`; returns ``self``.

        One update is one step ``h`` of the backward iteration (finite horizon) or one
        fitted-Q round (discounted): a stable-baselines3 ``callback`` gets ``_on_step`` after
        each (False stops early). A checkpoint or an early stop holds the steps fitted so far
        (the others act as steps without data, ``Q = 0``). ``num_timesteps`` is the number of
        transitions in the dataset. ``progress=`` is the deprecated name of ``progress_bar``.
        """
        progress_bar = deprecated_progress(progress_bar, progress)
        self._setup(dataset)
        seed = draw_seed(self.seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.num_timesteps = int(np.asarray(dataset.valid).sum())
        total = self.n_iterations if self.horizon is None else self.horizon
        training = Training(self, callback, progress_bar, total,
                            "iter" if self.horizon is None else "step")
        training.start(locals())
        try:
            if self.horizon is None:
                self._fit_discounted(dataset, gen, rng, training)
            else:
                self._fit_finite(dataset, gen, rng, training)
        finally:
            training.end()
        self._fitted = True
        return self

    def _setup(self, dataset) -> None:
        if not isinstance(dataset, OfflineDataset):
            raise ValueError(
                f"dataset must be a robustrl.data.OfflineDataset; got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("dataset must hold at least one valid transition; it is empty")
        if self.horizon is not None and dataset.horizon != self.horizon:
            raise ValueError(
                f"dataset must have horizon {self.horizon} (the agent's); got {dataset.horizon}"
            )
        self.n_actions = int(dataset.n_actions)
        self.obs_dim = int(dataset.observations.shape[2])
        self.feature_dim = int(dataset.feature_dim)
        if self.input == "features" and self.env is not None:
            want = getattr(self.env.unwrapped, "feature_dim", None)
            if want is not None and int(want) != self.feature_dim:
                raise ValueError(
                    f"dataset feature_dim {self.feature_dim} does not match the environment's "
                    f"feature_dim {int(want)}"
                )
        self.in_dim = self.feature_dim if self.input == "features" else self.obs_dim
        r = dataset.rewards[dataset.valid]
        self._r_range = (
            tuple(self.reward_range) if self.reward_range is not None
            else (float(r.min()), float(r.max()))
        )
        self._k = None
        self._heads = []

    def _transitions(self, dataset: OfflineDataset, h: int | None) -> _Transitions:
        if h is None:
            m = dataset.valid
            feats, naf = dataset.features[m], dataset.next_action_features[m]
            obs, nobs = dataset.observations[m], dataset.next_observations[m]
            acts, rews, nonterm = dataset.actions[m], dataset.rewards[m], ~dataset.terminal[m]
        else:
            sd = dataset.step(h)
            feats, naf, obs, nobs = (sd.features, sd.next_action_features, sd.observations,
                                     sd.next_observations)
            acts, rews, nonterm = sd.actions, sd.rewards, sd.next_nonterminal
        if self.input == "features":
            x, nx = feats, naf
        else:
            x, nx = obs, nobs
        return _Transitions(self._tensor(x), self._tensor(acts, torch.long), self._tensor(rews),
                            self._tensor(nx), self._tensor(nonterm, torch.bool))

    def _next_values(self, head: _Head, tr: _Transitions, h_next: int | None) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, tr.rewards.shape[0], 65536):
                out.append(self._lcb_q(head, tr.next_inputs[i:i + 65536], h_next).amax(dim=1))
        v = torch.cat(out) if out else torch.zeros(0, device=self.device)
        return torch.where(tr.nonterminal, v, torch.zeros_like(v))

    def _stats(self, values: torch.Tensor) -> DualStats:
        return fit_stats(values.double().cpu().numpy(), self.divergence, self.lam,
                         v_min=self.v_min, n_alpha=self.n_alpha)

    def _boot_weights(self, n: int, rng: np.random.Generator) -> torch.Tensor | None:
        """Poisson(1) counts per member and sample (the online bootstrap), or None."""
        if not self.bootstrap:
            return None
        return self._tensor(rng.poisson(1.0, size=(self.ensemble_size, n)))

    def _fit_head(self, head: _Head, tr: _Transitions, values: torch.Tensor | None,
                  rng: np.random.Generator, optimizer=None, weights=None) -> _Head:
        """Set the head's stats and normalisation from ``values`` and train it."""
        cols = [tr.rewards.view(-1, 1)]
        if values is not None:
            head.stats = self._stats(values)
            cols.append(regression_targets(values, head.stats))
        y = torch.cat(cols, dim=1)
        log_cols = [False, *log_mean_columns(head.stats)]
        head.y_mean = initial_offset(y, log_cols)
        head.y_scale = y.std(dim=0, correction=0).clamp(min=1e-6)
        y = (y - head.y_mean) / head.y_scale
        log_mask = torch.as_tensor(log_cols, device=self.device)
        if optimizer is None:
            optimizer = torch.optim.Adam(head.net.parameters(), lr=self.lr)
        train_regression(
            head.net, tr.inputs, y, actions=None if self.input == "features" else tr.actions,
            n_actions=self.n_actions, weights=weights, steps=self.gradient_steps,
            batch_size=self.batch_size, optimizer=optimizer, rng=rng, scale=head.y_scale,
            log_mask=log_mask)
        return head

    def _empty_head(self, net: EnsembleMLP) -> _Head:
        return _Head(net, None, torch.zeros(1, device=self.device),
                     torch.ones(1, device=self.device))

    def _fit_finite(self, dataset, gen, rng, training: Training) -> None:
        H = self.horizon
        heads: list[_Head | None] = [None] * H
        k_cont = self._dual_outputs()
        self._heads = heads
        for h in range(H - 1, -1, -1):
            tr = self._transitions(dataset, h)
            if tr.rewards.shape[0] == 0:
                # every episode ended before step h: nothing to learn, and no transition of
                # step h-1 continues here (it would have made step h valid); Q_h is 0
                if not training.step(locals()):
                    return
                continue
            self._k = None if h == H - 1 else k_cont
            head = self._empty_head(self._new_net(gen))
            values = None if h == H - 1 else self._next_values(heads[h + 1], tr, h + 1)
            heads[h] = self._fit_head(head, tr, values, rng,
                                      weights=self._boot_weights(tr.rewards.shape[0], rng))
            self._fitted = True  # a checkpoint holds the steps fitted so far
            if not training.step(locals()):
                return

    def _fit_discounted(self, dataset, gen, rng, training: Training) -> None:
        tr = self._transitions(dataset, None)
        self._k = self._dual_outputs()
        head = self._empty_head(self._new_net(gen))
        optimizer = torch.optim.Adam(head.net.parameters(), lr=self.lr)
        values = torch.zeros_like(tr.rewards)
        weights = self._boot_weights(tr.rewards.shape[0], rng)  # fixed per member, as in
        # bootstrapped DQN, so members stay different across rounds
        for it in range(self.n_iterations):
            if it > 0:
                values = self._next_values(head, tr, None)
            head = self._fit_head(head, tr, values, rng, optimizer, weights)
            self._heads = [head]
            self._fitted = True  # a checkpoint callback saves the rounds so far
            if not training.step(locals()):
                return

    def _dual_outputs(self) -> int:
        return 2 * self.n_alpha if self.divergence == "chi2" else 1

    # ------------------------------------------------------------------- acting
    step_of = LinearAgent.step_of  # the step is the observation's last entry

    def q_values_from_features(self, features, step: int | None = None) -> np.ndarray:
        """Pessimistic Q at ``features (..., A, d)`` (``input="features"`` only): ``(..., A)``."""
        self._check_fitted()
        if self.input != "features":
            raise ValueError("q_values_from_features needs input='features'")
        phi = np.asarray(features, dtype=np.float64)
        if phi.ndim < 2 or phi.shape[-2:] != (self.n_actions, self.feature_dim):
            raise ValueError(
                f"features must have shape (..., {self.n_actions}, {self.feature_dim}) "
                f"(actions, feature_dim); got {phi.shape}"
            )
        h = self._check_step(step)
        lead = phi.shape[:-2]
        x = self._tensor(phi.reshape(-1, self.n_actions, self.feature_dim))
        with torch.no_grad():
            q = self._lcb_q(self._head_for(h), x, h)
        return q.double().cpu().numpy().reshape(*lead, self.n_actions)

    def _check_step(self, step) -> int | None:
        if self.horizon is None:
            return None
        if step is None:
            raise ValueError("step is required for a finite-horizon agent")
        return check_int(step, "step", low=0, high=self.horizon - 1)

    def q_values(self, obs, step: int | None = None) -> np.ndarray:
        """Pessimistic Q of every action: ``(A,)`` for one observation, ``(N, A)`` for a batch.

        Finite horizon: the step is ``step`` or, by default, the observation's last entry.
        """
        self._check_fitted()
        arr = np.asarray(obs, dtype=np.float64)
        batched = arr.ndim == 2
        rows = arr if batched else arr.reshape(1, -1)
        if rows.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have {self.obs_dim} entries; got shape {arr.shape}")
        steps = [self._check_step(step) if step is not None
                 else (None if self.horizon is None else self.step_of(o)) for o in rows]
        out = np.empty((len(rows), self.n_actions))
        if self.input == "features":
            if self.env is None:
                raise ValueError(
                    "env is required to compute features from observations (input='features'); "
                    "pass env=... or use q_values_from_features"
                )
            base = self.env.unwrapped
            for i, (o, h) in enumerate(zip(rows, steps, strict=True)):
                out[i] = self.q_values_from_features(base.action_features(o), h)
        else:
            for h in sorted(set(steps), key=lambda s: -1 if s is None else s):
                sel = np.array([s == h for s in steps])
                with torch.no_grad():
                    q = self._lcb_q(self._head_for(h), self._tensor(rows[sel]), h)
                out[sel] = q.double().cpu().numpy()
        return out if batched else out[0]

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style greedy action(s) and the unchanged ``state`` (ties to the lowest index)."""
        q = self.q_values(obs)
        act = np.argmax(q, axis=-1)
        return (act.astype(np.int64) if q.ndim == 2 else int(act)), state

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write hyperparameters, shapes and network weights to one file, atomically, with a
        SHA-256 checksum of the content (checked by :meth:`load`)."""
        self._check_fitted()
        blob = {
            "class": type(self).__name__,
            "hyperparams": self.get_hyperparams(),
            "shapes": {"n_actions": self.n_actions, "obs_dim": self.obs_dim,
                       "feature_dim": self.feature_dim, "r_range": list(self._r_range)},
            "heads": [
                {"state": {k: v.detach().cpu() for k, v in hd.net.state_dict().items()},
                 "out_dim": hd.net.out_dim,
                 "stats": None if hd.stats is None else hd.stats.to_dict(),
                 "y_mean": hd.y_mean.cpu(), "y_scale": hd.y_scale.cpu()}
                if hd is not None else None
                for hd in self._heads
            ],
        }
        return save_torch(path, blob)

    @classmethod
    def load(cls, path: str | Path, env=None, device="auto"):
        """Rebuild an agent written by :meth:`save` on ``device`` (``env``: optional, for
        ``input="features"`` predictions and shape checks).

        Checks the checksum, the shapes (positive sizes, finite reward range, one head per
        step), each head's output size against its dual constants and each network's
        parameters (names, shapes, finite); raises ``ValueError`` naming the file."""
        agent, blob, shapes = load_torch_agent(cls, path, env, device)
        env = agent.env
        agent.n_actions = _saved_int(path, shapes, "n_actions")
        agent.obs_dim = _saved_int(path, shapes, "obs_dim")
        fd = shapes.get("feature_dim")
        agent.feature_dim = None if fd is None else _saved_int(path, shapes, "feature_dim")
        if agent.input == "features" and agent.feature_dim is None:
            raise ValueError(f"path {path}: 'shapes.feature_dim' is required with "
                             "input='features'")
        r_range = shapes.get("r_range")
        if (not isinstance(r_range, (list, tuple)) or len(r_range) != 2
                or not all(isinstance(x, (int, float)) and np.isfinite(x) for x in r_range)
                or r_range[0] > r_range[1]):
            raise ValueError(f"path {path}: 'shapes.r_range' must be [low, high] with finite "
                             f"low <= high; got {r_range!r}")
        agent._r_range = (float(r_range[0]), float(r_range[1]))
        if env is not None and int(env.action_space.n) != agent.n_actions:
            raise ValueError(f"path {path}: saved n_actions {agent.n_actions} does not match "
                             f"env's {int(env.action_space.n)}")
        env_d = getattr(getattr(env, "unwrapped", env), "feature_dim", None)
        if agent.input == "features" and env_d is not None and int(env_d) != agent.feature_dim:
            raise ValueError(f"path {path}: saved feature_dim {agent.feature_dim} does not "
                             f"match env's {int(env_d)}")
        agent.in_dim = agent.feature_dim if agent.input == "features" else agent.obs_dim
        heads_in = blob.get("heads")
        n_heads = 1 if agent.horizon is None else agent.horizon
        if not isinstance(heads_in, list) or len(heads_in) != n_heads:
            raise ValueError(f"path {path}: 'heads' must be a list of {n_heads} heads (one per "
                             "step, or one without a horizon)")
        heads = []
        for i, hd in enumerate(heads_in):
            if hd is None:
                heads.append(None)
                continue
            if not isinstance(hd, dict):
                raise ValueError(f"path {path}: heads[{i}] must be a dict or None")
            stats = None if hd.get("stats") is None else load_stats(path, hd["stats"],
                                                                     f"heads[{i}].stats")
            k = 1 + (0 if stats is None else stats.n_outputs)
            out_dim = k if agent.input == "features" else agent.n_actions * k
            if hd.get("out_dim") != out_dim:
                raise ValueError(f"path {path}: heads[{i}].out_dim must be {out_dim}; got "
                                 f"{hd.get('out_dim')!r}")
            net = EnsembleMLP(agent.ensemble_size, agent.in_dim, out_dim, agent.hidden)
            load_state_dict_checked(net, hd.get("state"), path, f"heads[{i}].state")
            y_mean = saved_vector(path, hd.get("y_mean"), k, f"heads[{i}].y_mean")
            y_scale = saved_vector(path, hd.get("y_scale"), k, f"heads[{i}].y_scale")
            heads.append(_Head(net.to(agent.device), stats, y_mean.to(agent.device),
                               y_scale.to(agent.device)))
        agent._heads = heads
        agent._fitted = True
        return agent


def _saved_int(path, shapes: dict, key: str) -> int:
    value = shapes.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"path {path}: 'shapes.{key}' must be an integer >= 1; got {value!r}")
    return value


def load_stats(path, d, name: str) -> DualStats:
    """A :class:`DualStats` from its saved dict, checked (divergence, finite constants)."""
    fields = {"divergence", "lam", "v_min", "v_max", "shift", "alphas"}
    if not isinstance(d, dict) or set(d) != fields:
        raise ValueError(f"path {path}: {name} must be a dict with keys {sorted(fields)}")
    if d["divergence"] not in (None, "tv", "kl", "chi2"):
        raise ValueError(f"path {path}: {name}.divergence must be None, 'tv', 'kl' or 'chi2'; "
                         f"got {d['divergence']!r}")
    numbers = [d["lam"], d["v_min"], d["v_max"], d["shift"]]
    alphas = d["alphas"]
    if not isinstance(alphas, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)
        for x in [*numbers, *alphas]
    ):
        raise ValueError(f"path {path}: {name} must hold finite numbers (lam, v_min, v_max, "
                         "shift and the list alphas)")
    if d["lam"] <= 0 or d["v_min"] > d["v_max"]:
        raise ValueError(f"path {path}: {name} needs lam > 0 and v_min <= v_max")
    return DualStats.from_dict(d)


def saved_vector(path, value, k: int, name: str) -> torch.Tensor:
    """A saved float tensor of shape ``(k,)`` with finite entries."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or tuple(
            value.shape) != (k,):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"path {path}: tensor {name} must be a float tensor of shape ({k},); "
                         f"got {got}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"path {path}: tensor {name} must be finite")
    return value
