# Tables (CSV + Markdown), figures (PNG + PDF + data CSV), diffs against the published values.
TABLES = "|".join(a.name for a in PIPE.artifacts("table")) or "^$"
FIGURES = "|".join(a.name for a in PIPE.artifacts("figure")) or "^$"
PAPERS = "|".join(PIPE.specs)


rule render_table:
    input:
        lambda w: PIPE.artifact_evals(PIPE.artifact(w.paper, w.artifact)),
    output:
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.csv",
        md=f"{RESULTS}/{{paper}}/{{artifact}}.md",
    wildcard_constraints:
        paper=PAPERS,
        artifact=TABLES,
    shell:
        "{RP} render --paper {wildcards.paper} --artifact {wildcards.artifact} --scale {PIPE.scale.name} "
        "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --out {output.csv}"


rule render_figure:
    input:
        lambda w: PIPE.artifact_evals(PIPE.artifact(w.paper, w.artifact)),
    output:
        png=f"{RESULTS}/{{paper}}/{{artifact}}.png",
        pdf=f"{RESULTS}/{{paper}}/{{artifact}}.pdf",
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.csv",
    wildcard_constraints:
        paper=PAPERS,
        artifact=FIGURES,
    shell:
        "{RP} render --paper {wildcards.paper} --artifact {wildcards.artifact} --scale {PIPE.scale.name} "
        "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --out {output.png}"


rule diff:
    input:
        f"{RESULTS}/{{paper}}/{{artifact}}.csv",
    output:
        csv=f"{RESULTS}/{{paper}}/{{artifact}}.diff.csv",
        md=f"{RESULTS}/{{paper}}/{{artifact}}.diff.md",
        claims=f"{RESULTS}/{{paper}}/{{artifact}}.claims.csv",
    wildcard_constraints:
        paper=PAPERS,
        artifact=TABLES,
    shell:
        "{RP} diff --paper {wildcards.paper} --artifact {wildcards.artifact} --scale {PIPE.scale.name} "
        "--work-dir {config[work_dir]} --results-dir {config[results_dir]} --regenerated {input} --out {output.csv}"


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
