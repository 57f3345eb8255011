# reproduce: papers' tables and figures regenerated from scratch.
#   snakemake --cores 8 results/table2.csv                         (paper scale, GPU)
#   snakemake --cores 2 results/table2.csv --config scale=smoke    (offline demo)
# (targets go before --config, or after `--`: --config takes every word after it)
import os
import re
import sys

from snakemake.utils import min_version, validate

from reproduce.pipeline.dag import Dag

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")
PIPE = Dag(config)
WORK = str(PIPE.work)
RESULTS = str(PIPE.results)
DATA = str(PIPE.data_root)
RP = f"{sys.executable} -m reproduce"


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/render.smk"


# CPU-only steps run on the submitting machine, never as cluster jobs: dataset preparation
# may need the internet (login nodes have it), and renders/diffs take seconds.
localrules:
    all,
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
