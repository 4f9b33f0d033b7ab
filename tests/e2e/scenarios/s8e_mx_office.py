"""An office behind one address: its mail server greets with its bare domain, a copier otherwise.

Live, no AUTH, to our MX (XCLIENT, see s8_mx_botnet). 198.19.60.7 is a small company's NAT
address: its mail server greets as its bare domain `acme-office.test` and sends 15 messages from
staff@acme-office.test to our users in 3 sessions; between them its copier, behind the same
address, greets as `copier-3f` and sends 2 scans from scanner@acme-office.test. Everything is
delivered, so the HELOs reach smtpscope only from serve's policy requests (Postfix logs none
for accepted mail), each message paired with its own SMTP transaction's HELO by its sender
(detect::claims, SessionHelos), so the sessions run back to back.
Documented rule (docs/DETECTION.md "Incoming mail", incoming-helo): HELO = the MAIL FROM domain
counts only when the HELO *follows* the forged sender — "a server whose HELO is its own bare
domain, always the same, is legitimate"; the idea is two distinct names that each matched
(the seed-108 false entity described there). Only one name here ever matches → the address
and its /24 stay quiet. Before that rule (main at 36b0f97, and main at b79cd1e with the sessions
back to back) serve raised `incoming-helo client 198.19.60.7 "HELO follows the MAIL FROM
domain (2 distinct names)"`; the sessions used to be a second apart because serve lent one
latest policy HELO per address to lagging log lines (fixed with s8f_mx_helo_rotation).
"""
import harness
import ordinary

OFFICE = "198.19.60.7"
DOM = "acme-office.test"


def drive(d):
    for c in range(3):
        if c:
            d.mx_send(OFFICE, "copier-3f", [("scanner@" + DOM, [ordinary.USERS[c]])])
        msgs = [("staff%d@%s" % (c * 5 + m, DOM), [ordinary.USERS[(c * 5 + m) % len(ordinary.USERS)]]) for m in range(5)]
        d.mx_send(OFFICE, DOM, msgs)


def expect(x):
    x.quiet("client", OFFICE, "a mail server greeting with its bare domain, a copier with another name, all delivered")
    x.quiet("network", "198.19.60.0/24", "the office's network")
