# tests/bench/lib.sh - shell helpers shared by run.sh and nodes.sh (sourced):
# stopping the processes a script started, free ports, waiting for HTTP.

stop_pid() { # SIGTERM, then SIGKILL after 10 s; only our own PIDs
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL, seconds
    local i
    for i in $(seq $(($2 * 10))); do
        curl -fs -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}
