"""NumPy twins of :mod:`robustrl._kernels.policy` (scipy's logsumexp does the stabilising)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def log_softmax(logits: np.ndarray, inverse_temperature: float) -> np.ndarray:
    scaled = logits * inverse_temperature
    return scaled - logsumexp(scaled, axis=-1, keepdims=True)


def softmax(logits: np.ndarray, inverse_temperature: float) -> np.ndarray:
    return np.exp(log_softmax(logits, inverse_temperature))


def regularized_log_policy(
    log_reference: np.ndarray, q: np.ndarray, eta: float, alpha: float
) -> np.ndarray:
    """``log pi_new``, ``pi_new ∝ pi_ref^alpha exp(eta q)``; zero-probability actions stay 0."""
    support = np.isfinite(log_reference)
    logits = np.where(support, alpha * np.where(support, log_reference, 0.0) + eta * q, -np.inf)
    return log_softmax(logits, 1.0)


def sample_actions(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling, the same rule as the kernel (first index whose cumulative mass
    exceeds ``u * total``)."""
    cumulative = np.cumsum(probs, axis=1)
    thresholds = uniforms * cumulative[:, -1]
    hits = (cumulative > thresholds[:, None]) & (probs > 0.0)
    last_positive = probs.shape[1] - 1 - np.argmax((probs > 0.0)[:, ::-1], axis=1)
    return np.where(hits.any(axis=1), np.argmax(hits, axis=1), last_positive).astype(np.int64)
