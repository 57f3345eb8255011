"""Claims say what the papers say: each quotes its paper verbatim and cites where, and the paper's own
published values satisfy every claim of the artifact they belong to (issue 25)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reproduce.claims import OBSERVATION
from reproduce.jobs.diff import diff_artifact, published_values
from reproduce.pipeline.papers import load_all

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT.parent / "shared" / "papers"
# where in the paper: a table, figure, section, appendix, abstract or caption, named in `source`
CITES = re.compile(r"\b(Tables?|Figures?|Fig\.|Sec\.|Section|App\.|Appendix|Abstract|caption|Theorem|Thm\.|Corollary)")
SPECS = load_all()
CLAIMS = [(paper, art, c) for paper, spec in SPECS.items() for art in spec.artifacts.values() for c in art.claims]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _norm(text: str) -> str:
    """Whitespace and case folded: the extraction breaks lines and spaces unevenly."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _paper_text(paper: str) -> str:
    sources = yaml.safe_load(Path(SPECS[paper].path).read_text(encoding="utf-8"))["sources"]
    return _norm(" ".join((ROOT / p).read_text(encoding="utf-8") for p in sources.values()))


def test_every_claim_cites_a_place_in_its_paper():
    bad = [f"{p}/{a.name} {c.id}: {c.source!r}" for p, a, c in CLAIMS if not c.observation and not CITES.search(c.source)]
    assert not bad, "claims whose source names no table, figure or section:\n" + "\n".join(bad)


@pytest.mark.skipif(not PAPERS.exists(), reason="../shared/papers is not beside the checkout")
def test_every_claim_quotes_its_paper_verbatim():
    texts = {p: _paper_text(p) for p in SPECS}
    missing = [f"{p}/{a.name} {c.id}" for p, a, c in CLAIMS if not c.observation and not c.quote]
    assert not missing, "claims without a quote (or observation: <why>):\n" + "\n".join(missing)
    wrong = [f"{p}/{a.name} {c.id}: {c.quote!r}" for p, a, c in CLAIMS
             if c.quote and _norm(c.quote) not in texts[p]]
    assert not wrong, "quotes not found in the paper's text:\n" + "\n".join(wrong)
    assert all(len(c.quote) <= 400 for _, _, c in CLAIMS), "quotes are short: the sentence, not the paragraph"


def test_observations_are_labelled_as_ours():
    for _, _, c in CLAIMS:
        assert c.text.startswith(OBSERVATION) == bool(c.observation), c.id
        if c.observation:
            assert not c.quote, f"{c.id}: an observation of ours quotes nothing"


PUBLISHED = [(p, a) for p, a, _ in {(p, a.name): (p, a, None) for p, a, c in CLAIMS if a.published}.values()]


@pytest.mark.parametrize("paper,art", PUBLISHED, ids=[f"{p}/{a.name}" for p, a in PUBLISHED])
def test_published_values_satisfy_their_own_claims(tmp_path, paper, art):
    """`reproduce diff --regenerated <published CSV>`: every claim holds (or is within noise) on the paper's
    values. The one exception is a claim reading values the paper never published (Figure 10's validation
    curves and SVHN panel): it stays `unknown`, and only when every value it misses belongs to a row, or
    a column, of which the paper publishes nothing."""
    spec = SPECS[paper]
    others = {n: (spec.artifacts[n], "unused") for c in art.claims for n in c.artifacts if n != art.name}
    res = diff_artifact(art, art.published, tmp_path / f"{art.name}.diff.csv", others)
    assert res["scale"] == "paper"
    assert all(c["verdict"].split(" (flagged")[0] in ("match", "unpublished") for c in res["cells"]
               if c["verdict"] != "informational")
    # an informational column (Table 10's FIDs) is shown, not judged: against itself its delta is 0
    assert all(c["delta"] == 0 for c in res["cells"] if c["verdict"] == "informational")
    assert all(s["verdict"] == "matches" for s in res["series"])
    published = {None: published_values(art), art.name: published_values(art)}
    published.update({n: published_values(spec.artifacts[n]) for n in others})
    claims = {c.id: c for c in art.claims}
    bad = {}
    for c in res["claims"]:
        if c["reproduced"] in ("holds", "within noise"):
            continue
        refs = [r for e in claims[c["claim"]].checks for r in e.refs]
        absent = [r for r in refs if published.get(r.artifact, {}).get(r.row, {}).get(r.column) is None]
        never = all(r.row not in published.get(r.artifact, {}) or all(
            (cols or {}).get(r.column) is None for cols in published.get(r.artifact, {}).values()) for r in absent)
        if c["reproduced"] != "unknown" or not absent or not never:
            bad[c["claim"]] = (c["published"], c["reproduced"], c["details"])
    assert not bad, bad
    assert any(c["reproduced"] in ("holds", "within noise") for c in res["claims"])


def test_the_cli_diffs_the_paper_against_itself(tmp_path, capsys):
    """The command of the issue: `reproduce diff --regenerated <the artifact's published CSV>`."""
    from reproduce.cli import main

    out = tmp_path / "t4.diff.csv"
    assert main(["diff", "--paper", "hard_instances", "--artifact", "table4", "--scale", "paper",
                 "--work-dir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"),
                 "--regenerated", "pipelines/hard_instances/published/table4.csv", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "claim T4-a: published within noise, reproduced within noise" in printed
    verdicts = {line.split(",")[0] + "." + line.split(",")[1]: line for line in out.read_text().splitlines()[1:]}
    assert "match (flagged: PGD-PGD 0.0857" in verdicts["rn18-100-pgd8.pgd"]
