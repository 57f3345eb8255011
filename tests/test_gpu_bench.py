"""benchmarks/gpu_step.py runs on a CPU at smoke sizes; costs.yaml holds per-GPU throughput."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from reproduce.config import resolve_run
from reproduce.errors import ConfigError
from reproduce.pipeline.plan import _costs, assumed, gpu_hours

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_step", ROOT / "benchmarks" / "gpu_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_smoke_prints_table_and_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--cpu-smoke", "--device", "cpu", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"gpu speedup vs naive: \d+\.\d\dx", lines[-1]), lines[-1]
    assert lines[0].startswith("device: cpu") and "torch " in lines[0]
    res = json.loads(out.read_text())
    assert res["smoke"] and res["environment"]["torch"]
    paths = {(r["path"], r["batch"]) for r in res["rows"]}
    for p in ("naive", "engine fp32", "engine fast", "bound fp32", "bound fast"):
        assert (p, 8) in paths, p
    assert ("engine fast", 16) in paths  # the doubling search ran (capped at smoke size)
    assert all(r["images_per_s"] > 0 for r in res["rows"])


def test_epoch_timing_prints_the_costs_line(bench, tmp_path, capsys):
    cfg = {"name": "timing", "data": {"primary": "cifar10"}, "model": {"name": "small_cnn"},
           "method": {"name": "at"}, "attack": {"steps": 1}, "epochs": 2, "batch_size": 8}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "t.json"
    assert bench.main(["--epoch-timing", str(path), "--timing-steps", "2", "--warmup", "1", "--device", "cpu",
                       "--gpu-key", "v100", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"costs.yaml: gpus: v100: hours_per_pass_epoch: \{small_cnn: \d+\.\d{5}\}", text)
    res = json.loads(out.read_text())
    assert res["steps_per_epoch"] == 50000 // 8
    assert res["hours_per_pass_epoch"] == pytest.approx(res["epoch_hours"] / 2)  # PGD-1 AT: 2 passes


def test_planner_hours_per_gpu():
    cfg = resolve_run({"name": "r", "data": {"primary": "cifar10"}, "model": {"name": "resnet18"},
                       "method": {"name": "at"}, "epochs": 10})
    costs = json.loads(json.dumps(_costs()))  # a private copy
    v100 = gpu_hours(cfg, costs)
    assert v100 == pytest.approx(10 * 0.006 * 11)
    costs["gpus"]["h100"].update(relative=None, hours_per_pass_epoch={}, relative_assumed=None)
    assert gpu_hours(cfg, costs, gpu="h100") is None  # unmeasured and no assumption: unknown
    costs["gpus"]["h100"]["relative_assumed"] = 3.0  # an assumption the planner labels as one
    assert gpu_hours(cfg, costs, gpu="h100") == pytest.approx(v100 / 3) and assumed("h100", costs)
    costs["gpus"]["h100"]["relative"] = 4.0
    assert gpu_hours(cfg, costs, gpu="h100") == pytest.approx(v100 / 4)
    costs["gpus"]["h100"]["hours_per_pass_epoch"] = {"resnet18": 0.001}
    assert gpu_hours(cfg, costs, gpu="h100") == pytest.approx(10 * 0.001 * 11) and not assumed("h100", costs)
    with pytest.raises(ConfigError, match="a100"):
        gpu_hours(cfg, costs, gpu="a100")
