"""Jinja templates of the results page: a landing table and one section per artifact.

Plain HTML with inline CSS and figures as data URIs, so one file opens anywhere (a browser, an
iframe of Snakemake's report, an e-mail attachment) with no server or network. Its one script
records on <body> how many figures loaded (``data-figures-loaded="1/1"``), which the browser test reads.
"""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#1b1b1b;max-width:78em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-top:1px solid #ccc;padding-top:.8em}
h3{font-size:1em} table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #d0d0d0;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;white-space:nowrap}
.ok{background:#dff3df} .bad{background:#f9d6d5} .warn{background:#fcefc7} .muted{background:#eeeeee}
.pub{color:#555;font-size:.85em;display:block} .delta{color:#555;font-size:.85em}
.badge{display:inline-block;border-radius:.6em;padding:0 .45em;margin-right:.2em;font-size:.85em}
.banner{background:#fff4ce;border:1px solid #e0c060;padding:.4em .7em;margin:.5em 0}
.note{color:#444;font-size:.85em} img.figure{max-width:100%;border:1px solid #ddd}
"""

LANDING = """
<h1>Results: {{ scale_title }}</h1>
<p>Every artifact of every paper at scale <b>{{ scale }}</b>: built or not, and its verdicts counted.
Cells compare the regenerated value with the published one ({{ legend }}); claims are the papers'
statements re-checked on both.</p>
{% if not comparable %}<p class="banner">At {{ scale }} scale nothing is comparable with the papers: the numbers
show the pipeline works, not what the papers found.</p>{% endif %}
{% for paper, arts in papers %}
<h2 id="paper-{{ paper.name }}">{{ paper.title }}</h2>
<p class="note">{{ paper.cite }}</p>
<table><tr><th>artifact</th>{% if not compact %}<th>kind</th><th>source</th>{% endif %}<th>built</th><th>scale</th><th>cells</th><th>claims</th></tr>
{% for a in arts %}<tr><td title="{{ a.title }}">{% if a.built and link(a) %}<a href="{{ link(a) }}">{{ a.name }}</a>{% else %}<b>{{ a.name }}</b>{% endif %}
{% if not compact %} <span class="note">{{ a.title }}</span></td><td>{{ a.kind }}</td><td class="note">{{ a.source }}{% endif %}</td>
<td style="white-space:nowrap">{{ "built" if a.built else "not built" }}</td><td>{{ a.scale }}</td>
<td>{{ badges(a.counts().cells) }}</td><td>{{ badges(a.counts().claims) }}</td></tr>
{% endfor %}</table>
{% endfor %}
"""

ARTIFACT = """
<h2 id="{{ a.anchor }}">{{ a.paper }} / {{ a.name }}: {{ a.title }}</h2>
<p class="note">Source: {{ a.source }}. Kind: {{ a.kind }}. Scale: <b>{{ a.scale }}</b>.
Files: {% for o in a.outputs %}<code>{{ o }}</code>{{ ", " if not loop.last }}{% endfor %}.</p>
{% if a.notes %}<ul class="note">{% for n in a.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if a.figure and with_figure %}<p><img class="figure" alt="{{ a.key }}: figure as regenerated" src="{{ figure_uri(a) }}"></p>{% endif %}
{% if a.values %}
<h3>Regenerated values{% if a.cells %}, with the published value, delta and verdict of each published cell{% endif %}</h3>
<table><tr><th>row</th>{% for c in a.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in a.values %}<tr><th>{{ r.label or r.row }}</th>{% for c in a.columns %}{% set d = a.diff_cell(r.row, c) %}
<td class="num {{ verdict_class(d.verdict) if d else '' }}" {% if d %}title="{{ d.verdict }}"{% endif %}>{{ r[c] }}
{%- if r[c ~ '_sd'] %} ± {{ r[c ~ '_sd'] }}{% endif %}
{%- if d and d.published != '' %}<span class="pub">published {{ d.published }}
{%- if d.delta != '' %} <span class="delta">(Δ {{ d.delta }})</span>{% endif %}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endif %}
{% if a.cells %}
<h3>Published beside regenerated (tolerance {{ a.cells[0].tolerance }} points)</h3>
<table><tr><th>row</th><th>column</th><th>published</th><th>regenerated</th><th>delta</th><th>verdict</th></tr>
{% for c in a.cells %}<tr><td>{{ c.row }}</td><td>{{ c.column }}</td><td class="num">{{ c.published }}</td>
<td class="num">{{ c.reproduced }}</td><td class="num">{{ c.delta }}</td>
<td class="{{ verdict_class(c.verdict) }}">{{ c.verdict }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if a.claims %}
<h3>The paper's claims, re-checked</h3>
<table><tr><th>claim</th><th>text</th><th>source</th><th>on the published numbers</th><th>on the regenerated numbers</th></tr>
{% for c in a.claims %}<tr><td>{{ c.claim }}</td><td>{{ c.text }}</td><td class="note">{{ c.source }}</td>
<td class="{{ verdict_class(c.published) }}">{{ c.published }}</td>
<td class="{{ verdict_class(c.reproduced) }}" title="{{ c.details }}">{{ c.reproduced }}</td></tr>
{% endfor %}</table>
{% endif %}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style }}</style></head>
<body>{{ body }}
<script>window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-figures-loaded",
    imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length + "/" + imgs.length);
});</script></body></html>
"""
