# Two commands do all set-up on a fresh machine (each creates .venv on first use):
#   make demo   build/compile a student and run it in OpenMM on a built-in default
#   make test   run the test suite (slow end-to-end tests included, among them building and
#               installing the wheel; `make test-fast` skips them); `make lint` runs ruff
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env demo test test-fast lint bench clean-env

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# --no-cache-dir: the stack is ~7.5 GB installed (torch's CUDA libraries); a wheel
	# cache would add ~3 GB more on the machine that builds it.
	$(BIN)/python -m pip install --no-cache-dir -e ".[orb,test]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/openmm-distill pipeline

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Ruff's default rules plus import order (openmm after openmm_distill; see pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/student_speed.py

clean-env:
	rm -rf $(VENV)
