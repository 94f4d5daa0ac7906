"""Training throughput of the neural agents: gradient steps/s on CPU and GPU.

Two units of work, each on synthetic tensors (no environment, no dataset files), so the script
needs only torch, numpy and robustrl:

* ``NeuralR2PVI``: one Adam step of the critic regression (:func:`train_regression`, the
  inner loop of ``NeuralR2PVI.fit``): a batched ensemble of ``E`` MLPs (one ``baddbmm`` per
  layer for all members) on ``(observation -> A x (1 + k))`` heads, KL targets (``k = 1``);
* ``NeuralDRRPO``: one ``train_on_batch`` (target values through the target critic and the
  actor, the critic step and the mirror-descent actor step).
* with ``--loop``, also ``E x nn.Sequential (loop)``: the same regression step with the ensemble
  as a Python loop over ``E`` separate ``nn.Sequential`` MLPs, the design the batched
  :class:`EnsembleMLP` replaces (a kernel launch per member and layer).

For every device and batch size it runs warm-up steps, then times steps until ``--min-time``
seconds have passed (CUDA synchronised), and prints steps/s and samples/s (batch size x steps/s;
each sample is seen by all ``E`` members).

    python benchmarks/bench_neural.py --device both          # GPU: 256 .. 262144; CPU <= 4096
    python benchmarks/bench_neural.py --device cpu --quick   # < 2 min on a small CPU
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from robustrl.agents.neural._offline import train_regression
from robustrl.agents.neural._torch import EnsembleMLP
from robustrl.agents.neural.drrpo import NeuralDRRPO

FULL_SIZES = (256, 4096, 65536, 262144)
QUICK_SIZES = (256, 4096)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, warmup: int, min_time: float, max_steps: int) -> float:
    """Steps per second of ``step()`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n >= max_steps:
            break
        if n % 5 == 0 or device.type == "cpu":
            _sync(device)
            if time.perf_counter() - start >= min_time:
                break
    _sync(device)
    return n / (time.perf_counter() - start)


def bench_r2pvi(device, batch, args) -> float:
    gen = torch.Generator().manual_seed(0)
    obs_dim, n_actions, k = args.obs_dim, args.actions, 2
    net = EnsembleMLP(args.ensemble, obs_dim, n_actions * k, args.hidden, gen).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = batch * 4
    x = torch.randn(n, obs_dim, generator=gen).to(device)
    y = torch.randn(n, k, generator=gen).to(device)
    a = torch.randint(n_actions, (n,), generator=gen).to(device)
    rng = np.random.default_rng(0)

    def step():
        train_regression(net, x, y, actions=a, n_actions=n_actions, weights=None, steps=1,
                         batch_size=batch, optimizer=opt, rng=rng)

    return _timed(step, device, args.warmup, args.min_time, args.max_steps)


def bench_loop(device, batch, args) -> float:
    """The regression step with E separate MLPs evaluated in a Python loop (comparison)."""
    torch.manual_seed(0)
    obs_dim, n_actions, k = args.obs_dim, args.actions, 2
    dims = [obs_dim, *args.hidden, n_actions * k]
    members = []
    for _ in range(args.ensemble):
        layers: list[torch.nn.Module] = []
        for i, (din, dout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(torch.nn.Linear(din, dout))
            if i < len(dims) - 2:
                layers.append(torch.nn.ReLU())
        members.append(torch.nn.Sequential(*layers).to(device))
    params = [p for m in members for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(batch, obs_dim, device=device)
    y = torch.randn(batch, k, device=device)
    a = torch.randint(n_actions, (batch,), device=device)

    def step():
        loss = 0.0
        for m in members:
            out = m(x).view(batch, n_actions, k)
            out = out.gather(1, a.view(-1, 1, 1).expand(-1, 1, k)).squeeze(1)
            loss = loss + ((out - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        (loss / len(members)).backward()
        opt.step()

    return _timed(step, device, args.warmup, args.min_time, args.max_steps)


def bench_drrpo(device, batch, args) -> float:
    agent = NeuralDRRPO.from_spaces(args.obs_dim, args.actions, divergence="kl", lam=1.0,
                                    ensemble_size=args.ensemble, hidden=args.hidden,
                                    device=device, seed=0)
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(batch, args.obs_dim, generator=gen).to(device)
    nxt = torch.randn(batch, args.obs_dim, generator=gen).to(device)
    act = torch.randint(args.actions, (batch,), generator=gen).to(device)
    rew = torch.rand(batch, generator=gen).to(device)
    term = (torch.rand(batch, generator=gen) < 0.05).to(device)
    return _timed(lambda: agent.train_on_batch(obs, act, rew, nxt, term), device,
                  args.warmup, args.min_time, args.max_steps)


def _devices(choice: str) -> list[torch.device]:
    has_cuda = torch.cuda.is_available()
    if choice == "auto":
        return [torch.device("cuda" if has_cuda else "cpu")]
    if choice == "cuda" and not has_cuda:
        raise SystemExit("--device cuda: CUDA is not available")
    if choice == "both":
        return [torch.device("cpu")] + ([torch.device("cuda")] if has_cuda else [])
    return [torch.device(choice)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "both"), default="auto")
    p.add_argument("--quick", action="store_true",
                   help=f"batch sizes {QUICK_SIZES}, shorter timing (CPU smoke run)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help=f"batch sizes (default {FULL_SIZES}, or {QUICK_SIZES} with --quick)")
    p.add_argument("--cpu-max-size", type=int, default=None,
                   help="skip CPU batch sizes above this (default 4096)")
    p.add_argument("--ensemble", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--obs-dim", type=int, default=8)
    p.add_argument("--actions", type=int, default=4)
    p.add_argument("--min-time", type=float, default=None, help="seconds timed per row")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    p.add_argument("--loop", action="store_true",
                   help="also time the ensemble as a Python loop of nn.Sequential members")
    args = p.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    if args.min_time is None:
        args.min_time = 0.5 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 2 if args.quick else 5
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    cpu_cap = 4096 if args.cpu_max_size is None else args.cpu_max_size
    devices = _devices(args.device)
    names = {"cpu": f"cpu ({torch.get_num_threads()} threads)"}
    if torch.cuda.is_available():
        names["cuda"] = f"cuda ({torch.cuda.get_device_name(0)})"
    print(f"torch {torch.__version__}; ensemble {args.ensemble} x MLP {args.obs_dim}-"
          f"{'-'.join(map(str, args.hidden))}-{args.actions}x(1+k); float32")
    header = f"{'agent':<13}{'device':<34}{'batch':>8}{'steps/s':>12}{'samples/s':>14}"
    print(header)
    print("-" * len(header))
    for dev in devices:
        for batch in sizes:
            if dev.type == "cpu" and cpu_cap is not None and batch > cpu_cap:
                print(f"{'(skipped)':<13}{names['cpu']:<34}{batch:>8}  (CPU, > --cpu-max-size)")
                continue
            rows = [("NeuralR2PVI", bench_r2pvi), ("NeuralDRRPO", bench_drrpo)]
            if args.loop:
                rows.append(("loop-of-E", bench_loop))
            for name, fn in rows:
                sps = fn(dev, batch, args)
                print(f"{name:<13}{names[dev.type]:<34}{batch:>8}{sps:>12.1f}"
                      f"{sps * batch:>14.3g}", flush=True)
    if args.device == "both" and not torch.cuda.is_available():
        print("CUDA not available: GPU rows skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
