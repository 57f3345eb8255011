"""The planner's device-memory column (issue 8, "Data that fits"): hand-checked numbers and the paper plan."""

from __future__ import annotations

import json

from reproduce.config import resolve_run
from reproduce.data.feeding.placement import GIB
from reproduce.costs.memory import data_bytes, model_memory, run_memory, trunk_footprint

COSTS = {"passes": {"standard": {"steps": 0, "extra": 1}, "trades": {"steps": 1, "extra": 2}},
         "method_base_param": {"biamat": "base"}, "train_images": {}}


def test_planner_numbers_by_hand_for_the_toy_mlp() -> None:
    # HAT's toy: 2000 float32 3-d points, MLP 3-25 + head 25-2
    cfg = resolve_run({"name": "t", "data": {"primary": "toy3d"}, "model": {"name": "mlp_toy"},
                       "method": {"name": "standard"}, "epochs": 1, "batch_size": 128})
    assert trunk_footprint("mlp_toy", 3, 1, 1) == (3 * 25 + 25, 25, 3 + 25 + 25)  # flatten, linear, relu
    m = run_memory(cfg, gpu_mem_gib=16, costs=COSTS)
    params = (3 * 25 + 25) + (25 * 2 + 2)
    assert m["parameters"] == params == 152
    assert m["model_bytes"] == params * 4 * 3  # weights, gradients, SGD momentum
    per_image = 53 + 3 + 2  # leaf outputs + normalized input + logits
    assert m["activation_bytes"] == per_image * 4 * 128 * 1
    assert m["data_bytes"] == 2000 * (3 * 4 + 16)  # float32 values, label + id
    assert m["total_bytes"] == m["data_bytes"] + m["model_bytes"] + m["activation_bytes"]
    assert m["placement"] == "device" and m["fits"]
    no_momentum = run_memory({**cfg, "optim": {**cfg["optim"], "momentum": 0.0}}, gpu_mem_gib=16, costs=COSTS)
    assert no_momentum["model_bytes"] == params * 4 * 2


def test_planner_counts_aux_splits_heads_and_batches() -> None:
    cfg = resolve_run({"name": "b", "data": {"primary": "cifar10", "aux": ["places365-64"], "n_train": 1000},
                       "model": {"name": "mlp_toy"}, "method": {"name": "biamat", "base": "trades",
                                                               "aux_batch_size": 64},
                       "epochs": 1, "batch_size": 128})
    assert data_bytes(cfg, costs=COSTS) == 1000 * (3 * 32 * 32 + 16) + 1_803_460 * (3 * 64 * 64 + 16)
    mm = model_memory(cfg, classes=10, aux_classes={"places365-64": 365}, shape=(3, 32, 32), costs=COSTS)
    feat = 25
    assert mm["parameters"] == (3 * 32 * 32 * 25 + 25) + (feat + 1) * (10 + 365)
    # 128 primary + 64 aux images a step; TRADES holds clean and adversarial graphs at once
    assert mm["activation_bytes"] == (3072 + 25 + 25 + 3072 + 10) * 4 * (128 + 64) * 2
    assert run_memory(cfg, gpu_mem_gib=16, costs=COSTS)["placement"] == "host"
    assert run_memory(cfg, gpu_mem_gib=80, costs=COSTS)["placement"] == "device"


def test_reproduce_plan_shows_places365_runs_streamed_on_a_16_gib_card(capsys) -> None:
    from reproduce.cli import main

    assert main(["plan", "biamat", "--scale", "paper", "--gpu-mem-gib", "16", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["gpu_mem_gib"] == 16
    runs = {r["run_id"]: r for r in p["runs"]}
    p64 = [r for rid, r in runs.items() if rid.startswith("imgnet100-") and "places365" in rid]
    assert len(p64) == 2  # AT and TRADES with Places365-64 as aux data (Table 2)
    for r in p64:
        m = r["memory"]
        assert m["placement"] == "host" and m["data_bytes"] > 20 * GIB
        assert set(m) >= {"data_bytes", "model_bytes", "activation_bytes", "total_bytes", "placement"}
    assert runs[next(rid for rid in runs if rid.startswith("cifar10-at-") and rid.count("-") == 2)][
        "memory"]["placement"] == "device"
    assert main(["plan", "biamat", "--scale", "paper", "--gpu-mem-gib", "80", "--json"]) == 0
    p80 = {r["run_id"]: r["memory"]["placement"] for r in json.loads(capsys.readouterr().out)["runs"]}
    assert [p80[r["run_id"]] for r in p64] == ["device", "device"]
    assert main(["plan", "biamat", "--scale", "paper", "--gpu-mem-gib", "16"]) == 0
    text = capsys.readouterr().out
    assert "device GiB" in text and "16 GiB card" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("imgnet100-at-biamat-places365"))
    assert " host" in line and "22.1+" in line


def test_footprint_table_is_current_and_covers_every_spec_run() -> None:
    """config/footprints.yaml spares `reproduce plan` the model zoo's import; it must equal the
    meta-device computation and list every (model, shape) some spec trains at a shipped scale."""
    from reproduce.costs.footprints import _table, key, meta_footprint
    from reproduce.pipeline.footprint_table import used_pairs

    table = _table()
    for k, v in table.items():
        model, shape = k.split(" ")
        c, h, w = (int(s) for s in shape.split("x"))
        assert tuple(v) == meta_footprint(model, c, h, w), f"{k}: stale; python -m reproduce.pipeline.footprint_table"
    missing = sorted({key(*p) for p in used_pairs()} - set(table))
    assert not missing, f"not in config/footprints.yaml: {missing}; python -m reproduce.pipeline.footprint_table"


def test_a_pair_missing_from_the_table_is_computed(monkeypatch) -> None:
    from reproduce.costs import footprints

    monkeypatch.setattr(footprints, "_table", lambda: {})
    footprints.trunk_footprint.cache_clear()
    try:
        assert footprints.trunk_footprint("small_cnn", 3, 16, 16) == (93472, 128, 11008)
    finally:
        footprints.trunk_footprint.cache_clear()
