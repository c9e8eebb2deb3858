# Sourced by the scripts that start Erlang nodes (tests, demo, benchmarks):
# a private epmd on 127.0.0.1 at a free port, stopped by its pid by the
# caller. Never a system epmd, never pkill.
#
#   epmd_private LOGFILE   starts it; sets EPMD_PID and EPMD_PORT; returns 1
#                          if no port could be bound after ten tries
#   cookie_home DIR NAME   makes DIR/home with a fresh .erlang.cookie NAME_...

epmd_private() {
    local log=$1 try port ok
    EPMD_PID= EPMD_PORT=
    for try in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + (RANDOM * 7 + $$ + try * 131) % 40000))
        epmd -port "$port" -address 127.0.0.1 >"$log" 2>&1 &
        EPMD_PID=$!
        ok=
        for _ in $(seq 50); do
            kill -0 "$EPMD_PID" 2>/dev/null || break
            if ERL_EPMD_PORT=$port epmd -port "$port" -names >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.1
        done
        if [ -n "$ok" ]; then
            EPMD_PORT=$port
            return 0
        fi
        kill "$EPMD_PID" 2>/dev/null
        wait "$EPMD_PID" 2>/dev/null
        EPMD_PID=
    done
    return 1
}

cookie_home() {
    mkdir -p "$1/home"
    rm -f "$1/home/.erlang.cookie"
    printf '%s_%s_%s' "$2" "$$" "$RANDOM$RANDOM" >"$1/home/.erlang.cookie"
    chmod 400 "$1/home/.erlang.cookie"
}
