# epyc-agent shell library: the old agent_log.sh functions, same names and arguments.
# Load with:  eval "$(epyc-agent shell-init)"   or   source scripts/agent_log.sh
# Every function writes a valid v1 event through the Python writer of `epyc-agent log`; quoting, newlines
# and any bytes in the arguments are escaped properly. Logging functions report a
# failure on stderr but return 0, so an old `set -e` script keeps running;
# agent_exec returns the command's own exit code.

# shell-init replaces the next line with the absolute path of the epyc-agent that printed it.
: "${EPYC_AGENT_BIN:=epyc-agent}"

_epyc_log() {
    _epyc_srv "$@" && return 0
    command "$EPYC_AGENT_BIN" log "$@" || echo "agent_log: could not log '$1' (exit $?)" >&2
    return 0
}

# The helper: one `epyc-agent log serve` per shell, started on the first logging call. It writes
# every event through the Python writer `epyc-agent log` uses (escaping, hash chain, flock, one
# write per event) and replies once the event is on disk, so a following `epyc-agent log analyze`
# sees it. Requests are NUL-separated fields (a bash string cannot hold NUL), sent with the
# exported variables the CLI would read. The two FIFOs live in a private temp folder only until
# both ends are open. The helper is no job of the shell ($!, `wait` and `jobs` do not see it) and
# exits with it (EOF, or a pidfd on the shell: even after a SIGKILL). A subshell (`( )`, `$( )`, a
# pipeline's loop: another $BASHPID) starts its own instead of sharing the pipes. When the helper
# cannot start or stops, calls go through `epyc-agent log`. EPYC_AGENT_FAST=0 turns it off.
_epyc_srv_owner="${_epyc_srv_owner-}" _epyc_srv_off="${_epyc_srv_off-}" _epyc_srv_pid="${_epyc_srv_pid-}"
_epyc_srv_w="${_epyc_srv_w-}" _epyc_srv_r="${_epyc_srv_r-}"
[ -n "$_epyc_srv_owner" ] || _epyc_srv_env=()

_epyc_srv_stop() {
    if [ -n "$_epyc_srv_w" ]; then exec {_epyc_srv_w}>&-; fi
    if [ -n "$_epyc_srv_r" ]; then exec {_epyc_srv_r}<&-; fi
    _epyc_srv_owner="" _epyc_srv_pid="" _epyc_srv_w="" _epyc_srv_r=""
}

_epyc_srv_start() {
    local owner="$BASHPID" d ready="" IFS=' '
    _epyc_srv_stop
    d="$(mktemp -d "${TMPDIR:-/tmp}/epyc-agent-log.XXXXXX")" || return 1
    # The child opens the FIFOs before exec, so neither open below can wait for a helper that failed.
    # No stderr: a pipe the caller gave this call's stderr must not stay open for the shell's life.
    if mkfifo -m 600 "$d/in" "$d/out"; then
        (exec "$EPYC_AGENT_BIN" log serve "$owner" "$d" <"$d/in" >"$d/out" 2>/dev/null &)
        if exec {_epyc_srv_w}<>"$d/in" {_epyc_srv_r}<"$d/out"; then
            IFS= read -r -d '' -t 30 -u "$_epyc_srv_r" ready || ready=""
        fi
    fi
    if [[ "$ready" != "ready "* ]]; then
        _epyc_srv_stop
        _epyc_srv_off=1
        rm -rf "$d"
        return 1
    fi
    local -a words=($ready)
    _epyc_srv_owner="$owner" _epyc_srv_pid="${words[1]}" _epyc_srv_env=("${words[@]:2}")
}

# _epyc_srv VERB ARGS...: 0 when the helper took the event (its error, if any, reported), 1 to
# take `epyc-agent log` instead.
_epyc_srv() {
    [ "${EPYC_AGENT_FAST:-1}" != 0 ] && [ -z "$_epyc_srv_off" ] && [ -n "${BASH_VERSION-}" ] || return 1
    if [ "$_epyc_srv_owner" != "$BASHPID" ]; then _epyc_srv_start || return 1; fi
    local n reply req=()
    for n in "${_epyc_srv_env[@]}"; do
        if [[ -v $n && ${!n@a} == *x* ]]; then req+=("=${!n}"); else req+=(""); fi
    done
    # read -t 0 succeeds on a pipe at EOF: the helper is gone, and a request would fill the pipe
    if read -t 0 -u "$_epyc_srv_r" || ! printf '%s\0' "$((${#req[@]} + $#))" "${req[@]}" "$@" >&"$_epyc_srv_w" ||
        ! IFS= read -r -d '' -u "$_epyc_srv_r" reply; then
        _epyc_srv_stop
        return 1
    fi
    case "$reply" in
        0) return 0 ;;
        F) return 1 ;;
    esac
    printf '%s\n' "${reply#* }" >&2
    echo "agent_log: could not log '$1' (exit ${reply%% *})" >&2
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
