#!/usr/bin/env bash
# Build llama-bench, llama-speculative, llama-lookup and llama-completion from the llama.cpp source
# bundled in the llama-cpp-python sdist (the same llama.cpp the embedded backend runs), into
# tools/llama.cpp/build/bin (git-ignored). Only those targets are built, to keep CI short
# (clean build on 2 cores: ~7 min idle, ~11 min on a busy machine; incremental: seconds).
# Usage: scripts/build_llama_tools.sh [TOOLS_DIR]   (env: PYTHON, LLAMA_CPP_PY_VERSION, JOBS, CFLAGS, CXXFLAGS;
# `make llama-tools` sets CFLAGS/CXXFLAGS to leave AMX out, see the Makefile)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tools="${1:-$here/tools}"
python="${PYTHON:-$here/.venv/bin/python}"
version="${LLAMA_CPP_PY_VERSION:-0.3.36}"
jobs="${JOBS:-2}"
src="$tools/llama.cpp"
# llama-completion is the classic one-shot CLI (llama-cli became a chat client built on the server)
targets=(llama-bench llama-speculative llama-lookup llama-completion)
start=$(date +%s)

mkdir -p "$tools/sdist"
if [ ! -f "$src/CMakeLists.txt" ]; then
    sdist="$tools/sdist/llama_cpp_python-$version.tar.gz"
    if [ ! -f "$sdist" ]; then
        # pip's cache would go to ~/.cache: keep everything under the tools folder
        PIP_CACHE_DIR="$tools/sdist/pip-cache" "$python" -m pip download -q --no-deps --no-binary :all: \
            "llama-cpp-python==$version" -d "$tools/sdist"
    fi
    rm -rf "$tools/extract" && mkdir -p "$tools/extract"
    tar -xzf "$sdist" -C "$tools/extract"
    rm -rf "$src"
    mv "$tools/extract/llama_cpp_python-$version/vendor/llama.cpp" "$src"
    rm -rf "$tools/extract"
fi

# compiler output goes to logs; on failure their tail is shown
run_logged() {
    local log="$1"; shift
    "$@" >"$log" 2>&1 || { tail -30 "$log" >&2; echo "llama-tools: failed, see $log" >&2; exit 1; }
}
run_logged "$tools/cmake-configure.log" cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_C_FLAGS="${CFLAGS:-}" -DCMAKE_CXX_FLAGS="${CXXFLAGS:-}"
run_logged "$tools/cmake-build.log" cmake --build "$src/build" --config Release -j "$jobs" --target "${targets[@]}"
for t in "${targets[@]}"; do test -x "$src/build/bin/$t" || { echo "missing $src/build/bin/$t" >&2; exit 1; }; done
echo "llama-tools: built ${targets[*]} in $src/build/bin ($(( $(date +%s) - start )) s)"
