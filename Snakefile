# reproduce: papers' tables and figures regenerated from scratch.
#   snakemake --cores 8 results/table2.csv                         (paper scale, GPU)
#   snakemake --cores 2 results/smoke/table2.csv --config scale=smoke    (offline demo)
# (targets go before --config, or after `--`: --config takes every word after it)
import os
import re
import shlex
import sys

from snakemake.utils import min_version, validate

from reproduce.pipeline.dag import Dag

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")
PIPE = Dag(config)
# every node's plan file, rewritten only where its content changed: the jobs read nothing else
PIPE.write_plans()
WORK = str(PIPE.work)
RESULTS = str(PIPE.results)
DATA = str(PIPE.data_root)
RP = f"{shlex.quote(sys.executable)} -m reproduce"  # a venv path with a space stays one word


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/report.smk"


# Warnings of the linter (snakemake's --lint flag) that remain, each on purpose:
# - shell commands read RP, PIPE, DATA, WORK and config from outside the rule: they are the
#   interpreter and the workflow's own settings, not data; as params they would rerun finished
#   GPU work whenever the venv moves or a setting's spelling changes (run ids already hash
#   every setting that changes what a job computes);
# - no conda/container per rule: every rule runs the one pinned environment (pyproject.toml,
#   environment.yml) through `python -m reproduce`;
# - no log for render/diff/alias/status: local, seconds long, they print one line;
# - "path composition with '+'" in evaluate.smk joins shell-command strings, not paths;
# - render.smk defines two small functions beside its rules: they only map the `key` wildcard.
# CPU-only steps run on the submitting machine, never as cluster jobs: dataset preparation
# may need the internet (login nodes have it), and renders/diffs take seconds.
localrules:
    all,
    unknown_target,
    prepare_data,
    analyze_local,
    render_table,
    render_figure,
    diff,
    alias,
    status,


rule all:
    input:
        PIPE.all_targets(),


# Anything else under the results directory is a typo or a target of another scale: say which
# targets come closest instead of Snakemake's bare MissingRuleException.
rule unknown_target:
    input:
        lambda w: PIPE.no_such_target(os.path.join(config["results_dir"], w.path)),
    output:
        os.path.join(config["results_dir"], "{path}"),
    wildcard_constraints:
        path="(?!(?:" + "|".join(re.escape(os.path.relpath(t, config["results_dir"])) for t in PIPE.known_results()) + ")$).+",
