#!/usr/bin/env python3
"""Split one simulated MTA log into the logs of N MTAs, as a load balancer in front of several
submission servers would: each SMTP session (smtpd process) goes to one MTA, with every line of
the messages it queued; Dovecot's lines go by process. Deterministic (CRC-32 of the pid).

    cluster_split.py IN OUT0 OUT1 [...]
"""
import re
import sys
import zlib

HDR = re.compile(r"^\S+\s+\d+\s+[\d:]+\s+\S+\s+(\S+?)\[(\d+)\]:\s+(.*)$")
QID = re.compile(r"^([0-9A-F]{6,}|[0-9A-Za-z]{12,}): ")
NOTICE = re.compile(r"notification: ([0-9A-F]{6,}|[0-9A-Za-z]{12,})")


def main():
    src, outs = sys.argv[1], sys.argv[2:]
    n = len(outs)
    files = [open(o, "w") for o in outs]
    by_qid = {}
    for line in open(src, errors="replace"):
        m = HDR.match(line)
        edge = 0
        if m:
            prog, pid, msg = m.groups()
            q = QID.match(msg)
            qid = q.group(1) if q else None
            if "smtpd" in prog or "dovecot" in prog or qid is None:
                edge = zlib.crc32(pid.encode()) % n
                if qid is not None and qid not in by_qid:
                    by_qid[qid] = edge
            elif qid in by_qid:
                edge = by_qid[qid]
            else:
                edge = zlib.crc32(qid.encode()) % n
                by_qid[qid] = edge
            if qid is not None:
                nq = NOTICE.search(msg)
                if nq:
                    by_qid.setdefault(nq.group(1), edge)
        files[edge].write(line)
    for f in files:
        f.close()


if __name__ == "__main__":
    main()
