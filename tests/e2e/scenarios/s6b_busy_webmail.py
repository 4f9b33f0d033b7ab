"""A busy webmail: its users' password typos add up at the one webmail address.

Live. A second webmail server, 127.60.9.20 (our network), serves 40 accounts (wb00..wb39). In
the hour, 25 of them mistype their password once on the login form (25 failed IMAP logins from
the webmail address: one per typo, as the webmail logs in over IMAP first), then log in and send
a message; every one of the 40 logs in and sends. A webmail with thousands of users sees more
than 20 typos an hour as a matter of course. The issue says webmail must stay quiet.

Was PENDING (on main at 2b25a6d and ce775d7): the address rule counted the users' typos as one
attacker's failures ("more than 20 in 1 h" → `client 127.60.9.20`) and then every user's login
from that address was `attacking-address`: 21 false entities. Now an address from which most of
the names that failed there also logged in is a shared login point, not a guesser, and
`attacking-address` needs the guessing to have involved the account (docs/DETECTION.md).
"""
import harness

D = harness.DOMAIN
WEBMAIL = "127.60.9.20"
USERS = ["wb%02d@%s" % (i, D) for i in range(40)]
ACCOUNTS = USERS


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
