"""Hand-computed checks of the core modules that the mutation rounds had not measured.

Each test names the plausible bug it catches (a mutant of ``tools/mutate.py`` that survived
the default suite's files for the module; docs/dev/mutation.md, "Final round, part C").
"""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.data import OfflineDataset
from robustrl.interop import dataset_to_transitions


def _tiny_dataset(valid, terminal=None) -> OfflineDataset:
    """One-action, one-feature dataset of shape (K, H) with observation ``10 k + h``."""
    valid = np.asarray(valid, dtype=bool)
    K, H = valid.shape
    obs = (10.0 * np.arange(K)[:, None] + np.arange(H)[None, :])[..., None]
    feats = valid[..., None].astype(float)
    return OfflineDataset(
        observations=obs, actions=np.zeros((K, H), dtype=np.int64),
        rewards=np.where(valid, 1.0, 0.0), next_observations=obs + 1.0, features=feats,
        next_action_features=np.ones((K, H, 1, 1)), valid=valid,
        terminal=np.zeros((K, H), bool) if terminal is None else np.asarray(terminal, bool))


def test_flattening_refuses_a_single_gap_in_one_row():
    """Bug: the prefix check uses ``all`` instead of ``any``, so a dataset whose ``valid`` has
    one gap (row 1: taken, skipped, taken) is spliced into one episode instead of refused."""
    ds = _tiny_dataset([[True, True, False], [True, False, True]])
    with pytest.raises(ValueError, match="prefix"):
        dataset_to_transitions(ds)
    # the same rows without the gap flatten to 2 + 1 transitions, observations in order
    ok = dataset_to_transitions(_tiny_dataset([[True, True, False], [True, False, False]]))
    np.testing.assert_array_equal(ok["observations"][:, 0], [0.0, 1.0, 10.0])
    np.testing.assert_array_equal(ok["truncations"], [False, True, True])
