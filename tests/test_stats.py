"""robustrl.stats: the Student-t confidence interval against scipy.stats.t.interval."""

import numpy as np
import pytest
from scipy import stats

from robustrl.stats import confidence_interval, student_t_halfwidth


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_matches_scipy_interval(confidence):
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(7, 4))
    mean, half = confidence_interval(x, confidence=confidence)
    lo, hi = stats.t.interval(confidence, 6, loc=x.mean(axis=0), scale=stats.sem(x, axis=0))
    np.testing.assert_allclose(mean - half, lo, rtol=1e-12)
    np.testing.assert_allclose(mean + half, hi, rtol=1e-12)
    assert student_t_halfwidth(x[:, 0], confidence=confidence) == pytest.approx(half[0])


def test_single_sample_and_bad_input():
    assert np.isnan(student_t_halfwidth([1.0]))
    assert student_t_halfwidth([1.0], single=0.0) == 0.0
    np.testing.assert_array_equal(student_t_halfwidth(np.ones((1, 3)), single=0.0), np.zeros(3))
    with pytest.raises(ValueError, match="confidence"):
        student_t_halfwidth([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="samples"):
        confidence_interval([])
