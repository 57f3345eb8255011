"""Per-epoch eval-mode per-instance logs (run key eval_logs): files, inertness, resume, selection, difficulty."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.analyses.base import AnalysisContext
from reproduce.analyses.d_distance import DDistance
from reproduce.analyses.difficulty import Difficulty, log_difficulty
from reproduce.config import config_hash, resolve_run
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError, Preempted
from reproduce.evaluate import evaluate
from reproduce.train import train
from reproduce.config.eval_logs import check_eval_logs
from reproduce.train.eval_logs import EvalLogs, eval_seed, log_instances

from .test_preempt import SignalAtPoll
from .test_preempt import _cfg as preempt_cfg

LOGS = [{"name": "test", "split": "test", "protocol": "selection"},
        {"name": "hold", "split": "holdout", "protocol": "pgd20", "n": 10},
        {"name": "cc", "split": "test", "protocol": "clean", "dataset": "toyc", "corruption": "snow",
         "severity": [1, 2]}]


def _cfg(**over):
    # test_preempt's toy AT run, with a hold-out, per-instance logs and a PGD selection
    base = preempt_cfg(name="t-evl", seed=3, schedule={}, log_per_instance=True,
                       data={"primary": "toy", "augment": True, "holdout": {"kind": "first", "fraction": 0.125}},
                       selection={"protocol": "pgd20", "n": 24})
    base.pop("schedule")
    base.update(over)
    return base


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    write_generated("toy", r, num_classes=4, image_size=8, n_train=192, n_test=32, domain=0)
    # a stand-in for CIFAR-10-C: the same classes, one held-out draw per corruption-severity split
    write_generated("toyc", r, num_classes=4, image_size=8, n_train=4, n_test=16, domain=0,
                    extra_heldout=["snow-1", "snow-2"])
    return r


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_an_empty_list_keeps_existing_run_ids():
    # cifar10-at of the BiaMAT spec had id cifar10-at-120b6ca2 before eval_logs existed
    from reproduce.pipeline.dag import Dag

    dag = Dag({"scale": "paper", "data_dir": "data", "work_dir": "work", "results_dir": "results"})
    assert "cifar10-at-120b6ca2" in dag.graph.runs
    cfg = resolve_run(_cfg())
    assert cfg["eval_logs"] == []
    assert config_hash(cfg) == config_hash({k: v for k, v in cfg.items() if k != "eval_logs"})
    assert config_hash(resolve_run(_cfg(eval_logs=LOGS[:1]))) != config_hash(cfg)  # a costly observer: hashed


def test_entries_are_normalised_and_checked():
    cfg = resolve_run(_cfg(eval_logs=LOGS))
    names = [e["name"] for e in cfg["eval_logs"]]
    assert names == ["test", "hold", "cc-snow-1", "cc-snow-2"]
    assert cfg["eval_logs"][0]["protocol"] == "pgd20"  # "selection" = the run's selection protocol
    assert cfg["eval_logs"][3] == {"name": "cc-snow-2", "split": "test", "protocol": "clean", "n": None,
                                   "dataset": "toyc", "corruption": "snow", "severity": 2}
    assert resolve_run(cfg)["eval_logs"] == cfg["eval_logs"]  # idempotent: config.yaml resolves to itself
    bad = [([{"name": "a", "split": "valid", "protocol": "clean"}], "split"),
           ([{"name": "a", "split": "test", "protocol": "clean"}] * 2, "name"),
           ([{"name": "a", "split": "test", "protocol": "clean", "n": 0}], ".n"),
           ([{"name": "a", "split": "test", "protocol": "clean", "dataset": "cifar10-c", "corruption": "frost",
              "severity": 6}], "severity"),
           ([{"name": "a", "split": "test", "protocol": "clean", "dataset": "cifar10-c", "corruption": "blur",
              "severity": 1}], "no split blur-1"),
           ([{"name": "a", "split": "test", "protocol": "clean", "colour": 1}], "unknown key")]
    for logs, msg in bad:
        with pytest.raises(ConfigError, match=msg) as e:
            resolve_run(_cfg(eval_logs=logs))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="'imgnet100' has no test split"):
        resolve_run(_cfg(data={"primary": "imgnet100", "eval_split": "val"},
                         selection={"protocol": "clean", "split": "val"},
                         eval_logs=[{"name": "t", "split": "test", "protocol": "clean"}]))
    with pytest.raises(ConfigError, match="holdout needs data.holdout"):
        check_eval_logs({"eval_logs": LOGS[1:2], "data": {"holdout": None}, "selection": {}}, "run")
    with pytest.raises(ConfigError, match="no selection.protocol"):
        check_eval_logs({"eval_logs": LOGS[:1], "data": {}, "selection": {"protocol": None}}, "run")


class _Const(torch.nn.Module):
    """Logits fixed per class index: loss and correctness are hand-computable."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1) + 0 * self.w


def test_clean_log_values_by_hand():
    from reproduce.evaluate import PROTOCOLS

    # logits [ln 3, 0]: p(class 0) = 3/4 -> CE ln(4/3) for label 0, ln 4 for label 1
    model = _Const([float(np.log(3.0)), 0.0])
    x = np.zeros((3, 2, 2, 3), np.uint8)
    loss, ok = log_instances(model, x, np.array([0, 1, 0]), PROTOCOLS.get("clean"), device=torch.device("cpu"), seed=0)
    np.testing.assert_allclose(loss, [np.log(4 / 3), np.log(4.0), np.log(4 / 3)], rtol=1e-6)
    assert ok.tolist() == [1, 0, 1] and loss.dtype == np.float32 and ok.dtype == np.uint8


def test_seed_depends_on_epoch_seed_and_name():
    import zlib

    assert eval_seed(10, "test") == (10 + zlib.crc32(b"test")) % (2**31 - 1)
    assert eval_seed(10, "test") != eval_seed(10, "hold") != eval_seed(11, "hold")


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    """The same training without and with eval logs."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("runs")
    train(_cfg(), base / "plain", data_root=root, device="cpu", progress=False)
    train(_cfg(eval_logs=LOGS), base / "logged", data_root=root, device="cpu", progress=False)
    return base


def test_logs_leave_training_bit_identical(runs):
    a, b = _weights(runs / "plain" / "last.pt"), _weights(runs / "logged" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(np.load(runs / "plain" / "instance_losses.npy"),
                                  np.load(runs / "logged" / "instance_losses.npy"))


def test_files_shapes_and_metrics(runs, root):
    run = runs / "logged"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for name, n, ids in (("test", 32, np.arange(32)), ("hold", 10, np.load(run / "holdout_indices.npy")[:10]),
                         ("cc-snow-1", 16, np.arange(16)), ("cc-snow-2", 16, np.arange(16))):
        losses, correct = np.load(run / f"eval_{name}_losses.npy"), np.load(run / f"eval_{name}_correct.npy")
        assert losses.shape == (2, n) and losses.dtype == np.float32 and np.isfinite(losses).all()
        assert correct.shape == (2, n) and correct.dtype == np.uint8 and set(np.unique(correct)) <= {0, 1}
        np.testing.assert_array_equal(np.load(run / f"eval_{name}_indices.npy"), ids)
        for e, row in enumerate(rows):
            assert row[f"eval_{name}_acc"] == pytest.approx(100.0 * correct[e].mean())
    # the hold-out ids are the first 12.5% of the training split ("first" hold-out)
    assert np.load(run / "eval_hold_indices.npy").tolist() == list(range(10))


def test_selection_reads_the_log_and_matches_evaluate(runs, root):
    """Selection pgd20 on the first 24 test images = the test log's first 24 columns; the log's
    correctness is evaluate()'s correct_mask for the log's own seed."""
    run = runs / "logged"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    correct = np.load(run / "eval_test_correct.npy")
    for e, row in enumerate(rows):
        assert row["selection_pgd20"] == pytest.approx(100.0 * correct[e, :24].mean())
    best = json.loads((run / "done.json").read_text())["best"]
    scores = [r["selection_pgd20"] for r in rows]
    assert best["epoch"] == int(np.argmax(scores)) + 1  # ties: first, as without logs
    from reproduce.data import load_split
    from reproduce.train.setup import build_from_run_dir

    _, model, meta = build_from_run_dir(run, root, torch.device("cpu"), "last.pt")
    from reproduce.train.loop import epoch_seed

    x, y = load_split("toy", "test", root)
    res = evaluate(model, x, y, "pgd20", seed=eval_seed(epoch_seed(3, 1), "test"))
    assert res["correct_mask"] == correct[1].tolist()


def test_resume_after_a_kill_gives_identical_logs(runs, root, tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    with pytest.raises(Preempted):  # stops mid-epoch 2 (6 steps an epoch)
        train(_cfg(eval_logs=LOGS), run, data_root=root, device="cpu", progress=False,
              stop=SignalAtPoll(9, signal.SIGUSR1))
    assert np.load(run / "eval_test_losses.npy").shape[0] == 1
    # a kill between the logs and the checkpoint leaves a row the checkpoint does not know
    extra = np.concatenate([np.load(run / "eval_test_losses.npy")] * 2)
    np.save(run / "eval_test_losses.npy", extra)
    train(_cfg(eval_logs=LOGS), run, data_root=root, device="cpu", progress=False)
    for f in sorted((runs / "logged").glob("eval_*.npy")):
        np.testing.assert_array_equal(np.load(run / f.name), np.load(f), err_msg=f.name)


def test_difficulty_from_an_eval_log_by_hand(tmp_path, root):
    """Losses [[1, 3, 2], [1, 5, 2]] over two epochs: sums 2, 8, 4 -> id 1 hardest (d = 1/6),
    id 2 next (d = 1/2), id 0 easiest (d = 5/6)."""
    from reproduce import io

    run = tmp_path / "r"
    run.mkdir()
    cfg = resolve_run(_cfg(eval_logs=[{"name": "test", "split": "test", "protocol": "clean"}]))
    io.write_yaml(run / "config.yaml", cfg)
    np.save(run / "eval_test_losses.npy", np.array([[1, 3, 2], [1, 5, 2]], np.float32))
    np.save(run / "eval_test_correct.npy", np.array([[1, 0, 1], [1, 0, 0]], np.uint8))
    np.save(run / "eval_test_indices.npy", np.array([0, 1, 2], np.int64))
    ids, d = log_difficulty(run, "test", "loss", 0, "sum")
    np.testing.assert_allclose(d, [5 / 6, 1 / 6, 1 / 2])
    params = Difficulty.resolve_params({"run": "r", "log": "test", "min_epoch": 0}, "t")
    out = tmp_path / "out"
    out.mkdir()
    vals = Difficulty().run(AnalysisContext(params, {"run": run}, out, root, torch.device("cpu"), "test"))
    assert vals["log"] == "test" and vals["n"] == 3
    with np.load(out / "difficulty.npz") as z:
        np.testing.assert_allclose(z["d"], [5 / 6, 1 / 6, 1 / 2])
    # acc: correct counts 2, 0, 1 -> id 1 hardest
    _, d_acc = log_difficulty(run, "test", "acc", 0, "sum")
    np.testing.assert_allclose(d_acc, [5 / 6, 1 / 6, 1 / 2])
    # log: train stays out of the params (and the hash); the observer it needs follows the log
    assert "log" not in Difficulty.resolve_params({"run": "r"}, "t")
    assert Difficulty.required_observers({"log": "test"}) == ("eval_log:test",)
    assert Difficulty.required_observers({}) == ("per_instance",)
    with pytest.raises(ConfigError, match="no eval_logs entry named 'other'"):
        log_difficulty(run, "other", "loss", 0, "sum")


def test_d_distance_reads_logs_in_place(tmp_path, root):
    """d1 = [5/6, 1/6, 1/2] (analysis); the log of run b gives [1/6, 5/6, 1/2]: D = (2/3 + 2/3 + 0) / 3."""
    from reproduce import io
    from reproduce.analyses.margins import save_npz

    a = tmp_path / "a"
    a.mkdir()
    save_npz(a / "difficulty.npz", indices=np.array([0, 1, 2]), d=np.array([5 / 6, 1 / 6, 1 / 2]))
    run = tmp_path / "b"
    run.mkdir()
    io.write_yaml(run / "config.yaml", resolve_run(_cfg(eval_logs=[
        {"name": "c-x-1", "split": "test", "protocol": "clean"},
        {"name": "test", "split": "test", "protocol": "clean"}])))
    np.save(run / "eval_c-x-1_losses.npy", np.array([[5, 1, 2]], np.float32))
    np.save(run / "eval_c-x-1_indices.npy", np.array([0, 1, 2], np.int64))
    params = DDistance.resolve_params({"a": ["da"], "b_runs": ["rb"], "b_logs": ["c-*"], "pairing": "cyclic",
                                       "min_epoch": 0}, "t")
    vals = DDistance().run(AnalysisContext(params, {"a": [a], "b_runs": [run]}, tmp_path, root,
                                           torch.device("cpu"), "test"))
    assert list(vals["by_log"]) == ["c-x-1"]
    assert vals["by_log"]["c-x-1"]["D"] == pytest.approx(4 / 9) and vals["D"] == pytest.approx(4 / 9)
    assert DDistance.required_observers(params) == ("eval_log:c-*",)
    assert "b_logs" not in DDistance.resolve_params({"a": ["x"], "b": ["y"]}, "t")  # old ids unchanged
    with pytest.raises(ConfigError, match="b_runs and b_logs go together"):
        DDistance.resolve_params({"a": ["x"], "b_logs": ["c-*"]}, "t")


def test_eval_logs_resume_rejects_short_logs(tmp_path, root):
    cfg = resolve_run(_cfg(eval_logs=LOGS[:1]))
    from reproduce.train.run_data import load_run_data

    logs = EvalLogs(cfg, load_run_data(cfg, root, torch.device("cpu")), root)
    with pytest.raises(ConfigError, match="eval log holds 0 epochs, checkpoint 1"):
        logs.resume(tmp_path, 1)


def test_a_holdout_too_small_to_cut_logs_no_instance(root, tmp_path):
    """Shape-checking scales keep 4 images a split: 2% of them is no hold-out at all."""
    torch.set_num_threads(1)
    cfg = _cfg(epochs=1, data={"primary": "toy", "augment": True, "holdout": {"kind": "first", "fraction": 0.004}},
               eval_logs=LOGS[1:2])
    train(cfg, tmp_path / "r", data_root=root, device="cpu", progress=False)
    assert np.load(tmp_path / "r" / "eval_hold_losses.npy").shape == (1, 0)
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert "eval_hold_acc" not in row  # no NaN in metrics.jsonl
