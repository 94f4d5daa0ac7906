"""robustrl: offline, online and hybrid robust reinforcement learning.

The core package holds the linear-MDP primitives (Numba kernels behind a validating dispatch
layer, each with a NumPy reference in :mod:`robustrl.reference`), the exact robust dynamic
programming solver used as ground truth, offline datasets and policy evaluation.
Environments, agents and theory live in :mod:`robustrl.envs`, :mod:`robustrl.agents` and
:mod:`robustrl.theory`.
"""

__version__ = "0.2.0"

from robustrl.evaluation import compare, evaluate, evaluate_exact  # noqa: E402
from robustrl.models import FiniteMDP, LinearMDP  # noqa: E402

__all__ = ["FiniteMDP", "LinearMDP", "__version__", "compare", "evaluate", "evaluate_exact"]
