#!/usr/bin/env bash
# The demo: a session in a local lab root, a few logged actions, the default model fetched and
# scanned, a small track 8 (prompt lookup) run on it, the regenerated research report, the log summary.
# Run through `make demo` (which sets EPYC_AGENT_ROOT=./lab and EPYC_AGENT_LOG_DIR=./logs).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
EPYC_AGENT_BIN="${EPYC_AGENT_BIN:-$here/.venv/bin/epyc-agent}"
export EPYC_AGENT_BIN
ea() { "$EPYC_AGENT_BIN" "$@"; }

echo "== session start (root $EPYC_AGENT_ROOT)"
eval "$(ea session start --init --purpose "epyc-agent demo")"
eval "$(ea env)"

echo "== logging a few actions"
ea log task-start "demo: exercise the audit log" "show what a session records"
ea log decision "use the local lab root" "the demo must not touch /mnt/raid0"
ea session exec --reason "list the root" -- ls "$EPYC_AGENT_ROOT"
ea log observe demo_value 42
ea log task-end "demo: exercise the audit log" success

echo "== default model and inventory"
ea models fetch-default
ea models scan
model="$EPYC_AGENT_ROOT/models/gemma-3-270m-q4_k_m.gguf"

echo "== track 8 (prompt lookup) vs the greedy baseline: 2 prompts, 1 warm-up + 2 reps, 64 tokens"
ea track run 8 --model "$model" --workload summarization --prompts 2 --reps 2 --max-tokens 64

echo "== research report (regenerated from every run)"
report="$(ea report)"

echo "== log summary"
if ea log analyze --help >/dev/null 2>&1; then
    ea log analyze --summary
else
    ea session status
fi
ea session end --summary "demo finished" >/dev/null
echo "== audit log: $EPYC_AGENT_LOG_DIR"
echo "== research report: $report"
