"""Training observers: declared by the run config through the registry, hooks in order, state through a resume."""

from __future__ import annotations

import json

import pytest

from reproduce.analyses import ANALYSES
from reproduce.config import resolve_run
from reproduce.errors import Preempted, UnknownNameError
from reproduce.train import train
from reproduce.train.observers import OBSERVERS, Observer, Observers, observers_for, register

from . import test_preempt
from .test_preempt import SignalAtPoll
from .test_preempt import _cfg as preempt_cfg

root = test_preempt.root  # the toy data: 192 training images

STEPS = 6  # 192 toy images, batch 32


class Counter(Observer):
    """Counts steps and sums their losses; without its checkpoint state a resumed run would count fewer."""

    calls: list[str] = []

    @classmethod
    def declared(cls, cfg):
        return cfg["name"] == "t-obs"

    def _log(self, hook):
        Counter.calls.append(hook)

    def on_setup(self, run):
        self._log("on_setup")
        self.state = {"steps": 0, "loss": 0.0, "epochs": []}

    def on_model(self, run):
        self._log("on_model")

    def on_start(self, run):
        self._log("on_start")

    def load_state_dict(self, run, ck):
        self._log("load_state_dict")
        self.state = dict(ck["t_counter"])

    def on_epoch_start(self, run, epoch):
        self._log("on_epoch_start")

    def load_partial(self, run, partial):
        self._log("load_partial")
        self.state = dict(partial["t_counter"])

    def on_step(self, run, epoch, it, batch, out):
        self._log("on_step")
        self.state["steps"] += 1
        self.state["loss"] += float(out.loss.detach())

    def on_epoch_end(self, run, epoch, row):
        self._log("on_epoch_end")
        self.state["epochs"].append(self.state["steps"])
        row["t_steps"] = self.state["steps"]

    def on_end(self, run):
        self._log("on_end")
        (run.out / "counter.json").write_text(json.dumps(self.state))

    def state_dict(self, run):
        return {"t_counter": dict(self.state, epochs=list(self.state["epochs"]))}

    def partial_state_dict(self, run):
        return {"t_counter": dict(self.state, epochs=list(self.state["epochs"]))}


@pytest.fixture
def counter(monkeypatch):
    monkeypatch.setattr(Counter, "name", "t_counter")
    monkeypatch.setitem(OBSERVERS._items, "t_counter", Counter)
    Counter.calls = []
    return Counter


def _cfg(**over):
    return preempt_cfg(**{"name": "t-obs", **over})


def test_hooks_run_in_order(root, tmp_path, counter):
    train(_cfg(), tmp_path / "r", data_root=root, device="cpu", progress=False)
    epoch = ["on_epoch_start"] + ["on_step"] * STEPS + ["on_epoch_end"]
    assert counter.calls == ["on_setup", "on_model", "on_start", *epoch, *epoch, "on_end"]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["t_steps"] for r in rows] == [STEPS, 2 * STEPS]  # an observer adds to the epoch's metrics row


@pytest.mark.parametrize("k, where", [(STEPS, "after epoch 1"), (3, "inside epoch 1"), (STEPS + 3, "inside epoch 2")])
def test_state_survives_a_resume(root, tmp_path, counter, k, where):
    train(_cfg(), tmp_path / "ref", data_root=root, device="cpu", progress=False)
    want = json.loads((tmp_path / "ref" / "counter.json").read_text())
    assert want["steps"] == 2 * STEPS and want["epochs"] == [STEPS, 2 * STEPS]
    with pytest.raises(Preempted):
        train(_cfg(), tmp_path / "run", data_root=root, device="cpu", progress=False, stop=SignalAtPoll(k))
    counter.calls = []
    train(_cfg(), tmp_path / "run", data_root=root, device="cpu", progress=False)
    assert json.loads((tmp_path / "run" / "counter.json").read_text()) == want, where
    assert counter.calls[:4] == ["on_setup", "on_model", "on_start", "load_state_dict"]
    assert ("load_partial" in counter.calls) == (where != "after epoch 1")


def test_the_config_declares_the_observers():
    plain = resolve_run(_cfg(name="t-plain"))
    assert observers_for(plain).names() == ["selection"]  # every run keeps a best.pt
    full = resolve_run(_cfg(name="t-full", log_per_instance=True, snapshots=[0, 2],
                            data={"primary": "toy", "holdout": {"kind": "first", "fraction": 0.125}},
                            eval_logs=[{"name": "hold", "split": "holdout", "protocol": "clean"}]))
    # the selection rule reads this epoch's eval logs, so it runs after them
    assert observers_for(full).names() == ["checkpoints", "eval_log", "holdout", "per_instance", "selection"]


def test_an_unknown_observer_name_is_a_one_line_error():
    with pytest.raises(UnknownNameError) as e:
        OBSERVERS.get("per_instances", where="analyses.difficulty observers")
    msg = str(e.value)
    assert "\n" not in msg and "per_instances" in msg and "known: checkpoints, eval_log" in msg


def test_every_observer_an_analysis_needs_is_registered():
    needs = {need.split(":")[0] for kind in ANALYSES for need in ANALYSES.get(kind).observers}
    assert needs and needs <= set(OBSERVERS.names()), needs - set(OBSERVERS.names())


def test_an_observer_must_be_declared_by_a_run_config_key():
    class Typo(Observer):
        keys = ("log_per_instanse",)

    with pytest.raises(ValueError, match="'log_per_instanse' is not a run-config key"):
        register("t_typo")(Typo)
    assert "t_typo" not in OBSERVERS


def test_an_observer_cannot_overwrite_a_checkpoint_entry():
    class Greedy(Observer):
        name = "t_greedy"

        def state_dict(self, run):
            return {"model": {}}

    with pytest.raises(ValueError, match="'t_greedy' saves checkpoint entry 'model', which the loop saves too"):
        Observers([Greedy({})]).state_dict(None)
