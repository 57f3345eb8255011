# One job per distinct run: artifacts sharing a run share this job. A run longer than
# walltime_cap_min chains: each job asks for min(estimate, cap), stops itself 5 minutes
# early (or on SIGURG/SIGTERM) with a checkpoint and requeues its own SLURM job
# (reproduce/train/requeue.py), whose next start resumes it; `retries` (1) is for real failures.
# The job reads its plan file alone; the plan is `ancient`: its content follows from the run id
# (the config hash), so only a new id, never a rewritten plan, may retrain a finished run.
rule train:
    input:
        plan=lambda w: ancient(PIPE.plan_path("run", w.run_id)),
        upstream=lambda w: PIPE.train_inputs(w.run_id),
    output:
        f"{WORK}/runs/{{run_id}}/done.json",
    params:
        allow_cpu="--allow-cpu" if config.get("allow_cpu") else "",
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
        "{RP} train --plan {input.plan:q} --data-dir {DATA:q} --device {config[device]:q} {params.allow_cpu} "
        "--no-progress --threads {threads} --walltime-min {resources.runtime} > {log:q} 2>&1 || (tail -n 20 {log:q} >&2; exit 1)"
