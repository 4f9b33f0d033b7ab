"""A device with a stale password at the owner's own address.

Live. dave sends mail from his home address 127.21.7.1 as usual; his phone at the same address
still has his old password and keeps failing: 25 failed IMAP logins (mail polling) and 25 failed
SMTP AUTH (its outbox; each attempt tried with PLAIN, then LOGIN, as smtplib and many
clients do: 50 failure lines), interleaved with dave's own 6 messages. Documented rule (auth-bruteforce):
a failure against an existing account from one of its own addresses counts for nothing — not
against the account, not against the address as an attacker (else the address rule, more than
20 failures in 1 h, would fire) → dave, his address and network quiet.
"""
import harness

DAVE = "dave@" + harness.DOMAIN
ACCOUNTS = [DAVE]
HOME = "127.21.7.1"


def drive(d):
    d.send(HOME, "daves-laptop", [(DAVE, ["sister@dest.test"])], login=DAVE)
    d.imap_login(HOME, DAVE)
    # The phone's mail app retries on several connections at once while dave writes mail.
    steps = [lambda: d.imap_fail(HOME, [DAVE] * 5) for _ in range(5)]
    steps += [lambda: d.auth_fail(HOME, [DAVE] * 5, helo="daves-phone", per_session=1) for _ in range(5)]
    steps += [lambda: [d.send(HOME, "daves-laptop", [(DAVE, ["friend%d@dest.test" % r])], login=DAVE) for r in range(5)]]
    d.parallel(*steps)


def expect(x):
    x.quiet("account", DAVE, "the owner, whose phone has a stale password")
    x.quiet("client", HOME, "the owner's home address")
    x.quiet("network", "127.21.7.0/24", "the owner's home network")
