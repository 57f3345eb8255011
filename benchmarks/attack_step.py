"""Milliseconds per PGD-K adversarial-training step: engine vs the papers' naive loop.

One "step" = build the PGD-K adversarial batch (Linf, eps 8/255, step 2/255,
uniform start, BN in eval mode) + one SGD step on it (train mode). Three
ways, timed interleaved in one process so background load hits all alike:

- naive:  the loop as the papers' code writes it: ``loss.backward()`` inside
          the attack, so every step also computes weight gradients, then
          ``optimizer.zero_grad()`` throws them away;
- engine: ``reproduce.attacks.pgd`` (input-only gradients, frozen parameters);
- lower bound: K x (forward + input-only backward) + (forward + full backward
          + optimizer step), each piece timed on its own.

Run: ``python benchmarks/attack_step.py [--model resnet18] [--batch 128] [--reps 5] [--threads 2]``.
The last line is ``speedup vs naive: X.XXx`` (median naive / median engine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.attacks import pgd  # noqa: E402

EPS = 8 / 255
STEP = 2 / 255


def build(name: str, num_classes: int) -> nn.Module:
    from reproduce.models import build_model

    return build_model(name, num_classes)


def naive_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """The papers' pattern: backward() through the whole model at every attack step."""
    model.eval()
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        grad = x_adv.grad
        assert grad is not None
        x_adv = x_adv.detach() + STEP * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return x_adv.detach()


def train_on(model: nn.Module, opt: torch.optim.Optimizer, x_adv: torch.Tensor, y: torch.Tensor) -> None:
    model.train()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x_adv), y).backward()
    opt.step()


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="PGD steps K")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.model, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    gen = torch.Generator().manual_seed(0)
    k = args.steps

    def naive() -> None:
        train_on(model, opt, naive_attack(model, x, y, k), y)

    def engine() -> None:
        train_on(model, opt, pgd(model, x, y, eps=EPS, step_size=STEP, steps=k, bn_mode="eval", generator=gen), y)

    def fwd_input_bwd() -> None:
        # What one attack step cannot go below: a forward and an input-only backward.
        model.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            xr = x.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
        finally:
            for p in params:
                p.requires_grad_(True)

    def train_step() -> None:
        train_on(model, opt, x, y)

    cases: dict[str, Callable[[], None]] = {
        "naive": naive, "engine": engine, "fwd+input-bwd": fwd_input_bwd, "train step": train_step,
    }
    for fn in cases.values():  # warm-up: allocator, oneDNN primitive caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(args.reps):
        for name, fn in cases.items():
            times[name].append(timed(fn))
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{n} {times[n][-1]:.0f} ms" for n in cases), flush=True)

    med = {name: statistics.median(v) for name, v in times.items()}
    lower = k * med["fwd+input-bwd"] + med["train step"]
    print(f"model {args.model}, batch {args.batch}, PGD-{k} Linf eps 8/255 step 2/255, "
          f"threads {args.threads}, {args.reps} interleaved reps (medians)")
    print(f"naive loop (backward() in the attack): {med['naive']:.0f} ms/step")
    print(f"engine (reproduce.attacks.pgd):        {med['engine']:.0f} ms/step")
    print(f"lower bound {k} x (fwd + input bwd) + (fwd + full bwd + step): {lower:.0f} ms/step "
          f"[{med['fwd+input-bwd']:.0f} ms x {k} + {med['train step']:.0f} ms]")
    print(f"engine / lower bound: {med['engine'] / lower:.2f}x")
    print(f"naive / lower bound: {med['naive'] / lower:.2f}x")
    print(f"speedup vs naive: {med['naive'] / med['engine']:.2f}x")


if __name__ == "__main__":
    main()
