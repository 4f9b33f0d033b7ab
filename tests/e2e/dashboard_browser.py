#!/usr/bin/env python3
"""Browser test of the dashboard's two analyst pages in headless Chromium: the overview (IIJ's
five figures, live) and an incident page (its evidence as the HTML report shows it).

Simulates a small ISP, has `smtpscope serve` follow its log from the start in observe mode,
then checks, in the rendered DOM, every figure against numbers this script computes itself:
  - from the log it fed: each hijacked account's messages (its `client=...,
    sasl_username=` lines) by source IP and by time;
  - from `analyze --format jsonl` on the same log: which accounts had an alert on which day,
    which were flagged by auth-hijack, and of which shape.
A last log line a day and more after the rest closes the messages still queued (deferred spam),
as the end of input does for `analyze`: the dashboard counts a message once it completes.
Also checked: no raw JSON unless asked for (`?raw=1`), observe mode says "would contain" on both
pages, in /health and in /api/containment, never "contained". Saves a screenshot of each page
into OUT_DIR.

Usage: dashboard_browser.py SMTPSCOPE_BIN OUT_DIR
"""
import base64
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import Chrome, free_port  # noqa: E402  (the DevTools-over-pipe driver)

BIN, OUT = sys.argv[1], sys.argv[2]
DAYS = 2
YEAR = 2026
FIGURES = ["fig-accounts-per-day", "fig-country-mix", "fig-ips-per-account",
           "fig-per-ip-burst", "fig-per-ip-spread"]
SUBMIT = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d) \S+ postfix/[\w/-]*smtpd\[\d+\]: \w+: "
                    r"client=[^\[]*\[([^\]]+)\].*, sasl_username=(\S+)$")
MONTHS = {m: i + 1 for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def epoch(stamp):
    """`Nov 16 10:00:00` of YEAR, UTC (the service runs with --year and --tz UTC)."""
    import calendar
    mon, day, hms = stamp.split()
    h, m, s = map(int, hms.split(":"))
    return calendar.timegm((YEAR, MONTHS[mon], int(day), h, m, s))


def figure(c, fid):
    """A figure's columns: [(label, total)], and its note."""
    cols = c.eval("[...document.querySelectorAll('#%s g.col')]"
                  ".map(g => [g.dataset.label, Number(g.dataset.total)])" % fid)
    note = c.eval("(document.querySelector('#%s p.note') || {}).textContent || ''" % fid)
    return [tuple(x) for x in cols], note


def served_total(base, fid):
    """The sum of a figure's columns as the server renders it (before any browser)."""
    html = urllib.request.urlopen(base + "/overview", timeout=30).read().decode()
    i = html.find('id="%s"' % fid)
    seg = html[i:html.find("</figure>", i)] if i >= 0 else ""
    return sum(float(x) for x in re.findall(r'data-total="([0-9.]+)"', seg))


def screenshot(c, path):
    c.call("Emulation.setDeviceMetricsOverride",
           {"width": 1100, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    h = c.eval("document.documentElement.scrollHeight")
    shot = c.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1100, "height": min(h, 6000), "scale": 0.6}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    return os.path.getsize(path)


def main():
    ok = True

    def check(cond, what):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what)
        ok = ok and bool(cond)

    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        sim = os.path.join(d, "sim")
        subprocess.run([BIN, "simulate", "--users", "500", "--days", str(DAYS), "--seed", "7",
                        "--out", sim], check=True, stdout=subprocess.DEVNULL)
        log = os.path.join(sim, "mail.log")
        last = None
        with open(log) as f:
            for line in f:
                last = line
        end = epoch(last[:15])
        # A day and two hours later: the service's idle sweep closes what is still queued.
        tail = time.strftime("%b %e %H:%M:%S", time.gmtime(end + 26 * 3600))
        with open(log, "a") as f:
            f.write("%s smtp1 postfix/smtpd[1]: connect from unknown[192.0.2.1]\n" % tail)
        lines = sum(1 for _ in open(log))

        # What analyze says about the same log: alerts about accounts, hijack shapes.
        out = subprocess.run([BIN, "analyze", "-q", "--year", str(YEAR), "--tz", "UTC",
                              "--format", "jsonl", log], check=True, capture_output=True,
                             text=True).stdout
        alerts = [json.loads(x) for x in out.splitlines() if x.strip()]
        acct = [a for a in alerts if a["entity"]["kind"] == "account"]
        hit_days = {(a["ts"][:10], a["entity"]["id"]) for a in acct}
        shape = {}
        for a in sorted((a for a in acct if a["detector"] == "auth-hijack"), key=lambda a: a["ts"]):
            shape[a["entity"]["id"]] = a["evidence"].get("shape", "mixed")
        hijacked = set(shape)

        # What the log says: every message of a hijacked account, from where and when.
        sent = collections.defaultdict(list)  # account -> [(ts, ip)]
        with open(log) as f:
            for line in f:
                if "sasl_username=" not in line:
                    continue
                m = SUBMIT.match(line.rstrip("\n"))
                if m and m.group(3) in hijacked:
                    sent[m.group(3)].append((epoch(m.group(1)), m.group(2)))
        print("log: %d lines, %d account alerts, %d hijacked accounts (%s), %d of their messages"
              % (lines, len(acct), len(hijacked), dict(collections.Counter(shape.values())),
                 sum(len(v) for v in sent.values())))
        check(len(hijacked) >= 2 and "spread" in shape.values(),
              "the simulation has hijacked accounts of the spread shape")

        http = free_port()
        cfg = os.path.join(d, "smtpscope.toml")
        with open(cfg, "w") as f:
            f.write('[serve]\nfollow = ["%s"]\nfollow_start = "start"\nstore = "%s/s.db"\n'
                    'http = "127.0.0.1:%d"\nmode = "observe"\n' % (log, d, http))
        srv = subprocess.Popen([BIN, "serve", "--config", cfg, "--year", str(YEAR), "--tz", "UTC"],
                               stderr=open(os.path.join(d, "serve.log"), "w"),
                               env=dict(os.environ, NO_COLOR="1"))
        base = "http://127.0.0.1:%d" % http
        chrome = None
        try:
            # Every line counted (a batch is counted as the engine takes it), then the
            # hijacked accounts' messages all in figure 2 (the engine is through the last
            # batch and its idle sweep), then the alerts it raised stored.
            want2 = sum(len(v) for v in sent.values())
            deadline = time.time() + 600
            fed, got2, stored, last_seen = 0, None, -1, None
            while time.time() < deadline:
                try:
                    if fed < lines:
                        m = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
                        fed = int(re.search(r'^smtpscope_lines_total\{source="follow"\} (\d+)$',
                                            m, re.M).group(1))
                    elif got2 != want2 and time.time() < fed_at + 120:
                        got2 = served_total(base, "fig-country-mix")
                    else:
                        n = len(json.load(urllib.request.urlopen(
                            base + "/api/incidents?limit=1000", timeout=5)))
                        if n == last_seen and n > 0:
                            stored = n
                            break
                        last_seen = n
                    if fed == lines and got2 is None:
                        fed_at, got2 = time.time(), -1
                except OSError:
                    pass
                time.sleep(1)
            check(fed == lines and stored > 0,
                  "serve fed every line (%d of %d) and stored %d incidents" % (fed, lines, stored))

            health = json.load(urllib.request.urlopen(base + "/health", timeout=5))
            check(health.get("mode") == "observe" and "would_contain" in health
                  and "contained" not in health, "/health counts would_contain: %s" % health)
            cont = json.load(urllib.request.urlopen(base + "/api/containment", timeout=5))
            check(all(c.get("effect") == "would contain" for c in cont),
                  "/api/containment says would contain (%d entries)" % len(cont))

            chrome = Chrome(os.path.join(d, "profile"))
            chrome.open(base + "/overview")
            check(chrome.eval("document.title") == "Overview - smtpscope", "overview loads")
            for fid in FIGURES:
                check(chrome.eval("!!document.querySelector('#%s svg')" % fid),
                      "figure %s is an SVG" % fid)
            w = chrome.eval("document.querySelector('#fig-country-mix svg')"
                            ".getBoundingClientRect().width")
            check(w and w > 300, "figure 2 is rendered %s px wide" % w)

            # Figure 1: distinct accounts with an alert, per day.
            cols, _ = figure(chrome, "fig-accounts-per-day")
            per_day = collections.Counter(day for day, _ in hit_days)
            check(dict((l, t) for l, t in cols if t) == dict(per_day),
                  "figure 1: accounts per day %s = analyze's %s" % (cols, dict(per_day)))

            # Figure 2: every message of the hijacked accounts, by country.
            cols, _ = figure(chrome, "fig-country-mix")
            want = sum(len(v) for v in sent.values())
            check(sum(t for _, t in cols) == want,
                  "figure 2: %d messages of the hijacked accounts = %d in the log"
                  % (sum(t for _, t in cols), want))
            step = 3600 if len(cols) and ":" in cols[0][0] else 86400

            # Figure 3: distinct source IPs per bucket of the accounts it draws.
            cols, _ = figure(chrome, "fig-ips-per-account")
            drawn = chrome.eval("[...document.querySelectorAll('#fig-ips-per-account ul.legend li')]"
                                ".map(li => li.textContent)")
            want = sum(len({(ts // step, ip) for ts, ip in sent[a]}) for a in drawn)
            check(drawn and set(drawn) <= hijacked and sum(t for _, t in cols) == want,
                  "figure 3: %d (bucket, source IP) of %d accounts = %d in the log"
                  % (sum(t for _, t in cols), len(drawn), want))

            # Figures 4 and 5: messages per (account, source IP), busiest first.
            for fid, sh in [("fig-per-ip-burst", "burst"), ("fig-per-ip-spread", "spread")]:
                cols, note = figure(chrome, fid)
                pairs = collections.Counter(
                    (a, ip) for a in hijacked if shape[a] == sh for _, ip in sent[a])
                want = sorted(pairs.values(), reverse=True)
                got = [t for _, t in cols]
                check(got == want[:len(got)] and len(got) == min(40, len(want))
                      and (not pairs or "%d (account, source IP) pairs" % len(pairs) in note),
                      "%s: %d bars %s.. = the log's busiest pairs %s.. (%s)"
                      % (fid, len(got), got[:5], want[:5], note))
            text = chrome.eval("document.body.innerText")
            check(not re.search(r"\bcontained\b", text) and "would contain" in text,
                  "overview says would contain, never contained")
            check(screenshot(chrome, os.path.join(OUT, "overview.png")) > 10000,
                  "overview screenshot saved to %s" % os.path.join(OUT, "overview.png"))

            # The incident page of the busiest spread-shaped account.
            account = max((a for a in hijacked if shape[a] == "spread"), key=lambda a: len(sent[a]))
            incs = json.load(urllib.request.urlopen(
                base + "/api/incidents?limit=1000&q=" + urllib.parse.quote(account), timeout=5))
            ids = [i["id"] for i in incs if i["entity_id"] == account]
            check(ids, "incident of %s listed" % account)
            iid = min(ids)  # the first opened: its alerts are the hijack's
            chrome.goto(base + "/incidents/%d" % iid)
            check(chrome.eval("document.title") == "Incident %d - smtpscope" % iid,
                  "incident page %d loads" % iid)
            rules = chrome.eval("[...document.querySelectorAll('table.rules tbody tr')]"
                                ".map(r => r.cells[0].textContent)")
            check("auth-hijack" in rules, "rules table lists its detectors: %s" % rules)
            ev = chrome.eval("[...document.querySelectorAll('h4')].map(h => h.textContent)")
            check("Evidence of auth-hijack" in ev, "evidence of each detector: %s" % ev)
            ips = chrome.eval("[...document.querySelectorAll('table.ev th')]"
                              ".map(t => t.textContent)")
            check("ip" in ips, "auth-hijack's recent IPs as a table with columns %s" % ips[:6])
            check(chrome.eval("document.querySelectorAll('pre.raw').length") == 0
                  and "{\"" not in chrome.eval("document.body.innerText"),
                  "no raw JSON on the incident page")
            cols, note = figure(chrome, "fig-timeline-%d" % iid)
            want = len(sent[account])
            check(sum(t for _, t in cols) == want and "not drawn" not in note,
                  "timeline: %d messages of %s = %d in the log"
                  % (sum(t for _, t in cols), account, want))
            countries = chrome.eval(
                "[...document.querySelectorAll('table.sources')[0].tBodies[0].rows]"
                ".map(r => Number(r.cells[2].textContent))")
            whole = "more not listed" not in chrome.eval(
                "document.querySelector('div.sources').textContent")
            check(countries and (sum(countries) == want if whole else sum(countries) < want),
                  "country table: %d messages in %d countries (%d in the log)"
                  % (sum(countries), len(countries), want))
            text = chrome.eval("document.body.innerText")
            check(not re.search(r"\bcontained\b", text) and "would contain" in text,
                  "incident page says would contain, never contained")
            check(screenshot(chrome, os.path.join(OUT, "incident.png")) > 10000,
                  "incident screenshot saved to %s" % os.path.join(OUT, "incident.png"))
            chrome.click_and_wait("#raw-link")
            raw = chrome.eval("[...document.querySelectorAll('pre.raw')].map(p => p.textContent).join('')")
            check(chrome.eval("location.search") == "?raw=1" and '"recent_ips"' in raw,
                  "?raw=1 shows the stored alerts as JSON")
        finally:
            if chrome:
                chrome.close()
            srv.terminate()
            srv.wait(30)
            if not ok:
                sys.stderr.write(open(os.path.join(d, "serve.log")).read()[-3000:])
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
