"""Slow guessing over a day (GENERATED: a day of Dovecot log lines before the live run).

A whole day cannot be run in real time, so this scenario writes the day before the run into the
mail log, in the format the live Dovecot writes (same file, same time-stamp shape), and
`serve` reads it first, then the live lines; everything else about it is real (the followed file,
the running service, the default configuration). Two slow attacks over 24 hours:
- a botnet range, 20 addresses of 127.51.3.0/24, guesses generic names over IMAP, rotating
  addresses, 2-3 failures an hour per address (50 an hour from the /24) — the pattern of the
  corpus's exim/artik292 log. Documented rule: more than 40 failures in 1 h from 2+ addresses of
  a /24 → `network 127.51.3.0/24`, ONE alert for the whole day (one attack, re-alerted only at
  ten times its measure), none on its addresses (at most 3 an hour each);
- carol's password is guessed 3 times an hour, each time from a new address in a new /24, the
  three rotating over three autonomous systems (127.52-54.h.7, AS64552-64554): below every
  attacker rule (1 failure per address and per /24, 3 addresses an hour against the account),
  so nothing is reported while it lasts; carol herself reads mail from home twice an hour. At
  hour 23.5 the attacker logs in with the guessed password from yet another address of AS64552.
  Documented rule: a success from the AS the failures came from, new to the account, after 5+
  such failures — and, as carol's first login is under a day old (no history), the failures
  came from at least 2 ASes (from one AS they could be her own stale device on a renumbered
  line) → `auth-bruteforce` on `account carol@e2e.test`, at that login and not before, once.
  Carol's logins from home, before and after (also live), stay unsuspicious.
"""
import time

import harness

D = harness.DOMAIN
CAROL = "carol@" + D
ACCOUNTS = [CAROL]
CAROL_HOME = "127.21.50.1"
BOTNET = ["127.51.3.%d" % i for i in range(10, 30)]
GENERIC = ["%s@%s" % (n, D) for n in ("admin", "info", "test", "sales", "office", "support", "webmaster",
                                      "postmaster", "contact", "billing", "user", "mail", "hr", "jobs",
                                      "marketing", "service", "noreply", "root", "guest", "demo")]
SUCCESS_HOUR = 23.5


def before(day):
    k = 0
    for h in range(24):
        day.imap_login(day.t(h, 5), CAROL, CAROL_HOME)
        day.imap_login(day.t(h, 35), CAROL, CAROL_HOME)
        for j in range(50):  # 50 an hour from the /24, rotating
            day.imap_fail(day.t(h, j * 1.2), GENERIC[k % len(GENERIC)], BOTNET[k % len(BOTNET)])
            k += 1
        if h < 23:
            for j in range(3):  # carol, 3 an hour, each from a new /24, over 3 ASes
                day.imap_fail(day.t(h, 10 + 20 * j), CAROL, "127.%d.%d.7" % (52 + j, h))
    day.imap_login(day.t(SUCCESS_HOUR), CAROL, "127.52.200.7")


def drive(d):
    d.imap_login(CAROL_HOME, CAROL)
    d.send(CAROL_HOME, "carol-pc", [(CAROL, ["mum@dest.test"])], login=CAROL)


def _guessed(alerts):
    success = int(harness.Day.saved().t(SUCCESS_HOUR))
    mine = [a for a in alerts if a["detector"] == "auth-bruteforce" and a["entity"]["id"].lower() == CAROL]
    early = [a for a in mine if a["_t"] < success]
    return len(mine) == 1 and not early, "%d alert(s) on %s, %d before the attacker's login at %s" % (
        len(mine), CAROL, len(early), time.strftime("%H:%M:%S", time.localtime(success)))


def _once(alerts):
    mine = [a for a in alerts if a["detector"] == "auth-bruteforce" and a["entity"]["kind"] == "network"
            and a["entity"]["id"] == "127.51.3.0/24"]
    return len(mine) == 1, "%d alert(s) on network 127.51.3.0/24 over the day" % len(mine)


def expect(x):
    x.flag("auth-bruteforce", "network", "127.51.3.0/24", "50 failures an hour from 20 addresses of one /24, all day")
    x.check("the day-long attack of 127.51.3.0/24 is one alert, not one an hour", _once)
    x.flag("auth-bruteforce", "account", CAROL, "slowly guessed password used from the guessing AS")
    x.check("carol's guessed password is reported once, at the attacker's login, not during the slow guessing", _guessed)
    x.quiet("client", CAROL_HOME, "carol's home")
    x.quiet("client", harness.in_net("127.51.3."), "one botnet address, at most 3 failures an hour")
    for net in ("127.52.", "127.53.", "127.54."):
        x.quiet("client", harness.in_net(net), "one slow guessing address, 1 failure")
        x.quiet("network", harness.in_net(net), "a slow guessing /24, 1 failure")
    for n in GENERIC:
        x.quiet("account", n, "a guessed name that is no account")
