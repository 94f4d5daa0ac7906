"""Torch helpers of the neural agents: device choice, seeding and the batched ensemble MLP.

The ensemble is one module whose layers hold ``(E, in, out)`` weight tensors, so a forward pass
of all ``E`` members is one ``baddbmm`` per layer (one kernel launch), not a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from robustrl.validation import check_int

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(device) -> torch.device:
    """``"auto"`` -> cuda when available else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
    :class:`torch.device` pass through (cuda must be available)."""
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str) and (device in DEVICES or device.startswith("cuda:")):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(device)
    else:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available")
    return dev


def check_hidden(hidden, name: str = "hidden") -> tuple[int, ...]:
    """A non-empty sequence of positive layer widths."""
    if isinstance(hidden, (int, np.integer)):
        hidden = (hidden,)
    if not isinstance(hidden, Sequence) or len(hidden) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints; got {hidden!r}")
    return tuple(check_int(h, name, low=1) for h in hidden)


def draw_seed(seed: int | None) -> int:
    """``seed`` itself, or a fresh random one when None (so the run can still be repeated)."""
    if seed is not None:
        return int(seed)
    return int(np.random.default_rng().integers(2**31 - 1))


class EnsembleMLP(nn.Module):
    """``E`` independent ReLU MLPs evaluated together.

    ``forward(x)``: ``x`` of shape ``(N, in)`` (shared by every member) or ``(E, N, in)``;
    returns ``(E, N, out)``. Initialisation matches :class:`torch.nn.Linear` (uniform in
    ``+-1/sqrt(fan_in)``), drawn from ``generator`` on the CPU so that a seed gives the same
    network on every device.
    """

    def __init__(self, n_members: int, in_dim: int, out_dim: int, hidden: Sequence[int],
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_members = int(n_members)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        dims = [self.in_dim, *hidden, self.out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(dims[:-1], dims[1:], strict=True):
            bound = 1.0 / math.sqrt(din)
            w = (torch.rand(self.n_members, din, dout, generator=generator) * 2 - 1) * bound
            b = (torch.rand(self.n_members, 1, dout, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x
