"""LevelReplayPPO checkpoints: a run killed after a checkpoint and resumed is bit-identical to
the uninterrupted run (parameters, optimizer, level buffer, statistics); the full agent saves and
loads; SB3 callbacks are accepted. Small sizes: a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from robustrl.agents.dred.training import LevelReplayPPO
from robustrl.envs.cave_levels import generate_level_set

torch.set_num_threads(1)
SMALL = dict(n_envs=4, n_steps=32, navigation_only=True, device="cpu", buffer_capacity=24)


@pytest.fixture(scope="module")
def train_levels():
    return generate_level_set("train", 8, seed=0)


def _generator(train_levels, seed=0):
    from robustrl.agents.dred.generator import LevelGenerator
    from robustrl.agents.dred.vae import LevelVAE

    torch.manual_seed(0)
    vae = LevelVAE(13, 8).eval()  # untrained: its decodes are valid levels all the same
    return LevelGenerator(vae, train_levels, n_pairs=2, per_pair=2, seed=seed)


def _agent(method, train_levels, **kw):
    gen = _generator(train_levels) if method == "dred" else None
    return LevelReplayPPO(method, train_levels, generator=gen, seed=3, **{**SMALL, **kw})


class _Killed(Exception):
    pass


def _kill_after(agent: LevelReplayPPO, n: int) -> None:
    """Make ``agent``'s training env die (an exception out of ``learn``) at its ``n``-th
    vector step, mid-phase."""
    venv, step = agent.venv, agent.venv.step
    calls = [0]

    def dying_step(actions):
        calls[0] += 1
        if calls[0] >= n:
            raise _Killed
        return step(actions)

    venv.step = dying_step


def _assert_same(a: LevelReplayPPO, b: LevelReplayPPO) -> None:
    sa, sb = a.model.policy.state_dict(), b.model.policy.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    oa, ob = a.model.policy.optimizer.state_dict(), b.model.policy.optimizer.state_dict()
    for k in oa["state"]:
        for name, t in oa["state"][k].items():
            assert torch.equal(t, ob["state"][k][name]), (k, name)
    assert a.grad_updates == b.grad_updates
    assert a.stats["phases"] == b.stats["phases"] and a.stats["env_steps"] == b.stats["env_steps"]
    if a.buffer is not None:
        (xa, pa), (xb, pb) = a.buffer.get_state(), b.buffer.get_state()
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
        assert pa == pb


# phases up to update 2: 2 unseen (8 levels / 4 envs, buffer methods seeded with them) and
# 2 x (replay [+ generated/edited]), or 2 plain phases (uniform; 2 envs for the slower LSTM)
@pytest.mark.parametrize(("method", "vec_env", "policy", "phases"), [
    ("dred", "batched", "mlp", 6), ("plr", "batched", "mlp", 4), ("accel_d", "batched", "mlp", 6),
    ("plr", "dummy", "mlp", 4), ("uniform", "batched", "lstm", 2)])
def test_killed_and_resumed_run_equals_uninterrupted(train_levels, tmp_path, method, vec_env,
                                                     policy, phases):
    kw = dict(vec_env=vec_env, policy=policy, n_envs=2 if policy == "lstm" else 4)
    full = _agent(method, train_levels, **kw).learn(total_updates=5)
    killed = _agent(method, train_levels, **kw)
    kill_at = phases * 32 + 20  # 20 steps into the phase of update 3
    _kill_after(killed, kill_at)
    with pytest.raises(_Killed):
        killed.learn(total_updates=5, checkpoint_dir=tmp_path, checkpoint_every=2)
    assert killed.grad_updates == 2  # the update of the cut phase was never made
    resumed = _agent(method, train_levels, **kw)
    resumed.learn(total_updates=5, checkpoint_dir=tmp_path)  # picks up checkpoint.pt
    assert resumed.resumed_at == 2 and resumed.grad_updates == 5
    _assert_same(full, resumed)
    # the final checkpoint holds the finished run: loading it gives the same agent
    _assert_same(full, LevelReplayPPO.load(tmp_path / "checkpoint.pt", device="cpu"))
    for agent in (full, killed, resumed):
        agent.close()


def test_save_load_full_agent_continues_identically(train_levels, tmp_path):
    a = _agent("dred", train_levels).learn(total_updates=2)
    path = a.save(tmp_path / "agent.pt")
    _assert_same(a, LevelReplayPPO.load(path, device="cpu"))
    a.learn(total_updates=4)
    # torch's, numpy's and Python's global generators are restored by load, so load after a
    # has finished (they are shared by all agents of a process)
    b = LevelReplayPPO.load(path, device="cpu")  # generator rebuilt from the saved VAE
    b.learn(total_updates=4)
    _assert_same(a, b)
    # a checkpoint of another configuration is refused with the file named
    other = _agent("dred", train_levels, n_steps=16)
    with pytest.raises(ValueError, match="agent.pt.*n_steps"):
        other.restore(path)
    for agent in (a, b, other):
        agent.close()


def test_learn_contract(train_levels, tmp_path):
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    class _Count(BaseCallback):
        def __init__(self):
            super().__init__()
            self.starts = self.ends = self.rollouts = 0

        def _on_training_start(self):
            self.starts += 1

        def _on_rollout_end(self):
            self.rollouts += 1

        def _on_training_end(self):
            self.ends += 1

        def _on_step(self):
            return True

    count = _Count()
    ckpt = CheckpointCallback(save_freq=2, save_path=str(tmp_path / "sb3"), name_prefix="m")
    agent = _agent("uniform", train_levels)
    agent.learn(total_timesteps=4 * 32 * 2 + 1, callback=CallbackList([count, ckpt]))
    assert agent.grad_updates == 3  # ceil(257 / 128) updates
    # one cycle per update here; one on_step per update (docs/agent-contract.md)
    assert (count.starts, count.ends, count.rollouts, count.n_calls) == (1, 1, 3, 3)
    # saved at the 2nd update (256 env steps), between cycles: a resumable state
    assert [p.name for p in (tmp_path / "sb3").glob("m_*.zip")] == ["m_256_steps.zip"]
    assert LevelReplayPPO.load(tmp_path / "sb3" / "m_256_steps.zip").grad_updates == 2

    class _Stop(BaseCallback):
        def _on_step(self):
            return self.n_calls < 2  # False after the second update

    stopped = _agent("uniform", train_levels)
    stopped.learn(total_updates=4, callback=_Stop(), checkpoint_dir=tmp_path / "stop")
    assert stopped.grad_updates == 2
    # stopped between cycles: the state is saved and a later learn resumes from it
    assert LevelReplayPPO.load(tmp_path / "stop" / "checkpoint.pt").grad_updates == 2
    stopped.close()
    with pytest.raises(ValueError, match="exactly one"):
        agent.learn(10, total_updates=1)
    with pytest.raises(ValueError, match="callback"):
        agent.learn(total_updates=4, callback=42)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        agent.learn(total_updates=4, checkpoint_every=2)
    agent.close()
