"""Webmail: submissions for many accounts from one internal address.

Live. The webmail server 127.60.9.10 (our network) logs in over IMAP and submits with SMTP AUTH
for 30 accounts (wm00..wm29), two messages each; ten of those users also mail from home
(127.22.N.1) before, so the webmail address is new to them; three users mistype their
password once on the web form (3 failed AUTH from the webmail address). Documented rules:
auth-hijack — one new address per account is no spread and no burst; auth-bruteforce — 3
failures from one address is far under 20 → all quiet.
"""
import harness

D = harness.DOMAIN
WEBMAIL = "127.60.9.10"
USERS = ["wm%02d@%s" % (i, D) for i in range(30)]
ACCOUNTS = USERS


def drive(d):
    for i in range(10):
        d.send("127.22.%d.1" % i, "home-pc", [(USERS[i], ["pal%d@dest.test" % i])], login=USERS[i])
    d.auth_fail(WEBMAIL, [USERS[3], USERS[17], USERS[25]], helo="webmail.e2e.test", per_session=1)
    for r in range(2):
        for i, u in enumerate(USERS):
            d.imap_login(WEBMAIL, u)
            rcpts = ["pal%d-%d@dest.test" % (i, r)] + (["bad-typo%d@dest.test" % i] if (i + r) % 12 == 5 else [])
            d.send(WEBMAIL, "webmail.e2e.test", [(u, rcpts)], login=u)


def expect(x):
    x.quiet("client", WEBMAIL, "the webmail server")
    x.quiet("network", "127.60.9.0/24", "the webmail server's network")
    for u in USERS:
        x.quiet("account", u, "a webmail user")
