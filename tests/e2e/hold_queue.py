#!/usr/bin/env python3
"""The hold queue, end to end (issue 11), against the real Postfix of tests/e2e/run.sh.

Usage: hold_queue.py T PF SMTP_PORT HTTP_PORT   (after run.sh's traffic and checks)

- The hijacked account's incident lists exactly the queue ids in Postfix's hold queue; its page
  shows them and the exact postsuper commands; "delete held spam" (the dashboard's form, with the
  token; a wrong token is refused) removes them from the queue, and they never reach the sink.
- A false positive: user7 is contained by hand, its next two messages are held by Postfix and
  listed under its incident; dismissing the incident (API, default: release its held mail) runs
  postsuper -H and the messages are delivered to the sink.
Each action's command, exit status and operator are in the incident's timeline.
"""
import json
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

T, PF, SMTP, HTTP = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
H = "http://127.0.0.1:%d" % HTTP
TOKEN = "e2e-token"
ok = True


def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)


def api(path, body=None):
    req = urllib.request.Request(H + path)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def form(path, fields):
    """POST a dashboard form; the page it redirects to (the message is in its query)."""
    op = urllib.request.build_opener(NoRedirect)
    data = urllib.parse.urlencode(fields).encode()
    try:
        op.open(urllib.request.Request(H + path, data=data), timeout=60)
    except urllib.error.HTTPError as e:
        return urllib.parse.unquote(e.headers.get("Location", ""))
    return ""


def queue():
    out = subprocess.run(["postqueue", "-c", PF, "-j"], capture_output=True, text=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def sink():
    try:
        return [json.loads(l) for l in open(T + "/sink.jsonl")]
    except FileNotFoundError:
        return []


def listed(inc):
    return {h["queue_id"] for h in api("/api/incidents/%d" % inc)["held"] if h["state"] == "held"}


def wait(cond, secs):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


incidents = api("/api/incidents")
victim = [i["id"] for i in incidents if i["entity_id"] == "victim@e2e.test"][0]
fp = api("/api/contain", {"kind": "account", "id": "user7@e2e.test", "by": "e2e", "note": "looks odd"})["incident"]
for n in range(2):
    s = smtplib.SMTP("127.0.0.1", SMTP, source_address=("127.20.7.1", 0), timeout=30)
    s.ehlo("pc-127-20-7-1")
    s.login("user7@e2e.test", "secret")
    s.sendmail("user7@e2e.test", ["fp%d@dest.test" % n], "Subject: fp %d\r\n\r\nhello\r\n" % n)
    s.quit()


def held_of(sender):
    return {q["queue_id"] for q in queue() if q["queue_name"] == "hold" and q["sender"] == sender}


spam = held_of("victim@e2e.test")
wait(lambda: len(held_of("user7@e2e.test")) == 2 and len(listed(fp)) == 2 and listed(victim) == spam, 20)
fp_held = held_of("user7@e2e.test")
check(len(fp_held) == 2, "Postfix held the contained false positive's 2 messages")
check(listed(fp) == fp_held, "its incident lists exactly their queue ids")
check(len(spam) > 0 and listed(victim) == spam,
      "the hijacked account's incident lists exactly the %d queue ids of its mail in the hold queue" % len(spam))

before = api("/api/incidents/%d" % victim)
page = urllib.request.urlopen(H + "/incidents/%d" % victim, timeout=60).read().decode()
check(("postsuper -c %s -d - hold &lt;&lt;&lt; " % PF) in page and all(q in page for q in spam),
      "the incident page lists them and shows the exact delete command")
check(before["held_commands"]["release"].startswith("postsuper -c %s -H - <<< '" % PF),
      "the API shows the exact release command: " + before["held_commands"]["release"][:60])

check("Refused" in form("/incidents/%d/held" % victim, {"token": "wrong", "op": "delete"}),
      "the held-mail form refuses a wrong token")
check(held_of("victim@e2e.test") == spam, "nothing deleted on a wrong token")
msg = form("/incidents/%d/held" % victim, {"token": TOKEN, "op": "delete", "by": "e2e", "note": "spam"})
check("postsuper exited 0" in msg, "'delete held spam' reports: " + msg.split("msg=")[-1])
dismissed = api("/api/incidents/%d/dismiss" % fp, {"by": "e2e", "note": "false positive"})
check(dismissed.get("held", {}).get("ok") is True and dismissed["held"]["ids"] == 2,
      "dismissing the false positive released its held mail by default")
subprocess.run(["postqueue", "-c", PF, "-f"], check=True)
delivered = lambda: {to for m in sink() if m["from"] == "user7@e2e.test" for to in m["to"]}
wait(lambda: {"fp0@dest.test", "fp1@dest.test"} <= delivered(), 30)

q = queue()
check(not any(x["queue_id"] in spam for x in q), "after 'delete held spam' the spam is gone from the queue (postqueue -j)")
check(not any(x["queue_name"] == "hold" for x in q), "the hold queue is empty")
after = api("/api/incidents/%d" % victim)
check(all(h["state"] == "deleted" for h in after["held"]), "its queue ids are marked deleted")
tl = [e for e in after["timeline"] if e["action"] == "held spam deleted"]
check(len(tl) == 1 and "exit status 0" in tl[0]["note"] and tl[0]["by"] == "e2e",
      "the timeline records the command, its exit status and who: " + (tl[0]["note"][:90] if tl else "none"))
spam_to = {"target%d@dest.test" % i for i in range(100)}
got_spam = [to for m in sink() if m["from"] == "victim@e2e.test" for to in m["to"] if to in spam_to]
res = json.load(open(T + "/results.json"))
check(len(got_spam) + len(spam) == len([r for r in res if r["user"] == "victim@e2e.test"]),
      "the deleted spam never reached the sink (%d delivered before containment, %d deleted)" % (len(got_spam), len(spam)))
f = api("/api/incidents/%d" % fp)
check(f["incident"]["state"] == "dismissed", "the false-positive incident is dismissed")
check(len(f["held"]) == 2 and all(h["state"] == "released" for h in f["held"]), "its 2 queue ids are marked released")
check({"fp0@dest.test", "fp1@dest.test"} <= delivered(), "after release the held legitimate messages were delivered to the sink")
check(any(e["action"] == "held mail released" and "exit status 0" in e["note"] for e in f["timeline"]),
      "the release is in its timeline")
sys.exit(0 if ok else 1)
