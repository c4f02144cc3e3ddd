# lra-bench. `make bench MODEL=transformer` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

MODEL   ?= transformer
TASK    ?= listops
PROFILE ?= mini
SEED    ?= 0
RESULTS ?= results
ARGS    ?=
# `make sweep`: the product MODELS x TASKS x SEEDS (comma lists) in one Hydra multirun.
MODELS   ?= $(MODEL)
TASKS    ?= $(TASK)
SEEDS    ?= 0,1,2
LAUNCHER ?= basic
# joblib: jobs at once (default -1: one per core, each with cores / jobs torch threads).
JOBS     ?=
# Hydra takes its flags (-m, --cfg=job, --info) before the overrides: ARGS is split in two, so
# that `make bench ARGS='-m seed=0,1'` works. A flag with a value is written --flag=value.
HYDRA_FLAGS     = $(filter -%,$(ARGS))
HYDRA_OVERRIDES = $(filter-out -%,$(ARGS))
# `make speed`: unset LENGTHS / BATCH leave lra-bench speed's own defaults (LRA's protocol).
LENGTHS ?=
BATCH   ?=
SPEED_ARGS ?=
KERNELS_OUT  ?=
KERNELS_ARGS ?=
ANTLR_VERSION := 4.9.3

.DEFAULT_GOAL := help
.PHONY: help setup bench sweep test test-slow lint leaderboard speed kernels-bench gpu-check gpu-wheels clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "  bench takes MODEL=$(MODEL) TASK=$(TASK) PROFILE=$(PROFILE) SEED=$(SEED) RESULTS=$(RESULTS) ARGS='hydra flags and overrides'"
	@echo "  sweep takes MODELS=$(MODELS) TASKS=$(TASKS) SEEDS=$(SEEDS) PROFILE=$(PROFILE) LAUNCHER=$(LAUNCHER) (basic|joblib|local|slurm) JOBS=n (joblib; default one per core) ARGS='...'"

setup: $(STAMP) ## create .venv and install the pinned dependencies

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

bench: $(STAMP) ## train + evaluate one run, update the leaderboard
	$(BIN)/python -m lra_bench.run $(HYDRA_FLAGS) task=$(TASK) model=$(MODEL) profile=$(PROFILE) seed=$(SEED) results_dir=$(RESULTS) $(HYDRA_OVERRIDES)

sweep: $(STAMP) ## one multirun over MODELS x TASKS x SEEDS, then its summary table
	$(BIN)/python -m lra_bench.run -m $(filter-out -m --multirun,$(HYDRA_FLAGS)) hydra/launcher=$(LAUNCHER) $(if $(filter joblib,$(LAUNCHER)),hydra.launcher.n_jobs=$(or $(JOBS),-1)) model=$(MODELS) task=$(TASKS) profile=$(PROFILE) seed=$(SEEDS) results_dir=$(RESULTS) $(HYDRA_OVERRIDES)

# Test files share out over TEST_WORKERS processes (pytest-xdist), a whole file per worker so that
# a file's module fixtures (a trained run, a sweep) are built once: ~10 min on 2 cores, ~17 in one.
TEST_WORKERS ?= 2

test: $(STAMP) ## the default test suite (fast; no GPU needed): TEST_WORKERS=2 processes
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP) ## only the slow tests (end-to-end learning, full-size generation)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

leaderboard: $(STAMP) ## re-aggregate every run record under RESULTS
	$(BIN)/lra-bench leaderboard --results $(RESULTS)

speed: $(STAMP) ## steps/s + peak memory vs length (LRA Table 2): MODEL=a,b LENGTHS=1024,2048 BATCH=32
	$(BIN)/lra-bench speed --models $(MODEL) $(if $(LENGTHS),--lengths $(LENGTHS)) $(if $(BATCH),--batch $(BATCH)) --out $(RESULTS) $(SPEED_ARGS)

kernels-bench: $(STAMP) ## time every op's backends (+ peers) vs length: KERNELS_OUT=dir KERNELS_ARGS='--ops vandermonde'
	$(BIN)/python benchmarks/kernels/run.py $(if $(KERNELS_OUT),--out $(KERNELS_OUT)) $(KERNELS_ARGS)

gpu-check: ## CUDA only: kernel tests, kernels-bench, speed sweep -> results/gpu/ (< 8 min, H200)
	benchmarks/gpu_check.sh

gpu-wheels: $(STAMP) ## wheels of what gpu-check's python may lack, into .gpu-wheels/ (to carry offline)
	$(BIN)/pip wheel --quiet --disable-pip-version-check --no-deps -w .gpu-wheels \
		$$(grep -E '^(hydra-core|omegaconf)==' requirements.txt) antlr4-python3-runtime==$(ANTLR_VERSION)

clean: ## remove the venv, generated data and caches (keeps results/)
	rm -rf $(VENV) data .pytest_cache .ruff_cache .tox
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
