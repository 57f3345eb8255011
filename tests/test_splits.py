"""Every split a run reads exists in its dataset's catalog entry, at spec load and in generated data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reproduce.data import DATASETS, read_manifest
from reproduce.errors import ConfigError
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.nodes import run_config
from reproduce.pipeline.papers import load_all, load_spec

ROOT = Path(__file__).resolve().parents[1]
FIXED_PRESET = "imgnet100: {data: {primary: imgnet100, eval_split: val}, selection: {split: val}}"


@pytest.mark.parametrize("scale", ["paper", "smoke"])
def test_every_run_reads_splits_its_dataset_has(scale):
    sc = load_scale(scale)
    seen = 0
    for spec in load_all().values():
        for name in spec.runs:
            cfg = run_config(spec, name, sc)
            primary = cfg["data"]["primary"]
            if primary not in DATASETS:
                continue
            splits = DATASETS.get(primary).splits
            assert cfg["data"]["eval_split"] in splits, (name, cfg["data"]["eval_split"], splits)
            if cfg["selection"]["protocol"]:
                assert cfg["selection"]["split"] in splits, (name, cfg["selection"]["split"], splits)
            seen += primary == "imgnet100"
    assert seen >= 6  # the ImgNet100 rows were checked, not skipped


def test_imgnet100_evaluates_on_val_not_test():
    assert DATASETS.get("imgnet100").eval_split == "val"
    assert DATASETS.get("cifar10").eval_split == "test"


def test_reverting_the_preset_fails_at_spec_load(tmp_path):
    box = tmp_path / "biamat"
    shutil.copytree(ROOT / "pipelines/biamat", box)
    text = (box / "spec.yaml").read_text()
    assert FIXED_PRESET in text
    (box / "spec.yaml").write_text(text.replace(FIXED_PRESET, "imgnet100: {data: {primary: imgnet100}}"))
    with pytest.raises(ConfigError, match=r"imgnet100.*eval_split is 'test'.*train, val"):
        load_spec(box / "spec.yaml")


def test_generated_stand_ins_have_the_catalog_split_names(tmp_path):
    from reproduce.cli import main

    for name in ("imgnet100", "cifar10"):
        assert main(["prepare-data", name, "--scale", "smoke", "--work-dir", str(tmp_path)]) == 0
        man = read_manifest(name, tmp_path / "smoke" / "data")
        assert set(man["splits"]) == {"train", DATASETS.get(name).eval_split}


def test_heldout_name_and_contrast_change_only_what_they_say():
    from reproduce.data.generated.synthetic import generate

    base = generate(4, 8, 32, 16, domain=1)
    val = generate(4, 8, 32, 16, domain=1, heldout_split="val")
    assert set(val) == {"train", "val"}
    assert (val["val"][0] == base["test"][0]).all()  # renaming the split changes no pixel
    strong = generate(4, 8, 32, 16, domain=1, contrast=2.0)
    assert (strong["train"][1] == base["train"][1]).all()

    def spread(x, y):  # distance between class means: the robust signal
        m = [x[y == c].astype(float).mean(0) for c in range(4)]
        return sum(abs(m[i] - m[j]).mean() for i in range(4) for j in range(i))

    assert spread(*strong["train"]) > 1.3 * spread(*base["train"])
    with pytest.raises(ValueError, match="contrast"):
        generate(4, 8, 32, 16, contrast=5)
    with pytest.raises(ValueError, match="heldout_split"):
        generate(4, 8, 32, 16, heldout_split="train")
