"""Dictionary attack against many accounts, then their owners log in normally.

Live. Six owners send and read mail from their home addresses (127.21.N.1). Then:
- one attacker address, 127.41.1.9, over three connections at once, tries 30 wrong SMTP AUTH
  passwords (each with PLAIN and LOGIN: 60 failures) over the owners' names
  and generic ones (admin, info, …);
- a botnet range, 127.42.7.10-14 (5 addresses of one /24), tries 10 wrong IMAP logins each (50);
then every owner sends and reads mail again from home.
Documented rules (docs/DETECTION.md, auth-bruteforce): address rule, more than 20 failures in 1 h
→ `client 127.41.1.9`; network rule, more than 40 failures in 1 h from at least 2 addresses of a
/24 → `network 127.42.7.0/24` (its addresses then get no alert of their own); no owner was singled
out by more than 10 addresses, and a success from the owner's own address is never suspicious
(issue 9 class 1: "login succeeded after failures" fired on the owners) → owners quiet.
"""
import harness

D = harness.DOMAIN
OWNERS = ["alice", "bob", "erin", "frank", "grace", "heidi"]
ACCOUNTS = ["%s@%s" % (o, D) for o in OWNERS]
GENERIC = ["admin", "info", "test", "sales", "office", "support"]
NAMES = ["%s@%s" % (n, D) for n in OWNERS + GENERIC]
ATTACKER = "127.41.1.9"
BOTNET = ["127.42.7.%d" % i for i in range(10, 15)]


def home(i):
    return "127.21.%d.1" % (10 + i)


def _owners(d, round_):
    for i, a in enumerate(ACCOUNTS):
        d.send(home(i), "laptop-%s" % OWNERS[i], [(a, ["friend-%s-%d@dest.test" % (OWNERS[i], round_)])], login=a)
        d.imap_login(home(i), a)


def drive(d):
    _owners(d, 0)
    # The attacker uses three connections at once, the botnet's addresses work in parallel.
    steps = [lambda c=c: d.auth_fail(ATTACKER, [NAMES[(c * 10 + k) % len(NAMES)] for k in range(10)], helo="User")
             for c in range(3)]
    steps += [lambda j=j, ip=ip: d.imap_fail(ip, [NAMES[(j * 3 + k) % len(NAMES)] for k in range(10)])
              for j, ip in enumerate(BOTNET)]
    d.parallel(*steps)
    _owners(d, 1)


def expect(x):
    x.flag("auth-bruteforce", "client", ATTACKER, "30 failed SMTP AUTH from one address in minutes")
    x.flag("auth-bruteforce", "network", "127.42.7.0/24", "50 failed IMAP logins from 5 addresses of one /24")
    # Further alerts on the attackers are true (not required): their addresses and networks.
    x.allow("auth-bruteforce", "client", harness.in_net("127.42.7."))
    x.allow("auth-bruteforce", "network", "127.41.1.0/24")
    for i, a in enumerate(ACCOUNTS):
        x.quiet("account", a, "owner logging in from home after the attack")
        x.quiet("client", home(i), "owner's home address")
    for n in GENERIC:
        x.quiet("account", "%s@%s" % (n, D), "a guessed name that is no account")
