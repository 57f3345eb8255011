"""Datasets made by code: the synthetic image family (smoke runs, tests) and HAT's 3-d toy."""
