# One job per (run, protocol); a scale may substitute a cheaper protocol, recorded in the JSON.
# Scales with `eval: {jobs: run}` instead evaluate each run once, under every protocol an
# artifact reads from it (`evaluate_run`): same per-protocol JSONs, one start-up per run.
EVAL_ARGS = (
    "--n {params.n} " if PIPE.scale.eval.get("n") else ""
) + f"--batch-size {PIPE.scale.eval.get('batch_size', 256)} --data-root {DATA} --device {config['device']} " + (
    "--allow-cpu " if config.get("allow_cpu") else ""
)


rule evaluate:
    input:
        f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}/{{protocol}}.json",
    params:
        run=lambda w: PIPE.run_dir(w.run_id),
        actual=lambda w: PIPE.scale.protocol_to_run(w.protocol),
        n=PIPE.scale.eval.get("n"),
    threads: PIPE.scale.resources.get("cpus_per_task", 1)
    resources:
        gpu=PIPE.scale.resources.get("gpu", 0),
        runtime=lambda w: PIPE.eval_runtime(w.run_id, w.protocol),
        mem_mb=PIPE.scale.resources.get("mem_mb", 4000),
    log:
        f"{WORK}/logs/evaluate/{{run_id}}.{{protocol}}.log",
    shell:
        "{RP} evaluate --run {params.run} --protocol {params.actual} --label {wildcards.protocol} "
        "--out {output} " + EVAL_ARGS + "--threads {threads} > {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"


rule evaluate_run:
    input:
        f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}.json",
    params:
        run=lambda w: PIPE.run_dir(w.run_id),
        labels=lambda w: ",".join(PIPE.run_protocols(w.run_id)),
        actual=lambda w: ",".join(PIPE.scale.protocol_to_run(p) for p in PIPE.run_protocols(w.run_id)),
        n=PIPE.scale.eval.get("n"),
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
        "{RP} evaluate --run {params.run} --protocol {params.actual} --label {params.labels} "
        "--out-dir {WORK}/evals/{wildcards.run_id} --index {output} " + EVAL_ARGS +
        "--threads {threads} > {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"
