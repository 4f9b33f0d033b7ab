#!/usr/bin/env python3
"""Open BURST policy connections at once to a running policy server, then time a new client.

Usage: burst.py PORT BURST PID

What Postfix does when many smtpd processes start together (a restart, a load spike): each
opens its own connection to the policy service. The server starts a thread per connection;
this measures how long a client that connects right after the burst waits for its answer,
and then, every 10 ms for one second, how long later clients wait. Prints one JSON line:
the first client's answer time, the slowest answer within the second, the server's resident
memory and transparent huge pages after the burst (from /proc/PID), and how many clients
were timed. Python's standard library only; loopback only.
"""
import json
import socket
import sys
import time

REQUEST = (
    b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.9\n"
    b"helo_name=burst.example\nsender=a@example.net\nrecipient=c@example.org\n"
    b"sasl_username=\ninstance=1.2.3\n\n"
)
# How long clients are timed after the burst, and how often.
WATCH_SECS = 1.0
EVERY_SECS = 0.01


def ask(port):
    """One new client's request; milliseconds until its whole answer arrived."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.perf_counter()
        s.sendall(REQUEST)
        answer = b""
        while not answer.endswith(b"\n\n"):
            chunk = s.recv(1000)
            if not chunk:
                raise RuntimeError("connection closed before the answer")
            answer += chunk
        return (time.perf_counter() - start) * 1000


def proc_kib(pid, field, name):
    """A `field:  N kB` line of /proc/PID/<name>, in KiB."""
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def main():
    port, burst, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    socks = []
    for _ in range(burst):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    first = ask(port)
    times = [first]
    start = time.perf_counter()
    while time.perf_counter() - start < WATCH_SECS:
        time.sleep(EVERY_SECS)
        times.append(ask(port))
    print(
        json.dumps(
            {
                "burst": burst,
                "first_ms": round(first, 2),
                "max_ms": round(max(times), 2),
                "clients": len(times),
                "rss_kib": proc_kib(pid, "VmRSS", "status"),
                "anon_huge_kib": proc_kib(pid, "AnonHugePages", "smaps_rollup"),
            }
        )
    )
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
