"""Time the R2PVI authors' American-put fits (github.com/panxulab/Robust-Regularized-Pessimistic-
Value-Iteration, ``American_put_opt``; a local copy, never vendored): run by
:func:`benchmarks.bench_fig1.run_put` in a subprocess with the interpreter given by
``--r2pvi-official-python``. Usage: ``python r2pvi_official_put.py PUT_DIR N1,N2 METHODS``;
prints one JSON object ``{method: {N: seconds}}`` on its last line.

The work is the authors' ``main.py`` per fit: their data collection (always hold, seed 0), then
``train_agent_once`` (the agent's constructor and ``update_Q``) with their put settings
(d = 30, H = 20, beta = 0.1, gamma = 1, rho = 0.025); only the fit is timed, once per size.
A fourth argument ``distinct`` collects the same always-hold data with a start price drawn
per trajectory (their ``reset`` keeps one), as the package's ``put-distinct`` data: every
next-state value distinct.
"""

from __future__ import annotations

import json
import sys
import time

#: the package's method names -> the authors' algorithm names
NAMES = {"PEVI": "PEVI", "R2PVI-TV": "R2PVI_TV", "R2PVI-KL": "R2PVI_KL",
         "R2PVI-chi2": "R2PVI_xi2", "DRPVI": "DRPVI", "DRVI-L": "DRVI_L"}


def main(put_dir: str, sizes: list[int], methods: list[str], distinct: bool = False) -> dict:
    sys.path.insert(0, put_dir)
    import algorithm
    import numpy as np
    from data_collection import Offline_Dataset_Collection
    from env import American_put_option
    from train_test import train_agent_once

    class FreshStartPrice(American_put_option):
        """The authors' put with their start-price draw at every reset."""

        def reset(self):
            # their draw, from NumPy's global generator that their collection seeds
            self.s0 = np.random.uniform(self.K - self.epsilon, self.K + self.epsilon, 1)  # noqa: NPY002
            super().reset()

    make = FreshStartPrice if distinct else American_put_option
    out: dict[str, dict[int, float]] = {}
    for n in sizes:
        data = Offline_Dataset_Collection(20, n, make(0.5, 30, seed=0))
        for method in methods:
            alg = getattr(algorithm, NAMES[method])
            start = time.perf_counter()
            train_agent_once(data, alg, 30, 20, 0.1, 1.0, 0.025)
            out.setdefault(method, {})[n] = time.perf_counter() - start
            print(f"official {method} N={n}: {out[method][n]:.3g} s", file=sys.stderr,
                  flush=True)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3].split(","),
                  distinct=sys.argv[4:] == ["distinct"])
    print(json.dumps(result))
