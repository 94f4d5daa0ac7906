"""Numba kernels: small pure functions over arrays. Call them through the public modules of
:mod:`robustrl`, which validate inputs first; each kernel has a NumPy twin in
:mod:`robustrl.reference` that the tests compare against."""
