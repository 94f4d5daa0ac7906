# Two entry points for a fresh machine (python3 with venv is all it needs):
#   make demo   install everything into .venv and run the main job (small R2PVI Figure 1: return vs perturbation)
#   make test   install everything into .venv, lint, and run the default test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo demo-exact test test-slow test-ray bench bench-quick bench-neural lint mutate clean clean-numba

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[all,test,docs]"
	$(BIN)/robustrl compile-kernels  # ahead of time; warns and goes on without a C compiler
	touch $@

demo: install  # resumable: a rerun reuses finished cells and redraws the table and figures
	$(BIN)/robustrl run r2pvi_fig1 --config experiments/configs/demo_fig1.yaml --out results/r2pvi_fig1_demo

demo-exact: install  # the exact robust DP policies of the simulated MDP (no learning)
	$(BIN)/robustrl run exact_robust_values --out results/exact_robust_values

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

test-ray: install  # the optional Ray backend (ray is not part of .[all])
	$(BIN)/python -m pip install -c constraints.txt -e ".[ray]"
	$(BIN)/python -m pytest tests/test_runner.py -k ray

bench: install  # every comparison of docs/performance.md (about 3 min on 2 cores)
	$(BIN)/python -m benchmarks

bench-quick: install
	$(BIN)/python -m benchmarks --quick

bench-neural: install  # neural training steps/s on the CPU and, where present, the GPU
	$(BIN)/python benchmarks/bench_neural.py --device both

mutate: install  # mutation score of evaluation, theory, runner summaries, level buffer (slow, outside CI; docs/dev/mutation.md)
	nice -n 15 $(BIN)/python tools/mutate.py --all

clean-numba:  # Numba's cache misses edits to a kernel called from another file
	find robustrl -name "*.nbi" -o -name "*.nbc" | xargs rm -f

clean: clean-numba
	rm -rf $(VENV) build dist *.egg-info results .pytest_cache
