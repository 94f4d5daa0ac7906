"""Bring your own environment: the feature protocol, the feature wrappers, and exactness of the
linear agents on a Gymnasium toy-text task (FrozenLake) against exact robust DP."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from robustrl.agents import PEVI, R2PVI
from robustrl.data import OfflineDataset
from robustrl.envs import (
    AmericanPutEnv,
    CombinationLockEnv,
    FeatureMap,
    LayeredTabularMDPEnv,
    OneHotFeatures,
    RandomLinearMDPEnv,
    RBFFeatures,
    SimulatedLinearMDPEnv,
    finite_mdp_from_toy_text,
)
from robustrl.exact import robust_value_iteration
from robustrl.models import LinearMDP
from robustrl.protocols import LinearFeatureEnv, feature_interface

H = 5
TINY_RIDGE = 1e-12


def frozen_lake() -> OneHotFeatures:
    return OneHotFeatures(gym.make("FrozenLake-v1", is_slippery=True), horizon=H)


def one_hot_linear(model) -> LinearMDP:
    Hm, S, A = model.P.shape[:3]
    return LinearMDP(np.eye(S * A).reshape(S, A, S * A), model.P.reshape(Hm, S * A, S),
                     model.R.reshape(Hm, S * A), model.initial_distribution)


def covering_dataset(env: OneHotFeatures) -> OfflineDataset:
    """Every (s, a) at every step once per outcome of FrozenLake's transition table (slippery
    moves have three outcomes of 1/3 each), terminal states as absorbing zero-reward rows: the
    empirical next-state frequencies and mean rewards equal the model's exactly."""
    table = env.unwrapped.P
    model = finite_mdp_from_toy_text(env, H)
    S, A = model.P.shape[1:3]
    terminal = [s for s in range(S) if np.all(model.P[0, s, :, s] == 1.0) and
                np.all(model.R[0, s] == 0.0) and any(
                    done for s0 in range(S) for a0 in range(A)
                    for _, nxt, _, done in table[s0][a0] if nxt == s)]
    rows = []
    for s in range(S):
        for a in range(A):
            if s in terminal:
                rows.append((s, a, s, 0.0))
            else:
                rows.extend((s, a, nxt, r) for _, nxt, r, _ in table[s][a])
    K, d = len(rows), S * A
    out = {
        "observations": np.zeros((K, H, 2)), "actions": np.zeros((K, H), dtype=np.int64),
        "rewards": np.zeros((K, H)), "next_observations": np.zeros((K, H, 2)),
        "features": np.zeros((K, H, d)), "next_action_features": np.zeros((K, H, A, d)),
        "valid": np.ones((K, H), dtype=bool), "terminal": np.zeros((K, H), dtype=bool),
    }
    for h in range(H):
        for k, (s, a, nxt, r) in enumerate(rows):
            obs, nobs = np.array([s, h]), np.array([nxt, h + 1])
            out["observations"][k, h], out["next_observations"][k, h] = obs, nobs
            out["actions"][k, h], out["rewards"][k, h] = a, r
            out["features"][k, h] = env.features(obs, a)
            out["next_action_features"][k, h] = env.action_features(nobs)
            out["terminal"][k, h] = h == H - 1
    return OfflineDataset(**out)


def q_table(agent, model) -> np.ndarray:
    S = model.P.shape[1]
    return np.stack([np.stack([agent.q_values(np.array([s, h])) for s in range(S)])
                     for h in range(H)])


@pytest.fixture(scope="module")
def lake():
    env = frozen_lake()
    model = one_hot_linear(finite_mdp_from_toy_text(env, H))
    return env, model, covering_dataset(env)


def test_frozen_lake_model_is_the_environment():
    """The model built from the table: holes and the goal absorb, the goal pays 1 on entry."""
    env = frozen_lake()
    model = finite_mdp_from_toy_text(env, H)
    np.testing.assert_allclose(model.P.sum(axis=-1), 1.0)
    assert model.P.shape == (H, 16, 4, 16)
    # from state 14 (left of the goal) moving right reaches the goal (15) w.p. 1/3, reward 1/3
    assert model.P[0, 14, 2, 15] == pytest.approx(1 / 3)
    assert model.R[0, 14, 2] == pytest.approx(1 / 3)
    assert model.P[0, 15, 0, 15] == 1.0 and model.R[0, 15].max() == 0.0  # goal absorbs
    assert model.P[0, 5, 1, 5] == 1.0  # a hole absorbs


@pytest.mark.parametrize("divergence,lam", [("tv", 0.1), ("kl", 0.3), ("chi2", 1.0)])
def test_r2pvi_on_frozen_lake_equals_exact_robust_dp(lake, divergence, lam):
    env, model, data = lake
    agent = R2PVI(env, divergence=divergence, lam=lam, ridge=TINY_RIDGE, beta=0.0).fit(data)
    want = robust_value_iteration(model, divergence=divergence, lam=lam).Q
    np.testing.assert_allclose(q_table(agent, model), want, rtol=0, atol=1e-9)
    # robustness is real here: the robust values lie below the nominal ones somewhere
    assert (robust_value_iteration(model).Q - want).max() > 1e-3


def test_pevi_on_frozen_lake_equals_exact_dp(lake):
    env, model, data = lake
    agent = PEVI(env, ridge=TINY_RIDGE, beta=0.0).fit(data)
    np.testing.assert_allclose(q_table(agent, model), robust_value_iteration(model).Q,
                               rtol=0, atol=1e-9)
    assert agent.predict(env.reset(seed=0)[0])[0] in range(4)


def test_a_gymnasium_wrapper_supplying_the_protocol_is_accepted(lake):
    """Members are found through wrappers: the protocol on OneHotFeatures, two wrappers out."""
    _, model, data = lake
    env = gym.wrappers.RecordEpisodeStatistics(frozen_lake())
    env = gym.wrappers.ClipReward(env, 0.0, 1.0)
    assert isinstance(env.unwrapped, gym.Env) and not hasattr(env.unwrapped, "horizon")
    iface = feature_interface(env)
    assert (iface.horizon, iface.feature_dim, iface.n_actions) == (H, 64, 4)
    agent = PEVI(env, ridge=TINY_RIDGE, beta=0.0).fit(data)
    np.testing.assert_allclose(q_table(agent, model), robust_value_iteration(model).Q,
                               rtol=0, atol=1e-9)
    ds = OfflineDataset.collect(env, 3, seed=0)
    assert ds.features.shape[-1] == 64 and ds.observations[0, 0, 1] == 0


def test_one_error_lists_every_missing_member():
    with pytest.raises(ValueError) as err:
        PEVI(gym.make("CartPole-v1"))
    msg = str(err.value)
    for member in ("`horizon`", "`feature_dim`", "`features`", "`action_features`"):
        assert member in msg
    assert "last entry is the 0-indexed step" in msg and "OneHotFeatures" in msg
    with pytest.raises(ValueError, match="Discrete `action_space`"):
        feature_interface(gym.make("Pendulum-v1"))


def test_protocol_is_runtime_checkable_on_robustrl_envs():
    from robustrl.envs import SimulatedLinearMDPEnv

    assert isinstance(SimulatedLinearMDPEnv(), LinearFeatureEnv)
    assert isinstance(frozen_lake(), LinearFeatureEnv)


def test_wrappers_append_the_step_and_truncate_at_the_horizon():
    env = frozen_lake()
    obs, _ = env.reset(seed=3)
    assert obs.tolist() == [0, 0] and env.observation_space.contains(obs)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(0)  # "left" from the corner: never a hole
        steps += 1
        assert obs[1] == steps
        done = terminated or truncated
    assert steps == H and truncated and not terminated


def test_rbf_features_are_a_soft_aggregation_of_the_state():
    lim = np.array([2.4, 3.0, 0.21, 3.5])
    env = RBFFeatures(gym.make("CartPole-v1"), horizon=10, n_centers=8, low=-lim, high=lim)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and obs[-1] == 0
    phi = env.action_features(obs)
    assert phi.shape == (2, 16)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0)
    assert phi.min() >= 0 and np.all(phi[0, 8:] == 0) and np.all(phi[1, :8] == 0)
    # a state far outside the box still gets a valid distribution (no underflow to 0/0)
    far = np.array([1e3, -1e3, 50.0, 0.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(env.action_features(far).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="low must be finite"):
        RBFFeatures(gym.make("CartPole-v1"), horizon=10)
    with pytest.raises(ValueError, match="Box"):
        RBFFeatures(gym.make("FrozenLake-v1"), horizon=10)
    with pytest.raises(ValueError, match="Discrete observation"):
        OneHotFeatures(gym.make("CartPole-v1"), horizon=10)


def test_feature_map_checks_the_user_function():
    good = FeatureMap(gym.make("FrozenLake-v1"), 4, lambda s, a: np.eye(4)[a] * (s + 1), 4)
    np.testing.assert_array_equal(good.features(np.array([2, 0]), 1), [0, 3, 0, 0])
    bad = FeatureMap(gym.make("FrozenLake-v1"), 4, lambda s, a: np.ones(3), 4)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        bad.action_features(np.array([0, 0]))
    with pytest.raises(ValueError, match="phi must be callable"):
        FeatureMap(gym.make("FrozenLake-v1"), 4, None, 4)


def test_sb3_one_liners_work_on_robustrl_envs():
    """SB3 asks for render_mode='rgb_array'; robustrl's envs warn and go on, as gymnasium's do."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    with pytest.warns(UserWarning, match="render_mode='rgb_array'"):
        model = PPO("MlpPolicy", "robustrl/SimulatedLinearMDP-v0", n_steps=16, batch_size=16)
    assert model.env.num_envs == 1
    vec = make_vec_env("robustrl/AmericanPut-v0", n_envs=2)
    assert vec.reset().shape[0] == 2
    with pytest.warns(UserWarning, match="render_mode='human'"):
        env = gym.make("robustrl/CombinationLock-v0", render_mode="human")
    assert env.unwrapped.render_mode is None


def test_collect_seeds_like_the_agents():
    """``seed=None`` (the default, as for the agents) gives fresh data; a seed repeats it."""
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv()
    a, b = OfflineDataset.collect(env, 10), OfflineDataset.collect(env, 10)
    assert not np.array_equal(a.actions, b.actions)
    c, d = OfflineDataset.collect(env, 10, seed=4), OfflineDataset.collect(env, 10, seed=4)
    np.testing.assert_array_equal(c.actions, d.actions)
    np.testing.assert_array_equal(c.next_observations, d.next_observations)


def _collected():
    from robustrl.envs import SimulatedLinearMDPEnv

    ds = OfflineDataset.collect(SimulatedLinearMDPEnv(), 3, seed=0)
    return {k: getattr(ds, k).copy() for k in ("observations", "actions", "rewards",
            "next_observations", "features", "next_action_features", "valid", "terminal")}


@pytest.mark.parametrize("change,match", [
    (lambda a: a.__setitem__("actions", a["actions"] + 0.9), "actions must hold whole numbers"),
    (lambda a: a.__setitem__("valid", a["valid"].astype(int) * 2), "valid must be boolean"),
    (lambda a: a.__setitem__("terminal", a["terminal"].astype(float) * 0.5),
     "terminal must be boolean"),
    (lambda a: a.__setitem__("rewards", a["rewards"].astype(str)), "rewards must be numeric"),
    (lambda a: a.__setitem__("rewards", a["rewards"] > 0), "rewards must be numeric, not bool"),
])
def test_dataset_refuses_silent_coercions(change, match):
    """Fractional actions were truncated (0.9 -> 0), any nonzero flag became True and strings
    were parsed; each now raises naming the array."""
    arrays = _collected()
    OfflineDataset(**arrays)  # the unchanged arrays are fine
    change(arrays)
    with pytest.raises(ValueError, match=match):
        OfflineDataset(**arrays)


def test_integral_floats_and_zero_one_flags_are_still_accepted():
    arrays = _collected()
    arrays["actions"] = arrays["actions"].astype(float)
    arrays["valid"] = arrays["valid"].astype(np.int8)
    ds = OfflineDataset(**arrays)
    assert ds.actions.dtype == np.int64 and ds.valid.dtype == bool


@pytest.mark.parametrize("bad", ["0.1", True, np.bool_(False), b"1"])
def test_hyperparameters_refuse_strings_and_booleans(bad):
    with pytest.raises(ValueError, match="lam must be a real number"):
        R2PVI(frozen_lake(), lam=bad)


def test_nominal_metric_is_the_environments_declared_nominal():
    """The put option's nominal up-probability is 0.5; a grid without it used to report the
    first grid point as 'nominal'."""
    from robustrl.evaluation import compare, evaluate, robustness_metrics

    def hold(obs):  # exercise once the price falls below 95 (the strike is 100)
        return int(obs[0] < 95.0)

    put = "robustrl/AmericanPut-v0"
    off = evaluate(hold, put, [0.3, 0.4], episodes=30, seed=2)
    assert off.info["nominal_perturbation"] == 0.5
    m = robustness_metrics(off)
    assert m["nominal"] == off.info["nominal_mean"] != off.mean[0]
    on = evaluate(hold, put, [0.3, 0.5, 0.4], episodes=30, seed=2)
    assert "nominal_mean" not in on.info
    assert robustness_metrics(on)["nominal"] == on.mean[1]
    # the extra nominal level draws its own seeds: the grid levels' numbers are unchanged
    np.testing.assert_array_equal(off.returns[0], on.returns[0])
    assert robustness_metrics(on, nominal=0.4)["nominal"] == on.mean[2]
    with pytest.raises(ValueError, match="nominal 0.7 is not a point"):
        robustness_metrics(on, nominal=0.7)
    table = compare({"hold": hold}, put, [0.3, 0.4], episodes=30, seed=2)
    assert table.metrics["hold"]["nominal"] == m["nominal"]


def test_rewards_outside_the_truncation_range_raise_naming_the_range():
    """CliffWalking's -1/-100 rewards used to give Q = 0 everywhere, silently."""
    env = OneHotFeatures(gym.make("CliffWalking-v1"), horizon=4)
    data = OfflineDataset.collect(env, 5, seed=0)
    with pytest.raises(ValueError, match=r"rewards lie in \[-100, -1\]|rewards lie in \[-1, -1\]"):
        PEVI(env).fit(data)
    tenfold = OfflineDataset(**{**_collected(), "rewards": _collected()["rewards"] * 10})
    from robustrl.envs import SimulatedLinearMDPEnv

    with pytest.raises(ValueError, match="max_reward=1"):
        R2PVI(SimulatedLinearMDPEnv()).fit(tenfold)
    with pytest.warns(RuntimeWarning, match="truncated at max_reward"):
        R2PVI(SimulatedLinearMDPEnv(), max_reward=1.0).fit(tenfold)
    R2PVI(SimulatedLinearMDPEnv(), max_reward=10.0).fit(tenfold)  # declared: fine


def test_rewards_are_estimated_by_default_so_the_data_matter():
    """reward='auto' used the simulated MDP's known weights: zeroing the data's rewards left
    R2PVI's Q unchanged."""
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv()
    data = OfflineDataset.collect(env, 200, seed=0)
    arrays = {k: getattr(data, k) for k in ("observations", "actions", "rewards",
              "next_observations", "features", "next_action_features", "valid", "terminal")}
    real = R2PVI(env, beta=0.1).fit(data)
    zero = R2PVI(env, beta=0.1).fit(
        OfflineDataset(**{**arrays, "rewards": np.zeros_like(arrays["rewards"])}))
    obs = np.array([0, 0])
    assert not np.allclose(real.q_values(obs), zero.q_values(obs))
    assert real.reward == "estimated"


# ------------------------------------------------------------------ CartPole through TileCoding

#: CartPole's termination limits for x and theta; ranges for the unbounded velocities
CARTPOLE_BOX = np.array([2.4, 3.0, 0.2095, 2.0])
CARTPOLE_H = 50


def tiled_cartpole(env: gym.Env | None = None):
    """CartPole with tile coding of (theta, theta_dot): 2 tilings of 6 x 6 tiles per action."""
    from robustrl.envs import TileCoding

    return TileCoding(gym.make("CartPole-v1") if env is None else env, horizon=CARTPOLE_H,
                      low=-CARTPOLE_BOX, high=CARTPOLE_BOX, n_tiles=[1, 1, 6, 6], n_tilings=2)


def test_tile_coding_tiles_by_hand():
    """One coordinate on [0, 1], 2 tiles, 2 tilings (offsets 0 and half a tile)."""
    from robustrl.envs import TileCoding

    env = TileCoding(gym.make("MountainCar-v0"), horizon=3, low=[0.0, -1.0], high=[1.0, 1.0],
                     n_tiles=[2, 1], n_tilings=2)
    assert env.feature_dim == 3 * 2 * 2  # A * n_tilings * tiles per tiling
    # u = 2 x; tiling 0: floor(u), tiling 1: floor(u + 0.5), both capped at the last tile
    for x, want in [(0.1, [0, 2]), (0.3, [0, 3]), (0.8, [1, 3]), (1.0, [1, 3])]:
        assert env.active_tiles(np.array([x, 0.5])).tolist() == want
    phi = env.action_features(np.array([0.3, 0.5, 1.0]))
    assert phi.shape == (3, 12) and np.all(phi >= 0)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0)
    assert np.flatnonzero(phi[2]).tolist() == [8, 11] and phi[2, 8] == 0.5


def test_tile_coding_warns_once_and_counts_states_outside_the_box():
    env = tiled_cartpole()
    inside = np.array([0.0, 0.0, 0.05, -0.5, 0.0])
    env.action_features(inside)
    assert env.n_out_of_box == 0
    with pytest.warns(RuntimeWarning, match=r"outside the box.*coordinates \[3\].*edge tiles"):
        edge = env.action_features(np.array([0.0, 0.0, 0.05, -9.0, 0.0]))
    np.testing.assert_array_equal(edge, env.action_features(np.array([0, 0, 0.05, -2.0, 0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.action_features(np.array([0.0, 0.0, 0.5, 0.0, 0.0]))  # counted, not warned again
    assert env.n_out_of_box == 2  # -9 and 0.5; -2.0 is on the box's edge
    with pytest.raises(ValueError, match="n_tiles must have one entry per state coordinate"):
        tiled = tiled_cartpole()
        type(tiled)(gym.make("CartPole-v1"), 5, -CARTPOLE_BOX, CARTPOLE_BOX, n_tiles=[2, 2])
    with pytest.raises(ValueError, match=r"n_tilings must lie in \[1, inf\)"):
        type(tiled)(gym.make("CartPole-v1"), 5, -CARTPOLE_BOX, CARTPOLE_BOX, n_tilings=0)
    with pytest.raises(ValueError, match="low must be finite"):
        type(tiled)(gym.make("CartPole-v1"), 5)



@pytest.mark.filterwarnings("ignore:TileCoding:RuntimeWarning")
def test_drrpo_learns_cartpole_with_tile_coding_and_is_evaluated_on_a_pole_length_grid():
    """DR-RPO on CartPole through TileCoding clearly beats the uniform-random policy at the
    nominal pole length (H = 50); the learned policy is then scored on a pole-length grid."""
    from robustrl.agents import DRRPO
    from robustrl.envs import env_factory
    from robustrl.evaluation import compare

    env = tiled_cartpole()
    agent = DRRPO(env, rho=0.1, tau=1.0, eta=5.0, beta=0.3, seed=0)
    agent.learn(total_episodes=400)
    # training itself improves: the last 50 episodes beat the first 50
    assert agent.episode_returns_[-50:].mean() > agent.episode_returns_[:50].mean() + 3

    factory = env_factory("CartPole-v1", "pole_length", wrapper=tiled_cartpole)
    rng = np.random.default_rng(0)
    grid = [0.5, 2.0, 3.0]  # the nominal 1.0 is missing: evaluate adds it
    table = compare({"drrpo": agent, "random": lambda obs: int(rng.integers(2))}, factory,
                    grid, episodes=30, seed=0)
    learned, rand = table.metrics["drrpo"]["nominal"], table.metrics["random"]["nominal"]
    assert learned > rand + 8, (learned, rand)  # measured: 44.9 vs 23.2 (max 50)
    rows = table.rows()
    assert len(rows) == 2 * len(grid)
    assert [r["perturbation"] for r in rows[:3]] == grid
    res = table.results["drrpo"]
    assert res.returns.shape == (3, 30) and res.info["nominal_perturbation"] == 1.0
    assert res.returns.max() <= CARTPOLE_H and table.metrics["drrpo"]["worst_case"] < learned


# ------------------------------------------------------------------ warnings and logging
def test_fit_warns_when_every_actions_q_ties_at_a_clip_bound():
    """R2PVI on the simulated MDP with K = 20 returned Q = 0 for all 16 actions, silently."""
    from robustrl.agents.base import TiedQWarning
    from robustrl.envs import SimulatedLinearMDPEnv

    env = SimulatedLinearMDPEnv()
    small = OfflineDataset.collect(env, 20, seed=0)
    with pytest.warns(TiedQWarning, match=r"every data state of steps \[0\].*Q = 0 for all 16"):
        agent = R2PVI(env).fit(small)
    assert np.all(agent.q_values(np.array([0, 0])) == 0.0)
    with warnings.catch_warnings():  # with 200 trajectories Q separates the actions: no warning
        warnings.simplefilter("error", TiedQWarning)
        agent = R2PVI(env).fit(OfflineDataset.collect(env, 200, seed=0))
    assert np.ptp(agent.q_values(np.array([0, 0]))) > 0.01


def test_runner_progress_goes_to_the_robustrl_logger(tmp_path, caplog):
    """Library code logs (logger ``robustrl.runner``) instead of printing (the CLI shows it on
    stderr: tests/test_runner.py reads it there)."""
    import logging

    from robustrl.runner import run_experiment

    with caplog.at_level(logging.INFO, logger="robustrl"):
        run_experiment("toy_sweep", tmp_path / "toy", seeds=1, workers=1, quiet=False)
    progress = [r for r in caplog.records if r.name == "robustrl.runner"]
    assert progress and progress[0].levelno == logging.INFO
    assert "toy_sweep: 6 cells" in progress[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="robustrl"):
        run_experiment("toy_sweep", tmp_path / "toy", seeds=1, workers=1, quiet=True)
    assert not [r for r in caplog.records if r.name == "robustrl.runner"]


# ------------------------------------------------------------- batch_action_features
def _obs_rows(env, n, rng):
    if isinstance(env, AmericanPutEnv):
        return np.column_stack([rng.uniform(60, 160, n), rng.integers(0, env.horizon, n)])
    return np.column_stack([rng.integers(0, env.n_states, n), rng.integers(0, env.horizon, n)])


@pytest.mark.parametrize("make", [
    lambda: SimulatedLinearMDPEnv(),
    lambda: RandomLinearMDPEnv(seed=2),
    lambda: LayeredTabularMDPEnv(horizon=3, n_states=4, n_actions=3, seed=1),
    lambda: CombinationLockEnv(horizon=4, n_states=3, n_actions=2, seed=0),
    lambda: AmericanPutEnv(feature_dim=12, horizon=6),
])
def test_batch_action_features_equal_one_call_per_observation(make):
    env = make()
    obs = _obs_rows(env, 25, np.random.default_rng(3)).astype(np.float64)
    batch = env.batch_action_features(obs)
    np.testing.assert_array_equal(batch, np.stack([env.action_features(o) for o in obs]))
    iface = feature_interface(env)
    assert iface.batch_action_features is not None
    with pytest.raises(ValueError, match=r"\(n, 2\)"):  # one observation is not a batch
        env.batch_action_features(obs[0])
    if not isinstance(env, AmericanPutEnv):
        with pytest.raises(ValueError, match="state"):
            env.batch_action_features(np.array([[env.n_states, 0.0]]))


def test_batch_action_features_only_with_the_features_they_batch():
    class OwnActionFeatures(SimulatedLinearMDPEnv):  # new features, the inherited batch
        def action_features(self, obs):
            return 2.0 * super().action_features(obs)

    assert feature_interface(OwnActionFeatures()).batch_action_features is None

    class Rescaled(gym.Wrapper):  # a wrapper that changes the features: no batch
        horizon, feature_dim = 3, 4

        def action_features(self, obs):
            return 2.0 * self.env.unwrapped.action_features(obs)

        def features(self, obs, a):
            return self.action_features(obs)[a]

    iface = feature_interface(Rescaled(SimulatedLinearMDPEnv()))
    assert iface.batch_action_features is None
    env = Rescaled(SimulatedLinearMDPEnv())
    agent = PEVI(env, beta=0.0)
    obs = np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(agent.batch_action_features(obs),
                                  2.0 * env.unwrapped.batch_action_features(obs))
