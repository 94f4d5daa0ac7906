"""NeuralDRRPO: online actor-critic with DR-RPO's reference-policy KL mirror-descent step and the
neural robust targets (arXiv:2510.14246; docs/algorithms/drrpo.md, a reconstruction: DR-RPO has no
public code).

Linear DR-RPO (:mod:`robustrl.agents.drrpo`) -> this agent, term by term:

* per-episode ridge regressions of the robust dual -> a critic ensemble regressing, on replay
  minibatches, the reward and the dual targets ``y(V(s'))`` of
  :mod:`robustrl.agents.neural.targets`; ``Q(s, a) = r_hat + gamma T(g(s, a))``;
* the optimism bonus ``+beta Gamma`` -> ``+bonus`` times the ensemble standard deviation of Q
  (disagreement of independently initialised members);
* ``V(s) = <pi(.|s), Q(s, .)> - tau KL(pi(.|s) || pi_ref)`` -> the same, with the target critic
  and the current softmax actor, and 0 after a terminal transition (a time-limit truncation
  bootstraps);
* the mirror-descent step ``pi_{k+1} ∝ pi_k^{1/(1+eta tau)} pi_ref^{eta tau/(1+eta tau)}
  exp(eta Q / (1+eta tau))`` -> the actor minimises ``KL(pi_{k+1} || pi_theta)`` on replay states,
  ``pi_k`` being the actor frozen at the last target synchronisation;
* the dual constants (KL shift, TV ``v_min``, chi2 grid) and the target normalisation are
  refreshed at every target synchronisation from the values of up to 4096 replay next states.

Environments: a ``gymnasium.vector.VectorEnv`` (sync or async; ``NEXT_STEP`` or ``SAME_STEP``
autoreset), a single ``gymnasium.Env`` (wrapped in a one-env ``SyncVectorEnv``) or an env id
(``n_envs`` copies). Discrete actions, flat observations.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from robustrl._artifacts import load_state_dict_checked, load_torch_agent, save_torch
from robustrl.agents.base import BaseAgent, Training
from robustrl.agents.estimators import check_v_min
from robustrl.agents.neural._offline import _Head, _saved_int, load_stats, saved_vector
from robustrl.agents.neural._torch import EnsembleMLP, check_hidden, draw_seed, resolve_device
from robustrl.agents.neural.targets import (
    fit_stats,
    head_loss,
    initial_offset,
    log_mean_columns,
    regression_targets,
    robust_value,
)
from robustrl.validation import (
    check_divergence,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
    check_scalar,
    check_seed,
)


def _as_vec_env(env, n_envs: int):
    if isinstance(env, str):
        return gym.make_vec(env, num_envs=n_envs, vectorization_mode="sync")
    if isinstance(env, gym.vector.VectorEnv):
        return env
    if isinstance(env, gym.Env):
        return gym.vector.SyncVectorEnv([lambda: env])
    raise ValueError(
        f"env must be a gymnasium VectorEnv, a gymnasium Env or an env id; got {type(env).__name__}"
    )


class _Replay:
    """A ring buffer of transitions on the agent's device."""

    def __init__(self, size: int, obs_dim: int, device: torch.device) -> None:
        self.size, self.pos, self.full = size, 0, False
        self.obs = torch.zeros(size, obs_dim, device=device)
        self.next_obs = torch.zeros(size, obs_dim, device=device)
        self.actions = torch.zeros(size, dtype=torch.long, device=device)
        self.rewards = torch.zeros(size, device=device)
        self.terminal = torch.zeros(size, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return self.size if self.full else self.pos

    def add(self, obs, actions, rewards, next_obs, terminal) -> None:
        n = len(actions)
        dev = self.obs.device
        idx = (self.pos + torch.arange(n, device=dev)) % self.size
        self.obs[idx] = torch.as_tensor(obs, dtype=torch.float32, device=dev)
        self.next_obs[idx] = torch.as_tensor(next_obs, dtype=torch.float32, device=dev)
        self.actions[idx] = torch.as_tensor(actions, dtype=torch.long, device=dev)
        self.rewards[idx] = torch.as_tensor(rewards, dtype=torch.float32, device=dev)
        self.terminal[idx] = torch.as_tensor(terminal, dtype=torch.bool, device=dev)
        self.full = self.full or self.pos + n >= self.size
        self.pos = (self.pos + n) % self.size

    def sample(self, batch_size: int, rng: np.random.Generator):
        idx = torch.as_tensor(rng.integers(len(self), size=batch_size), device=self.obs.device)
        return (self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                self.terminal[idx])


class NeuralDRRPO(BaseAgent):
    """Neural distributionally robust regularised policy optimisation (online, discrete actions).

    Args:
        env: vector env, env, or env id (see the module docstring).
        divergence, lam: robust regulariser of the critic targets (as NeuralR2PVI).
        gamma: discount in [0, 1).
        tau: temperature of the KL regulariser towards the reference policy (uniform).
        eta: mirror-descent step size (``inf`` gives the soft-greedy policy).
        beta: optimism coefficient >= 0 on the ensemble standard deviation of Q (the linear
            agents' ``beta``; ``bonus=`` is its deprecated name).
        ensemble_size, hidden: critic ensemble size and widths (the actor uses ``hidden`` too).
        buffer_size, learning_starts, batch_size: replay settings (``learning_starts`` counts
            transitions).
        train_freq: vector-env steps between update rounds; gradient_steps: updates per round.
        target_update_interval: gradient steps between target / anchor synchronisations.
        lr: Adam learning rate of actor and critic.
        n_envs: copies when ``env`` is an id.
        v_min, n_alpha: as NeuralR2PVI.
        reward_range: ``(r_min, r_max)``: clip Q to ``[min(r_min,0), max(r_max,0)] / (1-gamma)``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; seed: same seed, same numbers on CPU.
    """

    _not_hyperparameters = BaseAgent._not_hyperparameters | {"bonus"}  # deprecated alias

    def __init__(
        self,
        env,
        *,
        divergence: str = "tv",
        lam: float = 1.0,
        gamma: float = 0.99,
        tau: float = 0.1,
        eta: float = 1.0,
        beta: float = 1.0,
        ensemble_size: int = 5,
        hidden=(256, 256),
        buffer_size: int = 100_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        train_freq: int = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 250,
        lr: float = 3e-4,
        n_envs: int = 1,
        v_min: str | float = "data",
        n_alpha: int = 16,
        reward_range=None,
        device="auto",
        seed: int | None = None,
        bonus: float | None = None,
    ) -> None:
        super().__init__(None, seed)
        if bonus is not None:
            warnings.warn("NeuralDRRPO(bonus=) is deprecated; use beta= (the optimism "
                          "coefficient, as in the linear agents)", DeprecationWarning,
                          stacklevel=2)
            beta = bonus
        self.divergence = check_divergence(divergence)
        self.lam = check_positive(lam, "lam")
        self.gamma = check_scalar(gamma, "gamma", low=0.0, high=1.0, high_inclusive=False)
        self.tau = check_nonnegative(tau, "tau")
        eta = float(eta)
        if not eta > 0.0:
            raise ValueError(f"eta must be > 0 (inf allowed); got {eta!r}")
        self.eta = eta
        self.beta = check_nonnegative(beta, "beta")
        self.ensemble_size = check_int(ensemble_size, "ensemble_size", low=1)
        self.hidden = check_hidden(hidden)
        self.buffer_size = check_int(buffer_size, "buffer_size", low=1)
        self.learning_starts = check_int(learning_starts, "learning_starts", low=0)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.train_freq = check_int(train_freq, "train_freq", low=1)
        self.gradient_steps = check_int(gradient_steps, "gradient_steps", low=1)
        self.target_update_interval = check_int(target_update_interval,
                                                "target_update_interval", low=1)
        self.lr = check_positive(lr, "lr")
        self.v_min = check_v_min(v_min)
        self.n_alpha = check_int(n_alpha, "n_alpha", low=2)
        self.reward_range = check_range(reward_range, "reward_range")
        self.seed = check_seed(seed)
        self.device = resolve_device(device)

        self.env = None if env is None else _as_vec_env(env, check_int(n_envs, "n_envs", low=1))
        if self.env is not None:
            act_space = self.env.single_action_space
            obs_space = self.env.single_observation_space
            if not isinstance(act_space, spaces.Discrete):
                raise ValueError(f"env must have Discrete actions; got {act_space}")
            self.n_actions = int(act_space.n)
            self.obs_dim = int(np.prod(obs_space.shape))
            self._build()
        self.num_timesteps = 0
        self._n_updates = 0

    @classmethod
    def from_spaces(cls, obs_dim: int, n_actions: int, **hyperparams) -> NeuralDRRPO:
        """An agent without an environment (for :meth:`train_on_batch`, e.g. benchmarks)."""
        agent = cls(None, **hyperparams)
        agent.obs_dim = check_int(obs_dim, "obs_dim", low=1)
        agent.n_actions = check_int(n_actions, "n_actions", low=1)
        agent._build()
        return agent

    # ------------------------------------------------------------------ networks
    def _build(self) -> None:
        seed = draw_seed(self.seed)
        gen = torch.Generator().manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        self._torch_gen = torch.Generator().manual_seed(seed + 1)
        k = 1 + (2 * self.n_alpha if self.divergence == "chi2" else 1)
        self._k = k
        self.critic = EnsembleMLP(self.ensemble_size, self.obs_dim, self.n_actions * k,
                                  self.hidden, gen).to(self.device)
        self.actor = EnsembleMLP(1, self.obs_dim, self.n_actions, self.hidden, gen).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_anchor = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.lr)
        ones = torch.ones(k, device=self.device)
        # placeholder constants (value 0 everywhere) until the first synchronisation
        self._stats = fit_stats(np.zeros(1), self.divergence, self.lam, v_min=self.v_min,
                                n_alpha=self.n_alpha)
        self._log_cols = [False, *log_mean_columns(self._stats)]
        self._log_mask = torch.as_tensor(self._log_cols, device=self.device)
        self._head = _Head(self.critic, self._stats, torch.zeros(k, device=self.device), ones)
        self._target_head = _Head(self.critic_target, self._stats,
                                  torch.zeros(k, device=self.device), ones.clone())

    def _log_pi(self, net: EnsembleMLP, obs: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(net(obs)[0], dim=-1)

    def _member_q(self, head: _Head, obs: torch.Tensor) -> torch.Tensor:
        out = head.net(obs).view(head.net.n_members, obs.shape[0], self.n_actions, self._k)
        out = out * head.y_scale + head.y_mean
        return out[..., 0] + self.gamma * robust_value(out[..., 1:], head.stats)

    def _optimistic_q(self, head: _Head, obs: torch.Tensor) -> torch.Tensor:
        q = self._member_q(head, obs)
        mean = q.mean(dim=0)
        if self.beta > 0.0 and q.shape[0] > 1:
            mean = mean + self.beta * q.std(dim=0, correction=0)
        if self.reward_range is not None:
            lo, hi = min(self.reward_range[0], 0.0), max(self.reward_range[1], 0.0)
            mean = mean.clamp(lo / (1 - self.gamma), hi / (1 - self.gamma))
        return mean

    def _soft_value(self, head: _Head, obs: torch.Tensor) -> torch.Tensor:
        """``<pi, Q> - tau KL(pi || uniform)`` with the current actor."""
        q = self._optimistic_q(head, obs)
        log_pi = self._log_pi(self.actor, obs)
        pi = log_pi.exp()
        kl = (pi * (log_pi + np.log(self.n_actions))).sum(-1)
        return (pi * q).sum(-1) - self.tau * kl

    # ------------------------------------------------------------------ updates
    def _sync(self) -> None:
        """Target critic, mirror-descent anchor, dual constants and normalisation."""
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor_anchor.load_state_dict(self.actor.state_dict())
        with torch.no_grad():
            n = min(len(self._buffer), 4096)
            obs, _, rew, nxt, term = self._buffer.sample(n, self._rng)
            v = self._soft_value(self._target_head, nxt)
            v = torch.where(term, torch.zeros_like(v), v)
            self._target_head.stats = self._head.stats
            self._target_head.y_mean = self._head.y_mean.clone()
            self._target_head.y_scale = self._head.y_scale.clone()
            stats = fit_stats(v.double().cpu().numpy(), self.divergence, self.lam,
                              v_min=self.v_min, n_alpha=self.n_alpha)
            y = torch.cat([rew.view(-1, 1), regression_targets(v, stats)], dim=1)
        # the online critic re-learns in the new coordinates; the target keeps the old ones
        self._head.stats = stats
        self._head.y_mean = initial_offset(y, self._log_cols)
        self._head.y_scale = y.std(0, correction=0).clamp(min=1e-6)

    def train_on_batch(self, obs, actions, rewards, next_obs, terminal) -> dict[str, torch.Tensor]:
        """One critic and one actor gradient step on a batch of tensors (also the benchmark's
        unit of work). Returns the two losses as detached 0-d tensors (reading them waits for
        the device)."""
        head = self._head
        with torch.no_grad():
            v = self._soft_value(self._target_head, next_obs)
            v = torch.where(terminal, torch.zeros_like(v), v)
            y = torch.cat([rewards.view(-1, 1), regression_targets(v, head.stats)], dim=1)
            y = (y - head.y_mean) / head.y_scale
        out = self.critic(obs).view(self.ensemble_size, obs.shape[0], self.n_actions, self._k)
        idx = actions.view(1, -1, 1, 1).expand(self.ensemble_size, -1, 1, self._k)
        critic_loss = head_loss(out.gather(2, idx).squeeze(2), y.unsqueeze(0), head.y_scale,
                                self._log_mask).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        with torch.no_grad():
            # the target critic: its constants match its weights (the online critic re-learns
            # for a while after each synchronisation changes them)
            q = self._optimistic_q(self._target_head, obs)
            anchor = self._log_pi(self.actor_anchor, obs)
            if np.isinf(self.eta):
                logits = q / max(self.tau, 1e-8)
            else:
                et = self.eta * self.tau
                # log pi_ref is uniform, a constant that the softmax removes
                logits = (anchor + self.eta * q) / (1.0 + et)
            target = torch.softmax(logits, dim=-1)
        log_pi = self._log_pi(self.actor, obs)
        actor_loss = (target * (torch.log(target.clamp(min=1e-12)) - log_pi)).sum(-1).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self._n_updates += 1
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    # ------------------------------------------------------------------ learning
    def learn(self, total_timesteps: int, callback=None, progress_bar: bool = False):
        """Interact for ``total_timesteps`` transitions (summed over the vector envs).

        A stable-baselines3 ``callback`` gets ``_on_step`` after every vector step (its
        ``locals`` as in SB3's off-policy loop); returning False stops learning.
        """
        if self.env is None:
            raise ValueError("env is required to learn; load(path, env=...) to continue training")
        total = check_int(total_timesteps, "total_timesteps", low=1)
        training = Training(self, callback, progress_bar, total, "step")
        venv = self.env
        n_envs = venv.num_envs
        if not hasattr(self, "_buffer"):
            self._buffer = _Replay(self.buffer_size, self.obs_dim, self.device)
            self._last_obs = None
        mode = venv.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        same_step = str(getattr(mode, "value", mode)) == "SameStep"
        if self._last_obs is None:
            obs, _ = venv.reset(seed=draw_seed(self.seed))
            self._last_obs = np.asarray(obs, dtype=np.float64).reshape(n_envs, -1)
            self._prev_done = np.zeros(n_envs, dtype=bool)
        target_steps = self.num_timesteps + total
        vec_steps = 0
        training.start(locals())
        self._fitted = True  # the actor acts from the start; a checkpoint can save it
        while self.num_timesteps < target_steps:
            obs = self._last_obs
            actions = self._act(obs, deterministic=False)
            nxt, rew, term, trunc, info = venv.step(actions)
            nxt = np.asarray(nxt, dtype=np.float64).reshape(n_envs, -1)
            real_next = nxt.copy()
            if same_step and "final_obs" in info:
                for i in np.flatnonzero(np.asarray(term) | np.asarray(trunc)):
                    real_next[i] = np.ravel(info["final_obs"][i])
            keep = ~self._prev_done if not same_step else np.ones(n_envs, dtype=bool)
            if keep.any():
                self._buffer.add(obs[keep], actions[keep], np.asarray(rew)[keep],
                                 real_next[keep], np.asarray(term)[keep])
            self._prev_done = np.asarray(term) | np.asarray(trunc)
            self._last_obs = nxt
            added = int(keep.sum())
            self.num_timesteps += added
            vec_steps += 1
            ready = len(self._buffer) >= max(self.learning_starts, 1)
            if ready and vec_steps % self.train_freq == 0:
                for _ in range(self.gradient_steps):
                    if self._n_updates % self.target_update_interval == 0:
                        self._sync()
                    self.train_on_batch(*self._buffer.sample(self.batch_size, self._rng))
            if not training.step(locals(), added):
                break
        training.end()
        return self

    # ------------------------------------------------------------------ acting
    def _act(self, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        with torch.no_grad():
            logits = self.actor(torch.as_tensor(rows, dtype=torch.float32,
                                                device=self.device))[0]
            if deterministic:
                return logits.argmax(-1).cpu().numpy().astype(np.int64)
            probs = torch.softmax(logits, -1).cpu()
            return torch.multinomial(probs, 1, generator=self._torch_gen).view(-1).numpy()

    def action_probabilities(self, obs) -> np.ndarray:
        """The actor's ``pi(.|obs)``: ``(A,)`` or ``(N, A)``."""
        self._check_fitted()
        arr = np.asarray(obs, dtype=np.float64)
        rows = arr.reshape(-1, self.obs_dim)
        with torch.no_grad():
            p = torch.softmax(self.actor(torch.as_tensor(rows, dtype=torch.float32,
                                                          device=self.device))[0], -1)
        p = p.double().cpu().numpy()
        return p if arr.ndim == 2 else p[0]

    def q_values(self, obs) -> np.ndarray:
        """Optimistic robust Q of every action: ``(A,)`` or ``(N, A)``."""
        self._check_fitted()
        arr = np.asarray(obs, dtype=np.float64)
        rows = torch.as_tensor(arr.reshape(-1, self.obs_dim), dtype=torch.float32,
                               device=self.device)
        with torch.no_grad():
            q = self._optimistic_q(self._head, rows).double().cpu().numpy()
        return q if arr.ndim == 2 else q[0]

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style ``(action, state)``: the actor's mode, or a sample when not deterministic."""
        self._check_fitted()
        arr = np.asarray(obs, dtype=np.float64)
        if arr.size % self.obs_dim:
            raise ValueError(f"obs must have {self.obs_dim} entries per row; got {arr.shape}")
        acts = self._act(arr.reshape(-1, self.obs_dim), deterministic)
        return (acts if arr.ndim == 2 else int(acts[0])), state

    # ------------------------------------------------------------------ persistence
    def get_hyperparams(self) -> dict[str, Any]:
        out = super().get_hyperparams()
        out["hidden"] = list(self.hidden)
        out["reward_range"] = None if self.reward_range is None else list(self.reward_range)
        return out

    def save(self, path: str | Path) -> Path:
        """Write hyperparameters, networks and target constants to one file, atomically, with
        a SHA-256 checksum of the content (checked by :meth:`load`)."""
        self._check_fitted()

        def cpu(sd):
            return {k: v.detach().cpu() for k, v in sd.items()}

        blob = {
            "class": type(self).__name__,
            "hyperparams": self.get_hyperparams(),
            "shapes": {"obs_dim": self.obs_dim, "n_actions": self.n_actions},
            "actor": cpu(self.actor.state_dict()),
            "critic": cpu(self.critic.state_dict()),
            "stats": self._head.stats.to_dict(),
            "y_mean": self._head.y_mean.cpu(), "y_scale": self._head.y_scale.cpu(),
            "num_timesteps": self.num_timesteps,
        }
        return save_torch(Path(path), blob)

    @classmethod
    def load(cls, path: str | Path, env=None, device="auto") -> NeuralDRRPO:
        """Rebuild an agent written by :meth:`save` (``env`` needed only to keep learning).

        Checks the checksum, the shapes against ``env`` (when given), the networks'
        parameters (names, shapes, finite), the dual constants and the target normalisation
        (finite, one entry per critic output); raises ``ValueError`` naming the file."""
        agent, blob, shapes = load_torch_agent(cls, path, env, device)
        obs_dim, n_actions = _saved_int(path, shapes, "obs_dim"), _saved_int(path, shapes,
                                                                              "n_actions")
        if agent.env is None:
            agent.obs_dim, agent.n_actions = obs_dim, n_actions
            agent._build()
        elif (agent.obs_dim, agent.n_actions) != (obs_dim, n_actions):
            raise ValueError(f"path {path}: saved (obs_dim, n_actions) = {(obs_dim, n_actions)} "
                             f"does not match env's {(agent.obs_dim, agent.n_actions)}")
        load_state_dict_checked(agent.actor, blob.get("actor"), path, "actor")
        load_state_dict_checked(agent.critic, blob.get("critic"), path, "critic")
        stats = load_stats(path, blob.get("stats"), "stats")
        if stats.divergence != agent.divergence or 1 + stats.n_outputs != agent._k:
            raise ValueError(f"path {path}: 'stats' (divergence {stats.divergence!r}, "
                             f"{stats.n_outputs} outputs) does not match the hyperparameters")
        agent._head.stats = stats
        agent._head.y_mean = saved_vector(path, blob.get("y_mean"), agent._k,
                                          "y_mean").to(agent.device)
        agent._head.y_scale = saved_vector(path, blob.get("y_scale"), agent._k,
                                           "y_scale").to(agent.device)
        steps = blob.get("num_timesteps")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"path {path}: 'num_timesteps' must be an integer >= 0; got "
                             f"{steps!r}")
        agent.num_timesteps = steps
        agent._fitted = True
        return agent
