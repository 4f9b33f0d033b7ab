"""A busy webmail: its users' password typos add up at the one webmail address.

Live. A second webmail server, 127.60.9.20 (our network), serves 40 accounts (wb00..wb39). In
the hour, 25 of them mistype their password once on the login form (25 failed IMAP logins from
the webmail address: one per typo, as the webmail logs in over IMAP first), then log in and send
a message; every one of the 40 logs in and sends. A webmail with thousands of users sees more
than 20 typos an hour as a matter of course. The issue says webmail must stay quiet.

PENDING (fails on main at 2b25a6d and ce775d7, auth-bruteforce): the address rule counts the users' typos
as one attacker's failures ("more than 20 in 1 h" → `client 127.60.9.20`, a limit
docs/DETECTION.md names), and from then on every user's successful login from that address is
"from an address guessing passwords" (rule 3, `attacking-address`) → a "password probably
guessed" alert on each account that logs in afterwards: measured 21 false entities (the address
and wb20..wb39) from one busy webmail. Run with RUN_PENDING=1.
"""
import harness

D = harness.DOMAIN
WEBMAIL = "127.60.9.20"
USERS = ["wb%02d@%s" % (i, D) for i in range(40)]
ACCOUNTS = USERS
PENDING = "a webmail address with 21+ user typos in an hour is an attacker, and then every user's login from it a guessed password"


def drive(d):
    for i, u in enumerate(USERS):
        if i < 25:
            d.imap_fail(WEBMAIL, [u])
        d.imap_login(WEBMAIL, u)
        d.send(WEBMAIL, "webmail2.e2e.test", [(u, ["pal%d@dest.test" % i])], login=u)


def expect(x):
    x.quiet("client", WEBMAIL, "the webmail server (its users' typos)")
    for u in USERS:
        x.quiet("account", u, "a webmail user")
