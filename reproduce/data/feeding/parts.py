"""Named parts of the primary training split (``data.parts``): a seeded, class-balanced split into
parts, the parts a run trains on, and a fixed noise on some of them (BiaMAT 000 Table 5: cifar-A/B/C).

``{sizes: {a: 25000, b: 12500, c: 12500}, seed: 0, use: [a, c], noise: {c: {uniform: 0.5, seed: 0}}}``

* ``sizes`` count images of the catalog's training split; where the run's split is smaller (a
  scale's pool, generated stand-ins) each part keeps the same fraction of it. Parts that sum to
  less than the split leave the rest unused.
* The split is class-balanced: each class is permuted (``seed``), its images ranked by position
  over the class size, and the ranked sequence of all classes is cut at the parts' boundaries, so
  every class contributes its share to every part (to within one image) and totals are exact.
* ``noise: {PART: {uniform: A, seed: S}}`` replaces each image x of PART by
  round(255 * clip(x/255 + U(-A, A), 0, 1)), drawn once per image from (S, the image's index in the
  split): the same noisy image in every run and every combination of parts, stored as uint8 like
  the data.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...errors import ConfigError

KEYS = ("sizes", "seed", "use", "noise")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_parts(spec: Any, where: str, catalog_n: int | None = None) -> None:
    """One line naming the key for a malformed ``data.parts`` (``catalog_n``: the split's size, if known)."""
    if spec is None:
        return
    if not isinstance(spec, Mapping) or set(spec) - set(KEYS) or not {"sizes", "use"} <= set(spec):
        raise ConfigError(f"{where}: data.parts must be {{sizes: {{NAME: N, ...}}, seed: S, use: [NAME, ...], "
                          f"noise: {{NAME: {{uniform: A, seed: S}}}}}}, got {spec!r}")
    sizes = spec["sizes"]
    if not isinstance(sizes, Mapping) or not sizes or not all(_int(n) and n > 0 for n in sizes.values()):
        raise ConfigError(f"{where}: data.parts.sizes must map part names to positive image counts, got {sizes!r}")
    if catalog_n and sum(sizes.values()) > catalog_n:
        raise ConfigError(f"{where}: data.parts.sizes add up to {sum(sizes.values())} images, more than the "
                          f"{catalog_n} of the training split")
    if not _int(spec.get("seed", 0)):
        raise ConfigError(f"{where}: data.parts.seed must be an integer, got {spec.get('seed')!r}")
    use = spec["use"]
    if not isinstance(use, list) or not use or any(u not in sizes for u in use) or len(set(use)) != len(use):
        raise ConfigError(f"{where}: data.parts.use must list distinct parts of {list(sizes)}, got {use!r}")
    noise = spec.get("noise") or {}
    if not isinstance(noise, Mapping):
        raise ConfigError(f"{where}: data.parts.noise must map part names to {{uniform: A, seed: S}}, got {noise!r}")
    for part, n in noise.items():
        if part not in sizes:
            raise ConfigError(f"{where}: data.parts.noise names part {part!r}, not one of {list(sizes)}")
        a = n.get("uniform") if isinstance(n, Mapping) else None
        if (not isinstance(n, Mapping) or set(n) - {"uniform", "seed"} or isinstance(a, bool)
                or not isinstance(a, (int, float)) or not 0 < a <= 1 or not _int(n.get("seed", 0))):
            raise ConfigError(f"{where}: data.parts.noise.{part} must be {{uniform: A in (0, 1], seed: S}}, got {n!r}")


def part_fractions(spec: Mapping[str, Any], catalog_n: int | None) -> dict[str, float]:
    """Each part's share of the training split: its count over the catalog's split size (or over the
    parts' total where the catalog does not size the dataset)."""
    total = sum(int(n) for n in spec["sizes"].values())
    denom = int(catalog_n) if catalog_n else total
    if total > denom:
        raise ConfigError(f"data.parts.sizes add up to {total} images, more than the {denom} of the training split")
    return {name: int(n) / denom for name, n in spec["sizes"].items()}


def used_fraction(spec: Mapping[str, Any] | None, catalog_n: int | None) -> float:
    """The share of the training split a run with ``data.parts`` trains on (1 without parts)."""
    if not spec:
        return 1.0
    frac = part_fractions(spec, catalog_n)
    return sum(frac[u] for u in spec["use"])


def split_parts(labels: np.ndarray, fractions: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    """Part name -> sorted positions into ``labels``: disjoint, class-balanced, seeded."""
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    rank = np.empty(n, dtype=np.float64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[rng.permutation(members)] = np.arange(len(members)) / len(members)
    # ties (the same rank fraction in several classes) go to the lower class label, then position
    order = np.lexsort((np.arange(n), labels, rank))
    out, start, cum = {}, 0, 0.0
    for name, f in fractions.items():
        cum += float(f)
        end = min(n, int(round(n * cum)))
        out[name] = np.sort(order[start:end])
        start = end
    return out


def add_uniform_noise(images: np.ndarray, ids: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    """uint8 images with U(-amplitude, amplitude) noise in [0, 1] units, clipped and re-quantised;
    image i's noise is drawn from (seed, ids[i]) alone."""
    out = np.empty_like(images)
    for k, (img, i) in enumerate(zip(images, ids)):
        u = np.random.default_rng([int(seed), int(i)]).uniform(-amplitude, amplitude, size=img.shape)
        out[k] = np.rint(np.clip(img.astype(np.float64) / 255.0 + u, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def choose_parts(spec: Mapping[str, Any], labels: np.ndarray,
                 catalog_n: int | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(positions of the used parts, sorted; part name -> its positions) into ``labels``."""
    parts = split_parts(labels, part_fractions(spec, catalog_n), int(spec.get("seed", 0)))
    used = np.sort(np.concatenate([parts[u] for u in spec["use"]]))
    return used, parts


def noisy_images(spec: Mapping[str, Any], images: np.ndarray, ids: np.ndarray,
                 parts: Mapping[str, np.ndarray]) -> np.ndarray:
    """``images`` (the run's kept training images, original ids ``ids``) with each noisy part's noise added."""
    noise = spec.get("noise") or {}
    if not any(part in spec["use"] for part in noise):
        return images
    images = np.array(images)  # the loaded split may be a read-only memory map
    for part, n in noise.items():
        if part not in spec["use"]:
            continue
        hit = np.flatnonzero(np.isin(ids, parts[part]))
        images[hit] = add_uniform_noise(images[hit], ids[hit], float(n["uniform"]), int(n.get("seed", 0)))
    return images


def describe(spec: Mapping[str, Any], parts: Mapping[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """What done.json records: the parts' achieved sizes and per-class counts, the ones used, the noise."""
    classes = np.unique(labels)
    return {"seed": int(spec.get("seed", 0)), "use": list(spec["use"]), "noise": dict(spec.get("noise") or {}),
            "sizes": {k: int(len(v)) for k, v in parts.items()},
            "per_class": {k: [int((labels[v] == c).sum()) for c in classes] for k, v in parts.items()}}
