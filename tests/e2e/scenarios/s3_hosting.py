"""A shared web-hosting server with one exploited site.

Live. web5.hoster.example (127.60.1.5, our network, port 25, no AUTH) relays for 40 sites
(contact@siteNN.example, 5 form mails each, a handful to mistyped addresses) and for
shop07.example's shop (orders@shop07.example). Midway the shop's hacked WordPress starts sending
as wordpress@shop07.example: 50 messages to 3 recipients each, 5 of 6 refused as unknown users.
Documented rule (delivery-failures, per envelope sender): a client that relays for several
senders is also judged per sender and sender domain → `sender wordpress@shop07.example` (or
`@shop07.example`); the reported sender is a minority of the server's mail, so it is left out
of the server's own verdict → the server and the 39 other sites quiet (issue 9 class 6). Counted
on the server alone, its 131 failures of 355 (estimated share ≈ 29%) would condemn it.
"""
import harness

SERVER = "127.60.1.5"
HELO = "web5.hoster.example"
SITES = ["site%02d.example" % i for i in range(40)]
SHOP = "shop07.example"


def _legit(k):
    """The k-th ordinary form mail (one in 40 to a mistyped address)."""
    site = SITES[k % len(SITES)]
    rcpt = ("bad-typo%d@dest.test" if k % 40 == 13 else "visitor%d@dest.test") % k
    return ("contact@" + site, [rcpt])


def _spam(k):
    rcpts = ["bad-harvested%d-%d@victims.test" % (k, j) for j in range(2)]
    rcpts.append(("bad-old%d@victims.test" if k % 2 else "someone%d@victims.test") % k)
    return ("wordpress@" + SHOP, rcpts)


def drive(d):
    legit = [_legit(k) for k in range(200)] + [("orders@" + SHOP, ["customer%d@dest.test" % k]) for k in range(5)]
    spam = [_spam(k) for k in range(50)]
    d.send(SERVER, HELO, legit[:100])
    mixed = []
    for k in range(50):
        mixed += [spam[k]] + legit[100 + 2 * k:102 + 2 * k]
    mixed += legit[200:]
    for i in range(0, len(mixed), 25):
        d.send(SERVER, HELO, mixed[i:i + 25])


def expect(x):
    x.flag("delivery-failures", "sender", lambda i: i.lower() in ("wordpress@" + SHOP, "@" + SHOP),
           "the hacked script's sender (or the site's domain): 125 of 150 recipients refused")
    x.quiet("client", SERVER, "the hosting server, relaying 205 ordinary mails")
    x.quiet("network", "127.60.1.0/24", "the hosting server's network")
    for s in SITES:
        x.quiet_sender_domain(s, "an ordinary site on the same server")
