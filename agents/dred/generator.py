"""DRED's level generation step (arXiv:2402.03479 Sec. 4, App. B: sampling levels at RL time).

Generation is anchored to real levels: the posterior ``(mean_i, std_i)`` of every training level
is computed once; each call draws ``2P`` distinct training levels, pairs them as
``(i, 2P - 1 - i)``, and for each pair takes ``m`` points ``s = linspace(0, 1, m)`` (endpoints
included): slerp on the means (lerp when the cosine of the two means exceeds 0.955), lerp on
the stds, then ``z = mean(s) + std(s) * eps`` is decoded with the masking repair of
:meth:`~robustrl.agents.dred.vae.LevelVAE.decode_levels`. The prior N(0, I) is never sampled.

Labels B.1 .. B.10 (e.g. "B.3 step 6", "B.10 D1") name the DRED topics listed in
docs/algorithms/dred.md, section "Topic labels" (anchors ``#b1`` .. ``#b10``).
"""

from __future__ import annotations

import numpy as np

from robustrl.validation import check_int, check_nonnegative

__all__ = ["LevelGenerator", "slerp", "lerp", "SLERP_COS_THRESHOLD", "vae_digest"]

#: above this cosine between the two means slerp falls back to lerp (the authors' value).
SLERP_COS_THRESHOLD = 0.955


def lerp(s: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(1 - s) a + s b``."""
    return (1.0 - s) * a + s * b


def slerp(s: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spherical interpolation of the vectors ``a`` and ``b`` (norms interpolate too):
    ``sin((1-s) w)/sin(w) a + sin(s w)/sin(w) b`` with ``w`` the angle between them; lerp when
    ``|cos w| > 0.955`` or ``sin w == 0``."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return lerp(s, a64, b64)
    cos = float(np.dot(a64 / na, b64 / nb))
    if abs(cos) > SLERP_COS_THRESHOLD:
        return lerp(s, a64, b64)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    so = np.sin(omega)
    if so == 0:
        return lerp(s, a64, b64)
    return np.sin((1.0 - s) * omega) / so * a64 + np.sin(s * omega) / so * b64


class LevelGenerator:
    """Latent interpolation between pairs of training levels (VAE-DRED's generator).

    ``LevelGenerator(vae, train_levels, n_pairs=6, per_pair=6, seed=0)``;
    :meth:`generate` returns ``(levels, parents)``: ``n_pairs * per_pair`` levels (int8,
    ``(K, n, n)``) and the ``(K, 2)`` training-set indices of each level's parent pair.
    ``std_scale`` multiplies the interpolated std (0 decodes the interpolated mean itself:
    the ``sigma -> 0`` check of B.10 D4). ``sample=False`` decodes the decoder's mode.
    After each call ``last_info`` holds ``s`` (interpolation points), ``closest_parent``
    (first parent for the first ``per_pair / 2`` points of a pair, second for the rest,
    as the authors label them) and the latents ``z``.
    """

    def __init__(self, vae, train_levels, n_pairs: int = 6, per_pair: int = 6, seed: int = 0,
                 *, std_scale: float = 1.0, sample: bool = True):
        self.vae = vae
        self.train_levels = np.asarray(train_levels)
        self.n_pairs = check_int(n_pairs, "n_pairs", low=1)
        self.per_pair = check_int(per_pair, "per_pair", low=2)
        if self.per_pair % 2:
            raise ValueError(f"per_pair must be even (parent labels split each pair in halves); "
                             f"got {per_pair}")
        if 2 * self.n_pairs > len(self.train_levels):
            raise ValueError(f"n_pairs must be at most len(train_levels) / 2 = "
                             f"{len(self.train_levels) // 2}; got {n_pairs}")
        self.std_scale = check_nonnegative(std_scale, "std_scale")
        self.sample = bool(sample)
        self.rng = np.random.default_rng(check_int(seed, "seed", low=0))
        self.mean, self.std = vae.encode(self.train_levels)  # once, at start-up (B.3 step 1)
        self.s = np.linspace(0.0, 1.0, self.per_pair)
        self.last_info: dict[str, np.ndarray] = {}

    @property
    def batch_size(self) -> int:
        """Levels per :meth:`generate` call (``n_pairs * per_pair``)."""
        return self.n_pairs * self.per_pair

    def interpolate(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated ``(mean, std)``, ``(len(pairs) * per_pair, latent)``, pair-major."""
        means, stds = [], []
        for i, j in pairs:
            for s in self.s:
                means.append(slerp(s, self.mean[i], self.mean[j]))
                stds.append(lerp(s, self.std[i].astype(np.float64),
                                 self.std[j].astype(np.float64)))
        return np.asarray(means), np.asarray(stds)

    def generate(self) -> tuple[np.ndarray, np.ndarray]:
        """One generation call: ``(levels (K, n, n) int8, parents (K, 2) int)``."""
        idx = self.rng.choice(len(self.train_levels), size=2 * self.n_pairs, replace=False)
        pairs = np.stack([idx[:self.n_pairs], idx[::-1][:self.n_pairs]], axis=1)
        mean, std = self.interpolate(pairs)
        z = mean + self.std_scale * std * self.rng.standard_normal(mean.shape)
        levels = self.vae.decode_levels(z, self.rng, sample=self.sample)
        parents = np.repeat(pairs, self.per_pair, axis=0)
        half = self.per_pair // 2
        first = np.tile(np.arange(self.per_pair) < half, self.n_pairs)
        self.last_info = {"s": np.tile(self.s, self.n_pairs),
                          "closest_parent": np.where(first, parents[:, 0], parents[:, 1]),
                          "z": z}
        return levels, parents

    # ------------------------------------------------------------------ state (checkpoints)
    def get_state(self) -> dict:
        """The generator's training-time state: its random generator, plus the settings and a
        SHA-256 of the VAE weights (fixed during RL) so that a resumed run can check that it
        was given the same generator."""
        return dict(rng=self.rng.bit_generator.state, n_pairs=self.n_pairs,
                    per_pair=self.per_pair, std_scale=self.std_scale, sample=self.sample,
                    vae_sha256=vae_digest(self.vae))

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`; raises ``ValueError`` when the settings or the VAE
        differ from the checkpoint's."""
        mine = self.get_state()
        for key in ("n_pairs", "per_pair", "std_scale", "sample", "vae_sha256"):
            if state.get(key) != mine[key]:
                raise ValueError(f"generator state: {key} is {mine[key]!r} here but "
                                 f"{state.get(key)!r} in the checkpoint (a different generator "
                                 "or VAE)")
        self.rng.bit_generator.state = state["rng"]


def vae_digest(vae) -> str:
    """SHA-256 over a VAE's weights (names, dtypes, shapes, bytes)."""
    from robustrl._artifacts import payload_digest

    return payload_digest({k: v.detach().cpu() for k, v in vae.state_dict().items()})

