#!/usr/bin/env python3
"""Browser test of the smtpscope dashboard in headless Chromium.

Drives Debian's `chromium` through the DevTools protocol over --remote-debugging-pipe (no
extra Python packages): loads the incident list, follows a link to an incident page, submits
the Contain form with a wrong and then the right token, and uses the search form — real
clicks and form submissions, checked in the rendered DOM and through the JSON API.

Usage: browser.py SMTPSCOPE_BIN
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1]
TOKEN = "browser-token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Chrome:
    def __init__(self, profile):
        r_in, w_in = os.pipe()  # we write -> chrome reads (fd 3)
        r_out, w_out = os.pipe()  # chrome writes (fd 4) -> we read
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank",
        ]

        def child():
            os.dup2(r_in, 3)
            os.dup2(w_out, 4)

        self.p = subprocess.Popen(["chromium"] + flags, pass_fds=(3, 4), preexec_fn=child,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # (pass_fds keeps 3 and 4 open; dup2 in preexec put the pipes there.)
        os.close(r_in)
        os.close(w_out)
        self.w = os.fdopen(w_in, "wb", buffering=0)
        self.r = os.fdopen(r_out, "rb", buffering=0)
        self.buf = b""
        self.n = 0
        self.events = []
        self.session = None

    def _read_msg(self):
        while b"\0" not in self.buf:
            chunk = self.r.read(65536)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True):
        self.n += 1
        m = {"id": self.n, "method": method, "params": params or {}}
        if session and self.session:
            m["sessionId"] = self.session
        self.w.write(json.dumps(m).encode() + b"\0")
        while True:
            r = self._read_msg()
            if r.get("id") == self.n:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (method, r["error"]))
                return r.get("result", {})
            self.events.append(r)

    def wait_event(self, name, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[: i + 1]
                    return e
            self.events.append(self._read_msg())
        raise RuntimeError("no " + name)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError("JS error in %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def open(self, url):
        t = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        a = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True}, session=False)
        self.session = a["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.goto(url)

    def goto(self, url):
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def click_and_wait(self, selector):
        self.events.clear()
        self.eval("document.querySelector(%s).click()" % json.dumps(selector))
        self.wait_event("Page.loadEventFired")

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def main():
    ok = True

    def check(cond, what):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what)
        ok = ok and bool(cond)

    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "mail.log")
        with open(log, "w") as f:
            for i in range(25):
                f.write("Nov 24 05:01:%02d mx1 postfix/smtpd[123]: warning: unknown[192.0.2.9]: "
                        "SASL LOGIN authentication failed: UGFzc3dvcmQ6\n" % i)
        http = free_port()
        cfg = os.path.join(d, "smtpscope.toml")
        with open(cfg, "w") as f:
            f.write('[serve]\nfollow = ["%s"]\nfollow_start = "start"\nstore = "%s/s.db"\n'
                    'http = "127.0.0.1:%d"\ntoken = "%s"\nmode = "enforce"\n' % (log, d, http, TOKEN))
        srv = subprocess.Popen([BIN, "serve", "--config", cfg], stderr=open(os.path.join(d, "serve.log"), "w"),
                               env=dict(os.environ, NO_COLOR="1"))
        base = "http://127.0.0.1:%d" % http
        chrome = None
        try:
            end = time.time() + 60
            while True:
                try:
                    incs = json.load(urllib.request.urlopen(base + "/api/incidents", timeout=2))
                    if incs:
                        break
                except OSError:
                    pass
                if time.time() > end:
                    raise RuntimeError("no incident from smtpscope")
                time.sleep(0.1)
            chrome = Chrome(os.path.join(d, "profile"))
            chrome.open(base + "/")
            check(chrome.eval("document.title") == "Incidents - smtpscope", "dashboard loads")
            rows = chrome.eval("Array.from(document.querySelectorAll('#incidents tbody tr')).map(r => r.innerText)")
            check(len(rows) == 1 and "192.0.2.9" in rows[0] and "open" in rows[0], "incident listed: %r" % rows)
            chrome.click_and_wait("#incidents tbody tr td a")
            check(chrome.eval("location.pathname") == "/incidents/%d" % incs[0]["id"], "link opens the incident page")
            check("auth-bruteforce" in chrome.eval("document.body.innerText"), "detector shown")
            ev = chrome.eval("[...document.querySelectorAll('table.kv th')].map(t => t.textContent)")
            check("failures" in ev and chrome.eval("document.querySelectorAll('pre.raw').length") == 0,
                  "evidence shown as tables, no raw JSON: %s" % ev[:8])
            # Wrong token: refused, nothing changes.
            chrome.eval("document.querySelector('#token').value = 'nope'")
            chrome.click_and_wait("#btn-contain")
            check("Refused" in (chrome.eval("document.querySelector('#msg').innerText") or ""), "wrong token refused")
            check(chrome.eval("document.querySelector('#state').innerText") == "open", "state unchanged")
            # Right token: contained, timeline updated.
            chrome.eval("document.querySelector('#token').value = %s" % json.dumps(TOKEN))
            chrome.eval("document.querySelector('#by').value = 'browser-test'")
            chrome.eval("document.querySelector('#note').value = 'seen in the dashboard'")
            chrome.click_and_wait("#btn-contain")
            check(chrome.eval("document.querySelector('#msg').innerText") == "Done: contain", "contain accepted")
            check(chrome.eval("document.querySelector('#state').innerText") == "contained", "state is contained")
            tl = chrome.eval("document.querySelector('#timeline').innerText")
            check("contained" in tl and "browser-test" in tl and "seen in the dashboard" in tl, "timeline shows who and why")
            cont = json.load(urllib.request.urlopen(base + "/api/containment", timeout=5))
            check([(c["kind"], c["id"], c["by"]) for c in cont] == [("client", "192.0.2.9", "browser-test")],
                  "containment list: %r" % cont)
            # Search form.
            chrome.goto(base + "/")
            chrome.eval("document.querySelector('input[name=q]').value = '192.0.2.9'")
            chrome.click_and_wait("button[type=submit]")
            check("q=192.0.2.9" in chrome.eval("location.search"), "search submitted")
            check(chrome.eval("document.querySelectorAll('#incidents tbody tr a').length") == 2, "search finds it")
            chrome.eval("document.querySelector('input[name=q]').value = 'nobody-here'")
            chrome.click_and_wait("button[type=submit]")
            check("No incidents" in chrome.eval("document.querySelector('#incidents').innerText"), "search finds nothing else")
        finally:
            if chrome:
                chrome.close()
            srv.terminate()
            srv.wait(30)
    print("browser: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
