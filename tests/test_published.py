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
    with open(PUB / f"{name}.csv", newline="") as f:  # `#` lines are comments, as the engine reads them
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


def test_table10_fids_match_000():
    block = _block(_lines("000_ee39e36853903b80.txt"), "Table 10: FID to CIFAR-10.", "nnsub")
    got = dict(re.match(r"^(\S+)\s+(\d+\.\d+)$", line).groups() for line in block[2:])
    rows = {r["row"]: r["fid"] for r in _csv("table10")}
    names = {"SVHN": "svhn", "CIFAR-100": "cifar100", "Places365": "places365", "ImageNet": "imagenet"}
    assert {names[k]: v for k, v in got.items()} == rows


def test_table16_ratios_stds_and_table17_counts_match_000():
    lines = _lines("000_ee39e36853903b80.txt")
    block = _block(lines, "CIFAR-10 Superclass\tAverage", "(a) The top-10")[1:]
    rows = {r["row"]: r for r in _csv("table16")}
    label = {"Others (dismatched)": "Others"}
    for line in block:
        name, ratio, std = line.split("\t")
        r = rows[label.get(name, name)]
        assert (r["ratio"], r["std"]) == (ratio, "" if std == "-" else std), name
    assert len(block) == 12
    # class counts: Table 17's comma-separated names per superclass; Others the rest of 1,000
    t17 = _block(lines, "Table 17: The mapping", "(“geyser”")[2:]
    counts = {line.split("\t")[0]: len(line.split("\t")[1].split(", ")) for line in t17}
    assert counts == {k: int(rows[k]["classes"]) for k in counts}
    assert int(rows["Others"]["classes"]) == 1000 - sum(counts.values()) and rows["All"]["classes"] == "1000"
    # the classes the text names, with their ratios
    text = " ".join(lines[1250:1290])
    named = {k.replace(" ", "-"): v for k, v in re.findall(r"\(“([a-z ]+)”, (\d\.\d{3})\)", text)}
    carrier = re.search(r"“aircraft carrier”, showing\n(\d+\.\d)% higher-than-threshold", "\n".join(lines[1250:1260]))
    named["aircraft-carrier"] = f"{float(carrier.group(1)) / 100:.3f}"
    assert {k: rows[k]["ratio"] for k in named} == named and len(named) == 7


def test_table5_errors_and_stds_match_000_in_order():
    """000 Table 5 [905-924]: four lines a batch size (A, A+B, A+C, A+B+C), each `mean±std`."""
    lines = _lines("000_ee39e36853903b80.txt")
    i = next(k for k, line in enumerate(lines) if line.startswith("Batch size\tDataset\tTest error"))
    pairs = [re.findall(r"(\d+\.\d{2})±(\d+\.\d{2})", line) for line in lines[i + 1:i + 21]]
    assert all(len(p) == 1 for p in pairs), pairs
    rows = _csv("table5")
    assert [r["row"] for r in rows] == [f"bs{b}" for b in (128, 256, 384, 512, 1024)]
    assert [r["batch_size"] for r in rows] == ["128", "256", "384", "512", "1024"]
    assert [p[0] for p in pairs] == [(r[c], r[f"{c}_sd"]) for r in rows for c in ("a", "ab", "ac", "abc")]
    # each group of four opens with its batch size
    assert [lines[i + 1 + 4 * k + 1].split("\t")[0] for k in range(5)] == ["128", "256", "384", "512", "1024"]


# Table 3 (001 = 000) and Table 7 (000) in the paper's row order: every row there, each matching the paper.
T3_ROWS = ["trades", "hendrycks-cifar100", "hendrycks-imagenet", "carmon-cifar100", "carmon-places365",
           "carmon-imagenet", "carmon-imagenet500k", "biamat-cifar100", "biamat-places365", "biamat-imagenet"]
T7_ROWS = [f"c10-{r}" for r in ["hendrycks-cifar100", "hendrycks-imagenet", "carmon-cifar100", "carmon-places365",
                                "carmon-imagenet", "carmon-imagenet500k", "carmon-imagenet250k", "carmon-imagenet100k",
                                "biamat-cifar100", "biamat-places365", "biamat-imagenet"]] + \
          [f"c100-{r}" for r in ["hendrycks-imagenet", "carmon-places365", "carmon-imagenet", "carmon-imagenet500k",
                                 "carmon-imagenet250k", "carmon-imagenet100k", "biamat-places365", "biamat-imagenet"]]


def _check_rows(paper: dict[str, list[str]], name: str, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    rows = {r["row"]: r for r in _csv(name)}
    assert set(rows) == set(paper), set(rows) ^ set(paper)
    for r, row in rows.items():
        assert [row[c] for c in columns] == paper[r], r
    return rows


def test_table3_cells_match_both_versions_row_by_row():
    cols = ("clean", "pgd100", "cw100", "aa")
    for name, start, stop in (("001_c59c0d18c84aa014.txt", "Method\tAuxiliary dataset\tClean", "### 3.3"),
                              ("000_ee39e36853903b80.txt", "Method\tAuxiliary dataset\tClean\tPGD100", "distribution of")):
        numbers = [NUM.findall(line) for line in _block(_lines(name), start, stop)[1:]]
        numbers = [n for n in numbers if n]
        assert all(len(n) == 4 for n in numbers) and len(numbers) == len(T3_ROWS), name
        _check_rows(dict(zip(T3_ROWS, numbers)), "table3", cols)


def test_table7_cells_match_000_with_the_merged_rows_split_by_column_pairs():
    lines = _block(_lines("000_ee39e36853903b80.txt"), "Primary dataset\tMethod\tAuxiliary dataset\tClean\tAA", "Table 8:")
    pairs = []
    for line in lines[1:]:
        n = NUM.findall(line)
        assert len(n) in (0, 2, 4), line
        if len(n) == 4:  # L951 and L954: "A B  clean_A clean_B  aa_A aa_B"
            assert "CIFAR-100 ImageNet" in line or "ImageNet ImageNet-500k" in line, line
            pairs += [[n[0], n[2]], [n[1], n[3]]]
        elif n:
            pairs.append(n)
    assert len(pairs) == len(T7_ROWS)
    rows = _check_rows(dict(zip(T7_ROWS, pairs)), "table7", ("clean", "aa"))
    t3 = {r["row"]: r for r in _csv("table3")}
    for r in t3:  # the CIFAR-10 rows Table 3 also prints carry the same cells
        if f"c10-{r}" in rows:
            assert [rows[f"c10-{r}"][c] for c in ("clean", "aa")] == [t3[r][c] for c in ("clean", "aa")], r


def test_table8_cells_match_000_table8():
    block = _block(_lines("000_ee39e36853903b80.txt"), "Fine-tuning\tClean\tPGD20", "are ineffective")
    by_row = {line.split("\t")[0]: NUM.findall(line) for line in block[1:]}
    rows = {r["row"]: r for r in csv.DictReader(line for line in open(PUB / "table8.csv") if not line.startswith("#"))}
    assert by_row == {"AT": [rows["at"][c] for c in ("clean", "pgd20", "pgd100")],
                      "TRADES": [rows["trades"][c] for c in ("clean", "pgd20", "pgd100")]}
    assert "released-at" not in rows  # the unpublished cross-check row
