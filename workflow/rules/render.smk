# Artifacts of every kind: tables (CSV + Markdown), figures (PNG + PDF + data CSV), diffs and claims.
# The wildcard `key` is PAPER/ARTIFACT: names may repeat across papers with different kinds.
def _keys(arts):
    return "|".join(re.escape(f"{a.paper}/{a.name}") for a in arts) or "^$"


TABLE_KEYS = _keys(PIPE.artifacts("table"))
FIGURE_KEYS = _keys(PIPE.artifacts("figure"))
DIFF_KEYS = _keys([a for a in PIPE.artifacts() if a.published is not None or a.claims])


def _art(w):
    return PIPE.artifact(*w.key.split("/"))


RENDER = ("{RP} render --paper {params.paper} --artifact {params.name} --scale {PIPE.scale.name} "
          "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --out {output.csv}")


rule render_table:
    input:
        lambda w: PIPE.artifact_inputs(_art(w)),
    output:
        csv=report(f"{RESULTS}/{{key}}.csv", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "values"}),
        md=f"{RESULTS}/{{key}}.md",
    params:
        paper=lambda w: _art(w).paper,
        name=lambda w: _art(w).name,
    wildcard_constraints:
        key=TABLE_KEYS,
    shell:
        RENDER


rule render_figure:
    input:
        lambda w: PIPE.artifact_inputs(_art(w)),
    output:
        png=report(f"{RESULTS}/{{key}}.png", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "figure"}),
        pdf=f"{RESULTS}/{{key}}.pdf",
        csv=report(f"{RESULTS}/{{key}}.csv", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "values"}),
    params:
        paper=lambda w: _art(w).paper,
        name=lambda w: _art(w).name,
    wildcard_constraints:
        key=FIGURE_KEYS,
    shell:
        RENDER


rule diff:
    input:
        own=f"{RESULTS}/{{key}}.csv",
        claimed=lambda w: list(PIPE.claim_artifacts(_art(w)).values()),
    output:
        csv=report(f"{RESULTS}/{{key}}.diff.csv", caption="../report/diff.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "diff (published vs regenerated)"}),
        md=f"{RESULTS}/{{key}}.diff.md",
        claims=report(f"{RESULTS}/{{key}}.claims.csv", caption="../report/claims.rst", category="{key}",
                      labels={"artifact": "{key}", "file": "claims"}),
    params:
        paper=lambda w: _art(w).paper,
        name=lambda w: _art(w).name,
    wildcard_constraints:
        key=DIFF_KEYS,
    shell:
        "{RP} diff --paper {params.paper} --artifact {params.name} --scale {PIPE.scale.name} "
        "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --regenerated {input.own} --out {output.csv}"


ALIASES = PIPE.alias_sources()


rule alias:
    input:
        lambda w: ALIASES[w.alias],
    output:
        f"{RESULTS}/{{alias}}",
    wildcard_constraints:
        alias="|".join(map(re.escape, ALIASES)) or "^$",
    shell:
        "cp {input} {output}.tmp && mv {output}.tmp {output}"


# Verdict counts of every artifact; those without a diff yet read "not yet run". Its inputs
# are the diffs that exist when the DAG is built, so a new diff reruns it.
rule status:
    input:
        lambda w: [d for d in PIPE.diff_outputs() if os.path.exists(d)],
    output:
        report(f"{RESULTS}/status.csv", caption="../report/status.rst", category="status",
               labels={"artifact": "all", "file": "status"}),
    shell:
        "{RP} status --scale {PIPE.scale.name} --work-dir {config[work_dir]} --results-dir {config[results_dir]} "
        "--out {output}"
