"""An infected customer PC on port 25 with HELO and MAIL FROM forged to a bank.

Live. 127.60.2.7 (our network, no AUTH) greets as `bigbank.example` and sends 200 phishing
messages as security@/alert@/service@bigbank.example, one recipient each: half to harvested
addresses that do not exist, one in ten to a big provider that refuses it for the bank's DMARC
policy (550 5.7.26), the rest delivered. Documented rules: delivery-failures counts the client's
refused recipients (bad address, refused) → `client 127.60.2.7` (issue 9 class 7, missed in the
first real-Postfix run); helo-anomaly: a HELO that names the MAIL FROM domain, which a remote
server refused citing DMARC (`auth-refused`: somebody else's domain) → `client 127.60.2.7`.
"""
import harness

PC = "127.60.2.7"
BANK = "bigbank.example"


def drive(d):
    msgs = []
    for k in range(200):
        sender = ("security", "alert", "service")[k % 3] + "@" + BANK
        if k % 10 == 3:
            rcpt = "dmarc-user%d@bigmail.test" % k
        elif k % 2 == 0:
            rcpt = "bad-harvested%d@victims.test" % k
        else:
            rcpt = "customer%d@victims.test" % k
        msgs.append((sender, [rcpt]))
    for i in range(0, len(msgs), 20):
        d.send(PC, BANK, msgs[i:i + 20])


def expect(x):
    x.flag("delivery-failures", "client", PC, "120 of 200 recipients refused")
    x.allow("helo-anomaly", "client", PC)
    # The forged senders are the spam itself: alerts on them are true, not required.
    x.allow("delivery-failures", "sender", lambda i: i.lower().endswith("@" + BANK))
    x.allow("helo-anomaly", "sender", lambda i: i.lower().endswith("@" + BANK))
    x.allow("multiple-lists", "client", PC)
