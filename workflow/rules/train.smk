# One job per distinct run: artifacts sharing a run share this job. A run longer than
# walltime_cap_min chains: each job asks for min(estimate, cap), stops itself 5 minutes
# early (or on SIGUSR1/SIGTERM) with a checkpoint, exits 75, and a retry resumes it.
rule train:
    input:
        lambda w: PIPE.train_inputs(w.run_id),
    output:
        f"{WORK}/runs/{{run_id}}/done.json",
    params:
        allow_cpu="--allow-cpu" if config.get("allow_cpu") else "",
        run=lambda w: PIPE.train_args(w.run_id),
        out=lambda w: PIPE.run_dir(w.run_id),
    threads: lambda w: PIPE.resources(w.run_id)["cpus_per_task"]
    retries: PIPE.train_retries()
    resources:
        gpu=lambda w: PIPE.resources(w.run_id)["gpu"],
        runtime=lambda w: PIPE.resources(w.run_id)["runtime"],
        mem_mb=lambda w: PIPE.resources(w.run_id)["mem_mb"],
        cpus_per_task=lambda w: PIPE.resources(w.run_id)["cpus_per_task"],
    log:
        f"{WORK}/logs/train/{{run_id}}.log",
    shell:
        "{RP} train {params.run} --out {params.out} --data-root {DATA} --device {config[device]} {params.allow_cpu} "
        "--no-progress --threads {threads} --walltime-min {resources.runtime} > {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"
