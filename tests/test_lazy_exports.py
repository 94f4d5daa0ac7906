"""The torch/minigrid-backed names of robustrl.agents and robustrl.envs resolve on first use,
and importing the packages alone imports none of torch, stable-baselines3 or minigrid."""

from __future__ import annotations

import subprocess
import sys


def test_packages_import_without_heavy_dependencies():
    code = (
        "import sys, robustrl.agents, robustrl.envs\n"
        "heavy = [m for m in ('torch', 'stable_baselines3', 'minigrid') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_names_resolve():
    import robustrl.agents as agents
    import robustrl.envs as envs
    from robustrl.agents.dred.training import LevelReplayPPO
    from robustrl.agents.neural.drrpo import NeuralDRRPO
    from robustrl.agents.neural.fqi import NeuralFQI
    from robustrl.agents.neural.r2pvi import NeuralR2PVI
    from robustrl.envs.cave_escape import CaveEscapeEnv

    assert agents.NeuralR2PVI is NeuralR2PVI
    assert agents.NeuralFQI is NeuralFQI
    assert agents.NeuralDRRPO is NeuralDRRPO
    assert agents.LevelReplayPPO is LevelReplayPPO
    assert envs.CaveEscapeEnv is CaveEscapeEnv
    for name in ("NeuralR2PVI", "LevelReplayPPO"):
        assert name in agents.__all__
    try:
        agents.NoSuchAgent  # noqa: B018
    except AttributeError as err:
        assert "NoSuchAgent" in str(err)
    else:
        raise AssertionError("unknown attribute did not raise")
