# The results page: one HTML page per built artifact (shown inline in Snakemake's report) and
# results/index.html with every paper and artifact. Both are views of the artifacts' CSVs and PNGs.
PAGE_KEYS = _keys(PIPE.artifacts())


def _values_csv(art):
    return next(o for o in PIPE.artifact_outputs(art) if o.endswith(".csv"))


def _page_inputs(w):
    # what the page shows: the values, the figure, the diff and the claims (not the .md/.pdf copies)
    return [o for o in PIPE.artifact_outputs(_art(w)) if o.endswith((".csv", ".png"))]


rule artifact_page:
    input:
        plan=_plan,
        shown=_page_inputs,
    output:
        report(f"{RESULTS}/{{key}}.html", caption="../report/page.rst", category="{key}",
               labels={"artifact": "{key}", "file": "page: table, published values, verdicts, claims, figure"}),
    wildcard_constraints:
        key=PAGE_KEYS,
    shell:
        "{RP} report --plan {input.plan:q} --index {RESULTS:q}/index.html --out {output:q}"


# Its inputs are the pages of the artifacts built when the DAG is made (as for status.csv): build
# the artifacts first, then this target.
rule results_page:
    input:
        lambda w: [_values_csv(a)[: -len(".csv")] + ".html" for a in PIPE.artifacts() if os.path.exists(_values_csv(a))],
    output:
        report(f"{RESULTS}/index.html", caption="../report/index.rst", category="0. results",
               labels={"artifact": "all", "file": "results page"}),
    shell:
        "{RP} report --scale {PIPE.scale.name:q} --work-dir {config[work_dir]:q} --results-dir {config[results_dir]:q} "
        "--out {output:q}"


localrules:
    artifact_page,
    results_page,


# Under `snakemake --report`, the report's first page is workflow.rst followed by every built
# artifact's cells and verdicts and the table of all artifacts (written now, from the files that exist); any
# other invocation keeps the static text and writes nothing.
if any(a == "--report" or a.startswith("--report=") for a in sys.argv):
    from reproduce.report.pages import write_landing_rst

    report: str(write_landing_rst(PIPE, PIPE.work / "report" / "workflow.rst", "workflow/report/workflow.rst").resolve())
