"""Where a run's training splits live: on the accelerator, or streamed from pinned host memory.

GPU-resident uint8 data is the fast path (no per-batch copy), but a large split
(Places365-64: 20.6 GiB) does not fit a 16 or 32 GB card beside the model. The
trainer therefore compares the bytes of every split it would put on the device
with the device's free memory, less a reserve for weights, gradients, optimizer
state and activations, and streams from host memory when they do not fit.

``perf.data_placement`` chooses: ``auto`` (decide), ``device`` (always; an error
when the data cannot fit) or ``host`` (always stream). The batches are the same
bit for bit either way (``reproduce.data.feeding.loader``), so the choice is pure speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from ...errors import ConfigError
from ...perf_settings import DATA_PLACEMENTS as PLACEMENTS
GIB = 1 << 30
# Never leave less than this for the model: cuDNN workspaces, the allocator's
# fragmentation and the evaluation batches the estimate does not count.
RESERVE_FLOOR = 2 * GIB


@dataclass(frozen=True)
class Placement:
    """The decision and the numbers behind it (logged, and kept in done.json)."""

    placement: str           # device | host
    requested: str           # auto | device | host (perf.data_placement)
    device: str
    data_bytes: int
    free_bytes: int | None   # None on the CPU: the data and the model share host memory
    reserve_bytes: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        free = "n/a" if self.free_bytes is None else gib(self.free_bytes)
        return (f"data placement: {self.placement} ({self.reason}; data {gib(self.data_bytes)}, "
                f"free {free}, reserve {gib(self.reserve_bytes)}, requested {self.requested})")


def gib(n: int | float) -> str:
    return f"{n / GIB:.2f} GiB"


def check_placement(value: Any, where: str = "run") -> None:
    if value not in PLACEMENTS:
        raise ConfigError(f"{where}: perf.data_placement must be one of {PLACEMENTS}, got {value!r}")


def cuda_free_bytes(device: Any) -> int:
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def decide_placement(data_bytes: int, device: Any, *, requested: str = "auto", reserve_bytes: int | None = None,
                     free_bytes: int | Callable[[], int] | None = None) -> Placement:
    """Place ``data_bytes`` of training splits for ``device`` (a torch.device or its name).

    ``reserve_bytes`` is the model's own estimate (``reproduce.costs.memory``); it is raised
    to ``RESERVE_FLOOR``. ``free_bytes`` (a number, or a function returning one) stands in for
    ``torch.cuda.mem_get_info`` so that the rule is testable without a GPU.
    """
    check_placement(requested)
    dev = str(device)
    reserve = max(int(reserve_bytes or 0), RESERVE_FLOOR)
    if not dev.startswith("cuda"):
        # host and "device" memory are one and the same: streaming would only add copies
        place = "host" if requested == "host" else "device"
        return Placement(place, requested, dev, int(data_bytes), None, reserve,
                         "requested" if requested == "host" else "cpu: one memory")
    free = free_bytes() if callable(free_bytes) else free_bytes
    free = cuda_free_bytes(device) if free is None else int(free)
    fits = int(data_bytes) + reserve <= free
    if requested == "host":
        return Placement("host", requested, dev, int(data_bytes), free, reserve, "requested")
    if requested == "device":
        if not fits:
            raise ConfigError(f"perf.data_placement: device needs {int(data_bytes)} bytes ({gib(data_bytes)}) of "
                              f"data plus a {gib(reserve)} reserve, but {dev} has {free} bytes ({gib(free)}) free; "
                              "use perf.data_placement: host or auto")
        return Placement("device", requested, dev, int(data_bytes), free, reserve, "requested")
    reason = "fits beside the reserve" if fits else "data + reserve exceed free memory"
    return Placement("device" if fits else "host", requested, dev, int(data_bytes), free, reserve, reason)


__all__ = ["PLACEMENTS", "RESERVE_FLOOR", "Placement", "check_placement", "decide_placement", "gib"]
