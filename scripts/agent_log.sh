# Drop-in replacement for the old agent_log.sh: `source scripts/agent_log.sh`.
# Finds epyc-agent (on PATH, or this checkout's .venv) and loads its shell library.
_epyc_here="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ -z "${EPYC_AGENT_BIN:-}" ]; then
    if [ -x "$_epyc_here/../.venv/bin/epyc-agent" ]; then
        EPYC_AGENT_BIN="$_epyc_here/../.venv/bin/epyc-agent"
    elif command -v epyc-agent >/dev/null 2>&1; then
        EPYC_AGENT_BIN="$(command -v epyc-agent)"
    else
        echo "agent_log.sh: epyc-agent not found: run 'make install' or set EPYC_AGENT_BIN" >&2
        return 2 2>/dev/null || exit 2
    fi
fi
unset _epyc_here
eval "$("$EPYC_AGENT_BIN" shell-init)"
