"""BiaMAT: routing, threshold, loss normalisation, the attack objective, aux streams, training runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reproduce.attacks
import reproduce.methods.biamat as biamat_mod
from reproduce.config import resolve_run
from reproduce.data import Batch, DeviceDataset
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.methods import METHODS, TrainContext
from reproduce.methods.biamat import AuxStream
from reproduce.methods.biamat_loss import yer_target
from reproduce.models import Classifier, build_model
from reproduce.train import train

C = 2  # primary classes of the hand-built model


class MeanTrunk(nn.Module):
    """Feature = mean brightness: primary-head confidence is a known function of the image."""

    feature_dim = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None]


def brightness_model(aux: dict[str, int]) -> Classifier:
    model = Classifier(MeanTrunk(), {"primary": C, **aux})
    with torch.no_grad():
        # logit gap 16 f - 8: confidence sigmoid(|16 f - 8|) rises with brightness f above 0.5
        model.heads["primary"].weight.copy_(torch.tensor([[8.0], [-8.0]]))
        model.heads["primary"].bias.copy_(torch.tensor([-4.0, 4.0]))
        for name in aux:  # distinct, fixed aux heads
            n = aux[name]
            model.heads[name].weight.copy_(torch.linspace(-2, 2, n)[:, None])
            model.heads[name].bias.copy_(torch.linspace(0.5, -0.5, n))
    return model


def flat_images(levels: list[float], size: int = 8) -> np.ndarray:
    return np.stack([np.full((size, size, 3), round(v * 255), np.uint8) for v in levels])


def device_ds(levels: list[float], num_classes: int) -> DeviceDataset:
    labels = np.arange(len(levels)) % num_classes
    return DeviceDataset(flat_images(levels), labels)


# aux "a": 4 dim images (0.55: confidence ~0.69) and 4 bright ones (0.95: ~0.999)
AUX_A = [0.55, 0.95] * 4
AUX_B = [0.6, 0.9, 0.7, 0.98]


def make_method(params: dict, aux: dict[str, list[float]] | None = None, attack: dict | None = None,
                augment: bool = False, steps_per_epoch: int = 4, seed: int = 0):
    aux = {"a": AUX_A} if aux is None else aux
    n_classes = {"a": 3, "b": 5}
    datasets = {"pri": device_ds([0.75] * 16, C)}
    datasets.update({k: device_ds(v, n_classes[k]) for k, v in aux.items()})
    cfg = resolve_run({
        "name": "t", "seed": seed, "epochs": 3,
        "data": {"primary": "pri", "aux": list(aux), "augment": augment},
        "model": {"name": "mlp"}, "method": {"name": "biamat", **params},
        "attack": {"steps": 0, "random_start": False, **(attack or {})},
    })
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=C, datasets=datasets,
                       steps_per_epoch=steps_per_epoch)
    return METHODS.get("biamat")(cfg, ctx)


def primary_batch(level: float = 0.75, n: int = 4) -> Batch:
    x = torch.full((n, 3, 8, 8), round(level * 255) / 255)
    return Batch(x, torch.arange(n) % C, torch.arange(n))


def eval_conf(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.softmax(model(x), 1).amax(1)


@pytest.fixture
def pgd_calls(monkeypatch) -> list:
    """Every pgd call the method makes: (args, kwargs, x_adv)."""
    calls: list = []
    real = biamat_mod.pgd

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(biamat_mod, "pgd", spy)
    return calls


def test_yer_is_uniform_over_primary_classes_on_the_primary_head():
    t = yer_target(10, 3)
    assert t.shape == (3, 10) and torch.equal(t, torch.full((3, 10), 0.1))
    m = make_method({"labels": "yer", "alpha": 1.0, "aux_batch_size": 8})
    assert m.heads() == {"primary": C, "a": 3}
    model = brightness_model({"a": 3})
    out = m.step(model, primary_batch(), 0, 0)
    xa = torch.tensor(flat_images(AUX_A)).permute(0, 3, 1, 2).float() / 255
    # the y^ER term of every aux image: soft CE to 1/C on the primary head's C outputs
    er = -F.log_softmax(model(xa), 1).mean(1).sum() / len(AUX_A)
    assert out.stats["l_low"] == pytest.approx(er.item(), rel=1e-5)
    with torch.no_grad():  # the aux head plays no part in y^ER
        model.heads["a"].weight.mul_(-3)
    assert m.step(model, primary_batch(), 0, 1).stats["l_low"] == pytest.approx(er.item(), rel=1e-5)


@pytest.mark.parametrize("labels, expected_high", [("yer", 0), ("ytilde", 8)])
def test_shuffle_and_naive_route_everything(labels, expected_high):
    m = make_method({"labels": labels, "aux_batch_size": 8})
    assert m.warmup_steps == 0  # K_w = 0 unless asked for
    log = m.step(brightness_model({"a": 3}), primary_batch(), 0, 0).step_log
    assert log["n_high"] == expected_high and log["n_aux"] == 8
    assert log["omega"] == {"yer": 1.0, "ytilde": 0.0}[labels]


def test_selection_routes_by_frozen_threshold_and_survives_state_dict():
    m = make_method({"labels": "selection", "pi": 0.9, "warmup_epochs": 1, "aux_batch_size": 8})
    model = brightness_model({"a": 3})
    b = primary_batch()
    for it in range(4):  # warm-up: no threshold, no routing log
        out = m.step(model, b, 0, it)
        assert m.omega is None and out.step_log is None
    log = m.step(model, b, 1, 0).step_log
    omega = 0.9 * eval_conf(model, b.x).mean().item()
    assert m.omega == pytest.approx(omega) and log["omega"] == pytest.approx(omega)
    assert 0.69 < omega < 0.99  # between the two aux confidence levels
    assert log["n_high"] == 4  # exactly the bright aux images
    with torch.no_grad():  # the model changes (confidences shrink); the threshold does not
        model.heads["primary"].weight.mul_(0.1)
        model.heads["primary"].bias.mul_(0.1)
    m.step(model, primary_batch(0.6), 1, 1)
    assert m.omega == pytest.approx(omega)
    fresh = make_method({"labels": "selection", "pi": 0.9, "warmup_epochs": 1, "aux_batch_size": 8})
    fresh.load_state_dict(m.state_dict())
    fresh.step(model, primary_batch(0.6), 1, 2)
    assert fresh.omega == pytest.approx(omega)
    # with the shrunken primary head every aux confidence is below the kept omega
    assert fresh.step(model, b, 1, 3).step_log["n_high"] == 0


def test_last_warmup_threshold_uses_the_updated_model_on_the_last_warmup_batch():
    m = make_method({"pi": 1.0, "warmup_epochs": 1, "threshold_batch": "last_warmup", "aux_batch_size": 8})
    model = brightness_model({"a": 3})
    for it in range(4):
        m.step(model, primary_batch(0.9 if it == 3 else 0.6), 0, it)
    with torch.no_grad():  # "the update" of the last warm-up step
        model.heads["primary"].weight.mul_(0.5)
    state = m.state_dict()
    fresh = make_method({"pi": 1.0, "warmup_epochs": 1, "threshold_batch": "last_warmup", "aux_batch_size": 8})
    fresh.load_state_dict(state)  # a resume between the epochs keeps the pending batch
    fresh.start_epoch(model, 1)
    assert fresh.omega == pytest.approx(eval_conf(model, primary_batch(0.9).x).mean().item())


def hand_loss(model, b, aux: dict[str, tuple[list[float], int]], alpha: float, omega: float) -> float:
    with torch.no_grad():
        loss = F.cross_entropy(model(b.x), b.y).item()
        parts = []
        for name, (levels, k) in aux.items():
            x = torch.tensor(flat_images(levels)).permute(0, 3, 1, 2).float() / 255
            y = torch.arange(len(levels)) % k
            high = eval_conf(model, x) >= omega
            low_t = -F.log_softmax(model(x), 1).mean(1)
            high_t = F.cross_entropy(model(x, head=name), y, reduction="none")
            parts.append((low_t[~high].sum() + high_t[high].sum()).item() / len(levels))
        return loss + alpha / len(aux) * sum(parts)


def test_aux_loss_is_divided_by_the_whole_aux_batch():
    m = make_method({"pi": 0.9, "warmup_epochs": 0, "alpha": 0.7, "aux_batch_size": 8})
    model, b = brightness_model({"a": 3}), primary_batch()
    out = m.step(model, b, 0, 0)
    expected = hand_loss(model, b, {"a": (AUX_A, 3)}, 0.7, m.omega)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    # dividing each group by its own size instead would be visibly different here
    group_mean = out.stats["l_primary"] + 0.7 * 2 * (out.stats["l_low"] + out.stats["l_high"])
    assert abs(group_mean - expected) > 0.05
    # two aux datasets: L = l + alpha/2 * (l_a + l_b), 4 + 4 aux images per step
    m2 = make_method({"pi": 0.9, "warmup_epochs": 0, "alpha": 0.7, "aux_batch_size": 8},
                     aux={"a": AUX_A[:4], "b": AUX_B})
    model2 = brightness_model({"a": 3, "b": 5})
    out2 = m2.step(model2, b, 0, 0)
    exp2 = hand_loss(model2, b, {"a": (AUX_A[:4], 3), "b": (AUX_B, 5)}, 0.7, m2.omega)
    assert out2.loss.item() == pytest.approx(exp2, rel=1e-5)
    assert out2.step_log["n_aux"] == 8 and "n_high_b" in out2.step_log


def test_warmup_loss_has_no_aux_term():
    for ride_along in (True, False):
        m = make_method({"warmup_epochs": 1, "aux_batch_size": 8, "warmup_aux_forward": ride_along})
        model, b = brightness_model({"a": 3}), primary_batch()
        out = m.step(model, b, 0, 0)
        assert out.loss.item() == pytest.approx(F.cross_entropy(model(b.x), b.y).item(), rel=1e-6)
    # without the ride-along, a warm-up step is exactly Madry AT on the primary batch
    attack = {"steps": 2, "random_start": True, "bn_mode": "train"}
    m = make_method({"warmup_epochs": 1, "aux_batch_size": 8, "warmup_aux_forward": False}, attack=attack)
    at = METHODS.get("at")(m.cfg | {"method": {"name": "at"}}, m.ctx)
    torch.manual_seed(0)
    model = build_model("small_cnn", C, heads={"primary": C, "a": 3}, image_size=8)
    b = Batch(torch.rand(6, 3, 8, 8), torch.arange(6) % C, torch.arange(6))
    losses = []
    for method in (m, at):
        torch.manual_seed(1)
        losses.append(method.step(model, b, 0, 0).loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_trades_terms_by_hand(pgd_calls):
    for aux_loss in ("same", "ce"):
        m = make_method({"base": "trades", "beta": 6.0, "aux_loss": aux_loss, "labels": "selection",
                         "pi": 0.9, "warmup_epochs": 0, "alpha": 0.5, "aux_batch_size": 8},
                        attack={"eps": 0.2, "step_size": 0.1, "steps": 1, "random_start": "normal",
                                "bn_mode": "eval"})
        model, b = brightness_model({"a": 3}), primary_batch()
        torch.manual_seed(0)
        out = m.step(model, b, 0, 0)
        xa_all = pgd_calls[-1][2]
        n_p = len(b.y)
        with torch.no_grad():
            def kl(nat, adv):
                return (F.softmax(nat, 1) * (F.log_softmax(nat, 1) - F.log_softmax(adv, 1))).sum(1)
            pri_nat, pri_adv = model(b.x), model(xa_all[:n_p])
            l = (F.cross_entropy(pri_nat, b.y, reduction="none") + 6 * kl(pri_nat, pri_adv)).mean()
            x, y = make_method({"aux_batch_size": 8}).streams[0].batch_at(0)  # the same aux draw
            high = eval_conf(model, x) >= m.omega
            p_nat, p_adv = model(x), model(xa_all[n_p:])
            low_t = -F.log_softmax(p_nat, 1).mean(1) + 6 * kl(p_nat, p_adv)
            a_nat, a_adv = model(x, head="a"), model(xa_all[n_p:], head="a")
            if aux_loss == "ce":
                high_t = F.cross_entropy(a_adv, y, reduction="none")
            else:
                high_t = F.cross_entropy(a_nat, y, reduction="none") + 6 * kl(a_nat, a_adv)
            expected = l + 0.5 * (low_t[~high].sum() + high_t[high].sum()) / 8
        assert 0 < high.sum() < 8 and not torch.equal(xa_all, torch.cat([b.x, x]))
        assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5), aux_loss


def test_attack_maximises_the_unweighted_sum(pgd_calls):
    torch.manual_seed(0)
    model = build_model("small_cnn", C, heads={"primary": C, "a": 3}, image_size=8)
    attack = {"steps": 3, "eps": "8/255", "step_size": "2/255", "random_start": True, "bn_mode": "train"}
    for alpha in (0.1, 1.0):
        m = make_method({"labels": "ytilde", "alpha": alpha, "aux_batch_size": 8}, attack=attack)
        torch.manual_seed(1)
        m.step(model, primary_batch(), 0, 0)
    (a0, kw0, x0), (_, _, x1) = pgd_calls
    assert torch.equal(x0, x1)
    # the test can tell: an alpha-weighted objective moves the examples elsewhere
    w = torch.ones(len(x0))
    w[4:] = 0.1
    kw = dict(kw0, loss_fn=lambda xa: kw0["loss_fn"](xa) * w)
    torch.manual_seed(1)
    assert not torch.equal(reproduce.attacks.pgd(*a0, **kw), x0)


def test_aux_stream_is_deterministic_and_resumable():
    ds = DeviceDataset(np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), np.arange(20) % 4)
    s = AuxStream(ds, 6, seed=5, index=0, augment=True, pad=2)
    run = [s.batch_at(k) for k in range(8)]  # crosses two epochs of 3 batches
    for k in (0, 4, 7):
        x, y = AuxStream(ds, 6, seed=5, index=0, augment=True, pad=2).batch_at(k)
        assert torch.equal(x, run[k][0]) and torch.equal(y, run[k][1])
    other = AuxStream(ds, 6, seed=5, index=1, augment=True, pad=2).batch_at(0)
    assert not torch.equal(other[0], run[0][0])
    assert not torch.equal(run[0][0], run[3][0])  # a new aux epoch reshuffles


def test_warmup_aux_loss_trains_the_aux_head_with_alpha_during_warmup():
    """The submission-era code's warm-up: every aux sample on its aux head, weighted by alpha."""
    m = make_method({"warmup_epochs": 1, "aux_batch_size": 8, "alpha": 0.7, "warmup_aux_loss": True})
    model, b = brightness_model({"a": 3}), primary_batch()
    out = m.step(model, b, 0, 0)
    assert m.omega is None  # still in warm-up: no threshold yet
    expected = hand_loss(model, b, {"a": (AUX_A, 3)}, 0.7, omega=0.0)
    assert expected > F.cross_entropy(model(b.x), b.y).item() + 0.1  # the aux term is visible
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match="warmup_aux_forward"):
        make_method({"warmup_aux_loss": True, "warmup_aux_forward": False})
    with pytest.raises(ConfigError, match="true or false"):
        make_method({"warmup_aux_loss": "yes"})


def test_bad_params_are_rejected():
    with pytest.raises(ConfigError, match="labels"):
        make_method({"labels": "shuffle"})
    with pytest.raises(ConfigError, match="aux_batch_size"):
        make_method({"aux_batch_size": 7}, aux={"a": AUX_A, "b": AUX_B})
    with pytest.raises(ConfigError, match="aux_loss"):
        make_method({"aux_loss": "ce"})
    with pytest.raises(ConfigError, match="omega"):
        make_method({"omega": 0.5})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_generated("prim", root, num_classes=4, image_size=16, n_train=96, n_test=16, domain=0)
    write_generated("auxr", root, num_classes=6, image_size=16, n_train=64, n_test=6, domain=1,
                    related_to=0, relatedness=0.8)
    write_generated("auxu", root, num_classes=3, image_size=16, n_train=48, n_test=6, domain=2)
    return root


def run_cfg(aux: list[str], **method) -> dict:
    trades = method.get("base") == "trades"
    return {"name": "bm", "seed": 2, "epochs": 2, "batch_size": 32,
            "data": {"primary": "prim", "aux": aux}, "model": {"name": "small_cnn"},
            "method": {"name": "biamat", "warmup_epochs": 1, "aux_batch_size": 16, "pi": 0.9, **method},
            "attack": {"steps": 2, "random_start": "normal" if trades else True,
                       "bn_mode": "eval" if trades else "train"}}


def read_jsonl(path: Path, drop: str = "seconds") -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != drop} for r in rows]


@pytest.mark.parametrize("aux, base", [(["auxr"], "at"), (["auxr", "auxu"], "trades")])
def test_training_run(data_root, tmp_path, aux, base):
    out = tmp_path / "run"
    train(run_cfg(aux, base=base), out, data_root=data_root, device="cpu", progress=False)
    steps = read_jsonl(out / "steps.jsonl")
    assert [r["step"] for r in steps] == [4, 5, 6]  # after the one warm-up epoch of 3 steps
    assert all(0 <= r["ratio"] <= 1 and r["n_aux"] == 16 for r in steps)
    assert len({r["omega"] for r in steps}) == 1
    state = torch.load(out / "best.pt", weights_only=True)["model"]
    sizes = {k.split(".")[1]: v.shape[0] for k, v in state.items() if k.startswith("heads.") and k.endswith("weight")}
    assert sizes == {"primary": 4, "auxr": 6, **({"auxu": 3} if len(aux) > 1 else {})}
    metrics = read_jsonl(out / "metrics.jsonl")
    assert "threshold" in metrics[1] and "ratio" not in metrics[0]


def test_resume_gives_identical_run(data_root, tmp_path, monkeypatch):
    cfg = run_cfg(["auxr"], threshold_batch="last_warmup")
    ref = tmp_path / "ref"
    train(cfg, ref, data_root=data_root, device="cpu", progress=False)
    real_step = biamat_mod.BiaMAT.step

    def crash(self, model, batch, epoch, it):
        if epoch == 1 and it == 1:
            raise KeyboardInterrupt
        return real_step(self, model, batch, epoch, it)

    run = tmp_path / "crashed"
    monkeypatch.setattr(biamat_mod.BiaMAT, "step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, data_root=data_root, device="cpu", progress=False)
    monkeypatch.setattr(biamat_mod.BiaMAT, "step", real_step)
    train(cfg, run, data_root=data_root, device="cpu", progress=False)
    assert read_jsonl(run / "steps.jsonl") == read_jsonl(ref / "steps.jsonl")
    assert read_jsonl(run / "metrics.jsonl") == read_jsonl(ref / "metrics.jsonl")
