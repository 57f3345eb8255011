# Datasets: generated at smoke scale; verified (or imported, with download: true) otherwise.
rule prepare_data:
    output:
        f"{DATA}/{{dataset}}/manifest.json",
    params:
        download="--download" if config.get("download") else "",
    resources:
        gpu=0,
        runtime=120,
        mem_mb=8000,
    log:
        f"{WORK}/logs/prepare_data/{{dataset}}.log",
    shell:
        "{RP} prepare-data {wildcards.dataset:q} --scale {PIPE.scale.name:q} --work-dir {config[work_dir]:q} "
        "--data-dir {DATA:q} {params.download} > {log:q} 2>&1 || (cat {log:q} >&2; exit 1)"
