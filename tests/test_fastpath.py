"""The fast path (perf: section): bf16, no host syncs, compile, channels_last, multi-protocol eval."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reproduce.config import config_hash, resolve_run
from reproduce.data import iterate
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError, TrainingDivergedError
from reproduce.train import train
from reproduce.train.loop import epoch_seed


def _cfg(**over):
    cfg = {
        "name": "t-fast", "scale": "test", "seed": 5,
        "data": {"primary": "toy", "augment": True},
        "model": {"name": "small_cnn"},
        "method": {"name": "at"},
        "attack": {"eps": "8/255", "step_size": "2/255", "steps": 2, "bn_mode": "train"},
        "optim": {"lr": 0.05, "weight_decay": 5e-4},
        "schedule": {"kind": "constant"},
        "epochs": 1, "batch_size": 32,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=16, n_train=192, n_test=48, domain=0)
    return root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


def _max_rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    worst = 0.0
    for k, v in a.items():
        if v.is_floating_point():
            worst = max(worst, float((v - b[k]).abs().max() / (v.abs().max() + 1e-8)))
    return worst


def test_perf_keys_validate_and_only_numeric_switches_change_the_hash():
    base = resolve_run(_cfg())
    assert base["perf"]["amp"] == "none" and base["perf"]["sync_every"] == 1
    # default perf leaves the hash of a config written before the section existed
    legacy = {k: v for k, v in base.items() if k != "perf"}
    assert config_hash(base) == config_hash(legacy)
    speed = resolve_run(_cfg(perf={"channels_last": True, "cudnn_benchmark": True, "fused_optimizer": True,
                                   "sync_every": 50}))
    assert config_hash(speed) == config_hash(base)
    for numeric in ({"amp": "bf16"}, {"compile": True}):
        assert config_hash(resolve_run(_cfg(perf=numeric))) != config_hash(base)
    for bad, needle in (({"amp": "fp16"}, "perf.amp"), ({"sync_every": 0}, "perf.sync_every"),
                        ({"compile": "yes"}, "perf.compile"), ({"fast": True}, "fast")):
        with pytest.raises(ConfigError, match=needle):
            resolve_run(_cfg(perf=bad))


def _old_loop(cfg: dict, root: Path) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The loop as it was: plain SGD, a .item() per step (standard training, constant LR)."""
    from reproduce.methods import METHODS, TrainContext
    from reproduce.train.run_data import load_run_data
    from reproduce.train.setup import build_for_run

    cfg = resolve_run(cfg)
    dev = torch.device("cpu")
    data = load_run_data(cfg, root, dev)
    ctx = TrainContext(cfg=cfg, device=dev, num_classes=data["num_classes"], datasets=data["train"],
                       steps_per_epoch=data["steps_per_epoch"])
    METHODS.get("standard")(cfg, ctx)
    torch.manual_seed(int(cfg["seed"]))
    model = build_for_run(cfg, data, dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    means = []
    for epoch in range(int(cfg["epochs"])):
        total, seen = 0.0, 0
        torch.manual_seed(epoch_seed(cfg["seed"], epoch))
        model.train()
        for b in iterate(data["train"]["toy"], 32, shuffle=True, augment=True, pad=4, seed=cfg["seed"],
                         epoch=epoch, drop_last=True):
            loss = F.cross_entropy(model(b.x), b.y, reduction="none").mean()
            assert torch.isfinite(loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b.y)
            seen += len(b.y)
        means.append(total / seen)
    return model.state_dict(), means


@pytest.mark.parametrize("sync_every", [1, 4])
def test_loop_without_host_syncs_matches_the_old_loop_bit_for_bit(toy_root, tmp_path, sync_every):
    cfg = _cfg(method={"name": "standard"}, epochs=2, perf={"sync_every": sync_every})
    train(cfg, tmp_path / "run", data_root=toy_root, device="cpu", progress=False)
    ref, means = _old_loop(cfg, toy_root)
    got = _weights(tmp_path / "run")
    assert all(torch.equal(got[k], v) for k, v in ref.items())
    # the running loss summed on the device in float64 equals the host-side float sum
    assert [r["loss"] for r in _metrics(tmp_path / "run")] == means


def test_late_nan_detection_still_names_the_first_bad_batch(toy_root, tmp_path):
    from reproduce.methods import METHODS, StepOutput
    from reproduce.methods.standard import Standard

    if "test-nan-late" not in METHODS:
        @METHODS.register("test-nan-late")
        class NanFromBatch2(Standard):
            def step(self, model, batch, epoch, it):
                out = super().step(model, batch, epoch, it)
                return StepOutput(out.loss * float("inf"), None, {}) if it >= 1 else out

    cfg = _cfg(method={"name": "test-nan-late"}, perf={"sync_every": 4})
    with pytest.raises(TrainingDivergedError, match=r"loss is inf at epoch 1, batch 2$"):
        train(cfg, tmp_path / "nan", data_root=toy_root, device="cpu", progress=False)
    assert not (tmp_path / "nan" / "last.pt").exists()


@pytest.mark.parametrize("method, loss_tol, min_cos", [("standard", 0.01, 0.995), ("at", 0.02, 0.95)])
def test_a_bf16_autocast_step_stays_close_to_fp32(method, loss_tol, min_cos):
    from reproduce import perf
    from reproduce.data.feeding.loader import Batch
    from reproduce.methods import METHODS, TrainContext
    from reproduce.models import build_model

    cfg = resolve_run(_cfg(method={"name": method}, perf={"amp": "bf16"}))
    dev = torch.device("cpu")
    method_ = METHODS.get(method)(cfg, TrainContext(cfg=cfg, device=dev, num_classes=4, datasets={},
                                                     steps_per_epoch=1))
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, image_size=16)
    batch = Batch(torch.rand(32, 3, 16, 16), torch.randint(0, 4, (32,)), torch.arange(32))

    def step(p):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the attack's random start
        with perf.autocast(p, dev):
            out = method_.step(model, batch, 0, 0)
        out.loss.backward()
        return out.loss.float().item(), torch.cat([q.grad.flatten() for q in model.parameters()])

    (l32, g32), (l16, g16) = step({"amp": "none"}), step(cfg["perf"])
    assert g16.dtype == torch.float32  # master weights and their grads stay fp32
    assert l16 != l32 and l16 == pytest.approx(l32, rel=loss_tol)
    assert float(F.cosine_similarity(g32, g16, dim=0)) > min_cos


def test_bf16_training_run_keeps_fp32_state_and_records_it(toy_root, tmp_path):
    train(_cfg(), tmp_path / "fp32", data_root=toy_root, device="cpu", progress=False)
    done = train(_cfg(perf={"amp": "bf16"}), tmp_path / "bf16", data_root=toy_root, device="cpu",
                 progress=False)
    assert done["perf"]["amp"] == "bf16" and done["perf"]["device"] == "cpu"
    a, b = _weights(tmp_path / "fp32"), _weights(tmp_path / "bf16")
    # weights and BatchNorm running statistics stay fp32
    assert all(v.dtype == a[k].dtype for k, v in b.items())
    la, lb = _metrics(tmp_path / "fp32")[0]["loss"], _metrics(tmp_path / "bf16")[0]["loss"]
    assert lb == pytest.approx(la, rel=0.05)


def test_channels_last_and_foreach_sgd_stay_close(toy_root, tmp_path):
    train(_cfg(), tmp_path / "ref", data_root=toy_root, device="cpu", progress=False)
    done = train(_cfg(perf={"channels_last": True, "fused_optimizer": True}), tmp_path / "cl",
                 data_root=toy_root, device="cpu", progress=False)
    assert done["perf"]["optimizer_impl"] == "foreach"  # fused SGD is for CUDA
    assert _max_rel(_weights(tmp_path / "ref"), _weights(tmp_path / "cl")) < 1e-4


@pytest.mark.slow
def test_compile_matches_eager(toy_root, tmp_path):
    pytest.importorskip("torch._inductor")
    cfg = _cfg(method={"name": "standard"})
    train(cfg, tmp_path / "eager", data_root=toy_root, device="cpu", progress=False)
    t0 = time.time()
    done = train(_cfg(method={"name": "standard"}, perf={"compile": True}), tmp_path / "comp",
                 data_root=toy_root, device="cpu", progress=False)
    assert done["perf"]["compile"] is True
    assert _max_rel(_weights(tmp_path / "eager"), _weights(tmp_path / "comp")) < 1e-4, time.time() - t0
    # checkpoints of a compiled run keep the plain module's keys
    assert set(_weights(tmp_path / "comp")) == set(_weights(tmp_path / "eager"))


def test_multi_protocol_evaluation_writes_what_single_calls_write(toy_root, tmp_path):
    from reproduce.cli import main

    run = tmp_path / "run"
    train(_cfg(method={"name": "standard"}), run, data_root=toy_root, device="cpu", progress=False)
    common = ["--run", str(run), "--data-root", str(toy_root), "--device", "cpu", "--n", "24",
              "--batch-size", "16"]
    assert main(["evaluate", "--protocol", "clean,fgsm", "--label", "clean,pgd20", "--out-dir",
                 str(tmp_path / "multi"), "--index", str(tmp_path / "multi.json"), *common]) == 0
    index = json.loads((tmp_path / "multi.json").read_text())
    assert index["protocols"] == {"clean": "clean.json", "pgd20": "pgd20.json"} and index["run"] == "run"
    for proto, label in (("clean", "clean"), ("fgsm", "pgd20")):
        out = tmp_path / f"single-{label}.json"
        assert main(["evaluate", "--protocol", proto, "--label", label, "--out", str(out), *common]) == 0
        one = json.loads(out.read_text())
        many = json.loads((tmp_path / "multi" / f"{label}.json").read_text())
        for d in (one, many):
            d.pop("seconds"), d.pop("wall_seconds")
        assert one == many and many["protocol_run"] == proto and many["perf"]["amp"] == "none"
    # several protocols into one --out, or a typo, fail in one line before any model load
    assert main(["evaluate", "--protocol", "clean,fgsm", "--out", str(tmp_path / "x.json"), *common]) == 2
    assert main(["evaluate", "--protocol", "clean,pgd-typo", "--out-dir", str(tmp_path / "y"), *common]) == 2
    assert not (tmp_path / "y").exists()
