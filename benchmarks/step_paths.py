"""The training steps that benchmarks/gpu_step.py times: the engine's, the papers' naive one, the bound.

Each ``make_*`` returns ``run(n) -> seconds`` that performs ``n`` training
steps (PGD-K adversarial training for the engine and the naive loop) and
waits for the device before returning, so wall time is real work.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from reproduce import perf as fast
from reproduce.config import resolve_run
from reproduce.data import DeviceDataset
from reproduce.data.feeding.loader import infinite
from reproduce.methods import METHODS, TrainContext
from reproduce.models import build_model
from reproduce.train.tally import EpochTally

Runner = Callable[[int], float]
EPS, STEP = 8 / 255, 2 / 255


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_split(n: int, size: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images and labels, as ``load_split`` returns them (speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n).astype(np.int64)


def at_config(model: str, batch: int, steps: int, perf: Mapping[str, Any]) -> dict[str, Any]:
    """Madry PGD-K AT, Linf 8/255 step 2/255, attack in eval mode (as the papers' PyTorch code)."""
    return {"name": "bench", "data": {"primary": "bench"}, "model": {"name": model}, "method": {"name": "at"},
            "attack": {"eps": "8/255", "step_size": "2/255", "steps": steps, "bn_mode": "eval"},
            "epochs": 1, "batch_size": batch, "perf": dict(perf)}


def make_engine(raw_cfg: Mapping[str, Any], splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
                num_classes: int, device: torch.device, epoch: int = 0) -> Runner:
    """The loop body of reproduce/train/loop.py on GPU-resident data with on-device augmentation."""
    cfg = resolve_run(raw_cfg)
    pf = cfg["perf"]
    primary = cfg["data"]["primary"]
    data = {k: DeviceDataset(x, y, device) for k, (x, y) in splits.items()}
    steps_per_epoch = max(1, len(data[primary]) // int(cfg["batch_size"]))
    ctx = TrainContext(cfg=cfg, device=device, num_classes=num_classes, datasets=data,
                       steps_per_epoch=steps_per_epoch)
    method = METHODS.get(cfg["method"]["name"], where="method.name")(cfg, ctx)
    torch.manual_seed(0)
    model = build_model(cfg["model"]["name"], num_classes, heads=method.heads(),
                        image_size=int(splits[primary][0].shape[1])).to(device)
    method.attach(model)
    fast.set_backends(pf, device)
    step_model = fast.prepare_model(model, pf)
    opt, _ = fast.make_sgd(model.parameters(), cfg["optim"], pf, device)
    batches = infinite(data[primary], int(cfg["batch_size"]), seed=0, start_step=epoch * steps_per_epoch,
                       augment=True, pad=int(cfg["data"]["pad"]))
    every = int(pf["sync_every"])
    method.start_epoch(model, epoch)
    model.train()
    it = [0]

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        tally = EpochTally(device)
        for _ in range(n):
            batch = next(batches)
            if pf["channels_last"]:
                batch = dataclasses.replace(batch, x=fast.prepare_input(batch.x, pf))
            with fast.autocast(pf, device):
                out = method.step(step_model, batch, epoch, it[0] % steps_per_epoch)
            tally.watch(out.loss, it[0])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            tally.add({"loss": out.loss, **out.stats}, len(batch))
            it[0] += 1
            if it[0] % every == 0:
                tally.raise_if_diverged("bench", epoch)
        tally.raise_if_diverged("bench", epoch)
        sync(device)
        return time.perf_counter() - t0

    return run


class _TransformedTensors(torch.utils.data.Dataset):
    """A TensorDataset with per-sample torchvision transforms, as the papers' loaders apply them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int) -> None:
        import torchvision.transforms as T

        self.images, self.labels = images, labels
        self.tf = T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tf(self.images[i].float().div(255)), self.labels[i]  # ToTensor's scaling


def make_naive(model_name: str, split: tuple[np.ndarray, np.ndarray], num_classes: int, batch: int,
               steps: int, device: torch.device, workers: int) -> Runner:
    """The papers' loop: CPU DataLoader, backward() inside the attack, .item() every step, fp32."""
    x, y = split
    ds = _TransformedTensors(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y),
                             int(x.shape[1]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = build_model(model_name, num_classes, image_size=int(x.shape[1])).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    stream = [iter(loader)]

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(stream[0])
        except StopIteration:
            stream[0] = iter(loader)
            return next(stream[0])

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        total = 0.0
        for _ in range(n):
            xb, yb = next_batch()
            xb, yb = xb.to(device), yb.to(device)
            model.eval()
            x_adv = (xb + torch.empty_like(xb).uniform_(-EPS, EPS)).clamp(0, 1)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                loss = F.cross_entropy(model(x_adv), yb)
                loss.backward()  # weight gradients too, thrown away by zero_grad below
                x_adv = x_adv.detach() + STEP * x_adv.grad.sign()
                x_adv = torch.min(torch.max(x_adv, xb - EPS), xb + EPS).clamp(0, 1)
            model.train()
            opt.zero_grad()
            logits = model(x_adv)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            total += loss.item()
            _ = (logits.argmax(1) == yb).sum().item()
        sync(device)
        return time.perf_counter() - t0

    return run


def make_bound(model_name: str, size: int, num_classes: int, batch: int, steps: int, device: torch.device,
               perf: Mapping[str, Any]) -> Runner:
    """K x (forward + input-only backward) + (forward + full backward + SGD step): no attack logic.

    What an attack step cannot go below is one forward and one backward to the input; the
    training step adds the weight gradients. ``perf`` picks the same precision/layout as the
    engine row it bounds.
    """
    torch.manual_seed(0)
    model = build_model(model_name, num_classes, image_size=size).to(device)
    fast.set_backends(perf, device)
    step_model = fast.prepare_model(model, perf)
    opt, _ = fast.make_sgd(model.parameters(), {"lr": 0.1, "momentum": 0.9, "nesterov": False,
                                                "weight_decay": 5e-4}, perf, device)
    x = fast.prepare_input(torch.rand(batch, 3, size, size, device=device), perf)
    y = torch.randint(0, num_classes, (batch,), device=device)
    params = list(model.parameters())

    def one() -> None:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        for _ in range(steps):
            xr = x.clone().requires_grad_(True)
            with fast.autocast(perf, device):
                loss = F.cross_entropy(step_model(xr), y)
            torch.autograd.grad(loss, xr)
        for p in params:
            p.requires_grad_(True)
        model.train()
        opt.zero_grad(set_to_none=True)
        with fast.autocast(perf, device):
            loss = F.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()

    def run(n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            one()
        sync(device)
        return time.perf_counter() - t0

    return run


def free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


__all__ = ["make_engine", "make_naive", "make_bound", "at_config", "synthetic_split", "sync", "free", "is_oom"]
