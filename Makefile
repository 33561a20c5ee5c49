# Two commands set everything up on a fresh machine with Python 3.11 and make:
#   make demo   creates .venv, installs medgen-tf, writes pictures and metrics to outputs/demo/
#   make test   creates .venv if missing, runs the unit tests and the notebooks (quick mode)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit notebooks lint bench bench-quality bench-gpu clean

# Checked before the venv exists: a venv of the wrong Python would stay, and pip would refuse
# the package in it on every later make.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' || { \
		echo "medgen-tf needs Python 3.11 or 3.12; $(PYTHON) is $$($(PYTHON) --version 2>&1)." \
			"Run make again with PYTHON=python3.11 (or python3.12)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks,tfds]"
	touch $(STAMP)

demo: $(STAMP)
	MEDGEN_QUICK=$${MEDGEN_QUICK:-0} $(BIN)/medgen-tf demo --out outputs/demo

test: $(STAMP)
	MEDGEN_QUICK=1 $(BIN)/python -m pytest -n 2 --dist load -q tests notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

unit: $(STAMP)
	MEDGEN_QUICK=1 $(BIN)/python -m pytest -q tests

notebooks: $(STAMP)
	MEDGEN_QUICK=1 $(BIN)/python -m pytest -q notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

lint: $(STAMP)
	$(BIN)/ruff check medgen_tf tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out benchmarks/RESULTS.md

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/run.py --quality --out benchmarks/RESULTS-quality.md

# No $(STAMP): on a GPU machine with the package already installed, nothing is downloaded.
bench-gpu:
	bash benchmarks/gpu.sh

clean:
	rm -rf $(VENV) outputs
