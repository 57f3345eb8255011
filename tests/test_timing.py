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


def _claim(expr: str, same: list[str]):
    from reproduce.claims import Claim
    from reproduce.claims.grammar import parse

    return Claim("T", "t", "s", [parse(expr, "t")], same=[parse(c, "t").refs[0] for c in same])


def test_ratio_claims_are_not_comparable_across_devices():
    from reproduce.claims import check

    c = _claim("abs(b.hours / a.hours - 1.9) <= 0.5", ["a.device", "b.device"])
    one = {None: {"a": {"hours": 34.0, "device": "V100"}, "b": {"hours": 56.5, "device": "V100"}}}
    assert check(c, one)[0] == "holds"  # 1.66
    two = {None: {"a": {"hours": 34.0, "device": "V100"}, "b": {"hours": 56.5, "device": "H100"}}}
    verdict, details = check(c, two)
    assert verdict == "not comparable" and "a.device=V100" in details[0] and "b.device=H100" in details[0]
    # the paper's table has no device column: the ratio is judged on its hours
    assert check(c, {None: {"a": {"hours": 34.0}, "b": {"hours": 103.0}}})[0] == "fails"  # 3.03
    assert check(c, {None: {"a": {"hours": 0.0, "device": "cpu"}, "b": {"hours": 1.0, "device": "cpu"}}})[0] == "unknown"


def test_informational_columns_are_shown_but_never_diffed():
    from reproduce.artifacts.base import Artifact, Row
    from reproduce.jobs.diff import _cell_rows

    art = Artifact(paper="p", name="t", kind="table", title="", source="", published=None, aliases=[],
                   columns=["hours", "acc"], rows={"a": Row("a", "r", {})}, tolerance=1.0, noise=0.0, claims=[],
                   options={}, informational=["hours"])
    cells = {c["column"]: c for c in _cell_rows(art, {"a": {"hours": 34.0, "acc": 50.0}},
                                                 {"a": {"hours": 2.0, "acc": 50.5}}, "paper", True)}
    assert cells["hours"]["verdict"] == "informational (not diffed)" and cells["hours"]["published"] == 34.0
    assert cells["acc"]["verdict"] == "match"


def test_the_planner_prices_robust_datasets_at_their_source_model():
    from reproduce.pipeline.dag import Dag
    from reproduce.pipeline.plan import plan

    dag = Dag({"scale": "paper", "work_dir": "work", "results_dir": "results", "data_dir": "/nonexistent"})
    p = plan(dag, ["biamat/table15"])
    rd = {a["analysis_id"].rsplit("-", 1)[0]: a for a in p["analyses"]}
    # 1,000 steps + 1 target pass over 50k CIFAR-10 images of WRN-28-10 at 0.031 V100-h a pass-epoch
    assert rd["rd-at"]["gpu_hours"] == pytest.approx(1001 * 0.031, abs=0.01) and set(rd) == {"rd-at", "rd-biamat"}
    students = [r for r in p["runs"] if r["run_id"].startswith("cifar10rd-")]
    assert len(students) == 10 and all(r["gpu_hours"] == pytest.approx(3.9, abs=0.01) for r in students)
    assert p["per_artifact"]["biamat/table15"]["runs"] == 12
    assert p["total_gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in p["runs"]) + 2 * 31.03, abs=0.1)
    assert dag.analysis_runtime(rd["rd-at"]["analysis_id"]) > 31 * 60  # a job long enough for the estimate
