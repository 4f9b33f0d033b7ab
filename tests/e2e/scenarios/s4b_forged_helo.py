"""An infected customer PC's HELO forged to a bank's domain is seen (helo-anomaly).

Live. 127.60.2.8 (our network, no AUTH) greets as `securebank.example` and sends 60 messages as
alerts@securebank.example, one recipient each; the big provider that receives one in three
refuses it for the bank's DMARC policy (550 5.7.26), the rest is delivered. Documented rule
(docs/DETECTION.md, helo-anomaly): a HELO naming the MAIL FROM domain, when that domain is
somebody else's — here a remote server refused mail claiming it citing DMARC (`auth-refused`) —
is `forged-sender-domain` (0.9), alerting from 3 such messages → `client 127.60.2.8` ("flagged
as soon as the bank's receivers refuse it for DMARC").

Postfix logs no HELO for mail it accepts (only on reject lines, `helo=<…>`): the HELO reaches
helo-anomaly from the policy requests of the client's session (`helo_name`), lent to the log's
messages from the same address within POLICY_LINK_SECS (detect::claims). Before that (main at
8b44db7) this scenario failed: no alert.
"""
import harness

PC = "127.60.2.8"
BANK = "securebank.example"


def drive(d):
    msgs = [("alerts@" + BANK, [("dmarc-user%d@bigmail.test" if k % 3 == 0 else "client%d@victims.test") % k])
            for k in range(60)]
    d.send(PC, BANK, msgs)


def expect(x):
    x.flag("helo-anomaly", "client", PC, "HELO forged to the sender's domain; 20 refusals citing DMARC")
    # 20 of 60 refused for DMARC: not necessarily enough for delivery-failures, true if it fires.
    x.allow("delivery-failures", "client", PC)
    x.allow("delivery-failures", "sender", lambda i: i.lower().endswith("@" + BANK))
