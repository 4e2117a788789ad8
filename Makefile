# Axiom Workbench. `make eval` runs the main job (a batch evaluation on the embedded default);
# `make test` runs the whole test suite. Both create .venv and install into it on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
AXIOM := $(VENV)/bin/axiom
STAMP := $(VENV)/.installed
# Where the CPU build of torch (torch==$(TORCH_VERSION)+cpu in the lock) comes from. Empty: the configured pip
# indexes and find-links (these machines: the wheel in pip's find-links folder). PyPI has no such file (its Linux
# torch is the CUDA build): elsewhere use TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu, added as an extra
# index for `make install` (safe with --require-hashes: only files with the locked hashes install).
TORCH_INDEX_URL ?=
TORCH_VERSION := 2.13.0
# The locks (requirements/lock.py, `make lock`): every package pinned with its sha256. LOCK is what `make install`
# installs (runtime + dev + the ray extra), RUNTIME_LOCK what the image installs (runtime only);
# requirements/cluster.lock.txt (runtime + ray extra + Ray's dashboard) is for a cluster image (issue 17, in progress).
LOCK := requirements/lock.txt
RUNTIME_LOCK := requirements/runtime.lock.txt
# Where `make lock` (uv) finds the CPU wheel of torch: pip's find-links (PIP_FIND_LINKS) when set, else the torch
# page of TORCH_INDEX_URL or of the PyTorch CPU index. UPGRADE=1 moves every pin to the newest release that fits.
LOCK_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(if $(TORCH_INDEX_URL),$(TORCH_INDEX_URL)/torch/,https://download.pytorch.org/whl/cpu/torch/))
UPGRADE ?=
PYTEST_ARGS ?=
# pytest-xdist workers (docs/TESTING.md has the measurements behind these): a group of tests that shares a server,
# a cluster or the images runs on one worker (tests/conftest.py). TEST_WORKERS=0: one process, no workers.
TEST_WORKERS ?= 3
CHECK_WORKERS ?= 2
# OpenMP threads (torch's intra-op pool) of every process the tests start, the compose stack's containers
# included: with more processes than cores, a second thread per process spins against the others. Three
# evaluation processes side by side took 29% less CPU and wall time with 1 (docs/TESTING.md).
TEST_THREADS ?= 1
xdist = -n $(1) --dist loadscope

export RAGAS_DO_NOT_TRACK := true
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test eval lint format clean help lock

help:
	@echo "make eval     batch evaluation of the built-in golden sets (sample, PubMedQA), each gated (offline)"
	@echo "make baselines  re-measure the committed baselines after an intended change"
	@echo "make check    the fast tier of the tests (no docker, ray, notebooks or slow tests): after every change"
	@echo "make test     the whole test suite (every tier; what CI runs)"
	@echo "make install  create $(VENV) and install Axiom with its dev tools, exactly as locked in $(LOCK)"
	@echo "make lock     refresh $(LOCK) and $(RUNTIME_LOCK) from pyproject.toml (UPGRADE=1: newest that fits)"
	@echo "make lint     ruff, the architecture contracts (import-linter) and the type check (mypy)"
	@echo "make bench    benchmarks on ../shared/datasets/scifact (bench-quick: the 400-doc sample)"
	@echo "make bench-curves  cost curves: ingest and evaluation time and memory as corpus and questions grow"
	@echo "make bench-ray  distributed ingest on a local Ray cluster vs the local ingest and the encode floor"
	@echo "make calibrate-groundedness  refit and measure the groundedness model on ../shared/datasets/ragtruth-qa-train"
	@echo "make soak     the full load run on axiom serve (50 clients x 60 s on /query; make test runs 10 s)"

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Every package exactly as locked, each file checked against its sha256 (torch is the CPU build there: no
	# CUDA build can come in), with --no-deps: the lock holds every package, so pip resolves nothing (a resolver
	# that re-reads a locked package's own requirements, e.g. chromadb's uvicorn[standard], would otherwise take an
	# unpinned newer release and stop the install); `pip check` proves the lock complete. Then the project itself,
	# adding nothing. Whatever pip the venv came with does this (tests/test_lock.py runs it with the oldest one).
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(LOCK) $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	# numba's compilations for ranx's metrics, once for this environment (else 6 s in the first evaluation)
	$(PY) -c "from axiom.evaluation.retrieval_metrics import compile_metrics as c; print(f'metrics compiled in {c():.1f} s')"
	touch $(STAMP)

install: $(STAMP)

# Refresh the locks after an edit of the dependencies in pyproject.toml (tests/test_lock.py fails until then).
# Needs uv (dev extra) and PyPI; then `make install` brings .venv to the new lock.
lock:
	test -x $(VENV)/bin/uv || $(MAKE) install
	$(PY) requirements/lock.py $(if $(UPGRADE),--upgrade) $(foreach l,$(LOCK_FIND_LINKS),--find-links $(l))

# The whole suite (what .ci/run calls), every tier, with the 15 slowest tests listed at the end.
test: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest $(call xdist,$(TEST_WORKERS)) --durations=15 $(PYTEST_ARGS)

# The fast tier a contributor runs after every change: everything but the docker, ray, notebooks and slow tiers
# (docs/TESTING.md). `make test` is the whole suite; CI runs that.
CHECK_TIERS := not docker and not ray and not notebooks and not slow
.PHONY: check
check: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -m "$(CHECK_TIERS)" $(call xdist,$(CHECK_WORKERS)) \
	  --durations=15 $(PYTEST_ARGS)

# The main job, offline: two built-in golden sets, each gated against its committed baseline.
# 1. the sample set (52 questions on data/, the quick smoke check): 01_ingest + 03_evaluate;
# 2. the PubMedQA set (250 questions over 500 abstracts, the discriminative one): 03_evaluate.
# Each prints its verdict line first, then the summary with confidence intervals and the run folder. Both run;
# the job fails (exit 3) when either gate fails (a metric worse after correction by at least its min_delta).
eval: $(STAMP)
	@status=0; \
	$(AXIOM) notebooks run 01_ingest 03_evaluate -p corpus data -p dataset evaluation/datasets/sample/golden.jsonl \
	  --name sample --baseline evaluation/baselines/sample.json --fail-on-regression || status=$$?; \
	$(AXIOM) notebooks run 03_evaluate -p corpus evaluation/datasets/pubmedqa/corpus \
	  -p dataset evaluation/datasets/pubmedqa/golden.jsonl \
	  --name pubmedqa --baseline evaluation/baselines/pubmedqa.json --fail-on-regression || status=$$?; \
	exit $$status

# Rebuild the committed baselines after an intended change (review the diff of evaluation/baselines/).
.PHONY: baselines
baselines: $(STAMP)
	$(AXIOM) eval --dataset evaluation/datasets/sample/golden.jsonl --corpus data --name sample-baseline \
	  --save-baseline evaluation/baselines/sample.json
	$(AXIOM) eval --dataset evaluation/datasets/pubmedqa/golden.jsonl --corpus evaluation/datasets/pubmedqa/corpus \
	  --name pubmedqa-baseline --save-baseline evaluation/baselines/pubmedqa.json

lint: $(STAMP)
	$(VENV)/bin/ruff check axiom tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: $(STAMP)
	$(VENV)/bin/ruff format axiom tests

clean:
	rm -rf .axiom .pytest_cache .ruff_cache

# The persistent embedding cache of the configured settings (beside the store; see `axiom cache stats`).
.PHONY: clean-cache
clean-cache: $(STAMP)
	$(AXIOM) cache clear

# -- benchmarks (not part of make test, except a one-repetition smoke run on vendored data) ---------------
.PHONY: bench bench-quick bench-curves bench-ray
BENCH_DATA ?=
bench: $(STAMP)
	$(PY) -m bench $(BENCH_DATA)

bench-quick: $(STAMP)
	$(PY) -m bench --quick $(BENCH_DATA)

# Cost curves (BENCHMARKS.md): ingest and evaluation at 1k / 2.5k / 5k SciFact documents x 50 / 150 / 300 questions,
# wall, CPU and peak memory per process with fitted exponents (about 30 min on 2 cores).
bench-curves: $(STAMP)
	$(PY) -m bench.cost_curves $(if $(BENCH_DATA),--dataset $(BENCH_DATA))

# Distributed ingest (BENCHMARKS.md, "Ray ingest"): 600 SciFact documents ingested locally and with `--ray` on a
# local two-node cluster (1 and 2 actors), next to the encode floor (about 15 min on 2 cores).
bench-ray: $(STAMP)
	$(PY) -m bench.ray_ingest $(BENCH_DATA) --repeat 2

# Refit the groundedness model (axiom/evaluation/answer_metrics/groundedness_model.json) on RAGTruth QA's train
# split with grouped 5-fold CV by question, and measure it (AUC with intervals, AttributionBench dev out of domain,
# the ranking of the 4 models): BENCHMARKS.md, "Agreement with humans". About 20 min of CPU the first time (the
# word-piece measures are cached in bench/cache/), under 2 min after. GROUNDEDNESS_DATA: another copy of the set.
.PHONY: calibrate-groundedness
GROUNDEDNESS_DATA ?=
calibrate-groundedness: $(STAMP)
	$(PY) -m bench.calibrate_groundedness $(if $(GROUNDEDNESS_DATA),--dataset $(GROUNDEDNESS_DATA))

# -- notebooks -------------------------------------------------------------------------------------------
.PHONY: lab strip-notebooks
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
# metadata that executed or JupyterLab-saved notebooks pick up, on top of nbstripout's defaults
NBSTRIP_EXTRA_KEYS := metadata.papermill cell.metadata.papermill cell.metadata.execution

# JupyterLab on the project's environment: notebooks/ as root, a token (JUPYTER_TOKEN, or a fresh one, printed),
# the store from config.yaml / environment (CHROMA_PATH, CHROMA_HOST, ... as for the CLI), loopback unless LAB_IP.
# The token reaches Jupyter through the environment (it reads JUPYTER_TOKEN), never on its command line, which
# every user of the machine can read with `ps`. The lab's default settings come from jupyter-lab-settings/
# (overrides.json: no "get notified about official Jupyter news?" pop-up, no news fetched, no update check; the
# jupyter image puts the same file in its environment's share/jupyter/lab/settings); a user can still change them.
LAB_SETTINGS := $(CURDIR)/jupyter-lab-settings
lab: $(STAMP)
	@if [ -n "$${JUPYTER_TOKEN:-}" ]; then \
	  echo "JupyterLab token: the one in JUPYTER_TOKEN"; \
	  echo "open http://$(LAB_IP):$(LAB_PORT)/lab (and enter it)"; \
	else \
	  JUPYTER_TOKEN="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')" || exit 1; \
	  echo "JupyterLab token: $$JUPYTER_TOKEN"; \
	  echo "open http://$(LAB_IP):$(LAB_PORT)/lab?token=$$JUPYTER_TOKEN"; \
	fi; \
	export JUPYTER_TOKEN; \
	AXIOM_PROJECT_ROOT="$(CURDIR)" exec $(VENV)/bin/jupyter lab --no-browser --ip "$(LAB_IP)" --port "$(LAB_PORT)" \
	  --ServerApp.root_dir="$(CURDIR)/notebooks" --LabApp.app_settings_dir="$(LAB_SETTINGS)" \
	  --LabApp.extension_manager=readonly $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Notebooks are committed without outputs or execution counts (tests/notebooks checks it).
strip-notebooks: $(STAMP)
	$(VENV)/bin/nbstripout --extra-keys "$(NBSTRIP_EXTRA_KEYS)" notebooks/*.ipynb

# -- load / soak -----------------------------------------------------------------------------------------
# The full bounded load run of tests/reliability/test_load_soak.py: SOAK_CLIENTS concurrent clients for
# SOAK_SECONDS on POST /query of a real `axiom serve`; zero errors, bounded RSS, p50/p95/p99 printed (and written
# to SOAK_REPORT). `make test` runs the same test for 10 s.
.PHONY: soak
SOAK_CLIENTS ?= 50
SOAK_SECONDS ?= 60
SOAK_REPORT ?= .axiom/soak-report.json
soak: $(STAMP)
	mkdir -p $(dir $(SOAK_REPORT))
	AXIOM_SOAK_CLIENTS=$(SOAK_CLIENTS) AXIOM_SOAK_SECONDS=$(SOAK_SECONDS) AXIOM_SOAK_REPORT=$(SOAK_REPORT) \
	  $(PY) -m pytest tests/reliability/test_load_soak.py $(PYTEST_ARGS)
