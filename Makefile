# Two entry points for a fresh machine; each sets up its own virtual environment first.
#   make demo  - the main job: the demo sweep over the training epsilon (then a Pareto report)
#   make test  - the full test suite
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: demo train-demo test test-random lint install clean findings findings-figures

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/orchestrator sweep search_spaces/epsilon.yaml

train-demo: install
	$(BIN)/orchestrator train --preset demo

test: install
	$(BIN)/python -m pytest -q

# The suite in a random order (without -q, so that the header prints the seed; rerun one order with --random-order-seed=N).
test-random: install
	$(BIN)/python -m pytest --random-order-bucket=global

# Lint (ruff: errors, import order, likely bugs) and types (mypy --check-untyped-defs); CI runs it first.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# EXPERIMENTS.md: the three findings sweeps (3 seeds each; about 1.5 h on 2 cores), then their reports.
findings: install
	$(BIN)/orchestrator sweep search_spaces/findings/methods.yaml --out runs/findings-methods
	$(BIN)/orchestrator sweep search_spaces/findings/crops.yaml --out runs/findings-crops
	$(BIN)/orchestrator sweep search_spaces/findings/epsilon_replay.yaml --out runs/findings-epsilon-replay
	$(MAKE) findings-figures

# Copy the findings sweeps' report figures to docs/findings/ (the PNGs EXPERIMENTS.md shows).
findings-figures:
	mkdir -p docs/findings
	cp runs/findings-methods/report/seed_means.png docs/findings/methods_seed_means.png
	cp runs/findings-crops/report/learning_curves.png docs/findings/crops_learning_curves.png
	cp runs/findings-epsilon-replay/report/seed_means.png docs/findings/epsilon_replay_seed_means.png
	cp runs/findings-epsilon-replay/report/pareto.png docs/findings/epsilon_replay_pareto.png
