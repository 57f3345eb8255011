"""RobustBench, offline: zoo architectures loaded from random weights saved in robustbench's
layout, `evaluate --robustbench`, its one-line errors, and CIFAR-10-C through robustbench's loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reproduce.cli import main
from reproduce.data import write_generated
from reproduce.evaluate.robustbench import ZooModel, load_zoo_model, weights_paths, zoo_entry
from reproduce.io import sha256_file

# three architectures, each saved the way its real checkpoint is (robustbench strips `module.`
# and unwraps `state_dict`): WideResNet-28-10 (raw pixels in), DeepMind's PreActResNet-18 with
# Swish (normalizes inside forward), ResNet-18
ENTRIES = {
    "Carmon2019Unlabeled": ("WideResNet", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}),
    "Rade2021Helper_R18_ddpm": ("DMPreActResNet", lambda sd: sd),
    "Sehwag2021Proxy_R18": ("ResNet", lambda sd: {"state_dict": sd}),
}
CHEAP = "Rade2021Helper_R18_ddpm"


def random_weights(name: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """Freshly initialised weights with BatchNorm statistics moved off their defaults, so a
    load that silently kept a fresh model's values would be caught."""
    torch.manual_seed(seed)
    sd = zoo_entry(name)["model"]().state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean"):
            v.normal_(0, 0.1)
        elif k.endswith("running_var"):
            v.uniform_(0.5, 1.5)
    return sd


def save_zoo_weights(name: str, model_dir: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    sd = random_weights(name, seed)
    path = weights_paths(name, model_dir=model_dir)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ENTRIES[name][1](sd), path)
    return sd


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_generated("cifar10", root, num_classes=10, image_size=32, n_train=8, n_test=8, domain=0)
    return root


@pytest.fixture(scope="module")
def cheap_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    save_zoo_weights(CHEAP, d)
    return d


@pytest.mark.parametrize("name", list(ENTRIES))
def test_zoo_architecture_loads_the_saved_weights(name, tmp_path):
    saved = save_zoo_weights(name, tmp_path)
    torch.manual_seed(2)  # a re-initialised model would differ from the saved one
    model = load_zoo_model(name, model_dir=tmp_path)
    assert isinstance(model, ZooModel) and type(model.net).__name__ == ENTRIES[name][0]
    assert not model.training and model.outputs == "logits"
    loaded = model.net.state_dict()
    assert loaded.keys() == saved.keys()
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k
    # [0, 1] in, logits out, exactly as robustbench's own model: no second normalization here
    ref = zoo_entry(name)["model"]()
    ref.load_state_dict(saved)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref.eval()(x))


def test_evaluate_cli_writes_result_json(data_root, cheap_dir, tmp_path, capsys):
    info = tmp_path / "model_info" / "cifar10" / "Linf"
    info.mkdir(parents=True)
    # made-up numbers in robustbench's model_info format (percent strings; "external" empty)
    (info / f"{CHEAP}.json").write_text(json.dumps({"clean_acc": "12.34", "external": "", "autoattack_acc": "5.67",
                                                    "eps": "8/255"}))
    out = tmp_path / "ev"
    argv = ["evaluate", "--robustbench", CHEAP, "--model-dir", str(cheap_dir), "--protocol", "clean,fgsm",
            "--n", "4", "--data-root", str(data_root), "--device", "cpu", "--out-dir", str(out),
            "--index", str(tmp_path / "index.json"), "--rb-model-info", str(tmp_path / "model_info")]
    assert main(argv) == 0
    assert "(leaderboard clean 12.34%)" in capsys.readouterr().out
    res = json.loads((out / "clean.json").read_text())
    assert res["protocol"] == res["protocol_run"] == "clean" and res["n"] == 4 and len(res["correct_mask"]) == 4
    assert res["run"] == f"robustbench:{CHEAP}" and res["dataset"] == "cifar10" and res["split"] == "test"
    assert {"device", "torch", "autoattack", "git_commit", "seed"} <= res["provenance"].keys()
    rb = res["robustbench"]
    assert (rb["name"], rb["dataset"], rb["threat_model"], rb["architecture"]) == (CHEAP, "cifar10", "Linf",
                                                                                   "DMPreActResNet")
    weights = weights_paths(CHEAP, model_dir=cheap_dir)[0]
    assert rb["weights"] == [{"path": str(weights), "sha256": sha256_file(weights)}]
    assert rb["leaderboard"]["clean_accuracy"] == 12.34 and rb["leaderboard"]["robust_accuracy"] == 5.67
    assert rb["leaderboard"]["robust_field"] == "autoattack_acc" and rb["leaderboard_protocol"] == "aa-standard"
    assert rb["comparable_with_leaderboard"] is False  # generated data, 4 images, not AutoAttack
    # the stored correctness is the zoo model's own predictions on the prepared images
    from reproduce.data import load_split

    x, y = load_split("cifar10", "test", data_root)
    model = load_zoo_model(CHEAP, model_dir=cheap_dir)
    with torch.no_grad():
        pred = model(torch.from_numpy(x[:4]).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    assert res["correct_mask"] == [int(v) for v in pred == y[:4]] and res["labels"] == y[:4].tolist()
    fgsm = json.loads((out / "fgsm.json").read_text())
    assert fgsm["params"]["eps"] == pytest.approx(8 / 255) and sum(fgsm["correct_mask"]) <= sum(res["correct_mask"])
    assert json.loads((tmp_path / "index.json").read_text())["protocols"] == {"clean": "clean.json",
                                                                               "fgsm": "fgsm.json"}


def test_ensemble_probabilities_become_logits():
    class Probs(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(x.flatten(1)[:, :10], dim=1)

    model = ZooModel(Probs(), name="e", dataset="cifar10", threat_model="Linf", weights=[], ensemble=True)
    x = torch.randn(3, 3, 32, 32)
    out = model(x)
    assert torch.allclose(torch.softmax(out, 1), Probs()(x), atol=1e-6)
    assert torch.equal(out.argmax(1), Probs()(x).argmax(1))
    assert [p.name for p in weights_paths("Chen2020Adversarial", model_dir="m")] == [
        "Chen2020Adversarial.pt_m0.pt", "Chen2020Adversarial.pt_m1.pt", "Chen2020Adversarial.pt_m2.pt"]


def _zoo(tmp: Path, root: Path, name: str, *extra: str) -> list[str]:
    return ["evaluate", "--robustbench", name, "--model-dir", str(tmp / "models"), "--protocol", "clean",
            "--n", "4", "--data-root", str(root), "--device", "cpu", "--out", str(tmp / "e.json"), *extra]


def _garbage(tmp: Path, root: Path) -> list[str]:
    path = weights_paths(CHEAP, model_dir=tmp / "models")[0]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    return _zoo(tmp, root, CHEAP)


def _other_architecture(tmp: Path, root: Path) -> list[str]:
    sd = random_weights("Sehwag2021Proxy_R18")
    path = weights_paths(CHEAP, model_dir=tmp / "models")[0]
    path.parent.mkdir(parents=True)
    torch.save(sd, path)
    return _zoo(tmp, root, CHEAP)


ERRORS = {
    "weights absent": (lambda t, r: _zoo(t, r, "Carmon2019Unlabeled"),
                       ("cifar10/Linf/Carmon2019Unlabeled.pt", "robustbench.load_model", "--model-dir")),
    "ensemble absent": (lambda t, r: _zoo(t, r, "Chen2020Adversarial"), ("Chen2020Adversarial.pt_m0.pt", "2 more")),
    "misspelt name": (lambda t, r: _zoo(t, r, "Carmon2019Unlabelled"), ("Carmon2019Unlabelled", "Carmon2019Unlabeled")),
    "other threat model": (lambda t, r: _zoo(t, r, "Augustin2020Adversarial"), ("cifar10/L2", "--rb-threat")),
    "unknown name": (lambda t, r: _zoo(t, r, "NoSuchModel2099"), ("NoSuchModel2099", "known")),
    "run and robustbench": (lambda t, r: _zoo(t, r, CHEAP, "--run", str(t)), ("--run", "--robustbench")),
    "neither run nor robustbench": (lambda t, r: ["evaluate", "--protocol", "clean", "--out", str(t / "e.json")],
                                    ("--run", "--robustbench")),
    "unknown protocol": (lambda t, r: _zoo(t, r, CHEAP, "--protocol", "pgd-typo"), ("pgd-typo",)),
    "not a checkpoint": (_garbage, ("not a torch checkpoint",)),
    "weights of another architecture": (_other_architecture, ("not loadable", CHEAP)),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_zoo_errors_are_one_line(case, tmp_path, data_root, capsys):
    build, words = ERRORS[case]
    argv = build(tmp_path, data_root)
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    assert not (tmp_path / "e.json").exists()


# -- CIFAR-10-C through robustbench's loader -----------------------------------------------

N_PER = 2  # images per corruption x severity cell kept in the prepared dataset


def fake_cifar10c(data_dir: Path) -> dict[tuple[str, int], np.ndarray]:
    """robustbench's layout, data_dir/CIFAR-10-C/<corruption>.npy + labels.npy, at full length
    (load_cifar10c slices severity s as images [10000 (s-1), 10000 s) whatever the file's size)
    but sparse on disk: only the first N_PER images of each severity block are written."""
    from robustbench.data import CORRUPTIONS

    folder = data_dir / "CIFAR-10-C"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cells = {}
    for k, c in enumerate(CORRUPTIONS):
        a = np.lib.format.open_memmap(folder / f"{c}.npy", mode="w+", dtype=np.uint8, shape=(50_000, 32, 32, 3))
        for s in range(1, 6):
            x = rng.integers(0, 256, (N_PER, 32, 32, 3), dtype=np.uint8)
            x[:, 0, 0, 0], x[:, 0, 0, 1] = k, s  # which cell, readable from the pixels
            a[(s - 1) * 10_000:(s - 1) * 10_000 + N_PER] = cells[c, s] = x
        a.flush()
        del a
    np.save(folder / "labels.npy", np.tile(np.arange(10_000) % 10, 5).astype(np.uint8))
    return cells


def test_cifar10c_prepared_through_robustbench_loader(tmp_path):
    from reproduce.analyses import ANALYSES, AnalysisContext
    from reproduce.analyses.corruptions import ROBUSTBENCH_CORRUPTIONS, SEVERITIES
    from reproduce.attacks.autoattack import import_robustbench
    from reproduce.data import import_dataset, load_split, read_manifest
    from reproduce.train import train

    import_robustbench()
    from robustbench.data import CORRUPTIONS

    assert tuple(CORRUPTIONS) == ROBUSTBENCH_CORRUPTIONS  # the analysis's cells are robustbench's
    cells = fake_cifar10c(tmp_path / "rb")
    root = tmp_path / "data"
    splits = [f"{c}-{s}" for c in ROBUSTBENCH_CORRUPTIONS for s in SEVERITIES]
    # the CIFAR-10-C folder itself is accepted as well as robustbench's data_dir
    import_dataset("cifar10-c", root, from_robustbench=tmp_path / "rb" / "CIFAR-10-C",
                   expected_sizes={sp: N_PER for sp in splits})
    meta = read_manifest("cifar10-c", root)
    assert sorted(meta["splits"]) == sorted(splits) and meta["source"]["import"] == "from-robustbench"
    assert meta["robustbench"]["loader"] == "robustbench.data.load_cifar10c"
    for (c, s), x in cells.items():
        images, labels = load_split("cifar10-c", f"{c}-{s}", root)
        assert np.array_equal(images, x) and labels.tolist() == list(range(N_PER))
    # the HAT corruptions analysis reads it through load_split like any prepared dataset
    write_generated("c10", root, num_classes=10, image_size=32, n_train=20, n_test=10, domain=0)
    cfg = {"name": "std", "scale": "test", "data": {"primary": "c10"}, "model": {"name": "mlp"},
           "method": {"name": "standard"}, "epochs": 1, "batch_size": 20}
    train(cfg, tmp_path / "runs" / "std-1", data_root=root, device="cpu", progress=False)
    cls = ANALYSES.get("corruptions")
    params = cls.resolve_params({"run": {"run": "std-1"}}, "test")
    ctx = AnalysisContext(params=params, inputs={"run": tmp_path / "runs" / "std-1"}, out_dir=tmp_path / "out",
                          data_root=root, device=torch.device("cpu"), scale="test")
    v = cls().run(ctx)
    assert len(v["cells"]) == 75 and v["n_per"] == [N_PER]


def test_cifar10c_robustbench_files_absent(tmp_path, capsys):
    empty = tmp_path / "rbdata"
    argv = ["data", "import", "cifar10-c", "--from-robustbench", str(empty), "--root", str(tmp_path / "d")]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for w in ("CIFAR-10-C/<corruption>.npy", "labels.npy", "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar"):
        assert w in lines[0]
    assert not empty.exists() and not (tmp_path / "d" / "cifar10-c").exists()  # nothing fetched, nothing written
