#!/usr/bin/env python3
"""Drive SMTP submissions into Postfix from many 127.x.y.z source addresses.

Usage: drive.py SMTP_PORT RESULT_JSON
Legitimate users (127.20.U.1, one address each, good recipients) and one hijacked account
(rotating over 127.31-38.x.y, "other countries" in the geo override, mostly recipients the
sink rejects) send interleaved. For every message we record who sent it and whether Postfix
accepted it; the shell script checks Postfix's queue and smtpscope's store afterwards.
"""
import json
import smtplib
import sys
import time

PORT = int(sys.argv[1])
LEGIT = ["user%d@e2e.test" % i for i in range(8)]
VICTIM = "victim@e2e.test"
PASSWORD = "secret"
HIJACK_MESSAGES = 40


def send(user, src_ip, rcpts, n):
    s = smtplib.SMTP("127.0.0.1", PORT, source_address=(src_ip, 0), timeout=30)
    try:
        s.ehlo("pc-%s" % src_ip.replace(".", "-"))
        s.login(user, PASSWORD)
        msg = "From: %s\r\nTo: %s\r\nSubject: message %d\r\n\r\nhello %d\r\n" % (user, rcpts[0], n, n)
        refused = s.sendmail(user, rcpts, msg)
        return {"ok": True, "refused": sorted(refused)}
    except smtplib.SMTPRecipientsRefused as e:
        return {"ok": False, "error": "all recipients refused: %s" % e.recipients}
    except smtplib.SMTPException as e:
        return {"ok": False, "error": str(e)}
    finally:
        try:
            s.quit()
        except Exception:
            pass


results = []
for i in range(HIJACK_MESSAGES):
    # A burst from the hijacked account: new network and country almost every message.
    ip = "127.%d.%d.%d" % (31 + i % 8, i // 8, 10 + i)
    rcpts = ["bad%d-%d@nowhere.test" % (i, k) for k in range(3)] + ["target%d@dest.test" % i]
    r = send(VICTIM, ip, rcpts, i)
    r.update(user=VICTIM, ip=ip, n=i, t=time.time())
    results.append(r)
    # Legitimate users keep sending in between.
    u = LEGIT[i % len(LEGIT)]
    r = send(u, "127.20.%d.1" % (i % len(LEGIT)), ["friend%d@dest.test" % i], i)
    r.update(user=u, ip="127.20.%d.1" % (i % len(LEGIT)), n=i, t=time.time())
    results.append(r)
    time.sleep(0.25)

json.dump(results, open(sys.argv[2], "w"), indent=1)
