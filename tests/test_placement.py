"""Data that fits (issue 8): the placement rule, its config key, and what the trainer does and records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduce.config import config_hash, resolve_run
from reproduce.data.catalog import DATASETS
from reproduce.data.feeding.placement import GIB, RESERVE_FLOOR, decide_placement
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.costs.memory import CONTEXT_BYTES, model_memory


def _places365_64_bytes() -> int:
    info = DATASETS.get("places365-64")
    return info.split_sizes["train"] * info.image_size * info.image_size * info.channels


def test_places365_64_streams_on_a_16_gib_card_and_stays_on_an_80_gib_one() -> None:
    n = _places365_64_bytes()
    assert n == 1_803_460 * 64 * 64 * 3 and round(n / GIB, 1) == 20.6  # the issue's 20.6 GiB
    reserve = 6 * GIB  # a WRN-16-10-sized model, optimizer and activations
    small = decide_placement(n, "cuda:0", reserve_bytes=reserve, free_bytes=16 * GIB - CONTEXT_BYTES)
    big = decide_placement(n, "cuda:0", reserve_bytes=reserve, free_bytes=80 * GIB - CONTEXT_BYTES)
    assert (small.placement, big.placement) == ("host", "device")
    assert small.data_bytes == n and small.reserve_bytes == reserve and small.free_bytes == 16 * GIB - CONTEXT_BYTES
    assert "host" in small.summary() and "20.64 GiB" in small.summary()


def test_the_rule_on_cuda_with_injected_free_memory() -> None:
    free = 10 * GIB
    assert decide_placement(7 * GIB, "cuda", reserve_bytes=3 * GIB, free_bytes=free).placement == "device"  # 7+3 = 10
    assert decide_placement(7 * GIB + 1, "cuda", reserve_bytes=3 * GIB, free_bytes=free).placement == "host"
    # the reserve never drops below the floor, however small the model
    p = decide_placement(9 * GIB, "cuda", reserve_bytes=1, free_bytes=free)
    assert p.reserve_bytes == RESERVE_FLOOR == 2 * GIB and p.placement == "host"
    # a callable stands in for torch.cuda.mem_get_info
    assert decide_placement(1, "cuda", free_bytes=lambda: 100 * GIB).free_bytes == 100 * GIB
    assert decide_placement(1, "cuda", requested="host", free_bytes=free).placement == "host"
    assert decide_placement(1, "cuda", requested="device", free_bytes=free).placement == "device"


def test_device_requested_without_room_is_a_one_line_error_with_the_numbers() -> None:
    with pytest.raises(ConfigError) as e:
        decide_placement(20 * GIB, "cuda:0", requested="device", reserve_bytes=3 * GIB, free_bytes=15 * GIB)
    msg = str(e.value)
    assert "\n" not in msg
    for needle in (str(20 * GIB), str(15 * GIB), "host", "auto", "perf.data_placement"):
        assert needle in msg


def test_on_the_cpu_the_data_stays_put() -> None:
    p = decide_placement(500 * GIB, torch.device("cpu"), free_bytes=1)  # free memory is not consulted
    assert p.placement == "device" and p.free_bytes is None
    assert decide_placement(1, "cpu", requested="host").placement == "host"  # honoured: it is what was asked
    assert decide_placement(500 * GIB, "cpu", requested="device").placement == "device"


def _run(**over) -> dict:
    raw = {"name": "p", "data": {"primary": "toy"}, "model": {"name": "small_cnn"}, "method": {"name": "standard"},
           "epochs": 1, "batch_size": 16}
    raw.update(over)
    return resolve_run(raw)


def test_config_key_defaults_to_auto_is_checked_and_leaves_the_run_id_alone() -> None:
    cfg = _run()
    assert cfg["perf"]["data_placement"] == "auto"
    for v in ("device", "host"):
        assert config_hash(_run(perf={"data_placement": v})) == config_hash(cfg)
    with pytest.raises(ConfigError, match=r"perf\.data_placement .*'gpu'") as e:
        _run(perf={"data_placement": "gpu"})
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=8, n_train=64, n_test=16, domain=0)
    return root


def test_trainer_places_data_records_it_and_host_storage_trains_the_same_weights(toy_root, tmp_path, capsys) -> None:
    from reproduce.train import train

    runs = {}
    for placement in ("auto", "host"):
        cfg = {"name": f"t-{placement}", "scale": "test", "seed": 2, "data": {"primary": "toy", "augment": True},
               "model": {"name": "small_cnn"}, "method": {"name": "standard"}, "schedule": {"kind": "constant"},
               "epochs": 1, "batch_size": 16, "perf": {"data_placement": placement}}
        out = tmp_path / placement
        summary = train(cfg, out, data_root=toy_root, device="cpu", progress=False)
        rec = json.loads((out / "done.json").read_text())["data_placement"]
        assert rec == summary["data_placement"]
        assert rec["requested"] == placement and rec["placement"] == ("device" if placement == "auto" else "host")
        assert rec["data_bytes"] == 64 * (8 * 8 * 3 + 16) and rec["free_bytes"] is None
        runs[placement] = torch.load(out / "last.pt", weights_only=True)["model"]
    err = capsys.readouterr().err
    assert "data placement: device" in err and "data placement: host" in err
    for k, v in runs["auto"].items():
        assert torch.equal(v, runs["host"][k]), k


def test_place_data_reserves_the_model_estimate_on_cuda(toy_root) -> None:
    from reproduce.data import load_split
    from reproduce.train.setup import place_data

    x, y = load_split("toy", "train", toy_root)
    splits = {"toy": (x, y, None)}
    cfg = resolve_run({"name": "w", "data": {"primary": "toy"}, "model": {"name": "wrn-28-10"},
                       "method": {"name": "standard"}, "epochs": 1, "batch_size": 4096})
    est = model_memory(cfg, classes=4, shape=(3, 8, 8))
    need = est["model_bytes"] + est["activation_bytes"]
    assert need > RESERVE_FLOOR  # so the reserve below is the estimate, not the floor
    p = place_data(cfg, splits, torch.device("cuda"), classes=4, aux_classes={}, free_bytes=need + x.nbytes + 64 * 16)
    assert p.placement == "device" and p.reserve_bytes == need and p.data_bytes == x.nbytes + 64 * 16
    p = place_data(cfg, splits, torch.device("cuda"), classes=4, aux_classes={}, free_bytes=need)
    assert p.placement == "host"
    cfg["perf"]["data_placement"] = "device"
    with pytest.raises(ConfigError, match="use perf.data_placement: host or auto"):
        place_data(cfg, splits, torch.device("cuda"), classes=4, aux_classes={}, free_bytes=need)
    assert np.asarray(y).shape == (64,)
