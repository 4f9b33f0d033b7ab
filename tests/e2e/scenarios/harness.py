"""The scenarios' shared harness: real SMTP and IMAP clients, the day-before log writer, and the
expectations a scenario declares (what must be flagged, what must stay quiet).

Everything talks to 127.0.0.1 only; a client's source address is any 127.x.y.z (Linux routes
all of 127.0.0.0/8 to the loopback interface).
"""
import imaplib
import os
import random
import smtplib
import threading
import time

T = os.environ.get("SCEN_T", "")
SMTP_PORT = int(os.environ.get("SCEN_SMTP", "0"))
IMAP_PORT = int(os.environ.get("SCEN_IMAP", "0"))
DOMAIN = "e2e.test"
# Where internet hosts (non-loopback addresses) connect from, handing Postfix their address
# with XCLIENT (postfix.sh: smtpd_authorized_xclient_hosts). smtpscope takes a loopback client
# outside own_networks for this host itself (a content filter, a local script: DETECTION.md
# "Infected customers on port 25"), so the incoming rules would never see one.
INTERNET_GATEWAY = "127.99.0.1"
PASSWORD = "secret"


class Driver:
    """Real clients. Every call records what happened in `self.records` (scenario, what, ok)."""

    def __init__(self):
        self.records = []
        self.scenario = ""

    def _rec(self, what, ok, **kw):
        r = dict(scenario=self.scenario, what=what, ok=ok, t=time.time())
        r.update(kw)
        self.records.append(r)
        return ok

    def parallel(self, *steps):
        """Run the steps (functions of no arguments) at once, as independent clients do (a
        botnet's addresses, a phone next to a laptop); Dovecot answers each failed login only
        after a delay, so one after the other a dictionary attack would take minutes."""
        threads = [threading.Thread(target=f) for f in steps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def send(self, src, helo, messages, login=None, password=PASSWORD):
        """One SMTP session from `src`: EHLO `helo`, AUTH as `login` (if given), then each
        (sender, recipients) of `messages`. Returns how many messages Postfix accepted."""
        accepted = 0
        try:
            s = smtplib.SMTP("127.0.0.1", SMTP_PORT, source_address=(src, 0), timeout=30)
        except OSError as e:
            self._rec("connect", False, src=src, error=str(e))
            return 0
        try:
            s.ehlo(helo)
            if login:
                s.login(login, password)
            for n, (sender, rcpts) in enumerate(messages):
                msg = "From: %s\r\nTo: %s\r\nSubject: %s %d\r\n\r\nhello\r\n" % (sender, rcpts[0], helo, n)
                try:
                    s.sendmail(sender, rcpts, msg)
                    accepted += 1
                    self._rec("send", True, src=src, sender=sender, login=login, rcpts=rcpts)
                except smtplib.SMTPRecipientsRefused as e:
                    self._rec("send", False, src=src, sender=sender, login=login, error=str(e.recipients))
                    s.rset()
        except smtplib.SMTPException as e:
            self._rec("send", False, src=src, login=login, error=str(e))
        finally:
            try:
                s.quit()
            except Exception:
                pass
        return accepted

    def mx_send(self, src, helo, messages):
        """One SMTP session to our MX from `src` (no AUTH): EHLO `helo`, then each (sender,
        recipients) of `messages`. An `src` outside 127/8 is an internet host: the session
        comes from INTERNET_GATEWAY and hands Postfix `src` with XCLIENT. A step is ok when Postfix refused exactly the recipients of
        our domain that have no mailbox (`mailboxes()`), each with its own "User unknown in
        virtual mailbox table", and accepted the rest. Returns (delivered, refused) counts."""
        boxes = mailboxes()
        delivered = refused = 0
        internet = not src.startswith("127.")
        try:
            s = smtplib.SMTP("127.0.0.1", SMTP_PORT, source_address=(INTERNET_GATEWAY if internet else src, 0), timeout=30)
        except OSError as e:
            self._rec("connect", False, src=src, error=str(e))
            return 0, 0
        try:
            if internet:
                # Postfix answers a new greeting (220) and takes `src` as the client.
                code, resp = s.docmd("XCLIENT", "NAME=[UNAVAILABLE] ADDR=" + src)
                if code != 220:
                    raise smtplib.SMTPResponseException(code, resp)
            s.ehlo(helo)
            for n, (sender, rcpts) in enumerate(messages):
                msg = "From: %s\r\nTo: %s\r\nSubject: %s %d\r\n\r\nhello\r\n" % (sender, rcpts[0], helo, n)
                try:
                    got = s.sendmail(sender, rcpts, msg)
                except smtplib.SMTPRecipientsRefused as e:
                    got = e.recipients
                    s.rset()
                want = {r.lower() for r in rcpts if r.lower() not in boxes}
                wording = all(b"User unknown in virtual mailbox table" in v[1] for v in got.values())
                ok = {r.lower() for r in got} == want and wording
                delivered += len(rcpts) - len(got)
                refused += len(got)
                self._rec("mx-send", ok, src=src, helo=helo, sender=sender, rcpts=rcpts,
                          refused={k: v[1].decode(errors="replace") for k, v in got.items()})
        except smtplib.SMTPException as e:
            self._rec("mx-send", False, src=src, error=str(e))
        finally:
            try:
                s.quit()
            except Exception:
                pass
        return delivered, refused

    def auth_fail(self, src, users, helo=None, per_session=3):
        """Failed SMTP AUTH (wrong password) for each name in `users`, `per_session` attempts
        per connection (Postfix slows a session down after 10 errors)."""
        users = list(users)
        for i in range(0, len(users), per_session):
            try:
                s = smtplib.SMTP("127.0.0.1", SMTP_PORT, source_address=(src, 0), timeout=30)
            except OSError as e:
                self._rec("connect", False, src=src, error=str(e))
                continue
            try:
                s.ehlo(helo or "pc-" + src.replace(".", "-"))
                for u in users[i:i + per_session]:
                    try:
                        s.login(u, "wrong-" + u)
                        self._rec("auth-fail", False, src=src, user=u, error="login succeeded")
                    except smtplib.SMTPAuthenticationError:
                        self._rec("auth-fail", True, src=src, user=u)
            except smtplib.SMTPException as e:
                self._rec("auth-fail", False, src=src, error=str(e))
            finally:
                try:
                    s.quit()
                except Exception:
                    pass

    def _imap(self, src, user, password):
        c = _imap_from(src)
        try:
            c.login(user, password)
            c.select("INBOX")
            c.logout()
            return True
        except imaplib.IMAP4.error:
            try:
                c.logout()
            except Exception:
                pass
            return False

    def imap_login(self, src, user, password=PASSWORD):
        ok = self._imap(src, user, password)
        return self._rec("imap-login", ok, src=src, user=user)

    def imap_fail(self, src, users):
        for u in users:
            ok = not self._imap(src, u, "wrong-" + u)
            self._rec("imap-fail", ok, src=src, user=u)


def mailboxes():
    """Our MX's mailboxes (Postfix's virtual_mailbox_maps, written by `run.py setup`: every
    account), lower case."""
    with open(os.path.join(T, "vmailbox")) as f:
        return {l.split()[0].lower() for l in f if l.strip()}


def _imap_from(src):
    """imaplib has no source address; connect the socket ourselves."""

    class FromSrc(imaplib.IMAP4):
        def _create_socket(self, timeout):
            import socket

            return socket.create_connection((self.host, self.port), timeout, source_address=(src, 0))

    return FromSrc("127.0.0.1", IMAP_PORT, timeout=30)


class Day:
    """Log lines of the day before the live run, in the live servers' own format (Dovecot
    2.3 with this harness's syslog-style `log_timestamp`), written before anything starts.
    `t(hours, minutes)` is a time of that day: hours 0..24 after `start` (25 h before now)."""

    def __init__(self, start):
        self.start = start
        self.lines = []
        self.rng = random.Random(9)
        self.pid = 20000

    def save(self):
        with open(os.path.join(T, "day-start"), "w") as f:
            f.write("%d\n" % self.start)

    @staticmethod
    def saved():
        """The day the setup step wrote (for checks, which run in another process)."""
        return Day(int(open(os.path.join(T, "day-start")).read()))

    def t(self, hours, minutes=0.0, seconds=0.0):
        return self.start + hours * 3600 + minutes * 60 + seconds

    def _session(self):
        a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        return "".join(self.rng.choice(a) for _ in range(16))

    def _add(self, ts, msg):
        self.lines.append((ts, len(self.lines), msg))

    def imap_login(self, ts, user, ip):
        self.pid += 1
        sess = self._session()
        self._add(ts, "imap-login: Info: Login: user=<%s>, method=PLAIN, rip=%s, lip=127.0.0.1, mpid=%d, session=<%s>"
                  % (user, ip, self.pid, sess))
        self._add(ts + 1, "imap(%s)<%d><%s>: Info: Disconnected: Logged out in=32 out=788 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0"
                  % (user, self.pid, sess))

    def imap_fail(self, ts, user, ip):
        self._add(ts, "imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 1 secs): user=<%s>, method=PLAIN, rip=%s, lip=127.0.0.1, session=<%s>"
                  % (user, ip, self._session()))

    def render(self):
        out = []
        for ts, _, msg in sorted(self.lines):
            out.append(time.strftime("%b %d %H:%M:%S", time.localtime(ts)) + " mx dovecot: " + msg)
        return out


class Expect:
    """What one scenario requires of the alerts (alerts.jsonl) and of containment."""

    def __init__(self, name):
        self.name = name
        self.flags = []   # (detector, kind, matcher, why, extra_check)
        self.quiets = []  # (kind, matcher, why)
        self.allows = []  # (detector, kind, matcher): true alerts, not required
        self.checks = []  # (why, function(alerts) -> (ok, detail))

    def flag(self, detector, kind, ident, why):
        """At least one alert of `detector` on entity (`kind`, `ident`) (an id, or a function of
        the id). The entity may have other alerts of true detectors too (`allow`)."""
        self.flags.append((detector, kind, _matcher(ident), why, ident))
        self.allows.append((detector, kind, _matcher(ident)))

    def quiet(self, kind, ident, why):
        """No alert of any detector on the entity, and it is never contained."""
        self.quiets.append((kind, _matcher(ident), why, ident))

    def quiet_sender_domain(self, domain, why):
        """No `sender` alert on `@domain` or any `local@domain`."""
        self.quiet("sender", lambda i, d=domain.lower(): i.lower() == "@" + d or i.lower().endswith("@" + d), why)

    def allow(self, detector, kind, ident):
        self.allows.append((detector, kind, _matcher(ident)))

    def check(self, why, fn):
        self.checks.append((why, fn))


def _matcher(ident):
    if callable(ident):
        return ident
    return lambda i, x=ident.lower(): i.lower() == x


def in_net(prefix):
    """Matcher: an address or network id in the dotted `prefix` ("127.41.")."""
    return lambda i: i.startswith(prefix)
