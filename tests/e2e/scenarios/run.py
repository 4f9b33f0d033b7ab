#!/usr/bin/env python3
"""Runs the scenario library for tests/e2e/scenarios.sh (which starts the servers).

  run.py setup   write the accounts (Dovecot passwd-file) and the day before into the mail log
  run.py drive   drive every scenario's live traffic, ordinary users in between
  run.py check   check every scenario's expectations; print one PASS/FAIL line per scenario

Scenarios are the modules s*.py next to this file (ONLY=s1_dictionary,s5_list selects some;
RUN_PENDING=1 adds those marked PENDING),
plus `ordinary` (26 ordinary users sending throughout, who must stay quiet). A scenario module
has a docstring (what it is, what the documented rules say must happen), and may define
ACCOUNTS (names with password "secret"), before(day) (log lines of the day before),
drive(driver), expect(x) (what must be flagged and what must stay quiet; harness.Expect), and
LIVE_ONLY ((detector, kind, id) that only serve can raise, left out of the analyze comparison).
"""
import calendar
import glob
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import ordinary  # noqa: E402

T = harness.T
# The incoming detectors (docs/DETECTION.md "Incoming mail").
INCOMING = ("incoming-failures", "incoming-helo", "incoming-filter", "looped-back")


def scenarios(report=False):
    """The scenario modules to run. One with PENDING (the reason it fails on main, for a defect
    outside the harness) runs only with RUN_PENDING=1, so that tests/run.sh stays green; it is
    listed as SKIP with its reason."""
    only = [x for x in os.environ.get("ONLY", "").split(",") if x]
    pending = os.environ.get("RUN_PENDING") == "1"
    mods = []
    for path in sorted(glob.glob(os.path.join(HERE, "s[0-9]*.py"))):
        name = os.path.basename(path)[:-3]
        if only and name not in only:
            continue
        m = importlib.import_module(name)
        if getattr(m, "PENDING", None) and not pending:
            if report:
                print("SKIP %s: pending: %s (RUN_PENDING=1 runs it)" % (name, m.PENDING))
            continue
        mods.append(m)
    return mods


def setup():
    accounts = list(ordinary.ACCOUNTS)
    day = harness.Day(start=int(time.time()) - 25 * 3600)
    for m in scenarios():
        accounts += getattr(m, "ACCOUNTS", [])
        if hasattr(m, "before"):
            m.before(day)
    with open(os.path.join(T, "dovecot", "users"), "w") as f:
        for a in sorted(set(accounts)):
            f.write("%s:{PLAIN}%s\n" % (a, harness.PASSWORD))
    # Every account of our domain is a mailbox of our MX (Postfix virtual_mailbox_maps).
    with open(os.path.join(T, "vmailbox"), "w") as f:
        for a in sorted(set(accounts)):
            if a.lower().endswith("@" + harness.DOMAIN):
                f.write("%s %s/%s/\n" % (a, harness.DOMAIN, a.split("@")[0]))
    day.save()
    lines = day.render()
    with open(os.path.join(T, "maillog"), "w") as f:
        f.write("".join(l + "\n" for l in lines))
    print("scenarios: %d accounts, %d log lines of the day before" % (len(set(accounts)), len(lines)))


def drive():
    d = harness.Driver()
    d.scenario = "ordinary"
    ordinary.drive(d, 0)
    for i, m in enumerate(scenarios()):
        t0 = time.time()
        d.scenario = m.__name__
        if hasattr(m, "drive"):
            m.drive(d)
        print("scenarios: drove %s in %.1f s" % (m.__name__, time.time() - t0))
        d.scenario = "ordinary"
        ordinary.drive(d, i + 1)
    with open(os.path.join(T, "records.json"), "w") as f:
        json.dump(d.records, f, indent=0)


def epoch(rfc3339):
    """Alert time stamp (RFC 3339, with zone) as Unix seconds."""
    s = rfc3339.replace("Z", "+00:00")
    base, zone = s[:19], s[-6:]
    t = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    sign = 1 if zone[0] == "+" else -1
    return t - sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)


def check():
    alerts = []
    p = os.path.join(T, "alerts.jsonl")
    if os.path.exists(p):
        alerts = [json.loads(l) for l in open(p) if l.strip()]
    for a in alerts:
        a["_t"] = epoch(a["ts"])
    incidents = json.load(open(os.path.join(T, "incidents.json")))
    queue = [json.loads(l) for l in open(os.path.join(T, "queue.jsonl")) if l.strip()]
    held = [q for q in queue if q["queue_name"] == "hold"]
    records = json.load(open(os.path.join(T, "records.json")))
    contained = {(i["entity_kind"], i["entity_id"].lower()) for i in incidents if i["state"] == "contained"}

    def show(a):
        return "%s %s %s %.2f %s: %s" % (a["ts"], a["detector"], a["entity"]["kind"], a["score"], a["entity"]["id"], a["summary"])

    mods = [ordinary] + scenarios(report=True)
    expects = []
    passed = failed = 0
    for m in mods:
        x = harness.Expect(m.__name__)
        m.expect(x)
        expects.append(x)
        lines, ok = [], True

        def out(cond, what):
            nonlocal ok
            lines.append(("  ok   " if cond else "  FAIL ") + what)
            ok &= bool(cond)

        bad = [r for r in records if r["scenario"] == m.__name__ and not r["ok"]]
        out(not bad, "driver: every step did what it meant to (%d steps)" % sum(1 for r in records if r["scenario"] == m.__name__)
            + "".join("\n         %s" % json.dumps(r) for r in bad[:5]))
        for det, kind, match, why, ident in x.flags:
            hits = [a for a in alerts if a["detector"] == det and a["entity"]["kind"] == kind and match(a["entity"]["id"])]
            out(hits, "flagged: %s on %s %s (%s)%s" % (det, kind, ident if isinstance(ident, str) else "", why,
                                                      "".join("\n         " + show(a) for a in hits[:3])))
        for kind, match, why, ident in x.quiets:
            hits = [a for a in alerts if a["entity"]["kind"] == kind and match(a["entity"]["id"])]
            cont = [c for c in contained if c[0] == kind and match(c[1])]
            out(not hits and not cont, "quiet: %s %s (%s)%s%s" % (kind, ident if isinstance(ident, str) else "", why,
                                                                  "".join("\n         " + show(a) for a in hits[:5]),
                                                                  "".join("\n         contained: %s %s" % c for c in cont)))
        for why, fn in x.checks:
            good, detail = fn(alerts)
            out(good, why + (("\n         " + detail) if detail else ""))
        print(("PASS " if ok else "FAIL ") + m.__name__ + ": " + (m.__doc__ or "").strip().splitlines()[0])
        print("\n".join(lines))
        passed += ok
        failed += not ok

    # Every alert must be one a scenario expects or allows: anything else is a false entity.
    unexplained = [a for a in alerts if not any(det == a["detector"] and kind == a["entity"]["kind"] and match(a["entity"]["id"])
                                               for x in expects for det, kind, match in x.allows)]
    ok = not unexplained and not held
    print(("PASS " if ok else "FAIL ") + "all: every alert is one a scenario expects, nothing held by the default containment")
    print("  %s %d alerts, %d unexplained%s" % ("ok  " if not unexplained else "FAIL", len(alerts), len(unexplained),
                                                "".join("\n         " + show(a) for a in unexplained[:20])))
    print("  %s %d messages in the hold queue%s" % ("ok  " if not held else "FAIL", len(held),
                                                    "".join("\n         %s %s" % (q["sender"], [r["address"] for r in q["recipients"]][:3]) for q in held[:5])))
    passed += ok
    failed += not ok

    # One engine, two clocks: `smtpscope analyze` over the same mail log afterwards names the
    # same entities by the same incoming detectors as serve did live. (Only those: other
    # detectors also read serve's policy requests, which the log does not hold. So does
    # incoming-helo for mail Postfix accepted — it logs HELOs on its reject lines only — so the
    # s8 forgers each have refused recipients, and an alert only serve can raise is listed in
    # its scenario's LIVE_ONLY.)
    p = os.path.join(T, "analyze.jsonl")
    if os.path.exists(p):
        batch = [json.loads(l) for l in open(p) if l.strip()]

        # What only serve can see (a scenario's LIVE_ONLY: signs from accepted mail's HELO).
        live_only = {t for m in mods for t in getattr(m, "LIVE_ONLY", ())}

        def incoming(xs):
            return sorted({(a["detector"], a["entity"]["kind"], a["entity"]["id"]) for a in xs
                           if a["detector"] in INCOMING and (a["detector"], a["entity"]["kind"], a["entity"]["id"]) not in live_only})

        live, after = incoming(alerts), incoming(batch)
        ok = live == after
        print(("PASS " if ok else "FAIL ") + "analyze: the same incoming alerts from the mail log afterwards as from serve")
        print("  %s %d incoming alerts live, %d from analyze%s%s" % (
            "ok  " if ok else "FAIL", len(live), len(after),
            "".join("\n         only live:    %s %s %s" % x for x in live if x not in after),
            "".join("\n         only analyze: %s %s %s" % x for x in after if x not in live)))
        passed += ok
        failed += not ok
    metrics = {l.split(" ")[0]: float(l.split(" ")[1]) for l in open(os.path.join(T, "metrics.txt")) if l.strip() and not l.startswith("#")}
    pf = metrics.get('smtpscope_parse_failures_total{source="follow"}', -1)
    print("  %s every mail log line parsed (%d failures)" % ("ok  " if pf == 0 else "note", pf))
    print("scenarios: %d passed, %d failed" % (passed, failed))
    return failed == 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "setup":
        setup()
    elif cmd == "drive":
        drive()
    elif cmd == "check":
        sys.exit(0 if check() else 1)
    else:
        sys.exit(__doc__)
