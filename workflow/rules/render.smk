# Artifacts of every kind: tables (CSV + Markdown), figures (PNG + PDF + data CSV), diffs and claims.
TABLES = "|".join(a.name for a in PIPE.artifacts("table")) or "^$"
FIGURES = "|".join(a.name for a in PIPE.artifacts("figure")) or "^$"
DIFFED = "|".join(a.name for a in PIPE.artifacts() if a.published is not None or a.claims) or "^$"
PAPERS = "|".join(PIPE.specs)
RENDER = ("{RP} render --paper {wildcards.paper} --artifact {wildcards.artifact} --scale {PIPE.scale.name} "
          "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --out {output[0]}")


rule render_table:
    input:
        lambda w: PIPE.artifact_inputs(PIPE.artifact(w.paper, w.artifact)),
    output:
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.csv",
        md=f"{RESULTS}/{{paper}}/{{artifact}}.md",
    wildcard_constraints:
        paper=PAPERS,
        artifact=TABLES,
    shell:
        RENDER


rule render_figure:
    input:
        lambda w: PIPE.artifact_inputs(PIPE.artifact(w.paper, w.artifact)),
    output:
        png=f"{RESULTS}/{{paper}}/{{artifact}}.png",
        pdf=f"{RESULTS}/{{paper}}/{{artifact}}.pdf",
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.csv",
    wildcard_constraints:
        paper=PAPERS,
        artifact=FIGURES,
    shell:
        RENDER


rule diff:
    input:
        own=f"{RESULTS}/{{paper}}/{{artifact}}.csv",
        claimed=lambda w: list(PIPE.claim_artifacts(PIPE.artifact(w.paper, w.artifact)).values()),
    output:
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.diff.csv",
        md=f"{RESULTS}/{{paper}}/{{artifact}}.diff.md",
        claims=f"{RESULTS}/{{paper}}/{{artifact}}.claims.csv",
    wildcard_constraints:
        paper=PAPERS,
        artifact=DIFFED,
    shell:
        "{RP} diff --paper {wildcards.paper} --artifact {wildcards.artifact} --scale {PIPE.scale.name} "
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
