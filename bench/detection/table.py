#!/usr/bin/env python3
"""Render bench/detection results (eval.json per run directory) as a Markdown table."""
import argparse
import json
import os
from collections import defaultdict

CLASSES = ["hijacked-account", "infected-client", "exploited-website", "password-guessing",
           "slow-and-low"]
# Issue 14: the incoming classes and detectors, reported in a table of their own.
IN_CLASSES = ["incoming-spam-source", "looped-back"]
IN_DETECTORS = {"incoming-failures", "incoming-helo", "incoming-filter", "looped-back"}
SHORT = {"hijacked-account": "hijack", "infected-client": "infected",
         "exploited-website": "website", "password-guessing": "pw-guess",
         "slow-and-low": "slow", "guessing-source": "guess-src",
         "incoming-spam-source": "in-spam", "looped-back": "looped"}


def load(d):
    with open(os.path.join(d, "eval.json")) as f:
        ev = json.load(f)
    t = {}
    try:
        with open(os.path.join(d, "time.txt")) as f:
            for line in f:
                k, _, v = line.strip().rpartition(" ")
                t[k.strip()] = v
    except OSError:
        pass
    return ev, t


def recall(ev, k):
    s = ev["by_kind"].get(k)
    if not s or s["labels"] == 0:
        return None, "–"
    return s["recall"], f'{s["detected"]}/{s["labels"]}'


def mins(x):
    if x is None:
        return "–"
    return f"{x:.0f}s" if x < 120 else f"{x / 60:.1f}m" if x < 7200 else f"{x / 3600:.1f}h"


def row(name, ev, t):
    h = ev["by_kind"].get("hijacked-account", {})
    cells = [name, f'{ev["false_all"]["entities"]}', f'{ev["false_all"]["per_10k_accounts_day"]:.2f}',
             f'{ev["false_containing"]["entities"]}',
             f'{ev["false_containing"]["per_10k_accounts_day"]:.2f}']
    for k in CLASSES + ["guessing-source"]:
        r, s = recall(ev, k)
        cells.append(s if r is None else f"{r:.2f} ({s})")
    ttd = (h.get("ttd_secs") or {}).get("p50")
    leak = (h.get("leaked") or {}).get("p50")
    cells += [mins(ttd), "–" if leak is None else f"{leak:.0f}",
              t.get("simulate", "?"), t.get("analyze", "?")]
    return cells


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--big", nargs="*", default=[])
    ap.add_argument("--commit", default="?")
    a = ap.parse_args()
    head = ["run", "false", "per 10k/day", "false (containing)", "per 10k/day (containing)"] + \
        [SHORT[k] for k in CLASSES + ["guessing-source"]] + \
        ["hijack TTD p50", "hijack leaked p50", "simulate s", "analyze s"]
    print(f"Measured on commit {a.commit}.\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    evs = []
    for d in a.dirs:
        if not os.path.exists(os.path.join(d, "eval.json")):
            print(f"| {os.path.basename(d)} | not done |")
            continue
        ev, t = load(d)
        evs.append((os.path.basename(d), ev))
        print("| " + " | ".join(row(os.path.basename(d), ev, t)) + " |")
    if evs:
        n = len(evs)
        fa = [e["false_all"]["per_10k_accounts_day"] for _, e in evs]
        fc = [e["false_containing"]["per_10k_accounts_day"] for _, e in evs]
        mean = ["**mean**", f'{sum(e["false_all"]["entities"] for _, e in evs) / n:.1f}',
                f"{sum(fa) / n:.2f}",
                f'{sum(e["false_containing"]["entities"] for _, e in evs) / n:.1f}',
                f"{sum(fc) / n:.2f}"]
        worst = ["**worst**", "", f"{max(fa):.2f} ({evs[fa.index(max(fa))][0]})", "",
                 f"{max(fc):.2f} ({evs[fc.index(max(fc))][0]})"]
        for k in CLASSES + ["guessing-source"]:
            rs = [(recall(e, k)[0], name) for name, e in evs if recall(e, k)[0] is not None]
            if rs:
                mean.append(f"{sum(r for r, _ in rs) / len(rs):.3f}")
                lo = min(rs)
                worst.append(f"{lo[0]:.2f} ({lo[1]})")
            else:
                mean.append("–")
                worst.append("–")
        ttd = [(e["by_kind"].get("hijacked-account", {}).get("ttd_secs", {}).get("p50"), name)
               for name, e in evs]
        ttd = [x for x in ttd if x[0] is not None]
        leak = [(e["by_kind"].get("hijacked-account", {}).get("leaked", {}).get("p50"), name)
                for name, e in evs]
        leak = [x for x in leak if x[0] is not None]
        mean += [mins(sum(x for x, _ in ttd) / len(ttd)) if ttd else "–",
                 f"{sum(x for x, _ in leak) / len(leak):.0f}" if leak else "–", "", ""]
        worst += [f"{mins(max(ttd)[0])} ({max(ttd)[1]})" if ttd else "–",
                  f"{max(leak)[0]:.0f} ({max(leak)[1]})" if leak else "–", "", ""]
        print("| " + " | ".join(mean) + " |")
        print("| " + " | ".join(worst) + " |")
    for d in a.big:
        if os.path.exists(os.path.join(d, "eval.json")):
            ev, t = load(d)
            evs_big = ev
            print("| " + " | ".join(row(os.path.basename(d), ev, t)) + " |")
            del evs_big
        else:
            print(f"| {os.path.basename(d)} | not done |")
    allev = evs + [(os.path.basename(d), load(d)[0]) for d in a.big
                   if os.path.exists(os.path.join(d, "eval.json"))]
    prof = defaultdict(lambda: defaultdict(int))
    dets = defaultdict(int)
    cont = defaultdict(int)
    for _, e in allev:
        for p, m in e["false_all"]["by_profile"].items():
            for d, c in m.items():
                prof[p][d] += c
        for d, c in e["false_all"]["by_detector"].items():
            dets[d] += c
        for p, m in e["false_containing"]["by_profile"].items():
            for d, c in m.items():
                cont[p] += c
    if prof:
        detnames = sorted(dets)
        print("\nFalse entities over all runs above, by the simulator's profile and detector "
              "(an entity counts under each detector that alerted on it; 'containing' = would "
              "have been contained):\n")
        print("| profile | " + " | ".join(detnames) + " | containing |")
        print("|---|" + "---|" * (len(detnames) + 1))
        for p in sorted(prof, key=lambda p: -sum(prof[p].values())):
            print(f"| {p} | " + " | ".join(str(prof[p].get(d, 0)) for d in detnames) +
                  f" | {cont.get(p, 0)} |")
        print("| **all** | " + " | ".join(str(dets[d]) for d in detnames) +
              f" | {sum(cont.values())} |")
    incoming_table(allev)


def incoming_table(allev):
    """Issue 14: recall of the incoming classes and the false entities of the incoming
    detectors (entities one of them alerted on), networks apart, per 10,000 accounts per day."""
    if not allev:
        return
    print("\nIncoming mail (issue 14): recall, and false entities of the incoming detectors "
          "(incoming-failures, incoming-helo, incoming-filter, looped-back):\n")
    head = ["run", "in-spam", "looped", "false", "false networks", "networks per 10k/day",
            "false per 10k/day", "forwarding-partner / big-provider false"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rates = []
    for name, ev in allev:
        fps = [f for f in ev.get("false_positives", [])
               if IN_DETECTORS & set(f.get("detectors", []))]
        nets = [f for f in fps if f["entity"]["kind"] == "network"]
        good = [f for f in fps if "forwarding-partner" in f.get("profile", "")
                or "big-provider" in f.get("profile", "")]
        acc, days = ev.get("legit_accounts", 0), ev.get("days", 0)
        per = (lambda n: n / acc * 10_000 / days if acc and days else 0.0)
        rates.append((per(len(nets)), per(len(fps)), name))
        cells = [name]
        for k in IN_CLASSES:
            r, s_ = recall(ev, k)
            cells.append(s_ if r is None else f"{r:.2f} ({s_})")
        cells += [str(len(fps)), str(len(nets)), f"{per(len(nets)):.2f}", f"{per(len(fps)):.2f}",
                  str(len(good))]
        print("| " + " | ".join(cells) + " |")
    n = len(rates)
    mean = ["**mean**"]
    worst = ["**worst**"]
    for k in IN_CLASSES:
        rs = [(recall(e, k)[0], nm) for nm, e in allev if recall(e, k)[0] is not None]
        if rs:
            mean.append(f"{sum(r for r, _ in rs) / len(rs):.3f}")
            lo = min(rs)
            worst.append(f"{lo[0]:.2f} ({lo[1]})")
        else:
            mean.append("–")
            worst.append("–")
    mean += ["", "", f"{sum(r[0] for r in rates) / n:.2f}", f"{sum(r[1] for r in rates) / n:.2f}", ""]
    wn = max(rates, key=lambda r: r[0])
    wa = max(rates, key=lambda r: r[1])
    worst += ["", "", f"{wn[0]:.2f} ({wn[2]})", f"{wa[1]:.2f} ({wa[2]})", ""]
    print("| " + " | ".join(mean) + " |")
    print("| " + " | ".join(worst) + " |")
    fp_prof = defaultdict(int)
    for _, ev in allev:
        for f in ev.get("false_positives", []):
            if IN_DETECTORS & set(f.get("detectors", [])):
                fp_prof[(f.get("profile", "?"), f["entity"]["kind"])] += 1
    if fp_prof:
        print("\nFalse entities of the incoming detectors by profile and kind: " +
              ", ".join(f"{p} {k} {c}" for (p, k), c in sorted(fp_prof.items())))


if __name__ == "__main__":
    main()
