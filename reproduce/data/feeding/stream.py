"""Streaming full-resolution JPEG splits (``storage: jpeg``, reproduce/data/storage/jpeg.py) into training.

The same ``Batch`` (``x`` float [0, 1] NCHW on the device, ``y``, ``idx``) as the tensor
loader, from files decoded as they are needed:

* training (``augment``): ``RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3))`` then a
  horizontal flip, then ``data.color_jitter`` and ``data.rotate`` on the device with the tensor
  loader's own batched ops (``color.jitter_batch``, ``loader.rotate_batch``): the SAT ImageNet
  recipe RandomResizedCrop -> HFlip -> ColorJitter -> RandomRotation. The crop is resized with
  torchvision's antialiased bilinear tensor resize where the SAT code resized PIL images (the
  same filter up to rounding). ``data.pad`` has no meaning here and is ignored.
* without augmentation: the evaluation transform (PIL Resize(256), CenterCrop(224)), the very
  function that made the ``<split>_images.npy`` eval arrays at import.

Two ways to decode training images (``REPRODUCE_STREAM_DECODE``, default ``auto``):

* ``workers``: each of ``REPRODUCE_STREAM_WORKERS`` DataLoader processes (default
  min(8, CPUs - 1)) reads, decodes (``torchvision.io.decode_jpeg``, libjpeg-turbo) and crops
  whole images; batches of uint8 224 x 224 crops travel to the device (pinned, asynchronous).
* ``device``: workers only read the files; the compute device decodes the batch
  (``decode_jpeg(..., device='cuda')``: nvJPEG) and crops and resizes there. ``auto`` picks it on
  CUDA. Files nvJPEG cannot decode (ImageNet's few CMYK JPEGs and one PNG) fall back to the CPU.

Determinism: an epoch's order and every image's crop, flip, jitter and angle are drawn up front
from ``loader.epoch_generator(seed, epoch)``: one 62-bit seed per image feeds a ``random.Random``
that replays torchvision's ``RandomResizedCrop.get_params`` (which needs the decoded size) and
the flip. Batches are therefore a pure function of (seed, epoch), independent of the worker
count, the batch a crop lands in and ``start_batch`` (resume), as with the tensor loader. The two
decode modes give the same crops; their pixels differ only by decoder and resampling rounding
(bit-identical on the CPU).
"""

from __future__ import annotations

import math
import os
import random
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ...errors import ConfigError, ReproduceError
from ..storage.jpeg import default_workers, eval_image, read_file_split
from .loader import Batch, epoch_generator, rotate_batch, to_unit_float

SIZE = 224
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
DECODES = ("auto", "workers", "device")
_SEED_SPAN = 1 << 62


# -- one image ---------------------------------------------------------------------------------------


@contextmanager
def _quiet() -> Iterator[None]:
    # torchvision 0.29 (pinned) flags its image codecs as deprecated in favour of TorchCodec on every
    # call; they work, and a warning per image would bury the log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def rrc_params(height: int, width: int, rng: random.Random, scale: tuple[float, float] = RRC_SCALE,
               ratio: tuple[float, float] = RRC_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w): torchvision ``RandomResizedCrop.get_params`` with ``rng`` as its source."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = float(width) / float(height)  # fallback: the whole image, or its central crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_params(seed: int, height: int, width: int) -> tuple[int, int, int, int, bool]:
    """One image's crop (top, left, h, w) and flip, from its own seed."""
    rng = random.Random(int(seed))
    top, left, h, w = rrc_params(height, width, rng)
    return top, left, h, w, rng.random() < 0.5


def decode(data: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 3 x H x W RGB from a file's bytes; JPEG on ``device`` when it can, anything else on the CPU."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    with _quiet():
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # not a JPEG (ImageNet's PNG), or a JPEG the device decoder refuses (CMYK)
            return decode_image(data, mode=ImageReadMode.RGB).to(device)


def crop_flip(img: torch.Tensor, params: tuple[int, int, int, int, bool], size: int = SIZE) -> torch.Tensor:
    """Crop ``img`` (uint8 3 x H x W) to (top, left, h, w), resize to ``size`` (bilinear, antialias), flip."""
    from torchvision.transforms.v2 import functional as TF

    top, left, h, w, flip = params
    out = TF.resized_crop(img, top, left, h, w, [size, size], antialias=True)
    return out.flip(-1) if flip else out


def train_image(data: torch.Tensor, seed: int, size: int = SIZE) -> torch.Tensor:
    img = decode(data)
    return crop_flip(img, sample_params(seed, int(img.shape[-2]), int(img.shape[-1])), size)


# -- the worker side -------------------------------------------------------------------------------


class _Files(torch.utils.data.Dataset):
    """Items are (position, seed); ``mode``: train (decode + crop), bytes (read only), eval (PIL transform)."""

    def __init__(self, paths: Sequence[str], mode: str, size: int = SIZE) -> None:
        self.paths, self.mode, self.size = list(paths), mode, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor | bytes:
        pos, seed = item
        path = self.paths[pos]
        if self.mode == "eval":
            return torch.from_numpy(eval_image(path).copy()).permute(2, 0, 1)
        with open(path, "rb") as f:
            data = f.read()
        if self.mode == "bytes":
            return data
        try:
            return train_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), seed, self.size)
        except RuntimeError as e:
            raise ReproduceError(f"{path}: cannot decode ({e}); verify the dataset (reproduce data verify)") from None


def _stack(items: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(items)


def _concat(items: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of files as one uint8 tensor and their lengths: one shared-memory block a batch."""
    flat = torch.frombuffer(bytearray(b"".join(items)), dtype=torch.uint8) if any(items) else torch.zeros(0, dtype=torch.uint8)
    return flat, torch.tensor([len(b) for b in items], dtype=torch.int64)


def _loader(paths: Sequence[str], mode: str, batches: list[list[tuple[int, int]]], workers: int,
            pin: bool) -> torch.utils.data.DataLoader:
    # imported here, before the workers fork, so that no worker pays for the imports (seconds each)
    import torchvision.io  # noqa: F401
    import torchvision.transforms.functional  # noqa: F401
    import torchvision.transforms.v2.functional  # noqa: F401

    kw: dict[str, Any] = {}
    if workers > 0:
        import multiprocessing as mp

        kw = {"prefetch_factor": 4, "multiprocessing_context": mp.get_context("fork")}
    return torch.utils.data.DataLoader(_Files(paths, mode), batch_sampler=batches, num_workers=workers,
                                       collate_fn=_concat if mode == "bytes" else _stack,
                                       pin_memory=pin and mode != "bytes", **kw)


# -- the split -------------------------------------------------------------------------------------


class StreamSplit:
    """One split of JPEG files for training on ``device``: the stand-in for ``DeviceDataset``.

    ``labels`` and ``indices`` (instance ids, default 0..N-1; kept by ``subset``) live on the
    device as there; the images stay files. ``workers`` and ``decode`` default to the
    ``REPRODUCE_STREAM_WORKERS`` / ``REPRODUCE_STREAM_DECODE`` environment (see the module doc).
    """

    streamed = True
    storage = "stream"

    def __init__(self, paths: Sequence[str | os.PathLike[str]], labels: np.ndarray | torch.Tensor,
                 device: str | torch.device = "cpu", *, indices: np.ndarray | torch.Tensor | None = None,
                 size: int = SIZE, workers: int | None = None, decode: str | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.device = torch.device(device)
        self.size = int(size)
        lab = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels).long()
        if lab.shape != (len(self.paths),):
            raise ValueError(f"{tuple(lab.shape)} labels for {len(self.paths)} files")
        self.labels = lab.to(self.device)
        ids = torch.arange(len(self.paths)) if indices is None else torch.as_tensor(np.asarray(indices)).long()
        if ids.shape != (len(self.paths),):
            raise ValueError("indices must have one entry per file")
        self.indices = ids.to(self.device)
        self.workers = default_workers() if workers is None else int(workers)
        mode = decode or os.environ.get("REPRODUCE_STREAM_DECODE") or "auto"
        if mode not in DECODES:
            raise ConfigError(f"stream decode must be one of {DECODES}, got {mode!r} (REPRODUCE_STREAM_DECODE)")
        self.decode = ("device" if self.device.type == "cuda" else "workers") if mode == "auto" else mode

    @classmethod
    def from_prepared(cls, name: str, split: str, root: str | os.PathLike[str] | None = None,
                      device: str | torch.device = "cpu", **kw: Any) -> "StreamSplit":
        fs = read_file_split(name, split, root)
        return cls(fs.paths(), fs.labels, device, **kw)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def images(self) -> Any:
        raise ReproduceError("a streamed (full-resolution JPEG) split has no image tensor; this method or "
                             "analysis needs an array dataset")

    def describe(self) -> str:
        return f"{len(self)} JPEG files, decode on {'the device' if self.decode == 'device' else 'CPU workers'}, " \
               f"{self.workers} worker(s)"

    def subset(self, positions: np.ndarray | torch.Tensor) -> "StreamSplit":
        pos = np.asarray(positions.cpu() if isinstance(positions, torch.Tensor) else positions, dtype=np.int64)
        out = StreamSplit.__new__(StreamSplit)
        out.paths = [self.paths[int(p)] for p in pos]
        out.device, out.size, out.workers, out.decode = self.device, self.size, self.workers, self.decode
        pd = torch.as_tensor(pos).to(self.device)
        out.labels, out.indices = self.labels[pd], self.indices[pd]
        return out

    # -- batches -------------------------------------------------------------------------------------
    def batches(self, batch_size: int, *, shuffle: bool = True, augment: bool = True, seed: int = 0,
                epoch: int = 0, drop_last: bool = False, start_batch: int = 0, rotate: float = 0.0,
                color_jitter: Sequence[float] | None = None, **_ignored: Any) -> Iterator[Batch]:
        """One epoch, identical for identical (seed, epoch); see ``loader.iterate`` for the arguments."""
        n = len(self)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        g = epoch_generator(seed, epoch)
        order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        seeds = torch.zeros(n, dtype=torch.int64)
        rotate_on = jitter_on = False
        if augment:
            seeds = torch.randint(0, _SEED_SPAN, (n,), generator=g)
            rotate_on = rotate > 0
            if rotate_on:
                angles = (torch.rand((n,), generator=g, dtype=torch.float64) * 2 - 1) * float(rotate)
            jitter_on = bool(color_jitter) and any(float(v) > 0 for v in color_jitter)
            if jitter_on:
                from .color import draw

                factors, ops = draw(n, tuple(float(v) for v in color_jitter), g)
        stop = (n // batch_size) * batch_size if drop_last else n
        groups = [order[s:s + batch_size] for s in range(start_batch * batch_size, stop, batch_size)]
        if not groups:
            return
        mode = "eval" if not augment else ("bytes" if self.decode == "device" else "train")
        seed_of = seeds.tolist()
        items = [[(p, seed_of[p]) for p in grp.tolist()] for grp in groups]
        cuda = self.device.type == "cuda"
        loader = _loader(self.paths, mode, items, self.workers, pin=cuda)
        for grp, payload in zip(groups, loader):
            if mode == "bytes":
                u8 = self._decode_on_device(payload, seeds[grp])
            else:
                u8 = payload.to(self.device, non_blocking=cuda)
            pos_d = grp.to(self.device)
            angle = None
            if jitter_on:
                from .color import jitter_batch

                u8 = jitter_batch(u8, factors[grp], ops[grp])
            if rotate_on:
                angle = angles[grp]
                u8 = rotate_batch(u8, angle)
            yield Batch(to_unit_float(u8), self.labels[pos_d], self.indices[pos_d], None, None, angle)

    def _decode_on_device(self, payload: tuple[torch.Tensor, torch.Tensor], seeds: torch.Tensor) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg

        flat, lengths = payload
        blobs = list(torch.split(flat, lengths.tolist()))
        try:
            with _quiet():
                imgs = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # one file the batched decoder refuses: decode one by one (with CPU fallback)
            imgs = [decode(b, self.device) for b in blobs]
        out = [crop_flip(img, sample_params(int(s), int(img.shape[-2]), int(img.shape[-1])), self.size)
               for img, s in zip(imgs, seeds.tolist())]
        return torch.stack(out)

    def eval_array(self, positions: Sequence[int] | np.ndarray | None = None, batch_size: int = 64) -> np.ndarray:
        """N x 224 x 224 x 3 uint8: the evaluation transform of the images at ``positions`` (default all)."""
        pos = list(range(len(self))) if positions is None else [int(p) for p in np.asarray(positions).reshape(-1)]
        out = np.empty((len(pos), self.size, self.size, 3), dtype=np.uint8)
        items = [[(p, 0) for p in pos[s:s + batch_size]] for s in range(0, len(pos), batch_size)]
        at = 0
        workers = min(self.workers, len(items)) if len(items) > 1 else 0
        for block in _loader(self.paths, "eval", items, workers, pin=False):
            out[at:at + block.shape[0]] = block.permute(0, 2, 3, 1).numpy()
            at += block.shape[0]
        return out


__all__ = ["SIZE", "StreamSplit", "crop_flip", "decode", "rrc_params", "sample_params"]
