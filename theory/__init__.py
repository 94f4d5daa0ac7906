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

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as static tools (type checkers, the API docs) see them
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

# Names load on first use (PEP 562), so that importing one module (robustrl.theory.r2pvi for a
# greedy policy) does not import SciPy's statistics and optimisers for the others.
_SUBMODULES = ("coverability", "drrpo", "glow", "r2pvi")
_MODULE_OF = {
    "coverability_coefficient": "coverability", "coverability_coefficient_lp": "coverability",
    "max_occupancy": "coverability", "max_occupancy_lp": "coverability",
    "check_regret": "drrpo", "fit_loglog_slope": "drrpo", "regret_bound": "drrpo",
    "glow_regret_bound": "glow", "glow_sample_complexity": "glow", "h2o_risk_bound": "glow",
    "hyglow_sample_complexity": "glow", "paper_schedule": "glow",
    "instance_dependent_bound": "r2pvi", "instance_independent_rate": "r2pvi",
    "suboptimality": "r2pvi", "theoretical_beta": "r2pvi",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
