"""Theory: each bound stated as a function, and checks of empirical results against it.

* :mod:`robustrl.theory.r2pvi`: R2PVI's theoretical beta, instance-independent rates per
  divergence, the instance-dependent bound (computable surrogate) and exact suboptimality.
* :mod:`robustrl.theory.coverability`: the coverability coefficient of a finite MDP, exactly
  (cumulative-reachability identity) and by linear programs over occupancy measures.
* :mod:`robustrl.theory.drrpo`: the DR-RPO regret bound (reconstructed order), log-log slope fits
  over seeds and the regret check behind ``robustrl verify-bounds drrpo``.
"""

from robustrl.theory import coverability, drrpo, r2pvi
from robustrl.theory.coverability import (
    coverability_coefficient,
    coverability_coefficient_lp,
    max_occupancy,
    max_occupancy_lp,
)
from robustrl.theory.drrpo import check_regret, fit_loglog_slope, regret_bound
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
    "instance_dependent_bound",
    "instance_independent_rate",
    "r2pvi",
    "regret_bound",
    "suboptimality",
    "theoretical_beta",
]
