# One job per (run, protocol); a scale may substitute a cheaper protocol, recorded in the JSON.
# Scales with `eval: {jobs: run}` instead evaluate each run once, under every protocol an
# artifact reads from it (`evaluate_run`): same per-protocol JSONs, one start-up per run.
# The plan file names the run, the protocols (with their definitions), n, batch size and outputs.
EVAL_ARGS = "--data-root {DATA:q} --device {config[device]:q} " + ("--allow-cpu " if config.get("allow_cpu") else "")


rule evaluate:
    input:
        plan=lambda w: PIPE.eval_plan(w.run_id, w.protocol),
        run=f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}/{{protocol}}.json",
    threads: PIPE.scale.resources.get("cpus_per_task", 1)
    resources:
        gpu=PIPE.scale.resources.get("gpu", 0),
        runtime=lambda w: PIPE.eval_runtime(w.run_id, w.protocol),
        mem_mb=PIPE.scale.resources.get("mem_mb", 4000),
    log:
        f"{WORK}/logs/evaluate/{{run_id}}.{{protocol}}.log",
    shell:
        "{RP} evaluate --plan {input.plan:q} " + EVAL_ARGS +
        "--threads {threads} > {log:q} 2>&1 || (tail -n 20 {log:q} >&2; exit 1)"


rule evaluate_run:
    input:
        plan=lambda w: PIPE.eval_plan(w.run_id),
        run=f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}.json",
    wildcard_constraints:
        run_id="[^/]+",
    threads: PIPE.scale.resources.get("cpus_per_task", 1)
    resources:
        gpu=PIPE.scale.resources.get("gpu", 0),
        runtime=lambda w: PIPE.eval_runtime(w.run_id),
        mem_mb=PIPE.scale.resources.get("mem_mb", 4000),
    log:
        f"{WORK}/logs/evaluate/{{run_id}}.log",
    shell:
        "{RP} evaluate --plan {input.plan:q} " + EVAL_ARGS +
        "--threads {threads} > {log:q} 2>&1 || (tail -n 20 {log:q} >&2; exit 1)"
