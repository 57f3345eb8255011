"""The results page: ``results/index.html`` (every paper and artifact) and one page per artifact.

Why plain HTML from Jinja rather than datavzrd: datavzrd is a Rust binary (conda, not pip) that
writes a folder of script-driven pages per table; the harness wants one self-contained file that
puts the published value inside each regenerated cell with its verdict's colour, opens offline
and inside Snakemake's report iframe, and is tested as text in a headless browser. Jinja is already
installed (Snakemake's report uses it) and the templates are sixty lines.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from jinja2 import Environment
from markupsafe import Markup, escape

from .. import io
from ..artifacts.citations import CITATIONS, _load
from .collect import ArtifactView, collect, verdict_class
from .progress_status import natural_key
from .templates import ARTIFACT, LANDING, PAGE, STYLE


def _env() -> Environment:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(verdict_class=verdict_class, badges=badges, figure_uri=figure_uri)
    return env


def badges(counts: dict[str, int]) -> Markup:
    return Markup("".join(f'<span class="badge {verdict_class(k)}">{v} {escape(k)}</span>'
                          for k, v in sorted(counts.items())))


def figure_uri(view: ArtifactView) -> str:
    """The PNG inlined, so the page needs no file beside it."""
    assert view.figure is not None
    return "data:image/png;base64," + base64.b64encode(view.figure.read_bytes()).decode("ascii")


def artifact_html(view: ArtifactView, with_figure: bool = True) -> Markup:
    return Markup(_env().from_string(ARTIFACT).render(a=view, with_figure=with_figure))


def _page(title: str, body: str) -> str:
    return _env().from_string(PAGE).render(title=title, style=Markup(STYLE), body=Markup(body))


def write_artifact_page(view: ArtifactView, out: str | Path, index: str | Path | None = None) -> Path:
    """One artifact's page (``index``: the landing page to link back to)."""
    out = Path(out)
    back = ""
    if index is not None:
        rel = os.path.relpath(Path(index), out.parent)
        back = f'<p><a href="{escape(rel)}">All results</a></p>'
    io.write_text(out, _page(f"{view.key}: {view.title}", Markup(back) + artifact_html(view)))
    return out


def paper_citation(paper: str) -> str:
    return "; ".join(str(e["version"]) for e in _load(str(CITATIONS)).values() if e.get("paper") == paper)


def scoped(css: str, prefix: str) -> str:
    """``css`` with every rule applying inside ``prefix`` only (``body`` becomes the block itself)."""
    rules = [r.split("{", 1) for r in css.split("}") if "{" in r]
    return "".join(",".join(prefix if sel.strip() == "body" else f"{prefix} {sel.strip()}" for sel in sels.split(","))
                   + "{" + body + "}" for sels, body in rules)


def landing_html(views: Iterable[ArtifactView], titles: dict[str, str], scale: str, comparable: bool,
                 link: Callable[[ArtifactView], str], compact: bool = False) -> Markup:
    """The table of every paper's artifacts (built or not) with their verdicts counted."""
    by_paper: dict[str, list[ArtifactView]] = {}
    for v in views:  # in spec order of papers, artifacts sorted naturally (figure1b, figure4, figure10)
        by_paper.setdefault(v.paper, []).append(v)
    papers = [({"name": p, "title": titles.get(p, p), "cite": paper_citation(p)}, arts) for p, arts in by_paper.items()]
    legend = Markup(" ".join(f'<span class="badge {c}">{w}</span>' for w, c in
                             (("match", "ok"), ("differs", "bad"), ("missing", "warn"), ("not comparable", "muted"))))
    return Markup(_env().from_string(LANDING).render(papers=papers, scale=scale, comparable=comparable, link=link,
                                                     legend=legend, scale_title=f"{scale} scale", compact=compact))


def views_of(dag: Any) -> list[ArtifactView]:
    """Every artifact the DAG's scale builds, read from the outputs the DAG names for it."""
    papers = list(dag.specs)
    arts = sorted(dag.artifacts(), key=lambda a: (papers.index(a.paper), natural_key(a.name)))
    return [collect(art, dag.artifact_outputs(art), art.family) for art in arts]


def write_index(dag: Any, out: str | Path) -> list[ArtifactView]:
    """``results/index.html``: the landing table, then every built artifact's section, in one file."""
    views = views_of(dag)
    titles = {p: s.title for p, s in dag.specs.items()}
    body = landing_html(views, titles, dag.scale.name, dag.scale.comparable, lambda v: f"#{v.anchor}")
    body += Markup("").join(artifact_html(v) for v in views if v.built)
    io.write_text(out, _page(f"reproduce: results at {dag.scale.name} scale", body))
    return views


def view_from_plan(plan_path: str | Path) -> ArtifactView:
    """One artifact's view from its plan file (what the page rule reads)."""
    from ..jobs.render import load_artifact

    art, view = load_artifact(plan_path)
    return collect(art, list(view.plan["outputs"]), art.family)


def write_landing_rst(dag: Any, out: str | Path, intro: str | Path) -> Path:
    """The first page of Snakemake's report: ``intro`` (reStructuredText), then every built artifact's
    cells and verdicts and the table of all artifacts as raw HTML, so the numbers show without a click.
    Figures stay in the artifacts' categories (the report's own image viewer)."""
    views = views_of(dag)
    titles = {p: s.title for p, s in dag.specs.items()}
    # the built artifacts' cells first (what a reader opened the report for), then every artifact's state
    html = Markup("").join(artifact_html(v, with_figure=False) for v in views if v.built)
    html += landing_html(views, titles, dag.scale.name, dag.scale.comparable, lambda v: "", compact=True)
    # inside the report's page: styles scoped to this block, and room for the tables
    html = Markup(f'<style>{scoped(STYLE, ".rp")} .prose.max-w-lg{{max-width:64rem}}</style><div class="rp">') + html
    html += Markup("</div>")
    raw = "\n".join("   " + line for line in str(html).splitlines() if line.strip())
    # the report renders this file with Jinja first: the generated HTML is passed through verbatim
    text = Path(intro).read_text() + "\n\n{% raw %}\n.. raw:: html\n\n" + raw + "\n\n{% endraw %}\n"
    io.write_text(out, text)
    return Path(out)
