"""Plain NumPy reference implementations of every Numba kernel (slow, obviously correct).

Used by the tests (kernel agreement on random inputs) and the benchmarks (speed ratios)."""
