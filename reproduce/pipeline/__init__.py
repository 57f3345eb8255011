"""The pipeline layer: paper specs, scales, the Snakemake DAG's inputs, rendering, diffs and plans.

Loading a spec imports the engine's registries (and so torch) to check every
method, model, dataset and protocol name before any job starts.
"""
