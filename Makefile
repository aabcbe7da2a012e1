# Two commands on a fresh machine: `make demo` and `make test`.
# Only Python ≥ 3.11 and pip are assumed; everything else is installed into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.olfacto-installed
# pytest workers (2 cores on CI); JAX compiles are single-threaded, so 2 workers pay off
WORKERS ?= 2

.PHONY: demo test install bench figures clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/olfacto run experiments/default.yaml --out results/default

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=15

bench: $(STAMP)
	$(BIN)/olfacto bench

figures: $(STAMP)
	$(BIN)/olfacto figures --quick --out figures

clean:
	rm -rf results .pytest_cache
