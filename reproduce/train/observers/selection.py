"""``selection`` (run key ``selection``, on in every run): the best-checkpoint rule and ``best.pt``.

The rule evaluates ``selection.protocol`` on the epochs it names and keeps the weights of the best
score in ``best.pt``; a run without a protocol keeps its last epoch's weights there.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import checkpoint
from ..state import TrainRun
from .base import Observer, register


def selects(sel: Mapping[str, Any], epoch: int, epochs: int) -> bool:
    """Is the 1-based ``epoch`` one the selection rule evaluates?"""
    if sel.get("at_epochs"):  # an explicit list; negative entries count from the end (-5: the last five)
        wanted = set()
        for e in sel["at_epochs"]:
            wanted |= set(range(epochs + int(e) + 1, epochs + 1)) if int(e) < 0 else {int(e)}
        return epoch in wanted
    after = float(sel["after"] or 0)
    after = after * epochs if 0 < after < 1 else after
    return epoch > after and (epoch % int(sel["every"] or 1) == 0 or epoch == epochs)


def selection_score(run: TrainRun, epoch: int) -> float | None:
    """Accuracy under ``selection.protocol`` of the model as it is after 0-based ``epoch``."""
    cfg, sel = run.cfg, run.cfg["selection"]
    if not sel.get("protocol"):
        return None
    # a log of the same split and protocol already attacked this epoch's model: no second attack;
    # a log covers the split's first images, never an index list of it
    logs = run.observers.get("eval_log")
    if logs is not None and not cfg["data"].get("eval_indices"):
        score = logs.selection_score(sel)
        if score is not None:
            return score
    from ...evaluate import evaluate

    # a separate selection split, or the index list data.eval_indices picks from the test split
    images, labels = run.data["selection"] if run.data["selection"] is not None else run.data["eval"]
    res = evaluate(run.model, images, labels, sel["protocol"], device=run.device, seed=run.epoch_seed(epoch),
                   n=sel.get("n"))
    return float(res["accuracy"])


@register("selection")
class Selection(Observer):
    keys = ("selection",)
    after = ("eval_log",)

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        sel = run.cfg["selection"]
        if not selects(sel, epoch + 1, run.epochs):
            return
        score = selection_score(run, epoch)
        if score is None:
            return
        row["selection_" + sel["protocol"]] = score
        best = run.best
        if score > best["score"] or (score == best["score"] and sel["ties"] == "latest"):
            run.best = {"score": score, "epoch": epoch + 1}
            checkpoint.save(run.out / "best.pt", {"model": run.model.state_dict(), "epoch": epoch + 1,
                                                  "score": score, "config_hash": run.config_hash})

    def on_end(self, run: TrainRun) -> None:
        if run.best["epoch"] is None:  # no selection rule: the last epoch is the one evaluated
            checkpoint.save(run.out / "best.pt", {"model": run.model.state_dict(), "epoch": run.epochs,
                                                  "score": None, "config_hash": run.config_hash})
            run.best = {"score": None, "epoch": run.epochs}

    def state_dict(self, run: TrainRun) -> dict[str, Any]:
        return {"best": run.best}

    def load_state_dict(self, run: TrainRun, ck: Mapping[str, Any]) -> None:
        run.best = ck["best"]
