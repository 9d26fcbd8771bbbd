# epyc-agent shell library: the old agent_log.sh functions, same names and arguments.
# Load with:  eval "$(epyc-agent shell-init)"   or   source scripts/agent_log.sh
# Every function writes a valid v1 event through `epyc-agent log`; quoting, newlines
# and any bytes in the arguments are escaped properly. Logging functions report a
# failure on stderr but return 0, so an old `set -e` script keeps running;
# agent_exec returns the command's own exit code.

# shell-init replaces the next line with the absolute path of the epyc-agent that printed it.
: "${EPYC_AGENT_BIN:=epyc-agent}"

_epyc_log() {
    _epyc_fast "$@" && return 0
    command "$EPYC_AGENT_BIN" log "$@" || echo "agent_log: could not log '$1' (exit $?)" >&2
    return 0
}

# The fast path: the event built and escaped in bash, one printf on an O_APPEND descriptor opened
# once per (log dir, agent). It writes what the Python writer writes, byte for byte; whatever it
# cannot mirror exactly returns 1 and goes through `epyc-agent log`: no $EPYC_AGENT_SESSION (the
# session then comes from a pointer file), bytes >= 0x80 (UTF-8 checks, surrogate escapes), numbers
# Python would rewrite, lines over 4,096 bytes (bash's printf splits those into several writes), a
# shard that is a symlink, not a file, or lacks its final newline, and any shard with a hash chain
# (the usual case: bash cannot compute the keyed hash each event carries; it is unchained only when
# the user's secret key cannot be had). EPYC_AGENT_FAST=0 turns it off.
_epyc_ctx_key="" _epyc_fd="" _epyc_shard="" _epyc_chained=""

_epyc_ctx() {
    local key="${EPYC_AGENT_ID-}|${AGENT_ID-}|${EPYC_AGENT_LOG_DIR-}|${EPYC_AGENT_ROOT-}|${EPYC_AGENT_CONFIG-}|$PWD"
    [ "$key" = "$_epyc_ctx_key" ] && [ -n "$_epyc_fd" ] && return 0
    [ "$key" = "$_epyc_ctx_key" ] && [ -n "$_epyc_chained" ] && return 1
    [ -n "$_epyc_fd" ] && exec {_epyc_fd}>&-
    _epyc_fd="" _epyc_ctx_key="$key" _epyc_chained=""
    local out
    out="$(command "$EPYC_AGENT_BIN" shell-init --context 2>/dev/null)" || return 1
    _epyc_agent="${out%%$'\n'*}" out="${out#*$'\n'}"
    _epyc_shard="${out%%$'\n'*}"
    [ "${out#*$'\n'}" = unchained ] || { _epyc_chained=1; return 1; }
    [ -n "$_epyc_agent" ] && [ -n "$_epyc_shard" ] || return 1
    [ -L "$_epyc_shard" ] && return 1
    if [ -e "$_epyc_shard" ]; then
        [ -f "$_epyc_shard" ] || return 1
        [ -s "$_epyc_shard" ] && [ "$(tail -c 1 "$_epyc_shard" | od -An -c | tr -d ' ')" != '\n' ] && return 1
    else
        mkdir -p "${_epyc_shard%/*}" 2>/dev/null || return 1
    fi
    exec {_epyc_fd}>>"$_epyc_shard" || { _epyc_fd=""; return 1; }
}

# _epyc_s VALUE [LIMIT]: a JSON string literal into _epyc_j (ASCII only, C locale).
_epyc_s() {
    local s="$1" lim="${2:-16384}" n
    n=${#s}
    if [ "$n" -gt "$lim" ]; then s="${s:0:lim}"$'\xe2\x80\xa6'"[truncated $((n - lim)) chars]"; fi
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    if [[ "$s" == *[$'\x01'-$'\x1f']* ]]; then
        s="${s//$'\n'/\\n}" s="${s//$'\t'/\\t}" s="${s//$'\r'/\\r}"
        s="${s//$'\x08'/\\b}" s="${s//$'\x0c'/\\f}"
        local c h
        while [[ "$s" =~ [$'\x01'-$'\x1f'] ]]; do
            c="${BASH_REMATCH[0]}"
            printf -v h '\\u%04x' "'$c"
            s="${s//"$c"/$h}"
        done
    fi
    _epyc_j="\"$s\""
}

_epyc_int='^(0|-?[1-9][0-9]{0,17})$'
_epyc_dec='^-?(0|[1-9][0-9]{0,6})\.[0-9]{0,7}[1-9]$'

_epyc_fast() {
    [ "${EPYC_AGENT_FAST:-1}" != 0 ] && [ -n "${EPYC_AGENT_SESSION:-}" ] || return 1
    local LC_ALL=C IFS=' '
    local verb="$1" a1="${2-}" a2 a3 cat level=INFO msg details typed="" j
    shift
    [ $# -ge 1 ] || return 1
    case "$*$EPYC_AGENT_SESSION" in *[$'\x80'-$'\xff']*) return 1 ;; esac
    case "$verb" in
        cmd-result) a2="${2-}" a3="${*:3}" ;;
        file-modify) a2="${2-edit}" a3="${*:3}" ;;
        task-end) a2="${*:2}"; [ $# -ge 2 ] || a2=success ;;
        *) a2="${*:2}" ;;
    esac
    msg="$a1"
    case "$verb" in
        task-start) cat=TASK_START details="$a2" ;;
        task-end)
            cat=TASK_END details="outcome=$a2"
            case "${a2,,}" in success | ok | done | passed | pass) ;; *) level=WARN ;; esac
            _epyc_s "$a2"; typed=",\"data\":{\"outcome\":$_epyc_j}" ;;
        cmd-intent) cat=CMD_INTENT details="$a2"; _epyc_s "$a1"; typed=",\"cmd\":$_epyc_j" ;;
        cmd-result)
            [ $# -ge 2 ] && [[ "$a2" =~ $_epyc_int ]] || return 1
            cat=CMD_RESULT details="exit=$a2${a3:+; $a3}"
            [ "$a2" = 0 ] || level=ERROR
            _epyc_s "$a1"; typed=",\"cmd\":$_epyc_j,\"exit_code\":$a2" ;;
        file-modify)
            cat=FILE_MODIFY details="action=$a2${a3:+; $a3}"
            _epyc_s "$a1"; typed=",\"path\":$_epyc_j"; _epyc_s "$a2"; typed+=",\"action\":$_epyc_j" ;;
        decision) cat=DECISION details="$a2" ;;
        warn) cat=WARNING level=WARN details="$a2" ;;
        error) cat=ERROR level=ERROR details="$a2" ;;
        observe)
            cat=OBSERVE details="$a2"
            if [[ "$a2" =~ $_epyc_int || ("$a2" =~ $_epyc_dec && ! "$a2" =~ ^-?0\.0000) ]]; then j="$a2"
            elif [[ "$a2" =~ ^[[:alpha:]][[:alnum:]\ /:,%=-]*$ && ! "${a2,,}" =~ (inf|nan) ]]; then _epyc_s "$a2"; j="$_epyc_j"
            else return 1
            fi
            _epyc_s "$a1"; typed=",\"data\":{\"what\":$_epyc_j,\"value\":$j}" ;;
        rollback)
            cat=ROLLBACK details="undo_with: $a2"
            _epyc_s "$a1"; typed=",\"action\":$_epyc_j"; _epyc_s "$a2"; typed+=",\"undo\":$_epyc_j" ;;
        *) return 1 ;;
    esac
    _epyc_ctx || return 1
    case "$_epyc_agent" in *[$'\x80'-$'\xff']*) return 1 ;; esac
    local now="$EPOCHREALTIME" ts line
    TZ=UTC0 printf -v ts '%(%Y-%m-%dT%H:%M:%S)T' "${now%[.,]*}"
    ts+=".${now#*[.,]}Z"
    line="{\"ts\":\"$ts\""
    _epyc_s "$EPYC_AGENT_SESSION" 256; line+=",\"session\":$_epyc_j"
    _epyc_s "$_epyc_agent" 256; line+=",\"agent\":$_epyc_j,\"level\":\"$level\",\"cat\":\"$cat\""
    _epyc_s "$msg"; line+=",\"msg\":$_epyc_j"
    _epyc_s "$details"; line+=",\"details\":$_epyc_j$typed,\"v\":1}"
    [ "${#line}" -lt 4096 ] || return 1
    printf '%s\n' "$line" >&"$_epyc_fd" 2>/dev/null || { exec {_epyc_fd}>&-; _epyc_fd=""; return 1; }
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
