#!/usr/bin/env python3
"""Attribute `perf script -F comm,tid,ip,sym` samples (with call graphs) to the phases of
`analyze`: each sample goes to the innermost frame of its stack that names a phase, so the
allocator, hashing and memcmp count for whoever called them.

    perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -o perf.data \
        smtpscope analyze --threads 1 ... LOG
    perf script -i perf.data -F comm,tid,ip,sym | bench/profile/phases.py LINES

LINES (the log's line count) turns the shares into nanoseconds per line (samples are 1/999 s
of CPU each, the -F given to perf record; FREQ=... to change it).
"""
import os
import re
import sys

# Phases that own everything below them, whatever it is (checked on the whole stack first).
OUTER = [
    ("exit: dropping the engine's state", r"drop_in_place<detect::engine::Engine>|drop_in_place<smtpscope::pipeline::Driver>"),
    ("start-up (built-in geo table, config)", r"GeoDb::builtin|OnceLock|_dl_start|dl_main|_dl_init"),
    # Packing idle state, learning its dictionaries and thawing it (zstd's work included).
    ("idle state packing (pack, learn, thaw: detect::cold)", r"detect::cold::"),
]
# (phase, regex on a frame's symbol), tried innermost frame first; the first phase whose
# pattern matches a frame of the stack (walking outwards) takes the sample.
PHASES = [
    ("evidence samples (built for every record, kept or not)", r"detect::evidence::"),
    ("alert building and output", r"hijack_alert|Alert::new|[a-z]_alert\b|serde_json|smtpscope::report|smtpscope::output"),
    ("detector: extrusion (delivery-failures, lists)", r"detect::extrusion::"),
    ("detector: helo-anomaly", r"detect::helo::"),
    ("detector: auth-hijack", r"detect::hijack::"),
    ("detector: auth-bruteforce", r"detect::bruteforce"),
    ("detector: campaign", r"detect::campaign"),
    ("detector: incoming", r"detect::incoming::"),
    ("policy claims", r"detect::claims::"),
    ("direction/classify (classify, customers, geo)", r"Engine::classify|Engine::learn_customer|Engine::is_customer|Engine::for_our_mailboxes|Engine::asn_of|geo::GeoDb::lookup"),
    ("correlator (records)", r"maillog::record::|drop_in_place<maillog::record::MessageRecord>"),
    ("engine dispatch (Engine::feed, own names, driver)", r"detect::engine::Engine::|smtpscope::pipeline::Driver"),
    ("parser: header (time, host, program)", r"maillog::header::|maillog::time::"),
    ("parser: message (postfix/exim/dovecot)", r"maillog::postfix::|maillog::exim::|maillog::dovecot::|maillog::sendmail::|maillog::parse::parse_line"),
    ("parser: statistics", r"LineParser::count|maillog::parse::program_key|maillog::parse::shape_of"),
    ("UTF-8 check", r"core::str::converts::from_utf8"),
    ("decompression", r"flate2|miniz|zlib|ZSTD_|zstd|BZ2_|bzip2"),
    ("reading (read syscalls)", r"fill_buf|read_buf|__libc_read|ksys_read"),
    ("line splitting", r"smtpscope::input::"),
    ("pipeline other", r"smtpscope::pipeline::"),
]
COMPILED = [(n, re.compile(p)) for n, p in PHASES]
OUTER_C = [(n, re.compile(p)) for n, p in OUTER]


def samples(f):
    stack = []
    for line in f:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        if line.startswith("\t") or line.startswith(" "):
            parts = line.strip().split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else "")
    if stack:
        yield stack


def main():
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    freq = float(os.environ.get("FREQ", "999"))
    counts = {}
    total = 0
    for st in samples(sys.stdin):
        total += 1
        phase = "other (libc, kernel, unattributed)"
        outer = [n for n, rx in OUTER_C if any(rx.search(fr) for fr in st)]
        if outer:
            counts[outer[0]] = counts.get(outer[0], 0) + 1
            continue
        for fr in st:
            for n, rx in COMPILED:
                if rx.search(fr):
                    phase = n
                    break
            else:
                continue
            break
        counts[phase] = counts.get(phase, 0) + 1
    print(f"| phase | share of CPU | ns per line |")
    print(f"| --- | ---: | ---: |")
    for n, c in sorted(counts.items(), key=lambda x: -x[1]):
        ns = (c / freq) * 1e9 / lines if lines else 0
        print(f"| {n} | {100 * c / total:.1f} % | {ns:.0f} |")
    ns = (total / freq) * 1e9 / lines if lines else 0
    print(f"| **total** ({total} samples) | 100 % | {ns:.0f} |")


main()
