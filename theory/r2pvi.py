"""R2PVI theory as functions (arXiv:2411.18612 theory, docs/r2pvi-results.md), computed exactly on
finite models.

* :func:`theoretical_beta`: the pessimism coefficient of the theorems per divergence
  (arXiv:2411.18612, docs/algorithms/r2pvi.md);
* :func:`instance_independent_rate`: the ``O~(./sqrt K)`` rates per divergence (arXiv:2411.18612
  theory, docs/r2pvi-results.md);
* :func:`instance_dependent_bound`: the computable surrogate of the instance-dependent bound,
  ``2 beta max_P sum_h E^{pi*, P}[sum_i phi_i sqrt([Lambda_h^{-1}]_ii)]`` over a few kernels
  (the nominal one and the regularised worst case of ``V*``, or kernels you pass);
* :func:`suboptimality`: ``V*_lam(s_1) - V^{pi_hat}_lam(s_1)``, exact by robust DP;
* :func:`behaviour_gram`, :func:`population_bound`, :func:`informative_size`: the bound at the
  data's expected Gram matrix ``K Sigma_h + ridge I`` and the smallest ``K`` at which it falls
  below the trivial bound ``H`` with the theorems' beta (about 1e9-1e10 on the simulated MDP);
* :func:`poor_coverage_instance`: a model where pessimism is needed (an agent with
  ``beta = 0`` fails ``robustrl verify-bounds r2pvi`` on it); :func:`rate_contradicts`: whether
  a log-log slope interval contradicts the ``K^{-1/2}`` upper rate.

**Assumed log factor.** The note reads the theorems' ``beta`` but not their log terms; every
function here uses ``xi = log(2 d H K / delta)`` (:func:`log_factor`). The rates carry the same
``sqrt(xi)`` and constant 1 (the papers' ``O~`` hides both), so they are shapes in ``K``, ``d``,
``H`` and ``lam`` for plotting, not certified numbers. The ``d``-exponents of the rates are the
note's and unverified; the ``K^{-1/2}`` rate is the certain part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustrl.exact import robust_evaluate_policy, robust_value_iteration
from robustrl.models import LinearMDP
from robustrl.validation import (
    check_array,
    check_divergence,
    check_int,
    check_positive,
    check_scalar,
)

__all__ = [
    "INSTANCES",
    "BoundResult",
    "LogLogFit",
    "SuboptimalityCurve",
    "behaviour_gram",
    "coverage",
    "informative_size",
    "poor_coverage_instance",
    "population_bound",
    "rate_contradicts",
    "fit_mean_loglog",
    "greedy_policy",
    "instance_dependent_bound",
    "instance_independent_rate",
    "log_factor",
    "make_instance",
    "regularized_objective",
    "suboptimality",
    "suboptimality_curve",
    "theoretical_beta",
    "worst_case_factors",
]


def _check_k(n_trajectories) -> np.ndarray | int:
    if np.ndim(n_trajectories) == 0:
        return check_int(n_trajectories, "n_trajectories", low=1)
    arr = np.asarray(n_trajectories)
    if not np.issubdtype(arr.dtype, np.integer) or arr.size == 0 or arr.min() < 1:
        raise ValueError(
            f"n_trajectories must be an integer >= 1 or an array of them; got {n_trajectories!r}"
        )
    return arr


def _check_delta(delta) -> float:
    return check_scalar(delta, "delta", low=0.0, high=1.0, low_inclusive=False,
                        high_inclusive=False)


def log_factor(dim: int, horizon: int, n_trajectories, delta: float = 0.05):
    """``xi = log(2 d H K / delta)``: the log factor assumed in every bound of this module."""
    d = check_int(dim, "dim", low=1)
    H = check_int(horizon, "horizon", low=1)
    K = _check_k(n_trajectories)
    delta = _check_delta(delta)
    return np.log(2.0 * d * H * np.asarray(K, dtype=np.float64) / delta)[()]


def theoretical_beta(divergence: str, dim: int, horizon: int, n_trajectories, lam: float,
                     delta: float = 0.05):
    """The theorems' pessimism coefficient (arXiv:2411.18612, docs/algorithms/r2pvi.md), with ``xi``
    from :func:`log_factor`.

    TV: ``16 H d sqrt(xi)``; KL: ``16 d lam e^{H/lam} sqrt(H/lam + xi)``;
    chi2: ``8 d H^2 (1 + 1/lam) sqrt(xi)``. ``n_trajectories`` may be an array (same shape out).
    """
    div = check_divergence(divergence)
    lam = check_positive(lam, "lam")
    xi = log_factor(dim, horizon, n_trajectories, delta)
    d, H = float(dim), float(horizon)
    if div == "tv":
        return 16.0 * H * d * np.sqrt(xi)
    if div == "kl":
        with np.errstate(over="ignore"):
            return 16.0 * d * lam * np.exp(H / lam) * np.sqrt(H / lam + xi)
    return 8.0 * d * H**2 * (1.0 + 1.0 / lam) * np.sqrt(xi)


def instance_independent_rate(divergence: str, dim: int, horizon: int, n_trajectories,
                              lam: float, delta: float = 0.05):
    """Instance-independent suboptimality rates under robust partial coverage (arXiv:2411.18612
    theory, docs/r2pvi-results.md).

    TV ``d^2 H^2``, KL ``sqrt(lam) e^{H/lam} d^2 H^{3/2}``, chi2 ``d^2 H^3 (1 + 1/lam)``, each
    times ``sqrt(xi / K)`` with constant 1 (the ``O~`` hides constants, logs and the coverage
    constant). ``n_trajectories`` may be an array.
    """
    div = check_divergence(divergence)
    lam = check_positive(lam, "lam")
    xi = log_factor(dim, horizon, n_trajectories, delta)
    K = np.asarray(n_trajectories, dtype=np.float64)
    d, H = float(dim), float(horizon)
    if div == "tv":
        scale = d**2 * H**2
    elif div == "kl":
        with np.errstate(over="ignore"):
            scale = np.sqrt(lam) * np.exp(H / lam) * d**2 * H**1.5
    else:
        scale = d**2 * H**3 * (1.0 + 1.0 / lam)
    return (scale * np.sqrt(xi / K))[()]


# --------------------------------------------------------------------------------------------
# exact quantities on a finite linear MDP


def _check_model(model) -> LinearMDP:
    if not isinstance(model, LinearMDP):
        raise ValueError(
            f"model must be a robustrl.models.LinearMDP; got {type(model).__name__}"
        )
    return model


def _check_agent(agent, model: LinearMDP):
    if not hasattr(agent, "q_values_from_features") or not hasattr(agent, "lambda_inv_"):
        raise ValueError(
            "agent must be a fitted offline robustrl agent (q_values_from_features, lambda_inv); "
            f"got {type(agent).__name__}"
        )
    if (agent.horizon, agent.feature_dim, agent.n_actions) != (
        model.horizon, model.feature_dim, model.n_actions
    ):
        raise ValueError(
            "agent and model must share (horizon, feature_dim, n_actions); got "
            f"{(agent.horizon, agent.feature_dim, agent.n_actions)} and "
            f"{(model.horizon, model.feature_dim, model.n_actions)}"
        )
    return agent


def greedy_policy(agent, model: LinearMDP) -> np.ndarray:
    """The agent's greedy deterministic policy on the model's states, ``(H, S)`` int (ties to
    the lowest action, as :meth:`predict`)."""
    model = _check_model(model)
    agent = _check_agent(agent, model)
    return np.stack(
        [np.argmax(agent.q_values_from_features(model.phi, h), axis=1)
         for h in range(model.horizon)]
    ).astype(np.int64)


def suboptimality(agent, model: LinearMDP, divergence: str, lam: float) -> float:
    """``V*_lam - V^{pi_hat}_lam`` from the initial distribution, exactly (arXiv:2411.18612 theory,
    docs/r2pvi-results.md).

    ``V*_lam`` by :func:`robustrl.exact.robust_value_iteration` and ``V^{pi_hat}_lam`` by
    :func:`robustrl.exact.robust_evaluate_policy` of the agent's greedy table, both
    d-rectangular regularised with ``divergence`` and ``lam``.
    """
    model = _check_model(model)
    policy = greedy_policy(agent, model)
    best = robust_value_iteration(model, divergence=divergence, lam=lam).value
    mine = robust_evaluate_policy(model, policy, divergence=divergence, lam=lam).value
    return float(best - mine)


def _chi2_minimiser(v: np.ndarray, p: np.ndarray, lam: float) -> np.ndarray:
    """argmin_mu E_mu v + lam chi2(mu || p): ``mu = p (1 - (W - E_p W) / (2 lam))``,
    ``W = min(v, alpha*)`` with ``alpha*`` the maximiser of ``E W - Var W / (4 lam)``
    (arXiv:2411.18612, docs/algorithms/r2pvi.md),
    found exactly over the segments between consecutive support values."""
    s = p > 0
    knots = np.unique(v[s])
    candidates = list(knots)
    for lo, hi in zip(knots[:-1], knots[1:], strict=True):
        below = s & (v <= lo)
        a = float(p[below] @ v[below])
        b = float(p[s & (v > lo)].sum())
        if b < 1.0:
            stat = (a + 2.0 * lam) / (1.0 - b)  # zero of the segment's derivative
            if lo < stat < hi:
                candidates.append(stat)

    def objective(alpha: float) -> float:
        w = np.minimum(v[s], alpha)
        mean = float(p[s] @ w)
        return mean - float(p[s] @ (w - mean) ** 2) / (4.0 * lam)

    alpha = max(candidates, key=objective)
    w = np.minimum(v, alpha)
    g = 1.0 - (w - float(p[s] @ w[s])) / (2.0 * lam)
    mu = np.where(s, p * np.maximum(g, 0.0), 0.0)
    return mu / mu.sum()


def worst_case_factors(model: LinearMDP, values, divergence: str, lam: float) -> np.ndarray:
    """Factors ``(H, d, S)`` attaining ``inf_mu E_mu V_{h+1} + lam D(mu || mu_{h,i})``
    (arXiv:2411.18612, docs/algorithms/r2pvi.md).

    ``values`` is ``(H + 1, S)`` (e.g. ``robust_value_iteration(...).V``). TV moves the mass of
    the states with ``V > min_S V + lam`` to a minimising state; KL tilts,
    ``mu ∝ mu_0 exp(-V / lam)``; chi2 reweights by ``1 - (min(V, alpha*) - mean) / (2 lam)``.
    """
    model = _check_model(model)
    div = check_divergence(divergence)
    lam = check_positive(lam, "lam")
    H, S = model.horizon, model.n_states
    V = check_array(values, "values", shape=(H + 1, S))
    out = np.zeros_like(model.mu)
    for h in range(H):
        v = V[h + 1]
        for i, p in enumerate(model.mu[h]):
            if div == "tv":
                high = v > v.min() + lam
                mu = np.where(high, 0.0, p)
                mu[int(np.argmin(v))] += p[high].sum()
            elif div == "kl":
                tilt = np.where(p > 0, p * np.exp(-(v - v[p > 0].min()) / lam), 0.0)
                mu = tilt / tilt.sum()
            else:
                mu = _chi2_minimiser(v, p, lam)
            out[h, i] = mu
    return out


def coverage(lambda_inv, model: LinearMDP, policy, factors=None) -> float:
    """``sum_h E^{pi, P}[sum_i phi_i(s_h, a_h) sqrt([Lambda_h^{-1}]_ii)]`` from the initial
    distribution, exactly by forward state distributions; ``P`` has the model's features and
    ``factors (H, d, S)`` (default the model's own). ``policy`` is an ``(H, S)`` action table."""
    model = _check_model(model)
    H, S, d = model.horizon, model.n_states, model.feature_dim
    inv = check_array(lambda_inv, "lambda_inv", shape=(H, d, d))
    pol = np.asarray(policy)
    if pol.shape != (H, S) or not np.issubdtype(pol.dtype, np.integer):
        raise ValueError(f"policy must be an (H, S) = ({H}, {S}) integer table; got {pol.shape}")
    mu = model.mu if factors is None else check_array(factors, "factors", shape=(H, d, S))
    scale = np.sqrt(np.maximum(np.diagonal(inv, axis1=1, axis2=2), 0.0))  # (H, d)
    dist = model.initial_distribution.copy()
    total = 0.0
    for h in range(H):
        phi = model.phi[np.arange(S), pol[h]]  # (S, d) features of the chosen actions
        total += float(dist @ (phi @ scale[h]))
        dist = (dist @ phi) @ mu[h]
    return total


@dataclass(frozen=True)
class BoundResult:
    """Instance-dependent bound surrogate: ``bound = 2 beta max(coverages)``."""

    bound: float
    beta: float
    coverages: np.ndarray
    log_factor: float


def instance_dependent_bound(
    agent,
    model: LinearMDP,
    divergence: str,
    lam: float,
    *,
    beta: float | None = None,
    delta: float = 0.05,
    n_trajectories: int | None = None,
    kernels=None,
) -> BoundResult:
    """Surrogate of R2PVI's instance-dependent bound (arXiv:2411.18612 theory,
    docs/r2pvi-results.md) for a fitted agent.

    ``2 beta max_P sum_h E^{pi*, P}[sum_i phi_i sqrt([Lambda_h^{-1}]_ii)]`` with ``pi*`` the
    optimal regularised robust policy, the agent's ``Lambda_h^{-1}``, and ``P`` over
    ``kernels`` (a list of ``(H, d, S)`` factor arrays; default: the nominal factors and the
    regularised worst case of ``V*``, :func:`worst_case_factors`). ``beta`` defaults to
    :func:`theoretical_beta` with ``K = n_trajectories`` (default: the agent's step-0 sample
    count).
    """
    model = _check_model(model)
    agent = _check_agent(agent, model)
    lam = check_positive(lam, "lam")
    if n_trajectories is None:
        n_trajectories = int(agent.n_samples_[0])
    K = check_int(n_trajectories, "n_trajectories", low=1)
    xi = float(log_factor(model.feature_dim, model.horizon, K, delta))
    if beta is None:
        beta = float(theoretical_beta(divergence, model.feature_dim, model.horizon, K, lam,
                                      delta))
    else:
        beta = check_scalar(beta, "beta", low=0.0)
    star = robust_value_iteration(model, divergence=divergence, lam=lam)
    if kernels is None:
        kernels = [model.mu, worst_case_factors(model, star.V, divergence, lam)]
    covs = np.array([coverage(agent.lambda_inv_, model, star.policy, k) for k in kernels])
    return BoundResult(bound=float(2.0 * beta * covs.max()), beta=beta, coverages=covs,
                       log_factor=xi)


def regularized_objective(values, nominal, mu, divergence: str, lam: float) -> float:
    """``E_mu V + lam D(mu || nominal)``: checks that a factor attains
    :func:`robustrl.divergences.regularized_inner` (used by the tests)."""
    div = check_divergence(divergence)
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(nominal, dtype=np.float64)
    q = np.asarray(mu, dtype=np.float64)
    if div == "tv":
        dist = 0.5 * float(np.abs(q - p).sum())
    elif div == "kl":
        s = q > 0
        dist = float(np.sum(q[s] * np.log(q[s] / p[s])))
    else:
        s = p > 0
        dist = float(np.sum((q[s] - p[s]) ** 2 / p[s]))
    return float(q @ v) + lam * dist



# --------------------------------------------------------------------------------------------
# the bound at the data's expected Gram matrix: when would the theorem's constants be informative?


def behaviour_gram(model: LinearMDP, behaviour=None) -> np.ndarray:
    """``Sigma_h = E[phi(s_h, a_h) phi(s_h, a_h)^T]`` under ``behaviour`` in the nominal model,
    ``(H, d, d)``, exactly by forward state distributions from the initial distribution.

    ``behaviour`` is an ``(H, S, A)`` table of action probabilities; ``None`` is uniformly
    random actions (what :meth:`robustrl.data.OfflineDataset.collect` draws by default). One
    trajectory contributes ``Sigma_h`` to ``Lambda_h`` in expectation, so ``K`` trajectories give
    ``E Lambda_h = K Sigma_h + ridge I``.
    """
    model = _check_model(model)
    H, S, A, d = model.horizon, model.n_states, model.n_actions, model.feature_dim
    if behaviour is None:
        pi = np.full((H, S, A), 1.0 / A)
    else:
        pi = check_array(behaviour, "behaviour", shape=(H, S, A), low=0.0)
        if not np.allclose(pi.sum(axis=-1), 1.0):
            raise ValueError("behaviour must hold action probabilities: each (h, s) row of the "
                             "(H, S, A) table must sum to 1")
    dist = model.initial_distribution.copy()
    out = np.zeros((H, d, d))
    for h in range(H):
        w = dist[:, None] * pi[h]  # (S, A) state-action occupancy at step h
        out[h] = np.einsum("sa,sai,saj->ij", w, model.phi, model.phi)
        dist = np.einsum("sa,sai,it->t", w, model.phi, model.mu[h])
    return out


def population_bound(model: LinearMDP, divergence: str, lam: float, n_trajectories: int, *,
                     beta: float | None = None, ridge: float = 0.1, behaviour=None,
                     delta: float = 0.05, kernels=None) -> BoundResult:
    """R2PVI's instance-dependent bound (:func:`instance_dependent_bound`) at the *expected*
    Gram matrix ``Lambda_h = K Sigma_h + ridge I`` (:func:`behaviour_gram`) instead of one
    dataset's: ``2 beta max_P sum_h E^{pi*, P}[sum_i phi_i sqrt([Lambda_h^{-1}]_ii)]``, every
    quantity exact from the known model. ``beta`` defaults to :func:`theoretical_beta` at
    ``K = n_trajectories``."""
    model = _check_model(model)
    lam = check_positive(lam, "lam")
    K = check_int(n_trajectories, "n_trajectories", low=1)
    ridge = check_positive(ridge, "ridge")
    if beta is None:
        beta = float(theoretical_beta(divergence, model.feature_dim, model.horizon, K, lam,
                                      delta))
    else:
        beta = check_scalar(beta, "beta", low=0.0)
    gram = behaviour_gram(model, behaviour)
    eye = np.eye(model.feature_dim)
    lambda_inv = np.linalg.inv(K * gram + ridge * eye)
    star = robust_value_iteration(model, divergence=divergence, lam=lam)
    if kernels is None:
        kernels = [model.mu, worst_case_factors(model, star.V, divergence, lam)]
    covs = np.array([coverage(lambda_inv, model, star.policy, k) for k in kernels])
    xi = float(log_factor(model.feature_dim, model.horizon, K, delta))
    return BoundResult(bound=float(2.0 * beta * covs.max()), beta=float(beta), coverages=covs,
                       log_factor=xi)


def informative_size(model: LinearMDP, divergence: str, lam: float, *,
                     threshold: float | None = None, ridge: float = 0.1, behaviour=None,
                     delta: float = 0.05, max_size: int = 10**18) -> int | None:
    """The smallest ``K`` at which :func:`population_bound` with the theorems' ``beta`` drops
    below ``threshold`` (default the trivial bound ``H``: no suboptimality exceeds it), or None
    if it does not happen by ``max_size``.

    The bound is ``~ sqrt(log K / K)`` for large ``K``; the search doubles ``K`` until the bound
    is below ``threshold`` and then bisects between the last two sizes (the crossing found is
    the first one when the bound decreases in ``K`` from there on, as it does beyond ``K ~ e``).
    """
    model = _check_model(model)
    threshold = float(model.horizon) if threshold is None else check_scalar(
        threshold, "threshold", low=0.0, low_inclusive=False)
    max_size = check_int(max_size, "max_size", low=1)
    star = robust_value_iteration(model, divergence=divergence, lam=lam)
    kernels = [model.mu, worst_case_factors(model, star.V, divergence, lam)]

    def below(k: int) -> bool:
        return population_bound(model, divergence, lam, k, ridge=ridge, behaviour=behaviour,
                                delta=delta, kernels=kernels).bound < threshold

    if below(1):
        return 1
    lo, hi = 1, 2
    while not below(hi):
        if hi >= max_size:
            return None
        lo, hi = hi, min(2 * hi, max_size)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if below(mid) else (mid, hi)
    return hi


def poor_coverage_instance(goal_probability: float = 0.3, risky_probability: float = 0.0015
                           ) -> tuple[LinearMDP, np.ndarray]:
    """A two-step d-rectangular linear MDP where pessimism is needed, and its behaviour policy.

    States ``x1`` (start), ``mid``, ``goal``, ``fail``; two actions at ``x1``: *safe* goes to
    ``mid`` (reward 0.5 at step 2), *risky* to ``goal`` (reward 1) with probability
    ``goal_probability`` and to ``fail`` (reward 0) otherwise, so with ``goal_probability <
    0.5`` safe is optimal (nominal values 0.5 and ``goal_probability``; the same under TV
    regularisation with ``lam >= 1``). ``d = 5`` one-hot-like features: ``e0`` safe, ``e1`` risky,
    ``e2`` fail, ``e3`` goal, ``e4`` mid, rewards ``theta_2 = e3 + 0.5 e4``. The behaviour plays
    risky with probability ``risky_probability``: with a few risky samples an unpessimistic
    estimate of its value is often above 0.5 (one lucky sample gives ``1 / (1 + ridge)``), so an
    agent with ``beta = 0`` picks it with positive probability, while the penalty
    ``beta sqrt([Lambda^-1]_11)`` of a poorly covered direction keeps a pessimistic agent safe.

    Returns ``(model, behaviour)`` with ``behaviour`` an ``(H, S, A) = (2, 4, 2)`` table.
    """
    q = check_scalar(goal_probability, "goal_probability", low=0.0, high=0.5,
                     high_inclusive=False)
    p = check_scalar(risky_probability, "risky_probability", low=0.0, high=1.0,
                     low_inclusive=False, high_inclusive=False)
    X1, MID, GOAL, FAIL = range(4)
    S, A, d, H = 4, 2, 5, 2
    phi = np.zeros((S, A, d))
    phi[X1, 0, 0] = phi[X1, 1, 1] = 1.0
    phi[MID, :, 4] = phi[GOAL, :, 3] = phi[FAIL, :, 2] = 1.0
    mu = np.zeros((H, d, S))
    for h in range(H):
        mu[h, 0, MID] = 1.0
        mu[h, 1, GOAL], mu[h, 1, FAIL] = q, 1.0 - q
        mu[h, 2, FAIL] = 1.0
        mu[h, 3, GOAL] = 1.0
        mu[h, 4, MID] = 1.0
    theta = np.zeros((H, d))
    theta[1, 3], theta[1, 4] = 1.0, 0.5
    init = np.array([1.0, 0.0, 0.0, 0.0])
    behaviour = np.full((H, S, A), 0.5)
    behaviour[0, X1] = [1.0 - p, p]
    return LinearMDP(phi, mu, theta, init), behaviour


#: instances of ``robustrl verify-bounds r2pvi``: name -> () -> (model, behaviour table or None)
INSTANCES = {
    "simulated": None,  # the R2PVI paper's simulated MDP, uniform behaviour
    "poor-coverage": poor_coverage_instance,
}


def rate_contradicts(fit: LogLogFit, exponent: float = -0.5) -> bool:
    """Whether a log-log fit contradicts an *upper* bound ``O~(K^exponent)``: its confidence
    interval lies entirely above ``exponent`` (the suboptimality decays more slowly than the
    bound allows). A slope below ``exponent`` (faster decay) or an undefined fit (NaN: the
    suboptimality is 0 at almost every size, which any rate allows) does not."""
    return bool(np.isfinite(fit.low) and fit.low > exponent)


# --------------------------------------------------------------------------------------------
# `robustrl verify-bounds r2pvi`: empirical suboptimality against K


@dataclass(frozen=True)
class SuboptimalityCurve:
    """Exact suboptimality of R2PVI over seeds and dataset sizes, with the bound per cell.

    Attributes:
        n_trajectories: ``(n,)`` dataset sizes K.
        suboptimality: ``(n_seeds, n)`` exact ``V*_lam - V^{pi_hat}_lam``.
        bound: ``(n_seeds, n)`` :func:`instance_dependent_bound` (theoretical beta unless
            ``bound_beta`` was given) times ``bound_scale``.
        practical_bound: ``(n_seeds, n)`` the same surrogate with the agent's own beta.
        coverage: ``(n_seeds, n)`` the surrogate's ``max_P sum_h E^{pi*, P}[sum_i phi_i
            sqrt([Lambda_h^{-1}]_ii)]`` of each fit (the bound is ``2 beta`` times it).
    """

    n_trajectories: np.ndarray
    suboptimality: np.ndarray
    bound: np.ndarray
    practical_bound: np.ndarray
    coverage: np.ndarray | None = None


def make_instance(instance: str = "simulated"):
    """``(env, behaviour)`` of a named instance (:data:`INSTANCES`): the environment that
    samples the model exactly and the behaviour table for
    :meth:`robustrl.data.OfflineDataset.collect` (None: uniform)."""
    from robustrl.envs import LinearMDPEnv, SimulatedLinearMDPEnv

    if instance not in INSTANCES:
        raise ValueError(f"instance must be one of {', '.join(INSTANCES)}; got {instance!r}")
    if instance == "simulated":
        return SimulatedLinearMDPEnv(), None
    model, behaviour = INSTANCES[instance]()
    return LinearMDPEnv(model), behaviour


def suboptimality_curve(divergence: str = "chi2", lam: float = 0.1, n_trajectories=(20, 50,
                        100, 200, 500), n_seeds: int = 30, *, beta: float = 1.0,
                        ridge: float = 0.1, bound_beta: float | None = None,
                        bound_scale: float = 1.0, delta: float = 0.05, seed: int = 0,
                        instance: str = "simulated",
                        progress: bool = False) -> SuboptimalityCurve:
    """Fit R2PVI on ``n_seeds`` behaviour datasets of each size K from an instance
    (:func:`make_instance`; default the simulated linear MDP of arXiv:2411.18612 with uniform
    behaviour, docs/r2pvi-results.md) and compute its exact suboptimality and the bound
    surrogate.

    Seed ``s`` at size K uses the dataset seed ``(seed, s, K)`` so that sizes are independent.
    """
    from tqdm.auto import tqdm

    from robustrl.agents import R2PVI
    from robustrl.data import OfflineDataset

    div = check_divergence(divergence)
    lam = check_positive(lam, "lam")
    Ks = _check_k(np.asarray(n_trajectories))
    if Ks.ndim != 1 or np.any(np.diff(Ks) <= 0):
        raise ValueError(f"n_trajectories must be strictly increasing; got {n_trajectories!r}")
    n_seeds = check_int(n_seeds, "n_seeds", low=1)
    bound_scale = check_scalar(bound_scale, "bound_scale", low=0.0, low_inclusive=False)
    env, behaviour = make_instance(instance)
    model = env.model
    shape = (n_seeds, Ks.size)
    sub, bnd, prac, cov = (np.zeros(shape) for _ in range(4))
    cells = [(s, j) for j in range(Ks.size) for s in range(n_seeds)]
    for s, j in tqdm(cells, disable=not progress, desc="verify-bounds r2pvi", unit="fit"):
        K = int(Ks[j])
        data_seed = int(np.random.SeedSequence([seed, s, K]).generate_state(1)[0])
        data = OfflineDataset.collect(env, K, behaviour, seed=data_seed)
        agent = R2PVI(env, divergence=div, lam=lam, beta=beta, ridge=ridge,
                      reward="known").fit(data)
        sub[s, j] = suboptimality(agent, model, div, lam)
        res = instance_dependent_bound(agent, model, div, lam, beta=bound_beta, delta=delta,
                                       n_trajectories=K)
        bnd[s, j] = bound_scale * res.bound
        cov[s, j] = float(res.coverages.max())
        prac[s, j] = bound_scale * 2.0 * agent.beta * cov[s, j]
    return SuboptimalityCurve(Ks.astype(np.int64), sub, bnd, prac, cov)


@dataclass(frozen=True)
class LogLogFit:
    """``log mean_s subopt(K) = intercept + slope log K`` over the sizes with positive mean,
    with a seed-bootstrap percentile interval for the slope."""

    slope: float
    low: float
    high: float
    intercept: float
    used: np.ndarray  # bool (n,): sizes whose mean suboptimality is > 0


def fit_mean_loglog(n_trajectories, values, *, confidence: float = 0.95, n_boot: int = 2000,
                    seed: int = 0) -> LogLogFit:
    """Least-squares slope of ``log mean(values)`` against ``log K`` (``values (n_seeds, n)``),
    over the sizes whose mean is > 0 (a greedy policy is often exactly optimal, so single
    seeds are 0 and cannot be fitted on a log scale). The interval resamples seeds; NaN
    when fewer than two sizes are usable."""
    K = np.asarray(n_trajectories, dtype=np.float64)
    V = check_array(values, "values", ndim=2, low=0.0)
    confidence = check_scalar(confidence, "confidence", low=0.0, high=1.0,
                              low_inclusive=False, high_inclusive=False)

    def fit(mean):
        ok = mean > 0.0
        if ok.sum() < 2:
            return float("nan"), float("nan"), ok
        b, a = np.polyfit(np.log(K[ok]), np.log(mean[ok]), 1)
        return float(b), float(a), ok

    slope, intercept, used = fit(V.mean(axis=0))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot if np.isfinite(slope) else 0):
        b, _, _ = fit(V[rng.integers(0, V.shape[0], V.shape[0])].mean(axis=0))
        if np.isfinite(b):
            boots.append(b)
    if boots:
        low, high = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    else:
        low = high = float("nan")
    return LogLogFit(slope, float(low), float(high), intercept, used)
