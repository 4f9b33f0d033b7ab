"""Writes the fuzz targets' seed inputs, from the repository's test data.

    python3 seeds.py DATA ROOT OUT

DATA holds the unpacked corpus (mail/, sflow/), ROOT is the repository; OUT/<target>/ gets the
seeds. Deterministic: the same data gives the same seeds.
"""
import os
import sys

data, root, out = sys.argv[1:4]
LINES = 12  # lines per mail seed: enough for a message's story, short enough to mutate well
PER_TARGET = 400  # seeds per target: beyond this libFuzzer spends its time re-reading seeds


def files(d):
    for base, dirs, names in os.walk(d):
        dirs.sort()
        for n in sorted(names):
            yield os.path.join(base, n)


def write(target, i, b):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, f"{i:05}"), "wb") as f:
        f.write(b)


def spread(chunks, n):
    """n chunks spread evenly over the list (every file contributes)."""
    if len(chunks) <= n:
        return chunks
    step = len(chunks) / n
    return [chunks[int(k * step)] for k in range(n)]


# Mail: pieces of every log of the format's directory.
for target in ["postfix", "exim", "dovecot", "sendmail"]:
    chunks = []
    for p in files(os.path.join(data, "mail", target)):
        lines = open(p, "rb").read().split(b"\n")
        chunks += [b"\n".join(lines[k : k + LINES]) for k in range(0, len(lines), LINES * 7)]
    for i, c in enumerate(spread([c for c in chunks if c.strip()], PER_TARGET)):
        write(target, i, c)

# Spam filters: the written MX log with verdicts of tests/data/filter (also a Postfix seed: its
# verdicts join Postfix messages), and the corpus' spamd cases (SEKOIA) as syslog lines.
import json

filt = []
for p in files(os.path.join(root, "tests/data/filter")):
    if p.endswith(".log"):
        lines = open(p, "rb").read().split(b"\n")
        filt += [b"\n".join(lines[k : k + LINES]) for k in range(0, len(lines), LINES)]
        write("postfix", PER_TARGET, b"\n".join(lines))
for p in files(os.path.join(data, "mail", "postfix", "sekoia-intake-formats")):
    msg = json.load(open(p, "rb")).get("input", {}).get("message", "")
    if msg.startswith("spamd:"):
        filt.append(b"Dec  2 09:00:00 mx spamd[1]: " + msg.encode())
for i, c in enumerate(spread([c for c in filt if c.strip()], PER_TARGET)):
    write("filter", i, c)

# Syslog TCP: the same Postfix lines as octet-counted and as newline-framed streams; the first
# byte picks the reader's buffer size.
pf = []
for p in files(os.path.join(data, "mail", "postfix")):
    pf += [l for l in open(p, "rb").read().split(b"\n") if l.strip()][:40]
pf = spread(pf, 600)
for i in range(0, len(pf), 6):
    group = pf[i : i + 6]
    sel = bytes([i % 256])
    counted = b"".join(b"%d %s" % (len(l) + 1, l + b"\n") for l in group)
    write("syslog_frames", i, sel + counted)
    write("syslog_frames", i + 1, sel + b"\n".join(b"<22>" + l for l in group) + b"\n")

# sFlow: raw datagrams and the small captures (the big ones slow every execution down).
k = 0
for p in files(os.path.join(data, "sflow")):
    if p.endswith((".bin", ".dat", ".dump", ".pcap", ".pcapng")) and os.path.getsize(p) <= 65536:
        b = open(p, "rb").read()
        write("sflow_decode", k, b)
        write("sflow_collect", k, b)
        k += 1

# Config: the default file and every .toml the tests and docs carry.
k = 0
for d in ["crates/smtpscope/src", "tests", "docs", "examples"]:
    for p in files(os.path.join(root, d)):
        if p.endswith(".toml") and "/data/" not in p:
            write("config_file", k, open(p, "rb").read())
            k += 1
# …and each of its tables on its own (short inputs mutate better).
default = open(os.path.join(root, "crates/smtpscope/src/default.toml"), "rb").read()
section = b""
for line in default.split(b"\n") + [b"["]:
    if line.startswith(b"[") and section.strip():
        write("config_file", k, section)
        k += 1
        section = b""
    section += line + b"\n"
