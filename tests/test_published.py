"""Published values re-read straight from the paper texts, independently of the CSV transcription."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT.parent / "shared" / "papers"
PUB = ROOT / "pipelines" / "biamat" / "published"
NUM = re.compile(r"\b\d{2}\.\d{2}\b")

pytestmark = pytest.mark.skipif(not PAPERS.exists(), reason="../shared/papers is not beside the checkout")


def _lines(name: str) -> list[str]:
    return (PAPERS / name).read_text(encoding="utf-8").splitlines()


def _block(lines: list[str], start: str, stop: str) -> list[str]:
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(stop))
    return lines[i:j]


def _csv(name: str) -> list[dict[str, str]]:
    with open(PUB / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def test_table2_cells_match_the_published_paper_in_order():
    block = _block(_lines("001_c59c0d18c84aa014.txt"), "Primary dataset\tMethod", "application of the")
    numbers = [n for line in block for n in NUM.findall(line)]
    rows = _csv("table2")
    assert len(rows) == 22
    assert numbers == [r[c] for r in rows for c in ("clean", "pgd100", "cw100", "aa")]


def test_table1_aa_matches_001_and_clean_matches_000():
    lines = _lines("001_c59c0d18c84aa014.txt")
    i = next(k for k, line in enumerate(lines) if line.startswith("Table 1. Accuracy"))
    ytilde = NUM.findall(next(line for line in lines[i:i + 10] if line.startswith("$\\tilde{y}$\t")))
    yer = NUM.findall(next(line for line in lines[i:i + 10] if line.startswith("$y^{\\text{ER}}$\t")))
    rows = {r["row"]: r for r in _csv("table1")}
    auxes = ["svhn", "cifar100", "places365", "imagenet"]
    assert ytilde == [rows[f"{a}-ytilde"]["aa"] for a in auxes] + [rows["baseline"]["aa"]]
    assert yer == [rows[f"{a}-yer"]["aa"] for a in auxes]
    lines0 = _lines("000_ee39e36853903b80.txt")
    i = next(k for k, line in enumerate(lines0) if line.startswith("Method\tAuxiliary dataset\tShuffled"))
    j = next(k for k in range(i + 1, len(lines0)) if lines0[k].strip() and "\t" not in lines0[k])
    block = lines0[i:j]
    pairs = [NUM.findall(line) for line in block if len(NUM.findall(line)) == 2]
    order = ["baseline"] + [f"{a}-{k}" for a in auxes for k in ("ytilde", "yer")]
    assert pairs == [[rows[r]["clean"], rows[r]["aa"]] for r in order]


def test_table15_mean_and_std_cells_match_000_in_order():
    block = _block(_lines("000_ee39e36853903b80.txt"), "Table 15: Accuracy", "J Robust dataset analysis")
    cells = [c for c in (re.findall(r"(\d+\.\d+)±(\d+\.\d+)", line) for line in block) if c]
    rows = _csv("table15")
    assert [r["source"] for r in rows] == ["AT", "AT+BiaMAT"]
    assert cells == [[(r["clean"], r["clean_sd"]), (r["fgsm"], r["fgsm_sd"])] for r in rows]


def test_table11_hours_match_000_in_order():
    block = _block(_lines("000_ee39e36853903b80.txt"), "Table 11: The training times", "Table 12:")
    hours = [line.rsplit("\t", 1)[1] for line in block[2:]]
    methods = [line.split("\t")[1] for line in block[2:]]
    rows = _csv("table11")
    assert methods == [r["method"] for r in rows]
    assert hours == [r["hours"] for r in rows] == ["34", "56", "56.5", "52", "103", "119", "196"]
