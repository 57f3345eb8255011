"""Diffs: one line per published cell with the right verdict, and claims re-checked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from reproduce.claims import check
from reproduce.jobs.diff import diff_artifact
from reproduce.pipeline.papers import load_all
from reproduce.pipeline.spec import read_published

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _regenerated(tmp_path: Path, art, shift: dict[tuple[str, str], float], drop: set[str] = frozenset(),
                 scale: str = "paper") -> Path:
    header, rows = read_published(art.published)
    out = tmp_path / "regen.csv"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header + ["scale"])
        w.writeheader()
        for r in rows:
            if r["row"] in drop:
                continue
            r = dict(r, scale=scale)
            for col in art.columns:
                r[col] = f"{float(r[col]) + shift.get((r['row'], col), 0.0):.2f}"
            w.writerow(r)
    return out


def test_diff_verdicts_at_a_comparable_scale(tmp_path):
    art = load_all()["biamat"].artifacts["table1"]
    regen = _regenerated(tmp_path, art, {("svhn-yer", "aa"): -2.0, ("baseline", "clean"): 0.5},
                         drop={"imagenet-yer"})
    res = diff_artifact(art, regen, tmp_path / "t1.diff.csv")
    cells = {(c["row"], c["column"]): c for c in res["cells"]}
    assert len(cells) == len(art.rows) * len(art.columns)
    assert cells[("svhn-yer", "aa")]["verdict"] == "differs" and cells[("svhn-yer", "aa")]["delta"] == -2.0
    assert cells[("baseline", "clean")]["verdict"] == "match"
    assert cells[("imagenet-yer", "aa")]["verdict"] == "missing"
    claims = {c["claim"]: c for c in res["claims"]}
    assert claims["T1-a"]["published"] == "holds" and claims["T1-a"]["reproduced"] == "fails"
    assert claims["T1-b"]["reproduced"] == "unknown"  # imagenet-yer is missing
    assert (tmp_path / "t1.diff.md").exists() and (tmp_path / "t1.claims.csv").exists()


def test_smoke_diff_never_claims_a_match(tmp_path):
    art = load_all()["biamat"].artifacts["table2"]
    regen = _regenerated(tmp_path, art, {}, scale="smoke")
    res = diff_artifact(art, regen, tmp_path / "t2.diff.csv")
    assert {c["verdict"] for c in res["cells"]} == {"not comparable (smoke scale)"}
    assert "NOT COMPARABLE" in (tmp_path / "t2.diff.md").read_text()


def test_claim_checks_compare_cells():
    claim = load_all()["biamat"].artifacts["table1"].claims[0]
    values = {"svhn-yer": {"aa": 2.0}, "svhn-ytilde": {"aa": 1.0}, "cifar100-yer": {"aa": 2.0},
              "cifar100-ytilde": {"aa": 1.0}, "places365-yer": {"aa": 1.0}, "places365-ytilde": {"aa": 1.0}}
    verdict, details = check(claim, {None: values})
    assert verdict == "fails" and details[-1].endswith("NO")


def test_mixed_scales_refuse_to_diff(tmp_path):
    art = load_all()["biamat"].artifacts["table1"]
    regen = _regenerated(tmp_path, art, {}, scale="smoke")
    text = regen.read_text().splitlines()
    text[-1] = text[-1].rsplit(",", 1)[0] + ",paper"
    regen.write_text("\n".join(text) + "\n")
    with pytest.raises(Exception, match="several scales"):
        diff_artifact(art, regen, tmp_path / "t1.diff.csv")
