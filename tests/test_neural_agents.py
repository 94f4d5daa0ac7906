"""NeuralR2PVI / NeuralFQI: agreement with the linear agents, validation, persistence,
seeding. Everything runs on CPU with one thread."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from robustrl.agents import PEVI, R2PVI  # noqa: E402
from robustrl.agents.neural.fqi import NeuralFQI  # noqa: E402
from robustrl.agents.neural.r2pvi import NeuralR2PVI  # noqa: E402
from robustrl.data import OfflineDataset  # noqa: E402
from robustrl.envs import LayeredTabularMDPEnv, SimulatedLinearMDPEnv  # noqa: E402

torch.set_num_threads(1)
SMALL = {"ensemble_size": 3, "hidden": (64, 64), "gradient_steps": 400, "batch_size": 512}


@pytest.fixture(scope="module")
def tabular():
    """A layered tabular MDP is a linear MDP with one-hot features phi(s, a) = e_{sA+a}: there
    the per-(s, a) neural dual and the per-factor linear dual are the same quantity."""
    env = LayeredTabularMDPEnv(horizon=4, n_states=5, n_actions=3, seed=1)
    return env, OfflineDataset.collect(env, 300, seed=0)


def _agreement(env, ds, lin, neural) -> tuple[float, float]:
    """Greedy-action agreement and mean |Q_lin - Q_neural| over the (h, s) pairs in the data."""
    same, errs = [], []
    for h in range(env.horizon):
        for s in np.unique(ds.observations[ds.valid[:, h], h, 0]):
            obs = np.array([int(s), h])
            ql, qn = lin.q_values(obs), neural.q_values(obs)
            same.append(np.argmax(ql) == np.argmax(qn))
            errs.append(np.abs(ql - qn).mean())
    return float(np.mean(same)), float(np.mean(errs))


@pytest.mark.parametrize("divergence", ["tv", "kl", "chi2"])
def test_neural_r2pvi_policy_matches_linear_r2pvi(tabular, divergence):
    """Measured: agreement 16/16 (h, s) pairs for each divergence (seeds 0, 1), mean |dQ| 2e-4
    (TV), 5e-5 (KL), 6e-3 (chi2); assert >= 0.9 and < 0.02."""
    env, ds = tabular
    lin = R2PVI(env, divergence=divergence, lam=0.3, beta=0.0, ridge=1e-3).fit(ds)
    neural = NeuralR2PVI(env, divergence=divergence, lam=0.3, input="features",
                         horizon=env.horizon, beta=0.0, seed=0, **SMALL).fit(ds)
    rate, err = _agreement(env, ds, lin, neural)
    assert rate >= 0.9, f"agreement {rate:.3f}"
    assert err < 0.02, f"mean |Q| error {err:.4f}"


def test_neural_fqi_matches_pevi_without_pessimism(tabular):
    env, ds = tabular
    lin = PEVI(env, beta=0.0, ridge=1e-3).fit(ds)
    neural = NeuralFQI(env, input="features", horizon=env.horizon, beta=0.0, seed=0,
                       **SMALL).fit(ds)
    rate, err = _agreement(env, ds, lin, neural)
    assert rate >= 0.9, f"agreement {rate:.3f}"
    assert err < 0.02, f"mean |Q| error {err:.4f}"


def test_robust_values_are_below_nominal_ones(tabular):
    """Smaller lam is more pessimistic about the transitions: V_robust <= V_FQI (same nets)."""
    env, ds = tabular
    quick = {**SMALL, "gradient_steps": 150}
    fqi = NeuralFQI(env, input="features", horizon=env.horizon, beta=0.0, seed=0,
                    **quick).fit(ds)
    rob = NeuralR2PVI(env, divergence="kl", lam=0.1, input="features", horizon=env.horizon,
                      beta=0.0, seed=0, **quick).fit(ds)
    obs = np.array([int(ds.observations[0, 0, 0]), 0])
    assert rob.q_values(obs).max() < fqi.q_values(obs).max() - 0.05


def test_ensemble_pessimism_lowers_q(tabular):
    env, ds = tabular
    kw = dict(divergence="tv", lam=0.3, input="features", horizon=env.horizon, seed=0,
              **{**SMALL, "gradient_steps": 150})
    plain = NeuralR2PVI(env, beta=0.0, **kw).fit(ds)
    pess = NeuralR2PVI(env, beta=2.0, **kw).fit(ds)
    obs = np.array([0, 0])
    assert np.all(pess.q_values(obs) <= plain.q_values(obs) + 1e-6)


def test_bootstrap_members_disagree_more(tabular):
    """Per-member Poisson bootstrap weights make the ensemble's spread larger (measured mean
    member std of Q at step 0: 0.040 without, 0.044 with; a no-op bootstrap would give the
    identical networks, hence the same number)."""
    env, ds = tabular
    kw = dict(divergence="tv", lam=0.3, input="features", horizon=env.horizon, beta=0.0,
              seed=0, **{**SMALL, "gradient_steps": 150})
    spread = {}
    for boot in (False, True):
        agent = NeuralR2PVI(env, bootstrap=boot, **kw).fit(ds)
        phi = torch.as_tensor(ds.next_action_features[:, 0], dtype=torch.float32)
        with torch.no_grad():
            q = agent._member_q(agent._heads[0], phi)
        spread[boot] = float(q.std(dim=0).mean())
    assert spread[True] > spread[False] + 1e-3, spread


# ------------------------------------------------------------- observation input, discounted
@pytest.fixture(scope="module")
def simulated():
    env = SimulatedLinearMDPEnv()
    return env, OfflineDataset.collect(env, 50, seed=0)


def _obs_agent(cls=NeuralR2PVI, **kw):
    base = dict(input="observation", horizon=None, gamma=0.9, ensemble_size=2, hidden=(16,),
                n_iterations=3, gradient_steps=20, batch_size=32, seed=3)
    base.update(kw)
    return cls(**base)


@pytest.mark.parametrize("divergence", ["tv", "kl", "chi2"])
def test_discounted_observation_agent_predicts(simulated, divergence):
    env, ds = simulated
    agent = _obs_agent(divergence=divergence, lam=0.2).fit(ds)
    obs = ds.observations[:4, 0]
    q = agent.q_values(obs)
    assert q.shape == (4, env.action_space.n)
    np.testing.assert_allclose(agent.q_values(obs[1]), q[1], rtol=1e-6)
    actions, state = agent.predict(obs)
    assert actions.shape == (4,) and state is None
    a, _ = agent.predict(obs[0])
    assert isinstance(a, int) and a == actions[0]


def test_save_load_round_trip(simulated, tabular, tmp_path):
    env, ds = simulated
    agent = _obs_agent(divergence="chi2", lam=0.2).fit(ds)
    path = agent.save(tmp_path / "agent.pt")
    back = NeuralR2PVI.load(path, device="cpu")
    obs = ds.observations[:5, 0]
    np.testing.assert_array_equal(back.q_values(obs), agent.q_values(obs))
    tenv, tds = tabular
    fin = NeuralFQI(tenv, input="features", horizon=tenv.horizon, seed=1, ensemble_size=2,
                    hidden=(8,), gradient_steps=10).fit(tds)
    back = NeuralFQI.load(fin.save(tmp_path / "fqi.pt"), device="cpu", env=tenv)
    for h in range(tenv.horizon):
        np.testing.assert_array_equal(back.q_values([1, h]), fin.q_values([1, h]))
    with pytest.raises(ValueError, match="NeuralFQI"):
        NeuralR2PVI.load(tmp_path / "fqi.pt")


def test_same_seed_same_numbers(simulated):
    env, ds = simulated
    obs = ds.observations[:5, 0]
    a = _obs_agent(divergence="kl", lam=0.2, seed=7).fit(ds).q_values(obs)
    b = _obs_agent(divergence="kl", lam=0.2, seed=7).fit(ds).q_values(obs)
    c = _obs_agent(divergence="kl", lam=0.2, seed=8).fit(ds).q_values(obs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_steps_after_every_episode_ended_have_zero_value(simulated, tmp_path):
    """A finite-horizon dataset whose episodes all stop early: the unreached steps get Q = 0
    (as the linear agents' empty regressions), and the agent still saves and loads."""
    _, ds = simulated
    arrays = {k: getattr(ds, k).copy() for k in (
        "observations", "actions", "rewards", "next_observations", "features",
        "next_action_features", "valid", "terminal")}
    arrays["valid"][:, 2] = False
    arrays["features"][:, 2] = 0.0
    arrays["terminal"][:, 2] = False
    arrays["terminal"][:, 1] = True
    short = OfflineDataset(**arrays)
    agent = NeuralR2PVI(divergence="tv", lam=0.2, input="observation", horizon=3,
                        ensemble_size=2, hidden=(8,), gradient_steps=5, seed=0)
    agent.fit(short)
    np.testing.assert_array_equal(agent.q_values([2, 2]), np.zeros(16))
    assert agent.q_values([0, 0]).shape == (16,)
    back = NeuralR2PVI.load(agent.save(tmp_path / "short.pt"), device="cpu")
    np.testing.assert_array_equal(back.q_values([0, 0]), agent.q_values([0, 0]))


# ------------------------------------------------------------------------- bad input
def test_bad_arguments_raise_naming_them(simulated, tabular):
    env, ds = simulated
    with pytest.raises(ValueError, match="divergence"):
        NeuralR2PVI(divergence="hellinger", lam=0.1)
    for lam in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="lam"):
            NeuralR2PVI(divergence="kl", lam=lam)
    with pytest.raises(ValueError, match="input"):
        NeuralR2PVI(divergence="kl", lam=0.1, input="pixels")
    with pytest.raises(ValueError, match="beta"):
        NeuralR2PVI(divergence="kl", lam=0.1, beta=-1.0)
    with pytest.raises(ValueError, match="device"):
        NeuralR2PVI(divergence="kl", lam=0.1, device="tpu")
    with pytest.raises(ValueError, match="gamma"):
        NeuralR2PVI(divergence="kl", lam=0.1, gamma=1.0)
    with pytest.raises(TypeError, match="lam"):  # NeuralFQI is not robust: no lam
        NeuralFQI(lam=0.1)
    with pytest.raises(ValueError, match="dataset"):
        NeuralR2PVI(divergence="kl", lam=0.1).fit({"not": "a dataset"})
    with pytest.raises(ValueError, match="horizon"):
        NeuralR2PVI(divergence="kl", lam=0.1, horizon=5).fit(ds)
    # feature-dimension mismatch: the tabular env has d = 15, the simulated data d = 4
    tenv, _ = tabular
    with pytest.raises(ValueError, match="feature_dim"):
        NeuralR2PVI(tenv, divergence="kl", lam=0.1, input="features", horizon=3).fit(ds)
    agent = _obs_agent(cls=NeuralFQI).fit(ds)
    with pytest.raises(ValueError, match="obs"):
        agent.q_values(np.zeros(7))
    feat = NeuralFQI(env, input="features", horizon=3, ensemble_size=1, hidden=(4,),
                     gradient_steps=2, seed=0).fit(ds)
    with pytest.raises(ValueError, match="features"):
        feat.q_values_from_features(np.zeros((16, 5)), step=0)
    with pytest.raises(ValueError, match="step"):
        feat.q_values_from_features(np.zeros((16, 4)), step=3)


def test_empty_dataset_raises(simulated):
    _, ds = simulated
    empty = OfflineDataset(**{k: getattr(ds, k).copy() for k in (
        "observations", "actions", "rewards", "next_observations", "features",
        "next_action_features", "valid", "terminal")})
    empty.valid[:] = False  # bypasses the constructor's own check on purpose
    empty.terminal[:] = False
    with pytest.raises(ValueError, match="dataset"):
        NeuralR2PVI(divergence="kl", lam=0.1).fit(empty)


def test_unfitted_agent_refuses_to_act():
    from robustrl.agents import NotFittedError

    with pytest.raises(NotFittedError):
        NeuralR2PVI(divergence="kl", lam=0.1).predict(np.zeros(2))


# ------------------------------------------------------------------------- NeuralDRRPO
def _tabular_env():
    return LayeredTabularMDPEnv(horizon=3, n_states=3, n_actions=2, seed=0)


def _drrpo(venv, **kw):
    from robustrl.agents.neural.drrpo import NeuralDRRPO

    base = dict(divergence="kl", lam=1.0, gamma=0.99, hidden=(32, 32), ensemble_size=3,
                learning_starts=200, batch_size=64, target_update_interval=50, lr=3e-3,
                n_alpha=8, tau=0.01, eta=5.0, seed=0)
    base.update(kw)
    return NeuralDRRPO(venv, **base)


def _exact_value(model, table) -> float:
    """Nominal value of the deterministic step-indexed policy ``table[h, s]``."""
    v = np.zeros(model.n_states)
    for h in range(model.horizon - 1, -1, -1):
        s = np.arange(model.n_states)
        v = model.R[h, s, table[h]] + model.P[h, s, table[h]] @ v
    return float(model.initial_distribution @ v)


def test_neural_drrpo_learns_the_optimal_policy_of_a_small_mdp():
    """Measured (seed 0, 3000 transitions in 4 sync envs): the greedy actor's exact value
    equals the optimal 2.424 (uniform policy: 1.71)."""
    import gymnasium as gym

    env = _tabular_env()
    venv = gym.vector.SyncVectorEnv([_tabular_env for _ in range(4)])
    agent = _drrpo(venv).learn(3000)
    assert agent.num_timesteps >= 3000
    model = env.model
    table = np.array([[agent.predict(np.array([s, h]))[0] for s in range(model.n_states)]
                      for h in range(model.horizon)])
    v = np.zeros(model.n_states)
    for h in range(model.horizon - 1, -1, -1):
        v = (model.R[h] + model.P[h] @ v).max(axis=1)
    optimal = float(model.initial_distribution @ v)
    assert _exact_value(model, table) >= optimal - 1e-9
    probs = agent.action_probabilities(np.array([[0, 0], [1, 1]]))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0)


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_neural_drrpo_vector_env_bookkeeping(mode, tmp_path):
    """Autoreset steps are not stored (NEXT_STEP) / final observations are used (SAME_STEP):
    every stored transition is a real one, so the buffer holds exactly num_timesteps."""
    import gymnasium as gym

    from robustrl.agents.neural.drrpo import NeuralDRRPO

    venv = gym.vector.SyncVectorEnv([_tabular_env for _ in range(3)],
                                    autoreset_mode=gym.vector.AutoresetMode(mode))
    agent = _drrpo(venv, learning_starts=30, target_update_interval=5).learn(90)
    assert len(agent._buffer) == agent.num_timesteps >= 90
    # a transition from the last step (h = 2) never leads to a step-0 observation
    last = agent._buffer.obs[: len(agent._buffer), 1] == 2
    assert bool(agent._buffer.terminal[: len(agent._buffer)][last].all())
    obs = np.array([[0, 0], [2, 1]])
    back = NeuralDRRPO.load(agent.save(tmp_path / "drrpo.pt"), device="cpu")
    np.testing.assert_array_equal(back.q_values(obs), agent.q_values(obs))
    np.testing.assert_array_equal(back.action_probabilities(obs), agent.action_probabilities(obs))


def test_neural_drrpo_seeded_and_validated():
    import gymnasium as gym

    from robustrl.agents.neural.drrpo import NeuralDRRPO

    def run(seed):
        venv = gym.vector.SyncVectorEnv([_tabular_env for _ in range(2)])
        return _drrpo(venv, seed=seed, learning_starts=20,
                      target_update_interval=5).learn(60).q_values(np.array([0, 0]))

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))
    env = _tabular_env()
    with pytest.raises(ValueError, match="divergence"):
        NeuralDRRPO(env, divergence="js")
    with pytest.raises(ValueError, match="lam"):
        NeuralDRRPO(env, lam=0.0)
    with pytest.raises(ValueError, match="eta"):
        NeuralDRRPO(env, eta=0.0)
    with pytest.raises(ValueError, match="env"):
        NeuralDRRPO(object())
    with pytest.raises(ValueError, match="Discrete"):
        NeuralDRRPO(gym.make("Pendulum-v1"))


def test_docs_neural_page_python_blocks_run(tmp_path, monkeypatch):
    """Runs the ```python blocks of docs/algorithms/neural.md (tiny sizes)."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "algorithms" / "neural.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                        flags=re.DOTALL | re.MULTILINE)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(page), "exec"), {"__name__": "docs_block"})


def test_package_import_is_lazy():
    """``import robustrl.agents.neural`` alone does not import torch (names load on use)."""
    import subprocess
    import sys

    code = ("import sys, robustrl.agents, robustrl.agents.neural as n; "
            "assert 'torch' not in sys.modules; n.NeuralR2PVI; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
