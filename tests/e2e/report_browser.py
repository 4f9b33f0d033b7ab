#!/usr/bin/env python3
"""Browser test of the HTML report (`analyze --format html`) in headless Chromium.

Simulates a small ISP, writes the report, loads the file from disk (file://, so nothing can be
fetched) and checks in the rendered DOM: the five figures are drawn as SVG, figure 1 has one
column per day of the simulation, every incident section has its rules table and, where the
entity sent mail, a timeline chart; no request leaves the page (Network events) and no script
runs. Saves a screenshot of the top of the report into OUT_DIR.

Usage: report_browser.py SMTPSCOPE_BIN OUT_DIR
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import Chrome  # noqa: E402  (same DevTools-over-pipe driver as the dashboard test)

BIN, OUT = sys.argv[1], sys.argv[2]
DAYS = 2


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
        report = os.path.join(OUT, "report.html")
        subprocess.run([BIN, "analyze", "-q", "--year", "2026", "--tz", "UTC", "--format", "html",
                        "-o", report, os.path.join(sim, "mail.log")], check=True)
        incidents = subprocess.run(
            [BIN, "analyze", "-q", "--year", "2026", "--tz", "UTC", "--format", "incidents",
             os.path.join(sim, "mail.log")], check=True, capture_output=True, text=True).stdout
        n_incidents = len([x for x in incidents.splitlines() if x.strip()])
        print("report: %d bytes, %d incidents" % (os.path.getsize(report), n_incidents))

        c = Chrome(os.path.join(d, "profile"))
        try:
            c.open("file://" + report)
            # Every image, style sheet or font the page fetched would be a resource entry.
            urls = c.eval("performance.getEntriesByType('resource').map(e => e.name)")
            check(urls == [], "the page loads nothing but itself: %s" % urls[:5])
            refs = c.eval("[...document.querySelectorAll('[src],[href]')]"
                          ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
                          ".filter(u => !u.startsWith('#'))")
            check(refs == [], "no reference out of the page: %s" % refs[:5])
            check(c.eval("document.scripts.length") == 0, "no script")
            for fig in ["fig-accounts-per-day", "fig-country-mix", "fig-ips-per-account",
                        "fig-per-ip-burst", "fig-per-ip-spread"]:
                check(c.eval("!!document.querySelector('#%s svg')" % fig), "figure %s is an SVG" % fig)
            days = c.eval("document.querySelectorAll('#fig-accounts-per-day g.col').length")
            check(days == DAYS, "figure 1 has one column per day (%s, want %d)" % (days, DAYS))
            hit = c.eval("[...document.querySelectorAll('#fig-accounts-per-day g.col')]"
                         ".reduce((s, g) => s + Number(g.dataset.total), 0)")
            check(hit > 0, "figure 1 counts hijacked accounts (%s)" % hit)
            bars = c.eval("document.querySelectorAll('#fig-country-mix rect.bar').length")
            check(bars > 0, "figure 2 draws country bars (%s)" % bars)
            # The SVG is laid out: the first figure has a real size on screen.
            w = c.eval("document.querySelector('#fig-accounts-per-day svg').getBoundingClientRect().width")
            check(w and w > 300, "figure 1 is rendered %s px wide" % w)
            sections = c.eval("document.querySelectorAll('section.incident').length")
            check(sections == min(n_incidents, 50),
                  "one section per incident (%s of %d)" % (sections, n_incidents))
            rules = c.eval("document.querySelectorAll('section.incident table.rules').length")
            check(rules == sections, "every section has its rules table")
            timelines = c.eval("document.querySelectorAll('section.incident figure.chart').length")
            check(timelines > 0, "incident timelines drawn (%s)" % timelines)
            listing = c.eval("[...document.querySelectorAll('pre.listing')].map(p => p.textContent).join('')")
            check("!!!" in listing and "->" in listing, "message listing with !!! and ->")
            check(c.eval("document.body.innerText.includes('{\"')") is False, "no raw JSON in the page")
            # The summary and the five figures, at a desktop width.
            c.call("Emulation.setDeviceMetricsOverride",
                   {"width": 1100, "height": 800, "deviceScaleFactor": 1, "mobile": False})
            bottom = c.eval("document.querySelector('#incidents').getBoundingClientRect().top"
                            " + window.scrollY")
            shot = c.call("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1100, "height": bottom, "scale": 0.6}})
            path = os.path.join(OUT, "report.png")
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            check(os.path.getsize(path) > 10000, "screenshot saved to %s" % path)
        finally:
            c.close()
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
