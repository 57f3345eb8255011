# One job per (run, protocol); a scale may substitute a cheaper protocol, recorded in the JSON.
rule evaluate:
    input:
        f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}/{{protocol}}.json",
    params:
        allow_cpu="--allow-cpu" if config.get("allow_cpu") else "",
        run=lambda w: PIPE.run_dir(w.run_id),
        actual=lambda w: PIPE.scale.protocol_to_run(w.protocol),
        n=f"--n {PIPE.scale.eval['n']}" if PIPE.scale.eval.get("n") else "",
        bs=PIPE.scale.eval.get("batch_size", 256),
    threads: PIPE.scale.resources.get("cpus_per_task", 1)
    resources:
        gpu=PIPE.scale.resources.get("gpu", 0),
        runtime=lambda w: PIPE.eval_runtime(w.run_id, w.protocol),
        mem_mb=PIPE.scale.resources.get("mem_mb", 4000),
    log:
        f"{WORK}/logs/evaluate/{{run_id}}.{{protocol}}.log",
    shell:
        "{RP} evaluate --run {params.run} --protocol {params.actual} --label {wildcards.protocol} "
        "--out {output} {params.n} --batch-size {params.bs} --data-root {DATA} --device {config[device]} {params.allow_cpu} "
        "--threads {threads} > {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"
