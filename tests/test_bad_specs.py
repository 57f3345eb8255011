"""A paper spec is something researchers share and download: hostile names and numbers in one are
refused when the DAG loads, in one line naming file, key and value, before any job, shell or
directory exists. Also: files others can read, and scales that never share an output path.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce import io
from reproduce.cli import main
from reproduce.pipeline.papers import load_all

ROOT = Path(__file__).resolve().parents[1]
RUN = "  cifar10-at: {presets: [at, cifar10]}"
ALIAS = "    aliases: [table2.csv]   # relative to the results directory"
ANALYSES_AT = "runs:\n"
ROW = "      - cifar100-at\n"
CLAIM_FOR = "        for: {aux: [svhn, cifar100, places365, imagenet], labels: [ytilde, yer]}"

# case -> (text replaced in pipelines/biamat/spec.yaml, its replacement, words the error line names)
SPEC_CASES = {
    "command substitution in a run name": (RUN, RUN + "\n  x$(touch MARKER): {presets: [at, cifar10]}",
                                           ("spec.yaml", "runs.x$(touch MARKER)", "letters, digits")),
    "backticks in a run name": (RUN, RUN + "\n  'x`touch MARKER`': {presets: [at, cifar10]}", ("runs.x`touch",)),
    "a space in a run name": (RUN, RUN + "\n  'two words': {presets: [at, cifar10]}", ("'two words'",)),
    "a semicolon in a run name": (RUN, RUN + "\n  'a;touch MARKER': {presets: [at, cifar10]}", ("a;touch",)),
    "a path in a run name": (RUN, RUN + "\n  '../up': {presets: [at, cifar10]}", ("'../up'",)),
    "dots in a run name": (RUN, RUN + "\n  'a..b': {presets: [at, cifar10]}", ("'a..b'", "'..'")),
    "a leading dash in a run name": (RUN, RUN + "\n  '-rf': {presets: [at, cifar10]}", ("'-rf'",)),
    "command substitution in an alias": (ALIAS, "    aliases: ['q$(touch MARKER).csv']",
                                         ("aliases", "q$(touch MARKER).csv", ".csv")),
    "an alias outside the results directory": (ALIAS, "    aliases: [../elsewhere/x.csv]",
                                               ("aliases", "../elsewhere/x.csv")),
    "an absolute alias": (ALIAS, "    aliases: [/tmp/x.csv]", ("aliases", "/tmp/x.csv")),
    "an alias that is not a CSV": (ALIAS, "    aliases: [table2.sh]", ("aliases", "table2.sh")),
    "eps of 1e9": (RUN, RUN + "\n  big: {presets: [at, cifar10], attack: {eps: 1.0e9}}",
                   ("runs.big", "attack.eps", "1.0e9", "[0, 1]")),
    "infinite eps": (RUN, RUN + "\n  inf: {presets: [at, cifar10], attack: {eps: .inf}}", ("runs.inf", "attack.eps")),
    "negative attack steps": (RUN, RUN + "\n  neg: {presets: [at, cifar10], attack: {steps: -3}}",
                              ("runs.neg", "attack.steps", "-3")),
    "adversarial training with no attack step": (RUN, RUN + "\n  zero: {presets: [at, cifar10], attack: {steps: 0}}",
                                                 ("runs.zero", "attack.steps", ">= 1")),
    "negative learning rate": (RUN, RUN + "\n  lr: {presets: [at, cifar10], optim: {lr: -0.1}}",
                               ("runs.lr", "optim.lr", "-0.1")),
    "learning rate of zero": (RUN, RUN + "\n  lr0: {presets: [at, cifar10], optim: {lr: 0}}", ("optim.lr", "(0")),
    "a billion epochs": (RUN, RUN + "\n  long: {presets: [at, cifar10], epochs: 1000000000}",
                         ("runs.long", "epochs", "10,000")),
    "a huge batch": (RUN, RUN + "\n  wide: {presets: [at, cifar10], batch_size: 100000000}",
                     ("runs.wide", "batch_size", "65,536")),
    "momentum above one": (RUN, RUN + "\n  mom: {presets: [at, cifar10], optim: {momentum: 1.5}}",
                           ("runs.mom", "optim.momentum", "1.5")),
    "negative weight decay": (RUN, RUN + "\n  wd: {presets: [at, cifar10], optim: {weight_decay: -1}}",
                              ("runs.wd", "optim.weight_decay")),
    "selection on zero images": (RUN, RUN + "\n  sel: {presets: [at, cifar10], selection: {n: 0}}",
                                 ("runs.sel", "selection.n", "0")),
    # BiaMAT's feature-space analyses (pipelines/biamat/artifacts/features.yaml)
    "an fid reference without a split": (ANALYSES_AT, "analyses:\n  badfid: {kind: fid, model: cifar10-at, reference: "
                                         "{dataset: cifar10}, datasets: [svhn]}\n" + ANALYSES_AT,
                                         ("analyses.badfid", "reference", "{dataset: NAME, split: SPLIT}")),
    "an fid dataset listed twice": (ANALYSES_AT, "analyses:\n  dupfid: {kind: fid, model: cifar10-at, reference: "
                                    "{dataset: cifar10, split: train}, datasets: [svhn, svhn]}\n" + ANALYSES_AT,
                                    ("analyses.dupfid", "datasets", "distinct")),
    "a superclass that is not a list of names": (ANALYSES_AT, "analyses:\n  badconf: {kind: aux_confidence, model: "
                                                 "cifar10-at, dataset: imagenet32, superclasses: {Ship: yawl}}\n"
                                                 + ANALYSES_AT, ("analyses.badconf", "superclasses", "non-empty list")),
    "a superclass named All": (ANALYSES_AT, "analyses:\n  allconf: {kind: aux_confidence, model: cifar10-at, "
                               "dataset: imagenet32, superclasses: {All: [yawl]}}\n" + ANALYSES_AT,
                               ("analyses.allconf", "Others or All")),
    "a stand-in without superclasses": (ANALYSES_AT, "analyses:\n  siconf: {kind: aux_confidence, model: cifar10-at, "
                                        "dataset: imagenet32, superclasses: {Ship: [yawl]}, stand_in: {named: [a]}}\n"
                                        + ANALYSES_AT, ("analyses.siconf", "stand_in", "superclasses")),
    "an L2 radius of a thousand": (RUN, RUN + "\n  l2: {presets: [at, cifar10], attack: {norm: l2, eps: 1000}}",
                                   ("runs.l2", "attack.eps (l2)", "100")),
    "a training split from a run": (RUN, RUN + "\n  tf: {presets: [at, cifar10], data: {train_from: {run: cifar10-at}}}",
                                    ("runs.tf", "data.train_from", "{analysis: NAME}")),
    "a training split from an unknown analysis": (
        RUN, RUN + "\n  tf: {presets: [at, cifar10], data: {train_from: {analysis: nope}}}",
        ("runs.tf.data.train_from", "nope")),
    "a robust dataset with a negative step": (
        ANALYSES_AT, "analyses:\n  rdx: {kind: robust_dataset, model: {run: cifar10-at}, step_size: -0.1}\nruns:\n",
        ("rdx", "step_size", "-0.1")),
    "a robust dataset started from the target": (
        ANALYSES_AT, "analyses:\n  rdx: {kind: robust_dataset, model: {run: cifar10-at}, init: target}\nruns:\n",
        ("rdx", "init", "random_other", "target")),
    "an informational column the artifact lacks": (ALIAS, ALIAS + "\n    informational: [hours]",
                                                   ("table2.informational", "hours", "not a column")),
    "negative digits in a cell": (ROW, "      - {run: cifar100-at, cells: {clean: {eval: clean, digits: -1}}}\n",
                                  ("cifar100-at.clean.digits", "-1")),
    "a same-device guard of one cell": (CLAIM_FOR, CLAIM_FOR + "\n        same: [baseline.aa]",
                                        ("same", "at least two cells", "baseline.aa")),
    "training on a part that was never split off": (
        RUN, RUN + "\n  pa: {presets: [at, cifar10], data: {parts: {sizes: {a: 25000, b: 25000}, use: [a, c]}}}",
        ("runs.pa", "data.parts.use", "'c'")),
    "parts larger than the training split": (
        RUN, RUN + "\n  pb: {presets: [at, cifar10], data: {parts: {sizes: {a: 40000, b: 20000}, use: [a]}}}",
        ("runs.pb", "data.parts", "60000", "50000")),
    "a noise amplitude of 3": (
        RUN, RUN + "\n  pn: {presets: [at, cifar10], data: {parts: {sizes: {a: 25000}, use: [a], "
        "noise: {a: {uniform: 3}}}}}", ("runs.pn", "data.parts.noise.a", "uniform")),
    "a subsample of an aux dataset the run does not use": (
        RUN, RUN + "\n  sa: {presets: [at, cifar10], data: {aux_subsample: {svhn: {by: classes, ratio: 0.1}}}}",
        ("runs.sa", "data.aux_subsample", "'svhn'")),
    "a subsample by an unknown mode": (
        RUN, RUN + "\n  sm: {presets: [at, cifar10, biamat-at], data: {aux: [svhn], "
        "aux_subsample: {svhn: {by: pixels, ratio: 0.1}}}}", ("runs.sm", "data.aux_subsample.svhn", "pixels")),
    "a complement of a word": (
        "    columns: [clean, aa]\n", "    columns: {clean: {eval: clean, complement: x}, aa: {eval: clean}}\n",
        ("complement", "'x'")),
    # BiaMAT's pseudo-labelling rows (pipelines/biamat/artifacts/pseudo.yaml): composite keys and their analyses
    "composite labels naming no analysis": (
        RUN, RUN + "\n  rl: {presets: [trades, cifar10, rst], data: {composite: {dataset: imagenet32, labels: {analysis: nope}}}}",
        ("runs.rl", "nope")),
    "composite labels as a bare name": (
        RUN, RUN + "\n  rb: {presets: [trades, cifar10, rst], data: {composite: {dataset: imagenet32, labels: pl-c10-imagenet32}}}",
        ("runs.rb", "data.composite.labels", "{analysis: NAME}")),
    "composite subset with a stray key": (
        RUN, RUN + "\n  rs: {presets: [trades, cifar10, rst], data: {composite: {dataset: imagenet32, "
        "subset: {analysis: top-c10-in32-50000, keys: indices}}}}", ("runs.rs", "data.composite.subset", "keys")),
    "an epoch of a made-up kind": (
        RUN, RUN + "\n  re: {presets: [trades, cifar10], data: {composite: {dataset: imagenet32, epoch_images: one_pass}}}",
        ("runs.re", "data.composite.epoch_images", "one_pass", "primary_pass")),
    "top-k of zero per class": (ANALYSES_AT, "analyses:\n  tk: {kind: topk_per_class, labels: pl-c10-imagenet32, k: 0}\n"
                                "runs:\n", ("analyses.tk", "k must be a positive integer", "0")),
    "pseudo-labels of an unknown dataset": (
        ANALYSES_AT, "analyses:\n  pl: {kind: pseudo_labels, model: {run: cifar10-at}, dataset: imagenet33}\nruns:\n",
        ("analyses.pl", "imagenet33")),
    "pseudo-labels of a split the dataset lacks": (
        ANALYSES_AT, "analyses:\n  ps: {kind: pseudo_labels, model: {run: cifar10-at}, dataset: imagenet32, split: test}\n"
        "runs:\n", ("analyses.ps", "split 'test'", "train, val")),
    # imported checkpoints (reproduce/config/imports.py) and cosine_iter (reproduce/train/schedule.py)
    "an import with a short sha256": (RUN, RUN + "\n  imp: {presets: [at, cifar10], import: {file: w.pt, sha256: abc, "
                                      "format: hendrycks-wrn, url: u}}", ("runs.imp", "import.sha256", "'abc'")),
    "an import of an unknown format": (RUN, RUN + "\n  imp: {presets: [at, cifar10], import: {file: w.pt, "
                                       "format: keras, url: u}}", ("runs.imp", "import.format", "'keras'")),
    "an import whose format cannot hold the model": (RUN, RUN + "\n  imp: {presets: [at, cifar10], model: {name: "
                                                     "resnet18}, import: {file: w.pt, format: hendrycks-wrn, url: u}}",
                                                     ("runs.imp", "hendrycks-wrn", "'resnet18'")),
    "an import file with a directory": (RUN, RUN + "\n  imp: {presets: [at, cifar10], import: {file: ../w.pt, "
                                        "format: hendrycks-wrn, url: u}}", ("runs.imp", "import.file", "'../w.pt'")),
    "an import without a url": (RUN, RUN + "\n  imp: {presets: [at, cifar10], import: {file: w.pt, "
                                "format: hendrycks-wrn}}", ("runs.imp", "import.url")),
    "an unknown import key": (RUN, RUN + "\n  imp: {presets: [at, cifar10], import: {file: w.pt, format: hendrycks-wrn, "
                              "url: u, md5: x}}", ("runs.imp", "import", "'md5'")),
    "a negative cosine floor": (RUN, RUN + "\n  cos: {presets: [at, cifar10], schedule: {kind: cosine_iter, "
                                "lr_min: -1}}", ("runs.cos", "schedule.lr_min", "-1")),
    "a schedule continued from no init": (RUN, RUN + "\n  cont: {presets: [at, cifar10], schedule: {milestones: [60], "
                                          "continue_from_init: best_epoch}}", ("runs.cont", "continue_from_init", "init")),
    "a cosine step offset of 2": (RUN, RUN + "\n  cos: {presets: [at, cifar10], schedule: {kind: cosine_iter, "
                                  "step_offset: 2}}", ("runs.cos", "schedule.step_offset", "2")),
}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    for name in ("config", "pipelines"):
        shutil.copytree(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    load_all.cache_clear()  # specs are cached by directory name, and the name is the same
    yield tmp_path
    load_all.cache_clear()


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_a_hostile_spec_is_refused_at_load_in_one_line(case, sandbox, capsys):
    old, new, words = SPEC_CASES[case]
    spec = sandbox / "pipelines/biamat/spec.yaml"
    text = spec.read_text()
    assert old in text, f"{case}: the spec no longer holds {old!r}"
    spec.write_text(text.replace(old, new, 1))
    before = {p for p in sandbox.rglob("*")}
    capsys.readouterr()
    code = main(["list", "--work-dir", str(sandbox / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 2, (case, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (case, err)
    for w in words:
        assert w in lines[0], (case, w, lines[0])
    assert not (sandbox / "MARKER").exists() and not Path("MARKER").exists()
    assert {p for p in sandbox.rglob("*")} == before, f"{case}: files appeared"


def test_a_name_with_command_substitution_never_runs_under_snakemake(sandbox):
    spec = sandbox / "pipelines/biamat/spec.yaml"
    spec.write_text(spec.read_text().replace(RUN, RUN + "\n  x$(touch MARKER): {presets: [at, cifar10]}", 1))
    shutil.copy(ROOT / "Snakefile", sandbox / "Snakefile")
    shutil.copytree(ROOT / "workflow", sandbox / "workflow")
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "--config", "scale=smoke",
                        "--", "results/smoke/table2.csv"], cwd=sandbox, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "x$(touch MARKER)" in r.stdout + r.stderr
    assert not (sandbox / "MARKER").exists() and not (sandbox / "work").exists()


def test_created_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "a/result.json", {"x": 1})
        io.write_text(tmp_path / "a/table.csv", "row\n")
        io.torch_save(tmp_path / "a/ck.pt", {"x": 1})
    finally:
        os.umask(old)
    for name in ("result.json", "table.csv", "ck.pt"):
        assert stat.S_IMODE((tmp_path / "a" / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    old = os.umask(0o077)
    try:
        io.write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600  # a stricter umask is kept


def test_no_scale_writes_where_paper_scale_outputs_live():
    from reproduce.pipeline.dag import Dag

    def outs(scale: str) -> set[str]:
        dag = Dag({"scale": scale, "work_dir": "work", "results_dir": "results", "data_dir": "data"})
        return {*dag.known_results(), *(str(dag.results / a) for a in dag.alias_sources())}

    paper = outs("paper")
    assert "results/table2.csv" in paper and "results/biamat/table2.csv" in paper
    for scale in ("smoke", "cpu", "budget", "shapes"):
        other = outs(scale)
        assert other and all(o.startswith(f"results/{scale}/") for o in other), scale
        assert not other & paper, scale


def test_the_workflow_reads_reproduce_data_dir(monkeypatch):
    from reproduce.pipeline.dag import Dag

    monkeypatch.setenv("REPRODUCE_DATA_DIR", "/srv/datasets")
    cfg = {"scale": "paper", "work_dir": "work", "results_dir": "results", "data_dir": ""}
    assert str(Dag(cfg).data_root) == "/srv/datasets"
    assert str(Dag({**cfg, "data_dir": "mine"}).data_root) == "mine"  # --config data_dir= still wins
