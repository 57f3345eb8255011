"""A run's expected accelerator memory: its data, its model and optimizer, its activations.

Estimates, not measurements, made before anything runs (``reproduce plan``) and
at training start (the reserve beside the data, ``reproduce.data.feeding.placement``):

* data: every training split the run puts on the device (primary train split
  after n_train/subset/holdout cuts, each aux split, the composite split), at
  C x H x W bytes an image (float32 data: 4x), plus 16 bytes for its label and id;
* model: parameters x 4 bytes x (weights + gradients + optimizer buffers);
* activations: the sum of every leaf module's output size for one image, x 4
  bytes x images per step (batch plus any aux batch) x the forwards whose graphs
  coexist in the update (``passes.<method>.extra`` of config/costs.yaml: 2 for
  TRADES' clean and adversarial logits). fp32 throughout: bf16 autocast halves
  much of it, so under amp this over-asks, the safe direction.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..data.catalog import DATASETS
from ..data.feeding.placement import GIB, decide_placement
from .footprints import trunk_footprint

# What the CUDA context and the caching allocator take before training allocates anything:
# mem_get_info at training start reports a card's size less about this much.
CONTEXT_BYTES = 512 << 20
DEFAULT_GPU_MEM_GIB = 32.0
LABEL_BYTES = 16  # int64 label + int64 instance id, both on the device whatever the placement
DEFAULT_IN_FLIGHT = 2


def _costs() -> Mapping[str, Any]:
    from ..errors import ConfigError
    from .table import read_costs as read

    try:
        return read()
    except ConfigError:  # a run trained outside the repository root has no config/costs.yaml
        return {}


def dataset_shape(name: str, scale: Any = None) -> tuple[int, int, int, int]:
    """(channels, height, width, bytes a value) of ``name``: the scale's generated stand-in, else the catalog."""
    gen = scale.datasets.get(name) if scale is not None and scale.generated else None
    if gen is not None:
        return int(gen.get("channels", 3)), int(gen["size"]), int(gen["size"]), 1
    info = DATASETS.get(name, where="data")
    # generated catalog data (the HAT toy) are feature vectors stored as float32, not grey levels
    return info.channels, info.image_size, info.image_size, 4 if info.generated else 1


def split_images(name: str, split: str, scale: Any = None, costs: Mapping[str, Any] | None = None) -> int | None:
    """Images in one split: the generated stand-in's count, the catalog's, else costs.yaml's ``train_images``."""
    gen = scale.datasets.get(name) if scale is not None and scale.generated else None
    if gen is not None:
        return int(gen["n_train"] if split == "train" else gen["n_test"])
    sizes = DATASETS.get(name).split_sizes if name in DATASETS else {}
    if split in sizes:
        return int(sizes[split])
    if split == "train":
        n = (costs if costs is not None else _costs()).get("train_images", {}).get(name)
        return None if n is None else int(n)
    return None


def num_classes(name: str, scale: Any = None) -> int:
    gen = scale.datasets.get(name) if scale is not None and scale.generated else None
    return int(gen["classes"]) if gen is not None else DATASETS.get(name).num_classes


def primary_images(cfg: Mapping[str, Any], n: int, classes: int) -> int:
    """Training images left after the run's cuts (an analysis-chosen subset counts as the whole split)."""
    d = cfg["data"]
    sub = d.get("subset") or {}
    if d.get("parts"):
        from ..data.feeding.parts import used_fraction

        info = DATASETS.get(d["primary"]) if d["primary"] in DATASETS else None
        n = round(n * used_fraction(d["parts"], (info.split_sizes or {}).get("train") if info else None))
    if "classes" in sub:
        n = round(n * len(sub["classes"]) / max(1, classes))
    elif "indices" in sub:
        n = len(sub["indices"])
    if d.get("n_train"):
        n = min(n, int(d["n_train"]))
    if d.get("holdout"):
        n -= int(float(d["holdout"]["fraction"]) * n)
    return int(n)


def data_bytes(cfg: Mapping[str, Any], scale: Any = None, costs: Mapping[str, Any] | None = None) -> int | None:
    """Bytes of every training split the run loads onto the device; None when a size is unknown."""
    d = cfg["data"]
    parts = [(d["primary"], d["train_split"], True)] + [(a, "train", False) for a in d["aux"]]
    if d.get("composite"):
        parts.append((d["composite"]["dataset"], d["composite"].get("split", "train"), False))
    total = 0
    for name, split, is_primary in parts:
        n = split_images(name, split, scale, costs)
        if n is None:
            return None
        if is_primary:
            n = primary_images(cfg, n, num_classes(name, scale))
        elif (d.get("aux_subsample") or {}).get(name):
            from ..data.feeding.subsample import subsampled_size

            n = subsampled_size(n, num_classes(name, scale), d["aux_subsample"][name])[0]
        c, h, w, itemsize = dataset_shape(name, scale)
        if is_primary and d.get("train_from"):  # an analysis's images (a robust dataset) are float32
            itemsize = 4
        if _streamed(name, scale):  # JPEG files decoded by workers: only labels and ids are resident
            c = h = w = 0
        total += n * (c * h * w * itemsize + LABEL_BYTES)
    return total


def _streamed(name: str, scale: Any = None) -> bool:
    """A full-resolution JPEG dataset (reproduce/data/feeding/stream.py); a generated scale's stand-in is an array."""
    if scale is not None and scale.generated and name in scale.datasets:
        return False
    return name in DATASETS and DATASETS.get(name).storage == "jpeg"


def optimizer_buffers(optim: Mapping[str, Any]) -> int:
    """Per-parameter state tensors: SGD keeps a momentum buffer (when momentum > 0), Adam two moments."""
    if optim.get("name", "sgd") == "adam":
        return 2
    return 1 if float(optim.get("momentum", 0) or 0) > 0 else 0


def images_in_flight(cfg: Mapping[str, Any], costs: Mapping[str, Any] | None = None) -> int:
    """Forwards whose graphs coexist in one update (a wrapping method counts as its base)."""
    c = costs if costs is not None else _costs()
    name = cfg["method"]["name"]
    base_param = c.get("method_base_param", {}).get(name)
    if base_param:
        name = cfg["method"].get(base_param, name)
    per = c.get("passes", {}).get(name)
    return max(1, int(per.get("extra", 1))) if per else DEFAULT_IN_FLIGHT


def images_per_step(cfg: Mapping[str, Any]) -> int:
    """The batch plus the aux images a multi-domain method forwards beside it (BiaMAT)."""
    return int(cfg["batch_size"]) + int(cfg["method"].get("aux_batch_size") or 0)


def model_memory(cfg: Mapping[str, Any], *, classes: int, aux_classes: Mapping[str, int] | None = None,
                 shape: tuple[int, int, int], costs: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Parameter count, model+optimizer bytes and activation bytes of a run at ``shape`` (C, H, W).

    ``aux_classes``: one extra head per aux dataset (BiaMAT's), sized by its class count.
    """
    c, h, w = shape
    trunk_params, feat, values = trunk_footprint(cfg["model"]["name"], c, h, w)
    head_sizes = [int(classes), *[int(n) for n in (aux_classes or {}).values()]]
    hidden = ((cfg["model"].get("head") or {}).get("hidden"))
    if hidden:  # model.head: Linear(feat, hidden) -> ReLU -> Linear(hidden, n) per head
        head_params = sum((feat + 1) * int(hidden) + (int(hidden) + 1) * n for n in head_sizes)
    else:
        head_params = sum((feat + 1) * n for n in head_sizes)
    params = trunk_params + head_params
    per_image = values + c * h * w + int(classes)  # + the normalized input and the logits (outside the trunk)
    per_trained = 4 * (2 + optimizer_buffers(cfg["optim"]))  # weight, gradient, optimizer state
    # a frozen trunk (freeze: trunk) holds its weights only: no gradient, no optimizer state
    trunk_bytes = trunk_params * (4 if cfg.get("freeze") == "trunk" else per_trained)
    return {"parameters": params,
            "model_bytes": trunk_bytes + head_params * per_trained,
            "activation_bytes": per_image * 4 * images_per_step(cfg) * images_in_flight(cfg, costs)}


def run_memory(cfg: Mapping[str, Any], *, gpu_mem_gib: float, scale: Any = None,
               costs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The planner's memory row of one run, with the placement ``auto`` would choose on that card."""
    d = cfg["data"]
    c, h, w, _ = dataset_shape(d["primary"], scale)
    from ..data.feeding.subsample import subsampled_size

    aux = {a: subsampled_size(0, num_classes(a, scale), (d.get("aux_subsample") or {}).get(a))[1] for a in d["aux"]}
    mm = model_memory(cfg, classes=num_classes(d["primary"], scale), aux_classes=aux, shape=(c, h, w), costs=costs)
    data = data_bytes(cfg, scale, costs)
    reserve = mm["model_bytes"] + mm["activation_bytes"]
    free = int(gpu_mem_gib * GIB) - CONTEXT_BYTES
    out: dict[str, Any] = {"data_bytes": data, **mm, "total_bytes": None if data is None else data + reserve,
                           "gpu_mem_gib": gpu_mem_gib}
    if data is None:
        out.update(placement=None, fits=None)
        return out
    place = decide_placement(data, "cuda", reserve_bytes=reserve, free_bytes=free)
    # streaming frees the data's room, but the model must still fit on its own
    on_device = place.reserve_bytes + (data if place.placement == "device" else 0)
    out.update(placement=place.placement, fits=on_device <= free)
    return out


def training_reserve(cfg: Mapping[str, Any], *, classes: int, aux_classes: Mapping[str, int],
                     shape: tuple[int, int, int]) -> int:
    """Model + optimizer + activation bytes the trainer keeps free beside its data."""
    mm = model_memory(cfg, classes=classes, aux_classes=aux_classes, shape=shape)
    return mm["model_bytes"] + mm["activation_bytes"]


__all__ = ["CONTEXT_BYTES", "DEFAULT_GPU_MEM_GIB", "data_bytes", "model_memory", "run_memory",
           "training_reserve", "trunk_footprint"]
