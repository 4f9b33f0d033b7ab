# Shared by bench/policy/run.sh and bench/policy/ab.sh (sourced): a free loopback port, and
# waiting until a server listens on one.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$(basename "$0"): port $1 never opened" >&2; return 1
}
