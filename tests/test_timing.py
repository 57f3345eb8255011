"""done.json's measured training hours (BiaMAT Table 11): median epoch seconds x epochs."""

from __future__ import annotations

import json

import pytest

from reproduce.data.generated.synthetic import write_generated
from reproduce.train import train
from reproduce.train.timing import timing_summary, wall_hours


def test_wall_hours_is_the_median_epoch_times_epochs():
    # a resumed epoch logs only its post-resume part (12 s): the median ignores it, a sum would not
    hist = [{"seconds": 360.0}, {"seconds": 12.0}, {"seconds": 370.0}, {"seconds": 365.0}]
    assert wall_hours(hist, 4) == pytest.approx(362.5 * 4 / 3600)
    assert wall_hours(hist, 100) == pytest.approx(362.5 * 100 / 3600)
    assert wall_hours([{"lr": 0.1}], 3) is None


def test_timing_summary_names_the_gpu_else_the_device():
    hist = [{"seconds": 10.0}, {"seconds": 30.0}]
    s = timing_summary(hist, 2, {"device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"})
    assert s["wall_device"] == "NVIDIA H100 80GB HBM3" and s["wall_hours"] == pytest.approx(40 / 3600)
    assert s["timing"]["epoch_seconds_median"] == 20.0 and s["timing"]["epochs_timed"] == 2
    assert timing_summary(hist, 2, {"device": "cpu", "gpu": None})["wall_device"] == "cpu"


def test_done_json_holds_the_hours_of_the_logged_epochs(tmp_path):
    root = tmp_path / "data"
    write_generated("toy", root, num_classes=4, image_size=8, n_train=64, n_test=16, domain=0)
    cfg = {"name": "t", "scale": "test", "seed": 1, "data": {"primary": "toy"}, "model": {"name": "small_cnn"},
           "method": {"name": "standard"}, "epochs": 3, "batch_size": 32}
    train(cfg, tmp_path / "run", data_root=root, device="cpu", progress=False)
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    secs = sorted(json.loads(line)["seconds"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    assert done["wall_hours"] == pytest.approx(secs[1] * 3 / 3600)
    assert done["wall_device"] == "cpu" and done["timing"]["epochs"] == 3
