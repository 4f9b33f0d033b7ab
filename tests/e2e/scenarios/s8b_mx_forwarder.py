"""A forwarding partner delivers our users' forwarded mail to our MX: quiet.

Live, no AUTH, to our MX. 198.19.80.25 (a university, `mx.uni.test`, its own AS) forwards its
former members' mail to their mailboxes with us: 8 connections of 5 messages, each for one of
our users, from ever other original senders (some rewritten by SRS); 2 of the 40 are for
users who have left us (refused as unknown). Documented rules (docs/DETECTION.md "Incoming
mail"): 2 refused of 40 is far below `min_unknown` (20) and `min_unknown_share` (0.5); one
constant HELO that is neither our domain nor the senders' is no sign → the partner's address
and its /24 stay quiet.

And a small company's own server, 198.19.61.5, greeting always with its bare domain
`smallfirm.test` = its MAIL FROM domain, 12 messages to our users: "a server whose HELO is its
own bare domain, always the same, is legitimate" (incoming-helo) → quiet.
"""
import harness
import ordinary

D = harness.DOMAIN
PARTNER = "198.19.80.25"
FIRM = "198.19.61.5"
LEFT = ["m.weber@" + D, "alumni-2019@" + D]
SENDERS = ["friend%d@mail-%d.example", "SRS0=hx%d=QZ=news-%d.example=list@uni.test", "noreply%d@shop-%d.example"]


def drive(d):
    k = 0
    for c in range(8):
        msgs = []
        for m in range(5):
            rcpt = LEFT[c // 4] if m == 2 and c % 4 == 1 else ordinary.USERS[(k * 5) % len(ordinary.USERS)]
            msgs.append((SENDERS[k % 3] % (k, k % 7), [rcpt]))
            k += 1
        d.mx_send(PARTNER, "mx.uni.test", msgs)
    for c in range(3):
        d.mx_send(FIRM, "smallfirm.test", [("clerk%d@smallfirm.test" % m, [ordinary.USERS[(c * 4 + m) % len(ordinary.USERS)]])
                                           for m in range(4)])


def expect(x):
    x.quiet("client", PARTNER, "forwarding partner: 38 of 40 delivered")
    x.quiet("network", "198.19.80.0/24", "the forwarding partner's network")
    x.quiet("client", FIRM, "a server whose HELO is always its bare domain = its MAIL FROM domain")
