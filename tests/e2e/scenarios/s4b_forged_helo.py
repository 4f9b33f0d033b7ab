"""An infected customer PC's HELO forged to a bank's domain is seen (helo-anomaly).

Live. 127.60.2.8 (our network, no AUTH) greets as `securebank.example` and sends 60 messages as
alerts@securebank.example, one recipient each; the big provider that receives one in three
refuses it for the bank's DMARC policy (550 5.7.26), the rest is delivered. Documented rule
(docs/DETECTION.md, helo-anomaly): a HELO naming the MAIL FROM domain, when that domain is
somebody else's — here a remote server refused mail claiming it citing DMARC (`auth-refused`) —
is `forged-sender-domain` (0.9), alerting from 3 such messages → `client 127.60.2.8` ("flagged
as soon as the bank's receivers refuse it for DMARC").

PENDING (fails on main at 56af3fa, 2b25a6d and ce775d7, after extrusion's 9ce67ac): Postfix logs no HELO for mail it accepts (only on reject
lines, `helo=<…>`); smtpscope gets it in every policy request (`helo_name`), but a message's
record is taken from the log and the request's HELO is not carried into it, so helo-anomaly
never sees an accepted message's HELO in a real Postfix deployment. Run with RUN_PENDING=1.
"""
import harness

PC = "127.60.2.8"
BANK = "securebank.example"
PENDING = "helo-anomaly never sees the HELO of mail Postfix accepted (not in its log; the policy request's helo_name is not used)"


def drive(d):
    msgs = [("alerts@" + BANK, [("dmarc-user%d@bigmail.test" if k % 3 == 0 else "client%d@victims.test") % k])
            for k in range(60)]
    d.send(PC, BANK, msgs)


def expect(x):
    x.flag("helo-anomaly", "client", PC, "HELO forged to the sender's domain; 20 refusals citing DMARC")
    # 20 of 60 refused for DMARC: not necessarily enough for delivery-failures, true if it fires.
    x.allow("delivery-failures", "client", PC)
    x.allow("delivery-failures", "sender", lambda i: i.lower().endswith("@" + BANK))
