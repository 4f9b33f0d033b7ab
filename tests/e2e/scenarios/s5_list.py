"""A mailing list: one sender, many recipients, about 10% failing.

Live. A customer's list server, 127.60.3.9 (our network, no AUTH), greets as its own name
lists.club.example and posts 30 messages as news@lists.club.example to 10 members each (300
members, 30 of whose addresses have gone stale and are refused as unknown). Documented rules:
delivery-failures — a sender mailing 50+ recipients with at most 25% failing is a list, its
failures are not counted; and 30 failures of 300 is an estimated share of ~8%, far under 25%
(issue 9 class 4: "21 failed" alone flagged lists); helo-anomaly — a HELO naming the sender's
OWN domain is normal (class 3); multiple-lists — one list is fine → all quiet.
"""
import harness

SERVER = "127.60.3.9"
HELO = "lists.club.example"
SENDER = "news@lists.club.example"


def drive(d):
    msgs = []
    for k in range(30):
        rcpts = []
        for j in range(10):
            m = k * 10 + j
            rcpts.append(("bad-stale%d@members.test" if m % 10 == 4 else "member%d@members.test") % m)
        msgs.append((SENDER, rcpts))
    d.send(SERVER, HELO, msgs)


def expect(x):
    x.quiet("client", SERVER, "a list server, 10% stale addresses")
    x.quiet_sender_domain("lists.club.example", "the list's sender")
