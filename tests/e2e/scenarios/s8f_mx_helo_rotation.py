"""A spam host with a new HELO on every connection, all its mail accepted (incoming-helo, live).

Live, no AUTH, to our MX (XCLIENT, see s8_mx_botnet). 198.18.12.7 sends 12 spams to real users
of ours in 4 back-to-back connections, greeting each time with a new invented name; nothing is
refused, so Postfix logs none of its HELOs (it logs them on reject lines only) and they reach
smtpscope only from serve's policy requests, lent to the log's messages of the session.
Documented rule (docs/DETECTION.md "Incoming mail", incoming-helo): >= `max_helos` (3)
distinct HELO names from one host in the window → `client 198.18.12.7`. Only serve can see
it: `analyze` of the log alone has no HELO of accepted mail (LIVE_ONLY, left out of the
analyze comparison).

Found by this scenario: serve kept one latest policy HELO per (address, SASL name) and lent it
when the message's `client=` log line was read; the log follower reads those lines after the
next sessions' requests had replaced it, so the 12 messages did not carry their 4 names and
nothing fired (with a 1 s pause after each connection it did). Now every SMTP transaction's HELO
is kept with its sender and each message takes its own at its `from=` line (detect::claims,
SessionHelos; docs/DETECTION.md "Where the HELO comes from").
"""
import harness
import ordinary

BOT = "198.18.12.7"
LIVE_ONLY = [("incoming-helo", "client", BOT)]


def drive(d):
    for c in range(4):
        helo = "pc%d-%s.invalid-isp.example" % (c, "xqzv"[c] * 3)
        d.mx_send(BOT, helo, [("promo%d@deals%d.example" % (c, m), [ordinary.USERS[(c * 3 + m) % len(ordinary.USERS)]])
                              for m in range(3)])


def expect(x):
    x.flag("incoming-helo", "client", BOT, "4 distinct HELO names in 4 connections")
