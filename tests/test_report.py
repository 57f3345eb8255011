"""The results page, citations and progress lines, on small hand-made files (no DAG run)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from reproduce.artifacts import Artifact, Row
from reproduce.progress import EPOCH_LINE, batch_line, epoch_line, hms
from reproduce.artifacts.citations import cite
from reproduce.report.collect import collect
from reproduce.report.pages import write_artifact_page
from reproduce.report.progress_status import natural_key, training_progress


def test_sources_cite_paper_venue_and_section_not_text_files():
    assert cite("biamat", "001 Table 2") == "Lee & Lee, WACV 2023, Table 2"
    assert cite("biamat", "001:196") == "Lee & Lee, WACV 2023, §3.2"
    both = cite("biamat", "001 Table 1 (AA); clean from 000 Table 1")
    assert "000" not in both and "001" not in both and "ICLR 2022 submission" in both
    assert cite("hard_instances", "004 Figure 9 [L1253-1258, L1331-1351]").endswith("Figure 9")
    assert cite("x", "notes section 3") == "notes section 3"  # nothing to map: as written


def test_epoch_lines_read_back_for_status():
    history = [{"epoch": 1, "seconds": 30.0}, {"epoch": 2, "seconds": 30.0, "loss": 1.5, "train_adv_acc": 0.42,
                                               "selection_pgd20": 41.0}]
    line = epoch_line("c10-at", history[-1], 10, history, "pgd20", {"score": 41.0, "epoch": 2})
    assert "loss 1.5000" in line and "train adv acc 42.0%" in line and "selection pgd20 41.0%" in line
    m = EPOCH_LINE.match(line)
    assert m and (m["run"], m["epoch"], m["epochs"], m["eta"]) == ("c10-at", "2", "10", "0:04:00")
    assert hms(3725) == "1:02:05" and hms(7 * 86400) == "168:00:00"
    assert "batch 2/4 (512/1000 images) correct 40.0%" in batch_line("aa", 2, 4, 512, 1000, 204.8, 10.0)


def test_natural_sort_puts_figure10_after_figure9():
    names = ["figure10", "figure1b", "figure9", "figure4", "figure1a", "table14", "table2"]
    assert sorted(names, key=natural_key) == ["figure1a", "figure1b", "figure4", "figure9", "figure10",
                                              "table2", "table14"]


def test_a_running_training_shows_its_last_epoch_and_eta(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"")
    (tmp_path / "logs" / "train").mkdir(parents=True)
    (tmp_path / "logs" / "train" / "r1.log").write_text(
        "run r1: data placement\n[train] r1 epoch 3/200 loss 2.0 elapsed 0:30:00, ETA 32:50:00\n")
    dag = SimpleNamespace(work=tmp_path, configs={"r1": {"epochs": 200}}, run_dir=lambda rid: tmp_path / "runs" / rid)
    assert training_progress(dag, "r1") == {"run": "r1", "epoch": 3, "epochs": 200, "eta": "32:50:00"}
    (run / "done.json").write_text("{}")
    assert training_progress(dag, "r1") is None


def _artifact(tmp_path: Path) -> tuple[Artifact, list[str]]:
    base = tmp_path / "results" / "subset_at" / "figure1"
    base.parent.mkdir(parents=True)
    Path(f"{base}.csv").write_text("row,rob_A,rob_B,scale,notes\ncar,90.1,15.2,ci,sweeps thinned\n"
                                   "cat,50.3,30.4,ci,sweeps thinned\n")
    Path(f"{base}.diff.csv").write_text(
        "row,column,published,reproduced,delta,tolerance,verdict,scale\n"
        "car,rob_B,17.1,15.2,-1.9,3.0,not comparable (ci scale),ci\ncat,rob_B,37.8,30.4,-7.4,3.0,differs,ci\n")
    Path(f"{base}.claims.csv").write_text(
        "claim,text,source,published,reproduced,noise,details,scale\n"
        "F1-a,cat transfers more than car,002:62,holds,holds (ci scale),0,,ci\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar([0, 1], [15.2, 30.4])
    fig.savefig(f"{base}.png")
    plt.close(fig)
    art = Artifact("subset_at", "figure1", "bar", "Robust accuracy on A and on B", "002 Figure 1", None, [],
                   ["rob_A", "rob_B"], {r: Row(r, None, {}) for r in ("car", "cat")}, 3.0, 0.0, [], {})
    return art, [f"{base}.png", f"{base}.pdf", f"{base}.csv", f"{base}.diff.csv", f"{base}.diff.md",
                 f"{base}.claims.csv"]


def test_artifact_page_puts_published_values_and_verdicts_in_the_cells(tmp_path):
    art, outputs = _artifact(tmp_path)
    view = collect(art, outputs, "figure")
    assert view.built and view.scale == "ci" and view.counts()["cells"] == {"not comparable": 1, "differs": 1}
    page = tmp_path / "results" / "subset_at" / "figure1.html"
    html = write_artifact_page(view, page, index=tmp_path / "results" / "index.html").read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "15.2 published 17.1 (Δ -1.9)" in text
    assert re.search(r'class="num bad" title="differs">30.4', html)  # a coloured verdict on the cell
    assert "Losch et al., Subset Adversarial Training, ICLR 2024, Figure 1" in text
    assert "holds (ci scale)" in text and "sweeps thinned" in text
    assert html.count('src="data:image/png;base64,') == 1  # the figure travels inside the page
    assert 'href="../index.html"' in html


def test_unbuilt_artifact_is_listed_without_values(tmp_path):
    art, outputs = _artifact(tmp_path)
    for o in outputs:
        Path(o).unlink(missing_ok=True)
    view = collect(art, outputs, "figure")
    assert not view.built and view.cells == [] and view.figure is None
