# Two commands on a fresh machine: `make demo` and `make test`.
# Only Python ≥ 3.11 and pip are assumed; everything else is installed into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.olfacto-installed
# pytest workers (2 cores on CI); JAX compiles are single-threaded, so 2 workers pay off
WORKERS ?= 2

.PHONY: demo test test-slow test-all install bench figures figures-quick notebooks docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/olfacto run experiments/default.yaml --out results/default

# the everyday suite (8 – 15 min on 2 cores, by the machine); the science checks marked `slow` run in CI beside it
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow" --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m slow --durations=15

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=15

bench: $(STAMP)
	$(BIN)/olfacto bench

# the committed figures (full mode: ≈ 30 min on 2 cores from scratch, ≈ 24 min with a warm compilation cache; seconds when figures/data is current)
figures: $(STAMP)
	$(BIN)/olfacto figures --out figures

# every figure at reduced size into results/figures (≈ 10 min per chapter on 2 cores)
figures-quick: $(STAMP)
	$(BIN)/olfacto figures --quick

# executes the notebooks in place, so they are committed with their figures (after `make figures`)
notebooks: $(STAMP)
	MPLBACKEND= $(BIN)/python tools/execute_notebooks.py

# the reference manual (Sphinx + MyST-NB + furo) → build/docs/docs/index.html (built from the root, so the pages
# keep their folders: docs/index.md → build/docs/docs/index.html); warnings are errors
docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -c docs . build/docs
	@echo "the reference manual: build/docs/docs/index.html"

clean:
	rm -rf results .pytest_cache
