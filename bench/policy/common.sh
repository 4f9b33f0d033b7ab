# Shared by the scripts of bench/policy (sourced): a free loopback port, waiting until a server
# listens on one, starting `smtpscope serve` as the benchmarks run it, and a scratch directory
# removed at exit with the server still running.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): port $1 never opened" >&2; return 1
}

# Start `smtpscope serve` (binary $1) in enforce mode on fresh loopback ports, with a new store
# and its log in directory $2 and any further arguments after them, and wait until its policy
# port listens. Sets SERVE_PID, POLICY_PORT and HTTP_PORT.
start_serve() {
    local bin=$1 dir=$2
    shift 2
    POLICY_PORT=$(port); HTTP_PORT=$(port)
    rm -f "$dir/smtpscope.db"*
    NO_COLOR=1 SMTPSCOPE_LOG=warn "$bin" serve --policy "127.0.0.1:$POLICY_PORT" --store "$dir/smtpscope.db" \
        --http "127.0.0.1:$HTTP_PORT" --mode enforce "$@" 2> "$dir/smtpscope.log" &
    SERVE_PID=$!
    wait_port "$POLICY_PORT"
}

# A scratch directory in T (named after $1), removed at exit with the process SERVE_PID if one
# is still running.
scratch() {
    T=$(mktemp -d "/tmp/smtpscope-$1.XXXXXX")
    SERVE_PID=
    trap 'if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; fi; wait 2>/dev/null || true; rm -rf "$T"' EXIT
}
