"""A deterministic family of generated image datasets for smoke runs and tests.

Each image = domain background (smooth colour field + oriented stripe
texture, in the domain's colour statistics)
           + the class object (the *robust* signal): a soft-edged square 5/8
             of the image wide, with a class colour and a coarse 3x3 colour
             pattern, at a random position and contrast, plus a fainter
             object of another class as a distractor
           + a class-specific periodic +-1 tile of amplitude 4/255 (the
             *non-robust* signal: predictive, but an 8/255 perturbation can
             erase it and paint another class's tile)
           + uniform pixel noise.
Neither signal alone decides the class (distractors and noise blur the
objects; 20% of images carry another class's tile). Measured with the
smoke-scale small_cnn (SGD 0.1, inputs normalized): 16x16, 640 images,
3 epochs -> 48-76% clean accuracy (10 classes), under 12% after PGD-10 at
8/255; 32x32, 5000 images, 5 epochs -> 74-90% clean, under 3% PGD-10, and
with PGD-3 adversarial training 58-76% clean, 37-41% PGD-10 (domains 0, 2).

Domains (integer ids) differ in background colour, smoothness, texture and
colour mixing. ``related_to=D, relatedness=r`` makes this domain's class
prototypes the blend ``r * prototype_D[c % related_classes] + (1 - r) * own[c]``:
an auxiliary domain that shares robust features with a primary one
(ImageNet-like, r near 1) or not (SVHN-like, r = 0). Tiles are never shared.
Prototypes and tiles are drawn per (domain, class), so class c of a domain is
the same whatever the class count.

Everything is integer arithmetic on numpy ``Generator.integers`` draws
(fixed-point, 1/16 of a grey level; integer matmuls are exact), so the same
arguments give bit-identical arrays on every machine for a given numpy
version (recorded in the manifest).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..storage.prepared import write_prepared

GENERATOR_VERSION = "synthetic-v1"
_TAG = 0x5EED_DA7A  # keeps our seed sequences apart from other users of the same seeds
F = 16  # fixed-point sub-levels per grey level
# The held-out split draws the same samples whatever it is called (`test`, or `val` for
# datasets whose catalog entry has no test split), so renaming it changes no pixel.
_TRAIN_CODE, _HELDOUT_CODE = 1, 2

# Signal strengths, in grey levels (of 255).
PROTO_BASE = 80  # robust prototype: class colour in [-PROTO_BASE, PROTO_BASE] ...
PROTO_PAT = 64  # ... plus a 3x3 pattern in [-PROTO_PAT, PROTO_PAT], upsampled
TILE_AMP = 4  # non-robust tile amplitude (4/255: an 8/255 attack can flip it)
TILE_P = 0.8  # share of images whose tile matches their label


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_TAG, *key]))


def _interp(g: int, size: int) -> np.ndarray:
    """(size, g) bilinear upsampling weights summing to 256 per row, integers only."""
    m = np.zeros((size, g), dtype=np.int64)
    for i in range(size):
        p = (i * (g - 1) * 256) // max(size - 1, 1)
        lo, fr = p >> 8, p & 255
        m[i, lo] += 256 - fr
        if fr:
            m[i, lo + 1] += fr
    return m


def _smooth(grid: np.ndarray, size: int) -> np.ndarray:
    """Upsample (..., g, g, C) integer grids to (..., size, size, C), exactly."""
    m = _interp(grid.shape[-2], size)
    g = np.moveaxis(grid.astype(np.int64), -1, -3)  # (..., C, g, g): integer matmul is exact
    return np.moveaxis(m @ g @ m.T, -3, -1) // 65536


class _Domain:
    """The look of one domain, drawn from its id alone."""

    def __init__(self, domain: int, channels: int) -> None:
        r = _rng(1, domain)
        c = channels
        self.bg_mean = r.integers(70, 187, size=c) * F
        self.bg_grid = int(r.integers(2, 6))
        self.bg_amp = int(r.integers(20, 61)) * F
        self.tex_period = int(r.integers(3, 10))
        self.tex_dir = (int(r.integers(-2, 3)), int(r.integers(1, 3)))
        self.tex_amp = int(r.integers(10, 31)) * F
        self.tex_colour = r.integers(-64, 65, size=c)  # /64
        # Colour mixing about the mean, /64: identity plus a domain-specific twist.
        self.mix = np.eye(c, dtype=np.int64) * 64 + r.integers(-24, 25, size=(c, c))
        self.noise = int(r.integers(5, 10)) * F
        self.tile = int(r.integers(3, 6))


def _own_prototypes(domain: int, classes: np.ndarray, channels: int, grid: int = 3) -> np.ndarray:
    """A base colour plus a coarse pattern per class (fixed point).

    One generator per (domain, class): class c looks the same whatever the
    class count. The base colour is learned in a few steps; the pattern
    separates classes whose colours are close.
    """
    out = []
    for c in classes:
        r = _rng(2, domain, int(c))
        base = r.integers(-PROTO_BASE, PROTO_BASE + 1, size=(1, 1, channels))
        out.append(base + r.integers(-PROTO_PAT, PROTO_PAT + 1, size=(grid, grid, channels)))
    return np.stack(out) * F


def prototypes(
    domain: int,
    num_classes: int,
    channels: int = 3,
    *,
    related_to: int | None = None,
    relatedness: float = 0.0,
    related_classes: int | None = None,
) -> np.ndarray:
    """Coarse class prototypes (classes x 3 x 3 x channels, fixed point)."""
    own = _own_prototypes(domain, np.arange(num_classes), channels)
    if related_to is None or relatedness <= 0:
        return own
    k = int(round(min(relatedness, 1.0) * 16))
    rc = related_classes or num_classes
    other = _own_prototypes(related_to, np.arange(num_classes) % rc, channels)
    return (k * other + (16 - k) * own) // 16


def _objects(protos: np.ndarray, size: int) -> np.ndarray:
    """Class objects (5/8 of the image wide, soft-edged) on zero canvases.

    A crop of ``size`` starting anywhere in [0, size - width] shows the whole
    object at the mirrored position: translation without wrap-around.
    """
    p = max(2, (5 * size) // 8)
    obj = _smooth(protos, p)
    i = np.arange(p)
    bump = np.minimum(256, 8 * i * (p - 1 - i) * 256 // max((p - 1) ** 2, 1))  # flat top, soft edges
    obj = obj * (bump[:, None] * bump[None, :] // 256)[None, :, :, None] // 256
    span = size - p
    canvas = np.zeros((protos.shape[0], size + span, size + span, protos.shape[-1]), dtype=np.int64)
    canvas[:, span : span + p, span : span + p] = obj
    return canvas


def _tiles(domain: int, num_classes: int, channels: int, k: int) -> np.ndarray:
    return np.stack([_rng(3, domain, c).integers(0, 2, size=(k, k, channels)) for c in range(num_classes)]) * 2 - 1


def _render(
    n: int,
    labels: np.ndarray,
    r: np.random.Generator,
    dom: _Domain,
    protos_up: np.ndarray,
    tiles: np.ndarray,
    size: int,
) -> np.ndarray:
    c = dom.bg_mean.shape[0]
    ncls = protos_up.shape[0]
    ii = np.arange(size)
    # Background: per-image smooth field plus oriented stripes with a random phase.
    bg = _smooth(r.integers(-dom.bg_amp, dom.bg_amp + 1, size=(n, dom.bg_grid, dom.bg_grid, c)), size)
    a, b = dom.tex_dir
    phase = r.integers(0, dom.tex_period, size=n)
    t = (a * ii[:, None] + b * ii[None, :])[None] + phase[:, None, None]
    tri = np.abs(2 * (t % dom.tex_period) - dom.tex_period)  # 0..period, triangle wave
    tex = (tri * 2 - dom.tex_period) * dom.tex_amp // dom.tex_period
    style = bg + tex[..., None] * dom.tex_colour // 64
    # Robust signal: shifted, scaled prototype plus a weaker distractor class.
    def crop(cls: np.ndarray) -> np.ndarray:
        dy, dx = r.integers(0, protos_up.shape[1] - size + 1, size=(2, n))
        rows = (dy[:, None] + ii)[:, :, None]
        cols = (dx[:, None] + ii)[:, None, :]
        return protos_up[cls[:, None, None], rows, cols]

    amp = r.integers(8, 17, size=n)[:, None, None, None]
    distract = (labels + r.integers(1, max(ncls, 2), size=n)) % ncls
    damp = r.integers(0, 9, size=n)[:, None, None, None]
    style = style + crop(labels) * amp // 16 + crop(distract) * damp // 16
    v = dom.bg_mean + (style @ dom.mix.T) // 64
    # Non-robust signal: a periodic tile at a random phase, usually the label's.
    k = tiles.shape[1]
    wrong = r.integers(0, 1000, size=n) >= int(TILE_P * 1000)
    tcls = np.where(wrong, r.integers(0, ncls, size=n), labels)
    py, px = r.integers(0, k, size=(2, n))
    rows = ((py[:, None] + ii) % k)[:, :, None]
    cols = ((px[:, None] + ii) % k)[:, None, :]
    v = v + tiles[tcls[:, None, None], rows, cols] * (TILE_AMP * F)
    v = v + r.integers(-dom.noise, dom.noise + 1, size=v.shape)
    return np.clip((v + F // 2) // F, 0, 255).astype(np.uint8)


def generate(
    num_classes: int,
    image_size: int,
    n_train: int,
    n_test: int,
    *,
    domain: int = 0,
    seed: int = 0,
    related_to: int | None = None,
    relatedness: float = 0.0,
    channels: int = 3,
    related_classes: int | None = None,
    heldout_split: str = "test",
    contrast: float = 1.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), heldout_split: (images, labels)}``; images uint8 NHWC.

    ``heldout_split`` is the name of the dataset's evaluation split in the catalog
    (``val`` for ImageNet-derived sets), so generated stand-ins have the real split names.
    ``contrast`` scales the class objects (the robust signal; in 1/16 steps, 1 = the
    defaults measured above): higher is easier, for schedules of a few dozen steps.

    Class prototypes depend on ``domain`` (and the relation), samples on
    ``seed`` as well, so train and test share classes and a new seed draws a
    new sample of the same distribution. Labels are balanced and shuffled.
    """
    if num_classes < 2 or image_size < 4 or channels < 1 or domain < 0 or seed < 0:
        raise ValueError("need num_classes >= 2, image_size >= 4, channels >= 1, domain >= 0, seed >= 0")
    if heldout_split == "train" or not heldout_split:
        raise ValueError(f"heldout_split must name a split other than 'train', got {heldout_split!r}")
    if related_to is not None and related_to < 0:
        raise ValueError("related_to must be a domain id >= 0")
    k = int(round(contrast * 16))
    if not 1 <= k <= 64:
        raise ValueError(f"contrast must be in [1/16, 4], got {contrast!r}")
    dom = _Domain(domain, channels)
    protos = prototypes(
        domain, num_classes, channels, related_to=related_to, relatedness=relatedness, related_classes=related_classes
    ) * k // 16  # k = 16 leaves every value as it was
    protos_up = _objects(protos, image_size)
    tiles = _tiles(domain, num_classes, channels, dom.tile)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, code, n in (("train", _TRAIN_CODE, n_train), (heldout_split, _HELDOUT_CODE, n_test)):
        r = _rng(4, seed, domain, code)
        # fewer images than classes (shape-true stand-ins of ImageNet): spread the labels over the
        # whole range so the largest label (and every head's size) is exercised
        base = (np.arange(n, dtype=np.int64) % num_classes if n >= num_classes
                else np.linspace(0, num_classes - 1, n).round().astype(np.int64))
        labels = r.permutation(base)
        images = np.empty((n, image_size, image_size, channels), dtype=np.uint8)
        step = max(1, (1 << 22) // (image_size * image_size * channels))  # bounds int64 temporaries
        for i in range(0, n, step):
            j = min(n, i + step)
            images[i:j] = _render(j - i, labels[i:j], r, dom, protos_up, tiles, image_size)
        out[split] = (images, labels)
    return out


def write_generated(
    name: str,
    root: str | os.PathLike[str] | None,
    num_classes: int,
    image_size: int,
    n_train: int,
    n_test: int,
    *,
    overwrite: bool = True,
    extra_heldout: Sequence[str] = (),
    **generate_kw: Any,
) -> Path:
    """Generate and write a dataset in the prepared format (``synthetic: true``).

    ``generate_kw`` are ``generate``'s keywords; all of its arguments, defaults included, are
    recorded in the manifest's ``generation``.
    """
    call = inspect.signature(generate).bind(num_classes, image_size, n_train, n_test, **generate_kw)
    call.apply_defaults()
    kw = {k: v for k, v in call.arguments.items() if k not in ("num_classes", "image_size", "n_train", "n_test")}
    params = dict(generator=GENERATOR_VERSION, extra_heldout=list(extra_heldout), **call.arguments)
    splits = generate(num_classes, image_size, n_train, n_test, **kw)
    # datasets with many held-out splits (CIFAR-10-C's 75 corruption x severity blocks): each
    # further split is another held-out draw of the same classes under its own seed
    for i, extra in enumerate(extra_heldout):
        more = generate(num_classes, image_size, 1, n_test, **{**kw, "seed": kw["seed"] + 1 + i})
        splits[extra] = more[kw["heldout_split"]]
    mean, std = channel_stats(splits["train"][0])
    return write_prepared(
        name, root, splits, num_classes=num_classes, classes=[f"class{c}" for c in range(num_classes)],
        source={"description": f"generated by reproduce.data.generated.synthetic ({GENERATOR_VERSION})"},
        synthetic=True, mean=mean, std=std, extra={"generation": params}, overwrite=overwrite,
    )


def channel_stats(images: np.ndarray) -> tuple[Sequence[float], Sequence[float]]:
    """Per-channel mean and std of uint8 NHWC images, in [0, 1] units (rounded)."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return [round(float(m), 4) for m in x.mean(0)], [round(float(s), 4) for s in x.std(0)]
