"""26 ordinary users send and read mail from their home addresses throughout the run.

The issue's original finding: in a real-Postfix run "8 of 26 ordinary users" got false alerts.
Each user has one home address (127.20.U.1, the home ISP's AS), sends a message to one or two
friends now and then (about one in fifteen to a mistyped address, which the remote server
refuses) and reads mail over IMAP. Nothing here is abuse: no alert on any of them, their
addresses or networks, and nothing contained.
"""
import harness

USERS = ["user%02d@%s" % (i, harness.DOMAIN) for i in range(26)]
ACCOUNTS = USERS
_n = [0]


def home(i):
    return "127.20.%d.1" % i


def _send(d, i):
    n = _n[0]
    _n[0] += 1
    rcpts = ["friend%d@dest.test" % n]
    if n % 3 == 0:
        rcpts.append("colleague%d@work.test" % n)
    if n % 15 == 7:
        rcpts.append("bad-typo%d@dest.test" % n)
    d.send(home(i), "pc-user%02d" % i, [(USERS[i], rcpts)], login=USERS[i])


def drive(d, round_):
    """Round 0: everyone sends and reads mail once; later rounds (between scenarios): eight
    users each."""
    if round_ == 0:
        for i in range(len(USERS)):
            _send(d, i)
            d.imap_login(home(i), USERS[i])
        return
    for k in range(8):
        i = (round_ * 8 + k) % len(USERS)
        _send(d, i)
        if k % 2 == 0:
            d.imap_login(home(i), USERS[i])


def expect(x):
    for i, u in enumerate(USERS):
        x.quiet("account", u, "ordinary user")
        x.quiet("client", home(i), "an ordinary user's home address")
        x.quiet("network", "127.20.%d.0/24" % i, "an ordinary user's home network")
