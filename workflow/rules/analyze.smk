# One job per distinct analysis (difficulty, margins, entropy, ...): its inputs are the nodes it references.
# Analyses that need no GPU run on the submitting machine (`analyze_local`, a localrule), the
# others are cluster jobs; the split is by id because `localrules:` names rules, not jobs.
GPU_ANALYSES = [a for a in PIPE.graph.analyses if PIPE.analysis_gpu(a) > 0]
CPU_ANALYSES = [a for a in PIPE.graph.analyses if PIPE.analysis_gpu(a) == 0]


rule analyze:
    input:
        plan=lambda w: ancient(PIPE.plan_path("analysis", w.analysis_id)),  # its content follows from the id
        upstream=lambda w: PIPE.analysis_inputs(w.analysis_id),
    output:
        f"{WORK}/analyses/{{analysis_id}}/result.json",
    threads: PIPE.scale.resources.get("cpus_per_task", 1)
    resources:
        gpu=lambda w: PIPE.analysis_gpu(w.analysis_id),
        runtime=lambda w: PIPE.analysis_runtime(w.analysis_id),
        mem_mb=PIPE.scale.resources.get("mem_mb", 4000),
    wildcard_constraints:
        analysis_id="|".join(map(re.escape, GPU_ANALYSES)) or "^$",
    log:
        f"{WORK}/logs/analyze/{{analysis_id}}.log",
    shell:
        "{RP} analyze --plan {input.plan:q} --data-dir {DATA:q} --device {config[device]:q} "
        "--threads {threads} > {log:q} 2>&1 || (tail -n 20 {log:q} >&2; exit 1)"


use rule analyze as analyze_local with:
    wildcard_constraints:
        analysis_id="|".join(map(re.escape, CPU_ANALYSES)) or "^$",
