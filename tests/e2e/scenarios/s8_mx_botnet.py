"""A spam botnet delivers to our MX: invented and stale local parts, forged HELOs.

Live, no AUTH, to our MX (the harness Postfix is also the MX of e2e.test: a mailbox per account,
unknown local parts refused at RCPT with Postfix's own "User unknown in virtual mailbox table"),
from addresses of 198.18.0.0/15 handed to Postfix with XCLIENT (harness.Driver.mx_send).
- 10 addresses of one /24, 198.18.5.11-20, three connections each, one message per connection
  to three recipients of ours: two invented or stale local parts and one real user (6 refused,
  3 delivered per address: 60 refused, 30 delivered in the /24). 198.18.5.11-15 greet as our own
  domain `e2e.test`; 198.18.5.16-20 with a new random name on every connection.
- 198.18.8.3, alone in its /24, a dictionary run: 10 connections of 3 recipients, 29 refused,
  1 delivered, one fixed plausible HELO.
- 198.18.9.4, alone in its /24, phishing that greets with the domain of its forged MAIL FROM,
  a new bank per connection (4 connections, 2 recipients each, 1 refused).
Documented rules (docs/DETECTION.md "Incoming mail"): incoming-failures on a host with >= 20
recipients refused as unknown local users being >= 50% of its recipients → `client 198.18.8.3`;
on a /24 with >= 20 refused from >= 2 of its addresses at the same share → `network
198.18.5.0/24` (no address of it reaches 20 alone), never a /24 of one host (198.18.8.0/24);
incoming-helo: HELO = our recipient's domain in >= 2 events → 198.18.5.11-15; >= 3 distinct
names → 198.18.5.16-20; HELO = the MAIL FROM domain in >= 2 events with >= 2 names →
198.18.9.4. Our users, their domain and the refused local parts are never an alert's entity.
"""
import random

import harness
import ordinary

D = harness.DOMAIN
NET = "198.18.5."
OWN_HELO = [NET + str(i) for i in range(11, 16)]
RANDOM_HELO = [NET + str(i) for i in range(16, 21)]
DICT = "198.18.8.3"
PHISH = "198.18.9.4"
STALE = ["info", "sales", "webmaster", "j.smith", "old-user07", "marketing", "hr", "billing",
         "k.tanaka", "office2019", "support-old", "admin2"]
_rng = random.Random(14)


def _invented():
    return "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


def _unknown(k):
    local = STALE[k % len(STALE)] if k % 2 == 0 else _invented()
    return "%s@%s" % (local, D)


def _real(k):
    return ordinary.USERS[(k * 7) % len(ordinary.USERS)]


def drive(d):
    steps = []
    for j, ip in enumerate(OWN_HELO + RANDOM_HELO):
        def host(j=j, ip=ip):
            for c in range(3):
                k = j * 3 + c
                helo = D if ip in OWN_HELO else "%s.%s" % (_invented(), _rng.choice(["com", "net", "info"]))
                sender = "%s@%s.example" % (_invented(), _invented())
                d.mx_send(ip, helo, [(sender, [_unknown(2 * k), _real(k), _unknown(2 * k + 1)])])
        steps.append(host)

    def dictionary():
        for c in range(10):
            rcpts = [_unknown(100 + 3 * c), _unknown(101 + 3 * c), _unknown(102 + 3 * c) if c else _real(c)]
            d.mx_send(DICT, "mail.shop-deals.example", [("offers@shop-deals.example", rcpts)])

    def phish():
        for c in range(4):
            bank = "secure-bank%d.example" % c
            d.mx_send(PHISH, bank, [("alert@" + bank, [_real(20 + c), _unknown(200 + c)])])

    d.parallel(*(steps + [dictionary, phish]))


def expect(x):
    x.flag("incoming-failures", "network", NET + "0/24", "60 of 90 recipients refused as unknown, from 10 addresses")
    x.flag("incoming-failures", "client", DICT, "29 of 30 recipients refused as unknown")
    for ip in OWN_HELO:
        x.flag("incoming-helo", "client", ip, "HELO = our domain e2e.test, 6 refused recipients of it")
    for ip in RANDOM_HELO:
        x.flag("incoming-helo", "client", ip, "a new HELO name on each of 3 connections")
    x.flag("incoming-helo", "client", PHISH, "HELO = the forged MAIL FROM domain, 4 names")
    # A single address is no network; the /24's own addresses stay under the host rule (true if
    # they fired, not required).
    x.quiet("network", "198.18.8.0/24", "one failing address is not a network")
    x.quiet("network", "198.18.9.0/24", "one address, 4 of 8 recipients refused")
    x.allow("incoming-failures", "client", harness.in_net(NET))
    # Our users and domain are the victims, never an entity.
    x.quiet_sender_domain(D, "our own domain (the recipients')")
    for u in ordinary.USERS:
        x.quiet("account", u, "a recipient of the spam")
    x.check("no alert names a recipient of the spam (refused local part or mailbox)", _no_recipient)


def _no_recipient(alerts):
    """No alert's entity is an address this scenario sent to (from the driver's records)."""
    import json
    import os

    records = json.load(open(os.path.join(harness.T, "records.json")))
    rcpts = {r.lower() for rec in records if rec["scenario"] == __name__ for r in rec.get("rcpts", [])}
    bad = [a for a in alerts if a["entity"]["id"].lower() in rcpts]
    return not bad and len(rcpts) > 50, "%d recipients; %s" % (
        len(rcpts), "; ".join("%s %s" % (a["detector"], a["entity"]["id"]) for a in bad[:5]))
