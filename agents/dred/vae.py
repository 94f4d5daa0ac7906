"""The level VAE of DRED (arXiv:2402.03479, docs/dred-levels.md): a GIN graph encoder and an MLP
decoder over Cave Escape levels.

Architecture (the authors' ``res_graphVAE_ce`` configuration, re-implemented in plain torch):

* **Input**: the level as the dense 4-neighbour grid graph of its ``n*n`` cells, each node a
  one-hot over the 6 cell codes (:mod:`robustrl.envs.cave_levels`).
* **Encoder**: 3 GIN layers (the authors' ``num_layers=4`` counts the input layer), width 12,
  each ``h' = ReLU(BN(MLP((1 + eps) h + sum_{neighbours} h)))`` with a 2-layer MLP
  (Linear-BN-ReLU-Linear), learnable ``eps`` and sum aggregation. On a grid graph the
  neighbour sum is a fixed cross-shaped depthwise convolution with zero padding and the
  per-node MLP is a 1x1 convolution, so the layer is exact GIN without a graph library.
  No pooling: the input and every layer's node features are concatenated (6 + 3*12 = 42 per
  node), flattened (42 * 169 = 7098) and mapped by Linear-BN-ReLU to 256; then
  ``mean = Linear(256, latent)`` and ``std = Softplus(Linear(256, latent))``.
* **Decoder**: ``latent -> 256 -> 256`` (Linear-BN-ReLU twice), then three heads: ``layout``
  (per cell, 4 logits over EMPTY, WALL, LAVA, MOSS), ``goal`` and ``start`` (one logit per
  cell: a categorical over the cells).
* **Loss** (weighted negative ELBO, 1 reparameterised sample):
  ``-(c_l * mean_cells log p(layout) + c_g * log p(goal) + c_s * log p(start) - beta * KL)``
  with ``c_l = 0.04``, ``c_g = c_s = 0.013``, ``beta = 0.0448``, where, as in the authors'
  code, **KL is the mean over latent dimensions** (not the sum). The layout target at the
  start and goal cells is 1/2 EMPTY + 1/2 MOSS; the goal logits are masked to the cells whose
  true layout is navigable and the start logits additionally exclude the true goal
  (``attribute_masking: always``).
* **Decoding with repair** (:meth:`LevelVAE.decode_levels`, B.3 / B.9.2): a cell is navigable
  iff ``p(moss) + p(empty) > 0.5``; navigable cells draw EMPTY/MOSS and the others WALL/LAVA
  from the renormalised layout probabilities; the goal is drawn from the goal head over the
  navigable cells, the start from the start head over the navigable cells minus the goal;
  fallbacks when a mask is empty as in B.3 step 5. **No connectivity repair** (B.3 step 6).

Run ``python -m robustrl.agents.dred.vae --levels train.npz --epochs 200 --out DIR`` to train
and write the metrics of :func:`evaluate_vae` (reconstruction, validity, distribution match).

Labels B.1 .. B.10 (e.g. "B.3 step 6", "B.10 D1") name the DRED topics listed in
docs/algorithms/dred.md, section "Topic labels" (anchors ``#b1`` .. ``#b10``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustrl._artifacts import load_state_dict_checked, load_torch, save_torch
from robustrl._io import atomic_write, atomic_write_json
from robustrl.agents.neural._torch import resolve_device
from robustrl.envs.cave_levels import (
    EMPTY,
    GOAL,
    LAVA,
    MOSS,
    N_CODES,
    START,
    WALL,
    distribution_distances,
    is_solvable,
    is_valid,
    random_level,
    validate_level,
)
from robustrl.validation import check_int, check_positive

_FORMAT = "robustrl.LevelVAE/1"

__all__ = ["LevelVAE", "train_vae", "evaluate_vae", "reconstruction_metrics", "levels_to_onehot",
           "ELBO_COEFFS", "main"]

#: the authors' loss weights (B.3): layout, goal, start and KL (``beta``).
ELBO_COEFFS = {"layout": 0.04, "goal": 0.013, "start": 0.013, "beta": 0.0448}
_LAYOUT_CODES = (EMPTY, WALL, LAVA, MOSS)  # the layout head's 4 classes, in this order
_NAV = (0, 3)  # EMPTY, MOSS: navigable layout classes
_OBST = (1, 2)  # WALL, LAVA


def levels_to_onehot(levels, device=None) -> torch.Tensor:
    """``(B, n, n)`` level codes -> float one-hot ``(B, 6, n, n)``."""
    lv = torch.as_tensor(np.asarray(levels, dtype=np.int64), device=device)
    return F.one_hot(lv, N_CODES).permute(0, 3, 1, 2).float()


class _GINLayer(nn.Module):
    """One GIN layer on the grid graph (4-neighbour sum aggregation, learnable eps)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 1))
        self.bn = nn.BatchNorm2d(c_out)
        cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("cross", cross.expand(c_in, 1, 3, 3).clone())
        self.c_in = c_in

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        nbr = F.conv2d(h, self.cross, padding=1, groups=self.c_in)
        return F.relu(self.bn(self.mlp((1.0 + self.eps) * h + nbr)))


class LevelVAE(nn.Module):
    """GIN-encoder / MLP-decoder VAE over ``size`` x ``size`` Cave Escape levels (B.3)."""

    def __init__(self, size: int = 13, latent_dim: int = 1024, *, gin_layers: int = 3,
                 gin_width: int = 12, bottleneck: int = 256, decoder_hidden: int = 256,
                 coeffs: dict[str, float] | None = None):
        super().__init__()
        self.config = {
            "size": check_int(size, "size", low=2),
            "latent_dim": check_int(latent_dim, "latent_dim", low=1),
            "gin_layers": check_int(gin_layers, "gin_layers", low=1),
            "gin_width": check_int(gin_width, "gin_width", low=1),
            "bottleneck": check_int(bottleneck, "bottleneck", low=1),
            "decoder_hidden": check_int(decoder_hidden, "decoder_hidden", low=1),
            "coeffs": dict(ELBO_COEFFS, **(coeffs or {})),
        }
        for k, v in self.config["coeffs"].items():
            if k not in ELBO_COEFFS:
                raise ValueError(f"coeffs keys must be among {sorted(ELBO_COEFFS)}; got {k!r}")
            check_positive(v, f"coeffs[{k!r}]")
        n_cells = size * size
        self.n_cells = n_cells
        widths = [N_CODES] + [gin_width] * gin_layers
        self.gin = nn.ModuleList(_GINLayer(a, b) for a, b in zip(widths[:-1], widths[1:],
                                                                  strict=True))
        self.enc_fc = nn.Sequential(nn.Linear(sum(widths) * n_cells, bottleneck),
                                    nn.BatchNorm1d(bottleneck), nn.ReLU())
        self.enc_mean = nn.Linear(bottleneck, latent_dim)
        self.enc_std = nn.Sequential(nn.Linear(bottleneck, latent_dim), nn.Softplus())
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, decoder_hidden), nn.BatchNorm1d(decoder_hidden), nn.ReLU(),
            nn.Linear(decoder_hidden, decoder_hidden), nn.BatchNorm1d(decoder_hidden), nn.ReLU())
        self.head_layout = nn.Linear(decoder_hidden, n_cells * 4)
        self.head_goal = nn.Linear(decoder_hidden, n_cells)
        self.head_start = nn.Linear(decoder_hidden, n_cells)
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ networks

    @property
    def size(self) -> int:
        return self.config["size"]

    @property
    def latent_dim(self) -> int:
        return self.config["latent_dim"]

    @property
    def device(self) -> torch.device:
        return self.enc_mean.weight.device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot levels ``(B, 6, n, n)`` -> posterior ``(mean, std)``, each ``(B, latent)``."""
        feats = [x]
        h = x
        for layer in self.gin:
            h = layer(h)
            feats.append(h)
        # flatten node-major (cell, channel), the order of the authors' per-node concatenation
        h = torch.cat(feats, dim=1).permute(0, 2, 3, 1).flatten(1)
        h = self.enc_fc(h)
        return self.enc_mean(h), self.enc_std(h) + 1e-6

    def decode_logits(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latents ``(B, latent)`` -> logits: layout ``(B, cells, 4)``, goal and start
        ``(B, cells)``."""
        h = self.dec(z)
        return {"layout": self.head_layout(h).view(-1, self.n_cells, 4),
                "goal": self.head_goal(h), "start": self.head_start(h)}

    def elbo_terms(self, x: torch.Tensor, levels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of the weighted loss and its terms (B.3) for one-hot ``x`` and codes
        ``levels`` ``(B, n, n)`` (int64)."""
        c = self.config["coeffs"]
        mean, std = self(x)
        z = mean + std * torch.randn_like(std)
        logits = self.decode_logits(z)
        codes = levels.flatten(1)  # (B, cells)
        # layout target: one-hot over (EMPTY, WALL, LAVA, MOSS); start/goal cells 1/2 EMPTY+MOSS
        marker = (codes == START) | (codes == GOAL)
        target = F.one_hot(codes.clamp(max=3), 4).float()
        half = torch.tensor([0.5, 0.0, 0.0, 0.5], device=x.device)
        target = torch.where(marker.unsqueeze(-1), half, target)
        lp_layout = (target * F.log_softmax(logits["layout"], -1)).sum(-1).mean(-1)
        nav = (codes != WALL) & (codes != LAVA)
        goal_idx = (codes == GOAL).float().argmax(-1)
        start_idx = (codes == START).float().argmax(-1)
        goal_logits = logits["goal"].masked_fill(~nav, float("-inf"))
        start_mask = nav.clone()
        start_mask[torch.arange(len(codes), device=codes.device), goal_idx] = False
        start_logits = logits["start"].masked_fill(~start_mask, float("-inf"))
        lp_goal = F.log_softmax(goal_logits, -1).gather(1, goal_idx[:, None]).squeeze(1)
        lp_start = F.log_softmax(start_logits, -1).gather(1, start_idx[:, None]).squeeze(1)
        kl = 0.5 * (mean.pow(2) + std.pow(2) - 1.0 - 2.0 * torch.log(std)).mean(-1)
        elbo = c["layout"] * lp_layout + c["goal"] * lp_goal + c["start"] * lp_start \
            - c["beta"] * kl
        return {"loss": -elbo.mean(), "lp_layout": lp_layout.mean(), "lp_goal": lp_goal.mean(),
                "lp_start": lp_start.mean(), "kl": kl.mean()}

    # ------------------------------------------------------------------ numpy API

    def _check_levels(self, levels) -> np.ndarray:
        levels = np.asarray(levels)
        if levels.ndim == 2:
            levels = levels[None]
        if levels.ndim != 3 or levels.shape[1:] != (self.size, self.size):
            raise ValueError(f"levels must have shape (N, {self.size}, {self.size}); "
                             f"got {levels.shape}")
        for i, lv in enumerate(levels):
            validate_level(lv, name=f"levels[{i}]")
        return levels.astype(np.int64)

    @torch.no_grad()
    def encode(self, levels, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(mean, std)`` of each level, float32 arrays ``(N, latent)`` (eval mode)."""
        levels = self._check_levels(levels)
        was_training = self.training
        self.eval()
        out_m, out_s = [], []
        for i in range(0, len(levels), batch_size):
            m, s = self(levels_to_onehot(levels[i:i + batch_size], self.device))
            out_m.append(m.cpu().numpy())
            out_s.append(s.cpu().numpy())
        self.train(was_training)
        return np.concatenate(out_m), np.concatenate(out_s)

    @torch.no_grad()
    def decode_probs(self, z, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Decoder probabilities for latents ``z`` ``(N, latent)`` (eval mode, float64):
        layout ``(N, cells, 4)`` over (EMPTY, WALL, LAVA, MOSS), goal/start ``(N, cells)``."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}); got {z.shape}")
        was_training = self.training
        self.eval()
        outs: dict[str, list[np.ndarray]] = {"layout": [], "goal": [], "start": []}
        for i in range(0, len(z), batch_size):
            logits = self.decode_logits(torch.as_tensor(z[i:i + batch_size], device=self.device))
            for k, v in logits.items():
                outs[k].append(torch.softmax(v.double(), -1).cpu().numpy())
        self.train(was_training)
        return {k: np.concatenate(v) for k, v in outs.items()}

    def decode_levels(self, z, rng: np.random.Generator, *, sample: bool = True) -> np.ndarray:
        """Latents ``z`` ``(N, latent)`` -> levels ``(N, n, n)`` int8 with the masking repair
        (B.3, module docstring). ``sample=False`` takes the most likely type / cell instead of
        sampling (the decoder's mode; used for reconstruction metrics)."""
        p = self.decode_probs(z)
        n, cells = self.size, self.n_cells
        lay = p["layout"]
        nav = lay[..., _NAV[0]] + lay[..., _NAV[1]] > 0.5  # (N, cells)
        allowed = np.zeros_like(lay, dtype=bool)
        allowed[..., list(_NAV)] = nav[..., None]
        allowed[..., list(_OBST)] = ~nav[..., None]
        cls = _pick(np.where(allowed, lay, 0.0), rng, sample)
        codes = np.asarray(_LAYOUT_CODES, dtype=np.int8)[cls]  # (N, cells)
        out = np.empty((len(codes), cells), dtype=np.int8)
        for i in range(len(codes)):
            level = codes[i].copy()
            goal = _pick_cell(p["goal"][i], nav[i], rng, sample, exclude=None)
            start = _pick_cell(p["start"][i], nav[i], rng, sample, exclude=goal)
            level[goal], level[start] = GOAL, START
            out[i] = level
        return out.reshape(-1, n, n)

    def reconstruct(self, levels, rng: np.random.Generator, *, sample: bool = False
                    ) -> np.ndarray:
        """Decode the posterior mean of each level (``sigma -> 0``); see :meth:`decode_levels`."""
        mean, _ = self.encode(levels)
        return self.decode_levels(mean, rng, sample=sample)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write config, weights and training history atomically (``torch.save`` format of
        tensors and plain values, with a SHA-256 checksum of the content)."""
        payload = {"config": self.config, "state_dict": {k: v.detach().cpu() for k, v in
                                                         self.state_dict().items()},
                   "history": self.history, "format": _FORMAT}
        return save_torch(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu") -> LevelVAE:
        """Load a model written by :meth:`save` (in eval mode) onto ``device``.

        Checks the checksum (a damaged file raises), the config (rebuilds the model through
        the validating constructor) and the weights (names, shapes, finite); raises
        ``ValueError`` naming the file."""
        payload = load_torch(path, what="LevelVAE", fmt=_FORMAT)
        cfg = payload.get("config")
        if not isinstance(cfg, dict) or "size" not in cfg or "latent_dim" not in cfg:
            raise ValueError(f"path {path}: 'config' must be a dict with size and latent_dim")
        cfg = dict(cfg)
        size, latent = cfg.pop("size"), cfg.pop("latent_dim")
        try:
            model = cls(size, latent, **cfg)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"path {path}: the saved config does not rebuild a LevelVAE: "
                             f"{exc}") from None
        load_state_dict_checked(model, payload.get("state_dict"), path, "state_dict")
        history = payload.get("history")
        if not isinstance(history, list):
            raise ValueError(f"path {path}: 'history' must be a list")
        model.history = list(history)
        return model.to(resolve_device(device)).eval()


def _pick(probs: np.ndarray, rng: np.random.Generator, sample: bool) -> np.ndarray:
    """Categorical index along the last axis of unnormalised ``probs`` (sample or argmax)."""
    if not sample:
        return probs.argmax(-1)
    cdf = np.cumsum(probs, -1)
    u = rng.random(probs.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf <= u).sum(-1), probs.shape[-1] - 1)


def _pick_cell(p: np.ndarray, nav: np.ndarray, rng: np.random.Generator, sample: bool,
               exclude: int | None) -> int:
    """A cell from head probabilities ``p`` restricted to navigable cells (minus ``exclude``);
    B.3's fallbacks: all mass masked -> uniform over the mask; empty mask -> any cell."""
    mask = nav.copy()
    if exclude is not None:
        mask[exclude] = False
    if not mask.any():
        mask = np.ones_like(mask)
        if exclude is not None:
            mask[exclude] = False
    w = np.where(mask, p, 0.0)
    if w.sum() <= 0:
        w = mask.astype(float)
    return int(_pick(w, rng, sample))


# --------------------------------------------------------------------------- training


def train_vae(levels, *, epochs: int, batch_size: int = 64, lr: float = 4e-4,
              latent_dim: int = 1024, seed: int = 20211201, device="auto",
              progress: bool = True, **model_kwargs: Any) -> LevelVAE:
    """Train a :class:`LevelVAE` on ``levels`` (N, n, n) with Adam (B.3: lr ~4e-4, batch 64,
    200 epochs, the authors' seed). Seeded: same data, seed and device -> same weights.
    ``model_kwargs`` go to :class:`LevelVAE` (e.g. ``coeffs``). Per-epoch mean loss terms are
    kept in ``model.history``. Returns the model in eval mode."""
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=2)
    lr = check_positive(lr, "lr")
    seed = check_int(seed, "seed", low=0)
    levels = np.asarray(levels)
    if levels.ndim != 3 or levels.shape[1] != levels.shape[2] or len(levels) < 2:
        raise ValueError(f"levels must have shape (N >= 2, n, n); got {levels.shape}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = LevelVAE(levels.shape[1], latent_dim, **model_kwargs)
    codes = torch.as_tensor(model._check_levels(levels), device=dev)
    model.to(dev).train()
    onehot = levels_to_onehot(codes.cpu().numpy(), dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    from tqdm import tqdm

    bar = tqdm(range(epochs), desc="VAE", disable=not progress, leave=False)
    for epoch in bar:
        perm = torch.randperm(len(codes), generator=gen).to(dev)
        sums: dict[str, float] = {}
        n_batches = 0
        for i in range(0, len(codes), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            terms = model.elbo_terms(onehot[idx], codes[idx])
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        row = {"epoch": epoch + 1, **{k: v / n_batches for k, v in sums.items()}}
        model.history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", kl=f"{row['kl']:.3f}")
    return model.eval()


# --------------------------------------------------------------------------- evaluation


def reconstruction_metrics(vae: LevelVAE, levels, rng: np.random.Generator, *,
                           sample: bool = False) -> dict[str, float]:
    """B.10 D1 on ``levels`` decoded from their posterior means:

    ``cell_accuracy`` (all n*n cell codes equal, start/goal cells included),
    ``layout_accuracy`` (cells whose true code is EMPTY/WALL/LAVA/MOSS decoded to that code,
    ignoring the true start/goal cells), ``start_match`` / ``goal_match`` (exact position),
    ``navigable_iou`` (IoU of the walkable masks), ``solvable`` (decoded start-goal path).
    """
    levels = np.asarray(levels)
    rec = vae.reconstruct(levels, rng, sample=sample)
    marker = np.isin(levels, (START, GOAL))
    nav_t = ~np.isin(levels, (WALL, LAVA))
    nav_r = ~np.isin(rec, (WALL, LAVA))
    inter = (nav_t & nav_r).sum((1, 2))
    union = (nav_t | nav_r).sum((1, 2))
    return {
        "cell_accuracy": float(np.mean(rec == levels)),
        "layout_accuracy": float(np.mean((rec == levels)[~marker])),
        "start_match": float(np.mean(np.all((rec == START) == (levels == START), (1, 2)))),
        "goal_match": float(np.mean(np.all((rec == GOAL) == (levels == GOAL), (1, 2)))),
        "navigable_iou": float(np.mean(inter / np.maximum(union, 1))),
        "solvable": float(np.mean([is_solvable(lv) for lv in rec])),
    }


def evaluate_vae(vae: LevelVAE, train_levels, test_levels=None, *, n_generated: int = 1008,
                 seed: int = 0) -> dict[str, Any]:
    """Reconstruction (train / test), validity of interpolated levels and distribution match.

    * ``reconstruction``: :func:`reconstruction_metrics` (mode decoding of the posterior mean)
      on the training and, if given, test levels;
    * ``generated``: ``n_generated`` levels from :class:`~robustrl.agents.dred.generator.
      LevelGenerator` (6 pairs x 6 points per call): ``valid`` (one start, one goal) and
      ``solvable`` (BFS start-goal path) rates, and ``start_goal_on_navigable``;
    * ``distances``: :func:`~robustrl.envs.cave_levels.distribution_distances` of the
      generated levels and of as many domain-randomisation levels
      (:func:`~robustrl.envs.cave_levels.random_level`) to the training set.
    """
    from robustrl.agents.dred.generator import LevelGenerator

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"reconstruction": {
        "train": reconstruction_metrics(vae, train_levels, rng)}}
    if test_levels is not None:
        out["reconstruction"]["test"] = reconstruction_metrics(vae, test_levels, rng)
    gen = LevelGenerator(vae, train_levels, seed=seed)
    batches = []
    while sum(len(b) for b in batches) < n_generated:
        batches.append(gen.generate()[0])
    generated = np.concatenate(batches)[:n_generated]
    on_nav = [lv[tuple(np.argwhere(lv == START)[0])] == START for lv in generated]
    out["generated"] = {
        "n": int(len(generated)),
        "valid": float(np.mean([is_valid(lv) for lv in generated])),
        "solvable": float(np.mean([is_solvable(lv) for lv in generated])),
        "start_goal_on_navigable": float(np.mean(on_nav)),
    }
    dr = np.stack([random_level(rng, vae.size) for _ in range(len(generated))])
    out["distances"] = {"vae_vs_train": distribution_distances(generated, train_levels),
                        "dr_vs_train": distribution_distances(dr, train_levels)}
    if test_levels is not None:
        out["distances"]["test_vs_train"] = distribution_distances(test_levels, train_levels)
    return out


def _fmt_table(metrics: dict[str, Any]) -> str:
    lines = ["| set | cell acc | layout acc | start match | goal match | nav IoU | solvable |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in metrics["reconstruction"].items():
        lines.append(f"| {name} | {m['cell_accuracy']:.3f} | {m['layout_accuracy']:.3f} | "
                     f"{m['start_match']:.3f} | {m['goal_match']:.3f} | "
                     f"{m['navigable_iou']:.3f} | {m['solvable']:.3f} |")
    g = metrics["generated"]
    lines += ["", f"generated: n={g['n']}, valid {g['valid']:.3f}, solvable {g['solvable']:.3f}",
              "", "| statistic | " + " | ".join(metrics["distances"]) + " |",
              "| --- |" + " --- |" * len(metrics["distances"])]
    stats = next(iter(metrics["distances"].values()))
    for s in stats:
        cells = [f"TV {d[s]['tv']:.3f} / W1 {d[s]['w1']:.3g}"
                 for d in metrics["distances"].values()]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Train a VAE on a level set and write ``vae.pt``, ``metrics.json`` and ``metrics.md``."""
    from robustrl.envs.cave_levels import generate_level_set, load_level_set

    ap = argparse.ArgumentParser(prog="python -m robustrl.agents.dred.vae",
                                 description=main.__doc__)
    ap.add_argument("--levels", help="training level set (.npz from save_level_set); default: "
                    "generate_level_set('train', --n-train, --data-seed)")
    ap.add_argument("--test-levels", help="held-out level set (.npz); default: generated 'test'")
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-test", type=int, default=2048)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3.976e-4)
    ap.add_argument("--latent-dim", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=20211201)
    ap.add_argument("--n-generated", type=int, default=10008)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    train = (load_level_set(args.levels)[0] if args.levels
             else generate_level_set("train", args.n_train, args.data_seed))
    test = (load_level_set(args.test_levels)[0] if args.test_levels
            else generate_level_set("test", args.n_test, args.data_seed))
    t0 = time.time()
    vae = train_vae(train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    latent_dim=args.latent_dim, seed=args.seed, device=args.device)
    train_s = time.time() - t0
    vae.save(out / "vae.pt")
    metrics = evaluate_vae(vae, train, test, n_generated=args.n_generated, seed=args.seed)
    metrics["run"] = {"train_seconds": train_s, "device": str(vae.device),
                      "epochs": args.epochs, "n_train": int(len(train)),
                      "n_test": int(len(test)), "latent_dim": args.latent_dim,
                      "final": vae.history[-1]}
    atomic_write_json(out / "metrics.json", metrics)
    table = _fmt_table(metrics)
    atomic_write(out / "metrics.md", lambda fh: fh.write(table + "\n"), binary=False)
    print(table)
    print(f"trained in {train_s:.1f}s on {vae.device}; wrote {out}/vae.pt, metrics.json, "
          "metrics.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
