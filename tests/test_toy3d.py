"""HAT's 3-d toy: generator, float32 prepared format, the 3-25-2 MLP, a CPU run and decision_grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.data import DATASETS, DeviceDataset, import_dataset, load_split, read_manifest
from reproduce.data.generated.toy import decode, sample
from reproduce.errors import ReproduceError
from reproduce.models import build_model, count_parameters


def test_generator_follows_the_paper_parameters() -> None:
    p = dict(DATASETS.get("toy3d").params)
    x, y = sample(p, "train")
    assert x.shape == (2000, 3) and np.bincount(y).tolist() == [1000, 1000]
    r = np.hypot(x[:, 0], x[:, 1])
    # radius ~ rho + noise: class means near 0.35 (plus the Rayleigh bias of 2-d noise) and 1.0
    assert 0.35 < r[y == 0].mean() < 0.5 and abs(r[y == 1].mean() - 1.0) < 0.05
    assert x[y == 0, 2].min() >= 0.65 and x[y == 0, 2].max() <= 0.70
    assert x[y == 1, 2].min() >= 0.80 and x[y == 1, 2].max() <= 0.85
    assert np.array_equal(sample(p, "train")[0], x)  # deterministic
    assert not np.array_equal(sample(p, "test")[0], x)


def test_prepared_float32_roundtrip(tmp_path) -> None:
    import_dataset("toy3d", tmp_path)
    assert read_manifest("toy3d", tmp_path)["dtype"] == "float32"
    u, y = load_split("toy3d", "test", tmp_path, verify=True)
    assert u.dtype == np.float32 and u.shape == (2000, 1, 1, 3)
    x, y2 = sample(dict(DATASETS.get("toy3d").params), "test")
    assert np.allclose(decode(u.reshape(-1, 3)), x, atol=1e-5) and np.array_equal(y, y2)
    batch = DeviceDataset(u, y).batch(torch.arange(4))
    assert batch.x.dtype == torch.float32 and torch.equal(batch.x, torch.from_numpy(u[:4]).permute(0, 3, 1, 2))
    with pytest.raises(ReproduceError, match="generated"):
        import_dataset("toy3d", tmp_path / "other", from_folder=tmp_path)


def test_mlp_toy_is_3_25_2_and_sees_features() -> None:
    m = build_model("mlp_toy", 2, mean=(0.5,) * 3, std=(0.1,) * 3, image_size=1, in_channels=3)
    assert count_parameters(m) == 3 * 25 + 25 + 25 * 2 + 2
    u = torch.tensor([[0.6, 0.4, 0.585]]).view(1, 3, 1, 1)
    assert torch.allclose(m.normalize(u).flatten(), torch.tensor([1.0, -1.0, 0.85]), atol=1e-5)


def test_two_epoch_cpu_runs_and_decision_grid(tmp_path) -> None:
    from reproduce.train.loop import train

    import_dataset("toy3d", tmp_path / "data")
    results = {}
    for method in ("standard", "at"):
        cfg = {"name": f"toy-{method}", "seed": 0, "data": {"primary": "toy3d", "augment": False},
               "model": {"name": "mlp_toy", "normalize": "dataset"}, "method": {"name": method},
               "optim": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}, "schedule": {"kind": "constant"},
               "epochs": 2, "batch_size": 128,
               "attack": {"eps": "1/100", "step_size": "1/200", "steps": 5, "bn_mode": "eval"}}
        out = tmp_path / "runs" / cfg["name"]
        train(cfg, out, data_root=tmp_path / "data", device="cpu", progress=False)
        cls = ANALYSES.get("decision_grid")
        params = cls.resolve_params({"model": {"run": cfg["name"]}, "resolution": 11, "steps": 10,
                                     "restarts": 1, "x3_sweep": [-2, 3, 51]}, "test")
        ctx = AnalysisContext(params=params, inputs={"model": out}, out_dir=tmp_path / method,
                              data_root=tmp_path / "data", device=torch.device("cpu"), scale="paper")
        (tmp_path / method).mkdir()
        results[method] = cls().run(ctx)
        with np.load(tmp_path / method / "grid.npz") as z:
            assert z["plane0_pred"].shape == (11, 11) and z["test_x"].shape == (2000, 3)
            assert np.allclose(z["plane1_x3"], np.linspace(0.3, 1.2, 11))  # plane 1 is x1-x3 at x2 = 0.4
    for r in results.values():
        assert 50 < r["clean_accuracy"] <= 100 and r["robust_accuracy"] <= r["clean_accuracy"]
