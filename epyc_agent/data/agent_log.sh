# epyc-agent shell library: the old agent_log.sh functions, same names and arguments.
# Load with:  eval "$(epyc-agent shell-init)"   or   source scripts/agent_log.sh
# Every function writes a valid v1 event through `epyc-agent log`; quoting, newlines
# and any bytes in the arguments are escaped properly. Logging functions report a
# failure on stderr but return 0, so an old `set -e` script keeps running;
# agent_exec returns the command's own exit code.

# shell-init replaces the next line with the absolute path of the epyc-agent that printed it.
: "${EPYC_AGENT_BIN:=epyc-agent}"

_epyc_log() {
    command "$EPYC_AGENT_BIN" log "$@" || echo "agent_log: could not log '$1' (exit $?)" >&2
    return 0
}

agent_session_start() {
    local _out
    _out="$(command "$EPYC_AGENT_BIN" session start --purpose "${1-}")" || return $?
    eval "$_out"
    printf '%s\n' "$_out" | grep '^#' >&2
    return 0
}

agent_session_end() {
    command "$EPYC_AGENT_BIN" session end --summary "${1-}" >/dev/null || return $?
    unset EPYC_AGENT_SESSION
}

agent_task_start()    { _epyc_log task-start "${1-}" "${@:2}"; }
agent_task_end()      { _epyc_log task-end "${1-}" "${@:2}"; }
agent_cmd_intent()    { _epyc_log cmd-intent "${1-}" "${@:2}"; }
agent_cmd_result()    { _epyc_log cmd-result "${1-}" "${2-0}" "${@:3}"; }
agent_file_modify()   { _epyc_log file-modify "${1-}" "${2-edit}" "${@:3}"; }
agent_decision()      { _epyc_log decision "${1-}" "${@:2}"; }
agent_warn()          { _epyc_log warn "${1-}" "${@:2}"; }
agent_error()         { _epyc_log error "${1-}" "${@:2}"; }
agent_observe()       { _epyc_log observe "${1-}" "${@:2}"; }
agent_rollback_info() { _epyc_log rollback "${1-}" "${@:2}"; }

# agent_exec REASONING CMD [ARGS...]: log intent, run, log exit code and the first 500
# characters of output, return the exit code. A single string with shell syntax runs
# through bash -c; a shell function runs in this shell (so it keeps working).
agent_exec() {
    local _reason="${1-}"
    shift
    if [ $# -eq 0 ]; then
        echo "agent_exec: usage: agent_exec REASONING CMD [ARGS...]" >&2
        return 2
    fi
    if typeset -f "$1" >/dev/null 2>&1; then
        local _cmd="$*" _tmp _rc
        _tmp="$(mktemp "${TMPDIR:-/tmp}/agent_exec.XXXXXX")" || return 1
        _epyc_log cmd-intent "$_cmd" "$_reason"
        "$@" 2>&1 | tee "$_tmp"
        _rc=${PIPESTATUS[0]:-${pipestatus[1]}}
        _epyc_log cmd-result "$_cmd" "$_rc" "$(head -c 500 "$_tmp")"
        rm -f "$_tmp"
        return "$_rc"
    fi
    if [ $# -eq 1 ] && [[ "$1" == *[[:space:]\;\&\|\<\>\$\`\(\)\*\?]* ]]; then
        command "$EPYC_AGENT_BIN" session exec --reason "$_reason" --shell -- "$1"
    else
        command "$EPYC_AGENT_BIN" session exec --reason "$_reason" -- "$@"
    fi
}

agent_log_tail() {
    command "$EPYC_AGENT_BIN" log analyze --tail "${1:-20}"
}

agent_log_session() {
    command "$EPYC_AGENT_BIN" log analyze --session "${1:-${EPYC_AGENT_SESSION:-}}"
}
