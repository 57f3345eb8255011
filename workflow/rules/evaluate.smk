# One job per (run, protocol); a scale may substitute a cheaper protocol, recorded in the JSON.
rule evaluate:
    input:
        f"{WORK}/runs/{{run_id}}/done.json",
    output:
        f"{WORK}/evals/{{run_id}}/{{protocol}}.json",
    params:
        run=lambda w: DAG.run_dir(w.run_id),
        actual=lambda w: DAG.scale.protocol_to_run(w.protocol),
        n=f"--n {DAG.scale.eval['n']}" if DAG.scale.eval.get("n") else "",
        bs=DAG.scale.eval.get("batch_size", 256),
    resources:
        gpu=DAG.scale.resources.get("gpu", 0),
        runtime=lambda w: max(30, DAG.resources(w.run_id)["runtime"] // 10),
        mem_mb=DAG.scale.resources.get("mem_mb", 4000),
    log:
        f"{WORK}/logs/evaluate/{{run_id}}.{{protocol}}.log",
    shell:
        "{RP} evaluate --run {params.run} --protocol {params.actual} --label {wildcards.protocol} "
        "--out {output} {params.n} --batch-size {params.bs} --data-root {DATA} --device {config[device]} "
        "> {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"
