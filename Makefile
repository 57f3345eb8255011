# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-slow bench clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade 'pip>=23'
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

# Offline demo: BiaMAT's Table 2 regenerated at smoke scale and diffed.
demo: $(STAMP)
	$(VENV)/bin/snakemake --cores 2 --rerun-incomplete --config scale=smoke -- results/smoke/table2.csv results/smoke/biamat/table2.diff.csv
	@# the results page and one page per artifact, as Snakemake targets, so that `snakemake --report` finds them
	$(VENV)/bin/snakemake --cores 2 --config scale=smoke -- results/smoke/index.html
	@echo
	@cat results/smoke/biamat/table2.diff.md
	@echo "Open results/smoke/index.html in a browser: every artifact, the published values beside yours, verdicts, claims."

test: $(STAMP)
	@# the one-way layers declared in pyproject.toml ([tool.importlinter]); tests/test_layers.py shows it can fail
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/attack_step.py

clean-demo:  ## remove the smoke runs and results (every other scale's stay)
	rm -rf work/smoke results/smoke
