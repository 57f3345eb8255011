"""The pipeline layer: paper specs, scales, artifact rendering, diffs and plans.

Kept free of torch imports at module level, so the Snakefile parses fast.
"""
