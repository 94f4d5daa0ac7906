"""Theory: each bound stated as a function, and checks of empirical results against it.

* :mod:`robustrl.theory.r2pvi`: R2PVI's theoretical beta, instance-independent rates per
  divergence, the instance-dependent bound (computable surrogate) and exact suboptimality.
* :mod:`robustrl.theory.coverability`: the coverability coefficient of a finite MDP, exactly
  (cumulative-reachability identity) and by linear programs over occupancy measures.
* :mod:`robustrl.theory.drrpo`: the DR-RPO regret bound (reconstructed order), log-log slope fits
  over seeds and the regret check behind ``robustrl verify-bounds drrpo``.
* :mod:`robustrl.theory.glow`: GLOW's regret and sample complexity (Theorems 3.1/3.2 of
  arXiv:2401.09681), HyGLOW's (Theorem 4.1, Corollary 4.1), the H2O risk bound, Algorithm 1's
  schedule, and the regret check behind ``robustrl verify-bounds glow``.
"""

from robustrl.theory import coverability, drrpo, glow, r2pvi
from robustrl.theory.coverability import (
    coverability_coefficient,
    coverability_coefficient_lp,
    max_occupancy,
    max_occupancy_lp,
)
from robustrl.theory.drrpo import check_regret, fit_loglog_slope, regret_bound
from robustrl.theory.glow import (
    glow_regret_bound,
    glow_sample_complexity,
    h2o_risk_bound,
    hyglow_sample_complexity,
    paper_schedule,
)
from robustrl.theory.r2pvi import (
    instance_dependent_bound,
    instance_independent_rate,
    suboptimality,
    theoretical_beta,
)

__all__ = [
    "coverability",
    "coverability_coefficient",
    "coverability_coefficient_lp",
    "max_occupancy",
    "max_occupancy_lp",
    "check_regret",
    "drrpo",
    "fit_loglog_slope",
    "glow",
    "glow_regret_bound",
    "glow_sample_complexity",
    "h2o_risk_bound",
    "hyglow_sample_complexity",
    "paper_schedule",
    "instance_dependent_bound",
    "instance_independent_rate",
    "r2pvi",
    "regret_bound",
    "suboptimality",
    "theoretical_beta",
]
