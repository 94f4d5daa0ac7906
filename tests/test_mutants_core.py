"""Hand-computed checks that kill the mutants `tools/mutate.py` found surviving in
theory/r2pvi.py and the core modules of robustrl/ (docs/dev/mutation.md lists them). Each test's
docstring names the bug it catches."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.stats import confidence_interval, student_t_halfwidth
from robustrl.theory import r2pvi as th


# ------------------------------------------------------------------------------------------
# theory/r2pvi.py (arXiv:2411.18612)
# ------------------------------------------------------------------------------------------
def test_log_factor_accepts_an_array_holding_k_equal_to_one():
    """Bug: `_check_k` rejecting arrays with K = 1 (`arr.min() < 2` instead of `< 1`)."""
    got = th.log_factor(2, 3, np.array([1, 4]), delta=0.05)
    # xi = log(2 d H K / delta) = log(240 K)
    np.testing.assert_allclose(got, [np.log(240.0), np.log(960.0)], rtol=1e-14)
    with pytest.raises(ValueError, match="n_trajectories"):
        th.log_factor(2, 3, np.array([0, 4]))


def test_coverage_rejects_a_float_policy_table_of_the_right_shape():
    """Bug: `coverage` checking the policy's shape *and* dtype (`and` for `or`), so a float
    table of shape (H, S) is used as actions instead of being rejected."""
    model, _ = th.poor_coverage_instance()
    H, d = model.horizon, model.feature_dim
    inv = np.broadcast_to(np.eye(d), (H, d, d)).copy()
    with pytest.raises(ValueError, match="policy"):
        th.coverage(inv, model, np.zeros((H, model.n_states)))
    with pytest.raises(ValueError, match="policy"):
        th.coverage(inv, model, np.zeros((H + 1, model.n_states), dtype=np.int64))


def test_coverage_floors_a_rounding_negative_diagonal_at_zero():
    """Bug: the floor of `[Lambda^-1]_ii` at 0 moved to -1, so a rounding-negative diagonal
    entry gives sqrt(< 0) = NaN. Poor-coverage instance, always the safe action, identity
    inverse except -1e-18 on the (unvisited) fail feature: visits e0 then e4, coverage 1 + 1."""
    model, _ = th.poor_coverage_instance()
    H, d = model.horizon, model.feature_dim
    inv = np.broadcast_to(np.eye(d), (H, d, d)).copy()
    inv[:, 2, 2] = -1e-18
    policy = np.zeros((H, model.n_states), dtype=np.int64)
    assert th.coverage(inv, model, policy) == pytest.approx(2.0, abs=1e-15)


def test_instance_dependent_bound_rejects_a_negative_beta():
    """Bug: `beta`'s lower bound moved from 0 to -1 (a negative pessimism coefficient gives a
    negative bound)."""
    from test_offline_agents import TableEnv, exact_dataset, one_hot_model

    from robustrl.agents.r2pvi import R2PVI

    model = one_hot_model()
    agent = R2PVI(TableEnv(model), ridge=0.5, beta=0.0).fit(exact_dataset(model))
    with pytest.raises(ValueError, match="beta"):
        th.instance_dependent_bound(agent, model, "tv", 0.5, beta=-0.5)


# ------------------------------------------------------------------------------------------
# robustrl/stats.py
# ------------------------------------------------------------------------------------------
def test_single_sample_halfwidth_keeps_the_other_axes():
    """Bug: the `n < 2` branch building a scalar instead of an array over the other axes
    (the shape test `if x.ndim` negated): (1, 3) samples must give three half-widths."""
    out = student_t_halfwidth(np.ones((1, 3)), single=0.0)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    out = student_t_halfwidth(np.ones((2, 1)), axis=1, single=-1.0)
    assert out.shape == (2,) and out.tolist() == [-1.0, -1.0]


def test_confidence_interval_default_is_95_percent_by_table():
    """Bug: `confidence_interval`'s default confidence not 0.95 (1.95 or -0.05). Samples
    1, 2, 3: mean 2, s = 1, t_{0.975, 2} = 4.302653 (t table), half-width 4.302653 / sqrt(3)."""
    mean, half = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / np.sqrt(3.0), rel=1e-6)


def test_a_scalar_sample_is_one_sample():
    """Bug: a 0-d sample counted as 0 or 2 samples (`n = ... else 1` changed): one value has
    no interval, so `single` comes back."""
    assert student_t_halfwidth(5.0, single=7.0) == 7.0
    assert np.isnan(student_t_halfwidth(np.float64(5.0)))


@pytest.mark.parametrize("confidence", [0.0, -0.5, 1.0, 1.5])
def test_confidence_outside_the_open_unit_interval_is_rejected(confidence):
    """Bug: the lower bound of `confidence` moved below 0 (0 or -0.5 accepted)."""
    with pytest.raises(ValueError, match="confidence"):
        student_t_halfwidth([1.0, 2.0], confidence=confidence)


def test_one_dimensional_samples_give_a_python_float():
    """Bug: the 0-d results returned as NumPy scalars or 0-d arrays (`np.ndim(out) == 0` or
    `np.ndim(mean) == 0` changed)."""
    half = student_t_halfwidth([1.0, 2.0, 3.0])
    assert type(half) is float
    mean, half2 = confidence_interval([1.0, 2.0, 3.0])
    assert type(mean) is float and type(half2) is float
    assert half == pytest.approx(4.302653 / np.sqrt(3.0), rel=1e-6)


# ------------------------------------------------------------------------------------------
# robustrl/_io.py
# ------------------------------------------------------------------------------------------
def test_current_umask_without_proc_reads_it_by_setting(monkeypatch):
    """Bug: the fallback for systems without /proc returning None instead of the umask."""
    import os

    from robustrl import _io

    class NoProc:
        def __init__(self, *args):
            pass

        def read_text(self):
            raise OSError("no /proc here")

    old = os.umask(0o027)
    try:
        assert _io.current_umask() == 0o027
        monkeypatch.setattr(_io, "Path", NoProc)
        assert _io.current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # the fallback put the mask back
    finally:
        os.umask(old)


def test_an_error_that_names_its_own_file_is_reraised_unchanged(tmp_path):
    """Bugs: `_with_path` re-wrapping an error that already names a file (`or` -> `and`) or
    returning None for it (then `raise None`): the caller must see the original error."""
    import errno

    from robustrl._io import atomic_write

    original = OSError(errno.EACCES, "denied", str(tmp_path / "elsewhere"))

    def write(fh):
        raise original

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "x.txt", write, binary=False)
    assert info.value is original and info.value.filename == str(tmp_path / "elsewhere")

    def write_no_errno(fh):
        raise OSError("no errno")

    with pytest.raises(OSError, match="no errno") as info:
        atomic_write(tmp_path / "y.txt", write_no_errno, binary=False)
    assert info.value.errno is None and info.value.filename is None
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_judged_by_age_and_lock_not_by_the_hour(tmp_path):
    """Bug: the one-hour minimum age meant for systems without `fcntl` applied on POSIX too
    (`if fcntl is None` negated), so a killed writer's temporary 10 s old is kept. Ages are set
    with `os.utime`, so the test does not depend on the machine's speed."""
    import fcntl
    import os
    import time

    from robustrl._io import clean_stale_temporaries

    old = tmp_path / ".out.json.abcd1234.tmp"  # a killed writer's, 10 s old
    young = tmp_path / ".out.json.efgh5678.tmp"  # 10 s old too, but min_age 60 s below
    locked = tmp_path / ".b.json.ijkl9012.tmp"  # a live writer's (locked), 10 s old
    other = tmp_path / "out.json"  # not a temporary
    for f in (old, young, locked, other):
        f.write_text("x")
        os.utime(f, (time.time() - 10.0, time.time() - 10.0))
    assert clean_stale_temporaries(tmp_path, min_age_s=60.0) == []
    with open(locked, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        removed = clean_stale_temporaries(tmp_path, min_age_s=1.0)
    assert sorted(removed) == sorted([old, young])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.json.ijkl9012.tmp", "out.json"]


def test_default_minimum_age_is_one_second(tmp_path):
    """Bug: `clean_stale_temporaries`' default `min_age_s` not 1 s (2 s keeps a killed
    writer's temporary 1.5 s old). The age only grows while the test runs, so the correct code
    removes the file however slow the machine."""
    import os
    import time

    from robustrl._io import clean_stale_temporaries

    stale = tmp_path / ".out.json.abcd1234.tmp"
    stale.write_text("x")
    os.utime(stale, (time.time() - 1.5, time.time() - 1.5))
    assert clean_stale_temporaries(tmp_path) == [stale]


def test_atomic_write_json_layout_is_sorted_with_two_space_indent(tmp_path):
    """Bug: `atomic_write_json`'s indent not 2 (the result files' layout, which users diff)."""
    from robustrl._io import atomic_write_json

    path = atomic_write_json(tmp_path / "r.json", {"b": 1, "a": [1]})
    assert path.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'


def test_cleaning_one_file_name_leaves_other_files_temporaries(tmp_path):
    """Bug: the name filter's length test wrong (`len(name) + 14` changed: "." + name + "." +
    8 random characters + ".tmp"), so `name=` removes nothing or another file's temporaries."""
    import os
    import time

    from robustrl._io import clean_stale_temporaries

    mine = tmp_path / ".out.json.abcd1234.tmp"
    longer = tmp_path / ".out.json.x.abcd1234.tmp"  # a temporary of "out.json.x"
    other = tmp_path / ".b.json.abcd1234.tmp"
    for f in (mine, longer, other):
        f.write_text("x")
        os.utime(f, (time.time() - 10.0, time.time() - 10.0))
    assert clean_stale_temporaries(tmp_path, name="out.json") == [mine]
    assert clean_stale_temporaries(tmp_path, name="out.json.x") == [longer]
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_a_temporary_that_cannot_be_removed_warns_at_the_caller(tmp_path, monkeypatch):
    """Bug: the warning's `stacklevel` not 2, so it points into robustrl/_io.py or pytest
    instead of the code that called `clean_stale_temporaries`."""
    import os
    import pathlib
    import time

    from robustrl._io import clean_stale_temporaries

    stale = tmp_path / ".out.json.abcd1234.tmp"
    stale.write_text("x")
    os.utime(stale, (time.time() - 10.0, time.time() - 10.0))

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "unlink", refuse)
    with pytest.warns(RuntimeWarning, match="cannot remove the stale temporary") as record:
        assert clean_stale_temporaries(tmp_path) == []
    assert [w.filename for w in record] == [__file__]


def test_a_temporary_exactly_min_age_old_is_removed(tmp_path, monkeypatch):
    """Bugs: the age test `now - mtime < min_age_s` turned into `<=` or `now + mtime`: a file
    exactly `min_age_s` old is stale. The clock is pinned so the age is exactly 1 s."""
    import os

    from robustrl import _io

    stale = tmp_path / ".out.json.abcd1234.tmp"
    stale.write_text("x")
    os.utime(stale, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    monkeypatch.setattr(_io.time, "time", lambda: 1_700_000_001.0)
    assert _io.clean_stale_temporaries(tmp_path, min_age_s=1.0) == [stale]


def test_writes_and_locks_create_missing_parent_folders(tmp_path):
    """Bug: `mkdir(parents=True)` turned into `parents=False` in `atomic_write` or `file_lock`:
    a result or lock two folders deep must still be written."""
    from robustrl._io import atomic_write_json, file_lock

    assert atomic_write_json(tmp_path / "a" / "b" / "r.json", [1]).read_text() == "[\n  1\n]"
    with file_lock(tmp_path / "c" / "d" / "x.lock"):
        assert (tmp_path / "c" / "d" / "x.lock").exists()


# ------------------------------------------------------------------------------------------
# robustrl/ridge.py
# ------------------------------------------------------------------------------------------
def test_symmetry_tolerance_is_relative_and_inclusive():
    """Bugs: the asymmetry tolerance `1e-8 * max(1, max|A|)` made absolute-shrinking
    (`/ scale`) or strict (`>=`): an asymmetry of exactly 1e-8 at scale 1, and 1e-5 at scale
    1e4 (relative 1e-9), are rounding and accepted; 1e-3 at scale 1e4 is not."""
    from robustrl.ridge import check_lambda_inv

    check_lambda_inv(np.array([[1.0, 1e-8], [0.0, 1.0]]))
    check_lambda_inv(np.array([[1e4, 1e-5], [0.0, 1e4]]))
    with pytest.raises(ValueError, match="lambda_inv must be symmetric"):
        check_lambda_inv(np.array([[1e4, 1e-3], [0.0, 1e4]]))


def test_sherman_morrison_rejects_a_non_square_inverse():
    """Bug: the dimension read from the last axis (`shape[-1]`), so the square check compares
    the last axis with itself and a (2, 3) array reaches the kernel."""
    from robustrl.ridge import sherman_morrison_update

    with pytest.raises(ValueError, match="square"):
        sherman_morrison_update(np.zeros((2, 3)), np.ones(3))


def test_rank_one_update_default_weight_is_one():
    """Bug: `rank_one_update`'s default weight not 1. Gram I + x x^T with x = (1, 1) is
    [[2, 1], [1, 2]], its inverse [[2, -1], [-1, 2]] / 3, the moment x y^T = (2, 2) for y = 2."""
    from robustrl.ridge import rank_one_update

    gram, inv, moment = np.eye(2), np.eye(2), np.zeros((2, 1))
    rank_one_update(gram, inv, moment, np.array([1.0, 1.0]), np.array([2.0]))
    np.testing.assert_allclose(gram, [[2.0, 1.0], [1.0, 2.0]], atol=1e-15)
    np.testing.assert_allclose(inv, np.array([[2.0, -1.0], [-1.0, 2.0]]) / 3.0, atol=1e-15)
    np.testing.assert_allclose(moment, [[2.0], [2.0]], atol=1e-15)


def test_blas_threads_returns_itself_and_restores_the_count():
    """Bug: `blas_threads.__enter__` returning None (`with blas_threads(1) as t` gets None)."""
    from robustrl.ridge import _openblas, blas_threads

    before = [int(get()) for get, _ in _openblas()]
    with blas_threads(1) as ctx:
        assert isinstance(ctx, blas_threads) and ctx.n == 1
        assert all(int(get()) == 1 for get, _ in _openblas())
    assert [int(get()) for get, _ in _openblas()] == before


def test_check_lambda_inv_names_a_non_square_matrix():
    """Bug: the square test comparing the last axis with itself, so a (2, 3) array is reported
    as 'not positive definite' instead of 'not square'."""
    from robustrl.ridge import check_lambda_inv

    with pytest.raises(ValueError, match="must be square"):
        check_lambda_inv(np.ones((2, 3)))


def test_weighted_gram_uses_the_square_root_of_the_weights():
    """Bug: `X = sqrt(W) Phi` built with |w| instead of sqrt(w), giving Phi^T W^2 Phi. One row
    (1, 2) with weight 4: Phi^T W Phi = 4 [[1, 2], [2, 4]]."""
    from robustrl.ridge import weighted_gram

    got = weighted_gram(np.array([[1.0, 2.0]]), np.array([4.0]))
    np.testing.assert_allclose(got, [[4.0, 8.0], [8.0, 16.0]], rtol=1e-15)


def test_online_ridge_scalar_target_by_hand():
    """Bug: the scalar-target check inverted (`np.ndim(y) != 0` -> `== 0`): a scalar target is
    rejected and a 1-element array accepted. Ridge 1, x = e1, y = 3: Lambda^{-1} = diag(1/2, 1),
    the solution (1.5, 0)."""
    from robustrl.ridge import OnlineRidge

    model = OnlineRidge(2, 1.0)
    model.update(np.array([1.0, 0.0]), 3.0)
    np.testing.assert_allclose(model.solve(), [1.5, 0.0], rtol=1e-15)
    with pytest.raises(ValueError, match="y must be a scalar"):
        model.update(np.array([1.0, 0.0]), np.array([3.0]))
    with pytest.raises(ValueError, match="n_targets"):  # bug: lower bound 1 moved to 0
        OnlineRidge(2, 1.0, n_targets=0)


def test_cleaning_a_missing_folder_removes_nothing(tmp_path):
    """Bug: the early return for a missing folder giving None instead of an empty list."""
    from robustrl._io import clean_stale_temporaries

    assert clean_stale_temporaries(tmp_path / "missing") == []
    (tmp_path / "file").write_text("x")
    assert clean_stale_temporaries(tmp_path / "file") == []


# ------------------------------------------------------------------------------------------
# robustrl/exact.py
# ------------------------------------------------------------------------------------------
def test_per_feature_lam_with_a_zero_entry_is_rejected():
    """A zero per-feature regulariser is rejected naming `lam` (robustrl.divergences checks it
    again, so the mutant `<=` -> `<` in exact.py's own check is equivalent: see
    docs/dev/mutation.md)."""
    from robustrl.exact import robust_value_iteration

    model, _ = th.poor_coverage_instance()
    lam = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="lam entries must be > 0"):
        robust_value_iteration(model, divergence="kl", lam=lam)


def test_robust_solution_is_immutable():
    """Bug: `RobustSolution` not frozen, so a caller can overwrite a solver's result."""
    import dataclasses

    from robustrl.exact import robust_value_iteration

    model, _ = th.poor_coverage_instance()
    sol = robust_value_iteration(model, divergence="tv", lam=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sol.value = 1.0


def test_a_policy_table_with_one_action_out_of_range_is_rejected():
    """Bug: the upper range check reading the smallest action (`arr.min() >= A`), so a table
    whose largest action is A (but smallest is in range) is accepted."""
    from robustrl.exact import evaluate_policy

    model, _ = th.poor_coverage_instance()  # A = 2
    policy = np.zeros((model.horizon, model.n_states), dtype=np.int64)
    policy[1, 2] = 2
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 1\]; found range \[0, 2\]"):
        evaluate_policy(model, policy)


# ------------------------------------------------------------------------------------------
# robustrl/divergences.py
# ------------------------------------------------------------------------------------------
def test_kl_support_clip_keeps_a_signed_row_within_its_values():
    """Bugs: `_kl_dual_rows` sending `clip="support"` to the floor kernel (`clip == "floor"`
    negated), shifting by the largest support value instead of the smallest, or a span of
    max + shift instead of max - shift. Values (0, 10),
    signed weights (-0.5, 1.5), rho = 0.1: the estimate z of E exp(-v / alpha) is negative for
    small alpha, the support rule clips it to exp(-10 / alpha) (relative to the shift 0), so
    nu(alpha) = 10 - 0.1 alpha with supremum 10 as alpha -> 0 (DR-LSVI-UCB's clip); the floor
    rule's estimate max(z, 1e-6) gives -alpha log 1e-6 - 0.1 alpha, far above the largest
    value."""
    from robustrl.divergences import kl_dual_rows

    v, w, rho = np.array([0.0, 10.0]), np.array([[-0.5, 1.5]]), np.array([0.1])
    assert kl_dual_rows(v, w, rho, clip="support")[0] == pytest.approx(10.0, abs=1e-9)
    # shifted values (3, 13): shift 3, span 10 (not 3 + 13), so the supremum is 13
    assert kl_dual_rows(v + 3.0, w, rho, clip="support")[0] == pytest.approx(13.0, abs=1e-9)
    assert kl_dual_rows(v, w, rho, clip="floor")[0] > 100.0
    # on a probability row both rules are the KL dual: below the mean 5 and above the minimum 0
    p = np.array([[0.5, 0.5]])
    support, floor = kl_dual_rows(v, p, rho, clip="support")[0], kl_dual_rows(v, p, rho,
                                                                               clip="floor")[0]
    assert support == pytest.approx(floor, abs=1e-7) and 0.0 < support < 5.0


def test_kl_dual_rows_mixed_rows_and_bad_arguments():
    """Bugs: the early return for 'no robust row' taken when *some* row is not robust
    (`np.any` -> `np.all`) or whenever there are values (`n == 0` -> `n != 0`); the weights'
    column check reading the row count; `z_floor`'s open lower bound made inclusive; an
    all-zero weight row treated as robust (`w != 0` changed). Rows: the signed row above
    (support rule: 10), a probability row with rho = 0 (the plain regression 0.5 * 0 + 0.5 * 10
    = 5) and an all-zero row (0)."""
    from robustrl.divergences import kl_dual_rows

    v = np.array([0.0, 10.0])
    w = np.array([[-0.5, 1.5], [0.5, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(kl_dual_rows(v, w, np.array([0.1, 0.0, 0.1]), clip="support"),
                               [10.0, 5.0, 0.0], atol=1e-9)
    with pytest.raises(ValueError, match="one column per value"):
        kl_dual_rows(v, np.ones((2, 3)) / 3.0, 0.1, clip="support")
    for z_floor in (0.0, 1.0):
        with pytest.raises(ValueError, match="z_floor"):
            kl_dual_rows(v, w, 0.1, clip="floor", z_floor=z_floor)


# ------------------------------------------------------------------------------------------
# robustrl/_artifacts.py
# ------------------------------------------------------------------------------------------
def test_loaded_unsigned_integers_beyond_int64_are_refused_at_the_limit():
    """Bugs: the int64-range check of unsigned entries skipped for `kind="i"` (`==` -> `!=`)
    or made strict at the limit (`>` -> `>=`): 2**63 - 1 fits int64 and is kept exactly, 2**63
    would wrap to a negative number and is refused naming the file and the array."""
    from robustrl._artifacts import loaded_array

    top = np.iinfo(np.int64).max
    got = loaded_array("f.npz", "counts", np.array([top], dtype=np.uint64), kind="i", shape=(1,))
    assert got.dtype == np.int64 and int(got[0]) == top
    with pytest.raises(ValueError, match=r"path f.npz: array 'counts' has entries too large"):
        loaded_array("f.npz", "counts", np.array([top + 1], dtype=np.uint64), kind="i",
                     shape=(1,))


def test_load_torch_checks_the_format_only_when_asked(tmp_path):
    """Bug: the format check's `fmt is not None` inverted: a payload must load with
    `fmt=None` whatever its format, and a wrong `fmt` must be refused."""
    pytest.importorskip("torch")
    from robustrl._artifacts import load_torch, save_torch

    path = save_torch(tmp_path / "m.pt", {"format": "robustrl-x/1", "n": 3})
    assert load_torch(path, what="model")["n"] == 3
    assert load_torch(path, what="model", fmt="robustrl-x/1")["n"] == 3
    with pytest.raises(ValueError, match="expected 'robustrl-y/1'"):
        load_torch(path, what="model", fmt="robustrl-y/1")


# ------------------------------------------------------------------------------------------
# robustrl/runner/store.py
# ------------------------------------------------------------------------------------------
def _one_cell_and_record():
    from robustrl.runner.config import RunConfig
    from robustrl.runner.store import _record_checksum, expand_cells

    (cell,) = expand_cells(RunConfig(experiment="toy", grid={"a": [1]}, seeds=1))
    rec = {"key": cell.key, "params": dict(cell.params), "seed_index": cell.seed_index,
           "seed": cell.seed, "metrics": {"x": 1.0}, "wall_time_s": 0.5}
    return cell, rec, _record_checksum


def test_record_problem_on_wall_time_and_checksum():
    """Bugs: the wall-time test `isinstance(wall, bool) or not a number` turned into `and`
    (True or a string accepted), a checksum mismatch reported as no problem (`return None`),
    or a record without a checksum (older runs) failing on the missing key (`and` -> `or`)."""
    from robustrl.runner.store import record_problem

    cell, rec, checksum = _one_cell_and_record()
    assert record_problem(rec, cell) is None  # no checksum: accepted
    rec["checksum"] = checksum(rec)
    assert record_problem(rec, cell) is None
    assert "does not match its checksum" in record_problem({**rec, "metrics": {"x": 2.0}}, cell)
    for wall in (True, "0.5"):
        assert "wall_time_s" in record_problem({**rec, "wall_time_s": wall}, cell)
    # a metric may be null (JSON None)
    nulled = {**rec, "metrics": {"x": None}}
    nulled["checksum"] = checksum(nulled)
    assert record_problem(nulled, cell) is None


def test_a_manifest_without_a_proper_config_is_refused():
    """Bugs: `_manifest_problem` answering None (no problem) for a manifest without a config
    object or with an empty experiment name, or accepting conditions on unknown parameters."""
    from robustrl.runner.store import _manifest_problem

    assert _manifest_problem({}) == "has no config object"
    assert "config.experiment must be a non-empty string" in _manifest_problem(
        {"config": {"experiment": "", "grid": {"a": [1]}, "seeds": 1}})
    # bug too: the conditions check `k in grid and ...` -> `or`, accepting a condition on a
    # parameter the grid does not have
    cfg = {"experiment": "toy", "grid": {"a": [1]}, "seeds": 1,
           "conditions": {"zz": {"a": [1]}}}
    assert _manifest_problem({"config": cfg, "config_hash": "x"}) == (
        "config.conditions must map grid parameters to {grid parameter: [values]}")


def test_a_changed_config_names_only_what_changed():
    """Bug: the experiment-name comparison of `_describe_diff` inverted (`!=` -> `==`), so an
    unchanged experiment is listed as changed and a changed one is not."""
    from robustrl.runner.config import RunConfig
    from robustrl.runner.store import _describe_diff

    old = {"experiment": "toy", "grid": {"a": [1]}, "seeds": 1}
    assert _describe_diff(old, RunConfig("toy", {"a": [1]}, 2)) == "seeds 1 -> 2"
    assert _describe_diff(old, RunConfig("other", {"a": [1]}, 1)) == "experiment 'toy' -> 'other'"
    # the same conditions on both sides are no difference (bug: `old conditions or {}` ->
    # `and {}` compares the new conditions with an empty dict)
    cond = {"a": {"b": [True]}}
    old_c = {"experiment": "toy", "grid": {"a": [1], "b": [True]}, "seeds": 1, "conditions": cond}
    new_c = RunConfig("toy", {"a": [1], "b": [True]}, 3, conditions=cond)
    assert _describe_diff(old_c, new_c) == "seeds 1 -> 3"


def test_non_finite_entries_are_counted_in_the_message():
    """Bug: the count of NaN/infinite entries computed as size + finite count instead of
    size - finite count (3 entries, 1 finite: 2 bad)."""
    from robustrl._artifacts import loaded_array

    with pytest.raises(ValueError, match="must be finite; found 2 NaN or infinite entries"):
        loaded_array("f.npz", "v", np.array([1.0, np.nan, np.inf]), kind="f", shape=(None,))


def test_a_state_dict_with_a_missing_entry_is_refused():
    """Bug: `load_state_dict(..., strict=True)` -> `strict=False`, so a checkpoint missing a
    parameter silently leaves the network's initial value in place."""
    torch = pytest.importorskip("torch")
    from robustrl._artifacts import load_state_dict_checked

    net = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"path c.pt: 'net' does not fit the network"):
        load_state_dict_checked(net, {"weight": torch.zeros(1, 2)}, "c.pt", "net")
    load_state_dict_checked(net, {"weight": torch.zeros(1, 2), "bias": torch.ones(1)}, "c.pt",
                            "net")
    assert float(net.bias.detach()[0]) == 1.0


def test_a_wrong_shape_is_reported_with_wildcards():
    """Bug: the expected shape in the message written with the wildcard test inverted
    (`s is None` -> `is not None`): `(None, 3)` must read `(*, 3)`."""
    from robustrl._artifacts import loaded_array

    with pytest.raises(ValueError, match=r"array 'v' must have shape \(\*, 3\); got \(2, 2\)"):
        loaded_array("f.npz", "v", np.zeros((2, 2)), kind="f", shape=(None, 3))


# ------------------------------------------------------------------------------------------
# robustrl/runner/config.py
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("description, want", [(None, "First line of the doc."),
                                               ("Given.", "Given.")])
def test_experiment_description_is_description_or_the_doc_first_line(tmp_path, description,
                                                                     want):
    """Bug: `DESCRIPTION or first doc line` turned into `and`, so a module with a DESCRIPTION
    shows its doc line instead and one without shows 'None'."""
    from robustrl.runner.config import load_experiment

    extra = "" if description is None else f"DESCRIPTION = {description!r}\n"
    path = tmp_path / "toy_exp.py"
    path.write_text('"""First line of the doc.\n\nMore."""\n' + extra
                    + "GRID = {'a': [1]}\n\ndef run_one(params, seed):\n    return {'x': 1.0}\n")
    exp = load_experiment(path)
    assert exp.description == want
    assert exp.seeds == 1  # bug too: the default SEEDS (1) changed
    assert exp.name == "toy_exp"  # a file experiment without NAME is named by its file


def test_setting_seeds_as_a_parameter_points_to_the_seeds_option(tmp_path):
    """Bug: the hint for `seeds` given for every unknown parameter but `seeds` (its test
    negated)."""
    from robustrl.runner.config import RunnerError, _override, load_experiment

    path = tmp_path / "toy_exp.py"
    path.write_text("GRID = {'a': [1]}\n\ndef run_one(params, seed):\n    return {'x': 1.0}\n")
    exp = load_experiment(path)
    with pytest.raises(RunnerError, match=r"unknown parameter 'seeds'.*\(use --seeds for the"):
        _override(exp, {}, "seeds", 3, "--set")
    with pytest.raises(RunnerError, match=r"unknown parameter 'b'") as info:
        _override(exp, {}, "b", 3, "--set")
    assert "--seeds" not in str(info.value)


def test_a_broken_experiment_file_is_reported_under_its_path(tmp_path, monkeypatch):
    """Bug: discovery errors keyed by the reference's kind ("file") instead of the module's
    path, so two broken files overwrite each other and neither is named."""
    from robustrl.runner.config import PATH_ENV, discover_experiments

    for name in ("bad_a.py", "bad_b.py"):
        (tmp_path / name).write_text("GRID = {'a': [1]}\n")  # no run_one
    monkeypatch.setenv(PATH_ENV, str(tmp_path))
    _, errors = discover_experiments()
    bad = {k: v for k, v in errors.items() if "bad_" in k}
    assert sorted(bad) == [str((tmp_path / n).resolve()) for n in ("bad_a.py", "bad_b.py")]
    assert all("defines no run_one" in v for v in bad.values())


def test_a_duplicate_experiment_name_names_the_file_that_has_it(tmp_path, monkeypatch):
    """Bug: the 'already taken' message naming the first module's kind ("file") instead of
    its path."""
    from robustrl.runner.config import PATH_ENV, discover_experiments

    body = "NAME = 'dup_exp'\nGRID = {'a': [1]}\n\ndef run_one(params, seed):\n    return {}\n"
    for name in ("one.py", "two.py"):
        (tmp_path / name).write_text(body)
    monkeypatch.setenv(PATH_ENV, str(tmp_path))
    found, errors = discover_experiments()
    first, second = (str((tmp_path / n).resolve()) for n in ("one.py", "two.py"))
    assert found["dup_exp"].ref[1] == first
    assert errors[second] == f"experiment name 'dup_exp' already taken by {first}; ignored"
