"""Images/s of the streaming JPEG loader (reproduce/data/feeding/stream.py): decode + augment, as training sees it.

Each row times whole epochs of ``StreamSplit.batches`` with the ImageNet-200 recipe
(RandomResizedCrop(224) + flip in the loader, then ColorJitter(.1, .1, .1) and RandomRotation(2)
on the device) until every batch has reached the device, worker start-up included:

- ``workers``: CPU worker processes decode (libjpeg-turbo) and crop; rows for 1, 2 and 4 workers;
- ``device``: workers only read files; the GPU decodes (nvJPEG) and crops (only with CUDA).

Each row also gives the loader alone (decode + crop + flip to the device, no jitter or rotation):
on a CPU the batched jitter and rotation, which run in the training process, cost more than the
decoding (about 19 ms an image on 2 cores), so the first number mostly measures them there.

The images are a generated JPEG tree (``--n`` files of about ``--size`` pixels, smooth content so
that files are about as large as ImageNet's, ~110 KB at 500 x 375), or a prepared JPEG dataset's
split (``--dataset NAME --root DIR --split train``). Numbers are printed, not checked:
``stream <mode> workers=<k>: <images/s> images/s (decode + crop + flip alone: <images/s>)``;
``--out`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reproduce.data.feeding.stream import StreamSplit  # noqa: E402


def jpeg_tree(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """``n`` JPEGs of about ``size`` (w, h), sizes varied by up to 20%, smooth random content."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (int(v * rng.uniform(0.8, 1.2)) for v in size)
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        arr = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
        buf = io.BytesIO()
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        p = folder / f"img_{i:06d}.jpg"
        p.write_bytes(buf.getvalue())
        paths.append(p)
    return paths


def time_epochs(ds: StreamSplit, batch: int, epochs: int, full: bool = True) -> float:
    """Images/s over ``epochs`` full epochs (every batch on the device before the clock stops);
    ``full``: with the on-device ColorJitter and rotation, else the loader's decode + crop + flip alone."""
    n = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for b in ds.batches(batch, shuffle=True, augment=True, seed=0, epoch=epoch, drop_last=False,
                            rotate=2.0 if full else 0.0, color_jitter=(0.1, 0.1, 0.1) if full else None):
            n += len(b)
            if ds.device.type == "cuda":
                torch.cuda.synchronize(ds.device)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1024, help="generated images (default 1024)")
    p.add_argument("--size", default="500x375", help="generated image size WxH (default 500x375)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dataset", default=None, help="a prepared JPEG dataset instead of generated files")
    p.add_argument("--root", default=None, help="its data directory (default $REPRODUCE_DATA_DIR or ./data)")
    p.add_argument("--split", default="train")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.size, args.batch, args.epochs = min(args.n, 24), "96x72", 8, 1
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        if args.dataset:
            from reproduce.data.storage.jpeg import read_file_split

            fs = read_file_split(args.dataset, args.split, args.root)
            paths, labels, what = fs.paths(), fs.labels, f"{args.dataset}/{args.split} ({len(fs)} files)"
        else:
            w, h = (int(v) for v in args.size.lower().split("x"))
            paths = jpeg_tree(Path(tmp), args.n, (w, h))
            labels = np.zeros(len(paths), dtype=np.int64)
            mean_kb = np.mean([os.path.getsize(q) for q in paths]) / 1024
            what = f"{len(paths)} generated JPEGs of ~{w}x{h} ({mean_kb:.0f} KB mean)"
        gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
        print(f"device: {dev} ({gpu}), {os.cpu_count()} CPUs, torch {torch.__version__}; {what}; "
              f"batch {args.batch}, {args.epochs} epoch(s) a row")
        modes = ["workers"] + (["device"] if dev.type == "cuda" else [])
        # untimed: imports, the page cache, CUDA and nvJPEG start-up
        for mode in modes:
            time_epochs(StreamSplit(paths[:2 * args.batch], labels[:2 * args.batch], dev, workers=0, decode=mode),
                        args.batch, 1)
        rows = []
        for mode in modes:
            for k in workers:
                ds = StreamSplit(paths, labels, dev, workers=k, decode=mode)
                loader = time_epochs(ds, args.batch, args.epochs, full=False)
                ips = time_epochs(ds, args.batch, args.epochs)
                rows.append({"mode": mode, "workers": k, "images_per_s": round(ips, 1),
                             "loader_images_per_s": round(loader, 1)})
                print(f"stream {mode} workers={k}: {ips:.1f} images/s (decode + crop + flip alone: "
                      f"{loader:.1f})", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": str(dev), "what": what, "batch": args.batch,
                                              "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
