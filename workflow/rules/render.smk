# Artifacts of every kind: tables (CSV + Markdown), figures (PNG + PDF + data CSV), diffs and claims.
# The wildcard `key` is PAPER/ARTIFACT: names may repeat across papers with different kinds.
def _keys(arts):
    return "|".join(re.escape(f"{a.paper}/{a.name}") for a in arts) or "^$"


TABLE_KEYS = _keys(PIPE.artifacts("table"))
FIGURE_KEYS = _keys(PIPE.artifacts("figure"))
DIFF_KEYS = _keys([a for a in PIPE.artifacts() if a.published is not None or a.claims])


def _art(w):
    return PIPE.artifact(*w.key.split("/"))


def _plan(w):
    return PIPE.plan_path("artifact", w.key)


RENDER = "{RP} render --plan {input.plan:q} --out {output.csv:q}"


rule render_table:
    input:
        plan=_plan,
        cells=lambda w: PIPE.artifact_inputs(_art(w)),
    output:
        csv=report(f"{RESULTS}/{{key}}.csv", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "values"}),
        md=f"{RESULTS}/{{key}}.md",
    wildcard_constraints:
        key=TABLE_KEYS,
    shell:
        RENDER


rule render_figure:
    input:
        plan=_plan,
        cells=lambda w: PIPE.artifact_inputs(_art(w)),
    output:
        png=report(f"{RESULTS}/{{key}}.png", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "figure"}),
        pdf=f"{RESULTS}/{{key}}.pdf",
        csv=report(f"{RESULTS}/{{key}}.csv", caption="../report/artifact.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "values"}),
    wildcard_constraints:
        key=FIGURE_KEYS,
    shell:
        RENDER


rule diff:
    input:
        plan=_plan,
        own=f"{RESULTS}/{{key}}.csv",
        claimed=lambda w: list(PIPE.claim_artifacts(_art(w)).values()),
        claimed_plans=lambda w: [PIPE.plan_path("artifact", f"{_art(w).paper}/{n}") for n in PIPE.claim_artifacts(_art(w))],
    output:
        csv=report(f"{RESULTS}/{{key}}.diff.csv", caption="../report/diff.rst", category="{key}",
                   labels={"artifact": "{key}", "file": "diff (published vs regenerated)"}),
        md=f"{RESULTS}/{{key}}.diff.md",
        claims=report(f"{RESULTS}/{{key}}.claims.csv", caption="../report/claims.rst", category="{key}",
                      labels={"artifact": "{key}", "file": "claims"}),
    wildcard_constraints:
        key=DIFF_KEYS,
    shell:
        "{RP} diff --plan {input.plan:q} --regenerated {input.own:q} --out {output.csv:q}"


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
