"""The corruptions analysis on a generated stand-in whose per-cell accuracies are set by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.corruptions import ROBUSTBENCH_CORRUPTIONS, SEVERITIES
from reproduce.data.storage.prepared import PreparedWriter
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.train import train
from reproduce.train.setup import build_from_run_dir


def test_corruption_cells_and_mean(tmp_path: Path) -> None:
    root, runs = tmp_path / "data", tmp_path / "runs"
    write_generated("c10", root, num_classes=10, image_size=32, n_train=40, n_test=20, domain=0)
    cfg = {"name": "std", "scale": "test", "data": {"primary": "c10"}, "model": {"name": "mlp"},
           "method": {"name": "standard"}, "epochs": 1, "batch_size": 20}
    train(cfg, runs / "std-1", data_root=root, device="cpu", progress=False)
    _, model, _ = build_from_run_dir(runs / "std-1", root, torch.device("cpu"))
    rng = np.random.default_rng(0)
    # cell k (0..74) holds 4 images; the first k % 5 are labelled with the model's prediction, the rest not
    with PreparedWriter("cifar10-c", root, num_classes=10, image_size=32, synthetic=True) as w:
        for k, (c, s) in enumerate((c, s) for c in ROBUSTBENCH_CORRUPTIONS for s in SEVERITIES):
            x = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
            with torch.no_grad():
                pred = model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
            right = np.arange(4) < k % 5
            w.add_split(f"{c}-{s}", x, np.where(right, pred, (pred + 1) % 10).astype(np.int64))
    cls = ANALYSES.get("corruptions")

    def run(**given):
        params = cls.resolve_params({"run": {"run": "std-1"}, **given}, "test")
        ctx = AnalysisContext(params=params, inputs={"run": runs / "std-1"}, out_dir=tmp_path / "out",
                              data_root=root, device=torch.device("cpu"), scale="test")
        return cls().run(ctx)

    v = run()
    # k % 5 cycles 0..4 over the 5 severities of each corruption: accuracies 0, .25, .5, .75, 1
    assert v["cells"]["shot_noise-1"] == 0.0 and v["cells"]["shot_noise-5"] == 1.0
    assert len(v["cells"]) == 75 and v["accuracy"] == pytest.approx(0.5)
    assert v["per_severity"]["2"] == pytest.approx(0.25) and v["per_corruption"]["fog"] == pytest.approx(0.5)
    assert v["n_per"] == [4]
    # the first n_per images of each cell: with 2, severity 2 (1 right of 4) is 1/2, severity 4 is 2/2
    v2 = run(n_per=2)
    assert v2["cells"]["fog-2"] == 0.5 and v2["cells"]["fog-4"] == 1.0 and v2["n_per"] == [2]
    assert v2["accuracy"] == pytest.approx((0 + 0.5 + 1 + 1 + 1) / 5)
    with pytest.raises(ConfigError, match="n_per"):
        cls.resolve_params({"run": {"run": "x"}, "n_per": 0}, "test")
