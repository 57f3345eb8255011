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
        "{RP} prepare-data {wildcards.dataset} --scale {PIPE.scale.name} --work-dir {config[work_dir]} "
        "--data-dir {config[data_dir]} {params.download} > {log} 2>&1 || (cat {log} >&2; exit 1)"
