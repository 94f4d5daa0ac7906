"""``NUMBA_DISABLE_JIT=1`` (Numba's debugging switch: every kernel runs as Python): the same
fits as the compiled kernels. Under it a kernel's LAPACK call would do nothing (a Numba
``ExternalFunction`` called from Python only builds a signature), so the offline pass would
return garbage without an error; robustrl._kernels.lapack swaps in the routines' NumPy/SciPy
twins (robustrl.reference.offline_pass), and the kernels' registry of ahead-of-time code stands
aside."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

_FIT = r"""
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from robustrl.agents import DRPVI, DRRPO, DRVI_L, PEVI, R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import AmericanPutEnv, SimulatedLinearMDPEnv

def fits():
    put = AmericanPutEnv(feature_dim=8, horizon=5)
    put.reset(seed=3)
    put_data = OfflineDataset.collect(put, 12, behaviour_policy=lambda obs: 0, seed=3)
    sim = SimulatedLinearMDPEnv()
    sim_data = OfflineDataset.collect(sim, 15, seed=4)
    out = {}
    for name, env, data in (("put", put, put_data), ("sim", sim, sim_data)):
        agents = {"PEVI": PEVI(env), "DRPVI": DRPVI(env, rho=0.1), "DRVI-L": DRVI_L(env, rho=0.1)}
        for div in ("tv", "kl", "chi2"):
            agents["R2PVI-" + div] = R2PVI(env, divergence=div, lam=0.1)
        for method, agent in agents.items():
            agent.fit(data)
            out[name + " " + method] = agent.weights_.tolist()
    for div in ("tv", "kl"):  # the online agents' kernels (no LAPACK inside)
        agent = DRRPO(sim, divergence=div, seed=0)
        agent.learn(total_episodes=3)
        out["sim DRRPO-" + div] = agent.weights_.tolist()
    return out

if __name__ == "__main__":
    json.dump(fits(), sys.stdout)
"""


def _fits(disable_jit: bool) -> dict:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1" if disable_jit else "0"}
    done = subprocess.run([sys.executable, "-c", _FIT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_fits_without_the_jit_equal_the_kernels():
    plain = _fits(disable_jit=True)
    compiled = _fits(disable_jit=False)
    assert plain.keys() == compiled.keys() and len(plain) == 14
    for key in compiled:
        np.testing.assert_allclose(plain[key], compiled[key], rtol=1e-12, atol=1e-12,
                                   err_msg=key)
