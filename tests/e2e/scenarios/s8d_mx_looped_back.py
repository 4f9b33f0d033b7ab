"""An infected customer machine talks to our MX directly: looped-back, as our own client.

Live, no AUTH. 127.60.9.9 (our customers' network, `own_networks`) connects to our MX, greets
as our own domain `e2e.test` and sends 35 lottery spams from prize-win.example, one recipient
each, in 5 connections: 30 to invented local parts of ours (refused as unknown), 5 to real
users. Documented rules (docs/DETECTION.md "Incoming mail"): either incoming rule fires (30
refused >= 20 at 86%; HELO = our recipient's domain in >= 2 events) and the address is ours →
`looped-back` on `client 127.60.9.9`, not `incoming-failures` or `incoming-helo`; our
addresses are never summed into a network → no alert on 127.60.9.0/24. The refusals also count
for the extrusion rules (a customer's failed recipients): delivery-failures and helo-anomaly on
the client are true, not required.
"""
import harness
import ordinary

D = harness.DOMAIN
PC = "127.60.9.9"
SPAMMER = "prize-win.example"


def drive(d):
    msgs = []
    for k in range(35):
        rcpt = ordinary.USERS[k % len(ordinary.USERS)] if k % 7 == 3 else "winner%02d@%s" % (k, D)
        msgs.append(("lottery@" + SPAMMER, [rcpt]))
    for i in range(0, len(msgs), 7):
        d.mx_send(PC, D, msgs[i:i + 7])


def expect(x):
    x.flag("looped-back", "client", PC, "30 of 35 refused as unknown, HELO = our domain, from our own network")
    x.quiet("network", "127.60.9.0/24", "our own addresses are never summed into a network")
    x.check("reported as our own: no incoming-failures or incoming-helo on " + PC,
            lambda alerts: _not_foreign(alerts))
    x.allow("delivery-failures", "client", PC)
    x.allow("helo-anomaly", "client", PC)
    x.allow("delivery-failures", "sender", lambda i: i.lower().endswith("@" + SPAMMER))
    x.allow("helo-anomaly", "sender", lambda i: i.lower().endswith("@" + SPAMMER))


def _not_foreign(alerts):
    bad = [a for a in alerts if a["entity"]["id"] == PC and a["detector"] in ("incoming-failures", "incoming-helo")]
    return not bad, "; ".join("%s %s" % (a["detector"], a["summary"]) for a in bad[:3])
