#!/usr/bin/env python3
"""Per-thread CPU and context switches of a server under the policy load (bench/policy/threads.sh).

    threads.py sample PID WAIT SECONDS > sample.json
        after WAIT seconds, read every thread of PID from /proc (user and system clock ticks,
        voluntary and involuntary context switches), again SECONDS later, and print the
        difference summed by thread name (`comm`: "policy" for the connection threads, "engine"
        for the engine), with the seconds between the two readings.
    threads.py report sample.json loadgen.json
        divide by the requests answered in that time (the load generator's requests per second
        times the seconds) and print a Markdown table: microseconds of user and system CPU and
        switches per request, by thread name.

Python's standard library only. Threads that start or end between the readings count from
their first or up to their last reading.
"""
import json
import os
import sys
import time

TICKS_PER_SEC = os.sysconf("SC_CLK_TCK")


def read_threads(pid):
    """{tid: (comm, user ticks, system ticks, voluntary, involuntary)} of every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue
        comm = stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        switches = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                switches[key] = int(value)
        out[tid] = (
            comm,
            int(fields[11]),
            int(fields[12]),
            switches.get("voluntary_ctxt_switches", 0),
            switches.get("nonvoluntary_ctxt_switches", 0),
        )
    return out


def sample(pid, wait, seconds):
    time.sleep(wait)
    t0, before = time.monotonic(), read_threads(pid)
    time.sleep(seconds)
    t1, after = time.monotonic(), read_threads(pid)
    by_name = {}
    for tid, (comm, *now) in after.items():
        was = before.get(tid, (comm, 0, 0, 0, 0))[1:]
        total = by_name.setdefault(comm, [0, 0, 0, 0, 0])
        for i, (a, b) in enumerate(zip(was, now)):
            total[i] += b - a
        total[4] += 1
    print(
        json.dumps(
            {
                "seconds": round(t1 - t0, 3),
                "threads": {
                    comm: {
                        "user_s": v[0] / TICKS_PER_SEC,
                        "system_s": v[1] / TICKS_PER_SEC,
                        "voluntary": v[2],
                        "involuntary": v[3],
                        "count": v[4],
                    }
                    for comm, v in sorted(by_name.items())
                },
            }
        )
    )


def report(sample_path, loadgen_path):
    with open(sample_path) as f:
        s = json.load(f)
    with open(loadgen_path) as f:
        run = json.load(f)
    requests = run["rps"] * s["seconds"]
    print(
        f"{run['rps']} requests/s, p99 {run['p99_us'] / 1000:.2f} ms; "
        f"per request over {s['seconds']} s:\n"
    )
    print("| threads | count | user µs | system µs | voluntary switches | involuntary switches |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = sorted(s["threads"].items(), key=lambda kv: -(kv[1]["user_s"] + kv[1]["system_s"]))
    for comm, t in rows:
        if t["user_s"] + t["system_s"] + t["voluntary"] + t["involuntary"] == 0:
            continue
        print(
            f"| {comm} | {t['count']} | {t['user_s'] * 1e6 / requests:.2f} | "
            f"{t['system_s'] * 1e6 / requests:.2f} | {t['voluntary'] / requests:.3f} | "
            f"{t['involuntary'] / requests:.3f} |"
        )


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "sample":
        sample(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
