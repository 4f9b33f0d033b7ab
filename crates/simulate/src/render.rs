//! Sessions to log lines, in Postfix 3.x (+ Dovecot) or Exim 4.97+ format.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::rng::Rng;
use crate::world::Mx;
use crate::LogFormat;

/// What happens to one recipient.
#[derive(Debug, Clone)]
pub enum Fate {
    /// Local mailbox (LMTP to the mail store).
    Local,
    /// Remote accepts.
    Sent(Mx),
    /// Remote: 550 5.1.1 user unknown.
    Unknown(Mx),
    /// Remote: 554 5.7.1 rejected as spam.
    Spam(Mx),
    /// Remote: 554 5.7.1 rejected as malware.
    Malware(Mx),
    /// The domain does not exist.
    NoDomain,
    /// Deferred once (greylisting), accepted on retry.
    Grey(Mx),
    /// The host never answers: deferred on every try.
    Dead(Mx),
    /// Our own MX refuses the recipient at RCPT time: no such local user (incoming mail).
    LocalUnknown,
}

#[derive(Debug, Clone)]
pub struct Rcpt {
    pub addr: String,
    pub fate: Fate,
    /// The address the mail was sent to before alias or `.forward` expansion (Postfix logs
    /// `orig_to=<…>`, Exim `=> new <orig>`).
    pub orig_to: Option<String>,
}

impl Rcpt {
    pub fn new(addr: String, fate: Fate) -> Rcpt {
        Rcpt {
            addr,
            fate,
            orig_to: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub from: String,
    pub size: u32,
    pub rcpts: Vec<Rcpt>,
    /// Bounces to the sender are delivered locally.
    pub local_sender: bool,
    /// Incoming mail to our users: whether it really is spam (the MX's spam filter judges it
    /// and may err, see [`SimFilter`]); `None` for mail the filter does not scan.
    pub spam: Option<bool>,
}

/// Which spam filter the simulated MX runs (one per seed), as a milter before the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// rspamd (its `rspamd_task_write_log` line names the queue id).
    Rspamd,
    /// SpamAssassin's `spamd` behind spamass-milter (its `result:` line names the Message-ID).
    Spamd,
}

/// The MX's spam filter: which one, and how often it is right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimFilter {
    /// Which filter.
    pub kind: FilterKind,
    /// Share of spam it judges spam.
    pub catch: f64,
    /// Share of ham it judges spam.
    pub false_positive: f64,
}

/// rspamd's default `add header` score, at which our simulated rspamd tags (it never rejects:
/// a tagged message is delivered to the user's junk folder).
const RSPAMD_TAG_SCORE: f64 = 6.0;
/// rspamd's default `reject` score (written as the threshold of its log line).
const RSPAMD_REJECT_SCORE: f64 = 15.0;
/// SpamAssassin's default `required_score`.
const SPAMD_REQUIRED: f64 = 5.0;

#[derive(Debug, Clone)]
pub enum Kind {
    /// SMTP session with messages.
    Smtp {
        auth: Option<String>,
        submission: bool,
        helo_rejected: bool,
        /// Mail from the internet to a local address (our MX), not relayed for a customer.
        inbound: bool,
        msgs: Vec<Msg>,
    },
    /// Failed SMTP AUTH attempts (no messages).
    AuthFail { user: String, attempts: u32 },
    /// Dovecot login: success or failure.
    Imap {
        user: String,
        ok: bool,
        pop: bool,
        attempts: u32,
    },
}

#[derive(Debug, Clone)]
pub struct Session {
    pub t: i64,
    pub ip: Ipv4Addr,
    pub host: Option<String>,
    pub helo: String,
    pub kind: Kind,
}

/// The output heap and all per-run rendering state.
pub struct Out {
    pub format: LogFormat,
    pub hostname: String,
    heap: BinaryHeap<Reverse<(i64, u64, String)>>,
    seq: u64,
    inode: u64,
    exim_seq: u64,
    pub rng: Rng,
    year_day_cache: (i64, String),
    pub end: i64,
    /// The MX's spam filter (Postfix format only), judging incoming mail with `spam` set.
    pub filter: Option<SimFilter>,
}

/// The rendering randomness and id counters of one family of populations. The incoming-mail
/// populations render on a stream of their own ([`Out::swap_stream`]), so adding them leaves
/// every line of the other populations byte-identical.
pub struct Stream {
    rng: Rng,
    inode: u64,
    exim_seq: u64,
}

impl Stream {
    /// A stream keyed by `seed` and `tag`, its queue ids counted from `inode` (far from the
    /// main stream's, so ids never collide).
    pub fn new(seed: u64, tag: u64, inode: u64, exim_seq: u64) -> Stream {
        Stream {
            rng: Rng::keyed(&[seed, tag]),
            inode,
            exim_seq,
        }
    }
}

const MICRO: i64 = 1_000_000;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Out {
    pub fn new(format: LogFormat, hostname: &str, seed: u64, end: i64) -> Out {
        Out {
            format,
            hostname: hostname.to_string(),
            heap: BinaryHeap::new(),
            seq: 0,
            inode: 0x10_0000 + (seed % 0x8_0000),
            exim_seq: 0,
            rng: Rng::keyed(&[seed, 0x07]),
            year_day_cache: (i64::MIN, String::new()),
            end,
            filter: None,
        }
    }

    /// Exchange this output's randomness and id counters with `st` (call again to swap back).
    pub fn swap_stream(&mut self, st: &mut Stream) {
        std::mem::swap(&mut self.rng, &mut st.rng);
        std::mem::swap(&mut self.inode, &mut st.inode);
        std::mem::swap(&mut self.exim_seq, &mut st.exim_seq);
    }

    /// Lines due before `t` (micros), in order.
    pub fn drain_before(&mut self, t: i64, mut f: impl FnMut(&str)) {
        while let Some(Reverse((ts, _, _))) = self.heap.peek() {
            if *ts >= t {
                break;
            }
            if let Some(Reverse((_, _, line))) = self.heap.pop() {
                f(&line);
            }
        }
    }

    fn stamp(&mut self, t: i64) -> String {
        let secs = t.div_euclid(MICRO);
        let day = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        if self.year_day_cache.0 != day {
            let (y, m, d) = maillog::time::civil_from_days(day);
            let s = match self.format {
                LogFormat::Postfix => {
                    format!("{} {:>2}", MONTHS[(m as usize).saturating_sub(1) % 12], d)
                }
                LogFormat::Exim => format!("{y:04}-{m:02}-{d:02}"),
            };
            self.year_day_cache = (day, s);
        }
        format!(
            "{} {:02}:{:02}:{:02}",
            self.year_day_cache.1,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }

    fn push(&mut self, t: i64, prog: &str, pid: u32, msg: &str) {
        if t >= self.end {
            return;
        }
        let st = self.stamp(t);
        let line = match self.format {
            LogFormat::Postfix => format!("{st} {} {prog}[{pid}]: {msg}", self.hostname),
            LogFormat::Exim => {
                if prog.is_empty() {
                    format!("{st} {msg}")
                } else {
                    // Dovecot through syslog does not appear in Exim mode.
                    format!("{st} {msg}")
                }
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, line)));
    }

    fn pid(&mut self) -> u32 {
        300 + self.rng.below(4_190_000) as u32
    }

    fn qid(&mut self, t: i64) -> String {
        self.inode += 1 + self.rng.below(3);
        let usec = (t.rem_euclid(MICRO) as u64) & 0xF_FFFF;
        format!("{usec:05X}{:X}", self.inode)
    }

    fn exim_id(&mut self, t: i64, pid: u32) -> String {
        self.exim_seq += 1;
        let secs = t.div_euclid(MICRO) as u64;
        format!(
            "{}-{}-{}",
            b62(secs, 6),
            b62(pid as u64, 11),
            b62(self.exim_seq % 14_776_336, 4)
        )
    }

    fn delay_line(&mut self, total: f64, q: f64) -> String {
        let a = q.max(0.01);
        let c = (self.rng.f64() * 0.3 + 0.05).min(total);
        let d = (total - a - c).max(0.01);
        format!(
            "delay={}, delays={}/0/{}/{}",
            fmt_d(total.max(a + c + d)),
            fmt_d(a),
            fmt_d(c),
            fmt_d(d)
        )
    }

    /// Render a session. Returns the accept times (micros) of its queued messages.
    pub fn session(&mut self, s: &Session) -> Vec<i64> {
        match self.format {
            LogFormat::Postfix => self.postfix(s),
            LogFormat::Exim => self.exim(s),
        }
    }

    fn peer(s: &Session) -> String {
        format!("{}[{}]", s.host.as_deref().unwrap_or("unknown"), s.ip)
    }

    fn postfix(&mut self, s: &Session) -> Vec<i64> {
        let mut accepted = Vec::new();
        let peer = Self::peer(s);
        let pid = self.pid();
        let mut t = s.t;
        match &s.kind {
            Kind::Imap {
                user,
                ok,
                pop,
                attempts,
            } => {
                let svc = if *pop { "pop3-login" } else { "imap-login" };
                let sid = self.session_id();
                let msg = if *ok {
                    let mpid = self.pid();
                    format!("{svc}: Login: user=<{user}>, method=PLAIN, rip={}, lip=10.20.0.5, mpid={mpid}, TLS, session=<{sid}>", s.ip)
                } else {
                    format!(
                        "{svc}: Disconnected (auth failed, {attempts} attempts in {} secs): user=<{user}>, method=PLAIN, rip={}, lip=10.20.0.5, TLS, session=<{sid}>",
                        2 + attempts * 2,
                        s.ip
                    )
                };
                self.push(t, "dovecot", 0, &msg);
                return accepted;
            }
            Kind::AuthFail { attempts, .. } => {
                let prog = "postfix/submission/smtpd";
                self.push(t, prog, pid, &format!("connect from {peer}"));
                for _ in 0..*attempts {
                    t += MICRO / 2 + self.rng.below(2 * MICRO as u64) as i64;
                    self.push(
                        t,
                        prog,
                        pid,
                        &format!("warning: {peer}: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
                    );
                }
                t += MICRO / 5;
                let n = *attempts;
                self.push(
                    t,
                    prog,
                    pid,
                    &format!(
                        "disconnect from {peer} ehlo=2 starttls=1 auth=0/{n} quit=1 commands=4/{}",
                        4 + n
                    ),
                );
                return accepted;
            }
            Kind::Smtp { .. } => {}
        }
        let Kind::Smtp {
            auth,
            submission,
            helo_rejected,
            inbound,
            msgs,
        } = &s.kind
        else {
            return accepted;
        };
        let prog = if *submission {
            "postfix/submission/smtpd"
        } else {
            "postfix/smtpd"
        };
        self.push(t, prog, pid, &format!("connect from {peer}"));
        let (mut mail, mut rcpt_ok, mut rcpt_all, mut data) = (0u32, 0u32, 0u32, 0u32);
        for m in msgs {
            t += 200_000 + self.rng.below(600_000) as i64;
            mail += 1;
            if *helo_rejected {
                for r in &m.rcpts {
                    rcpt_all += 1;
                    t += 30_000;
                    let line = format!(
                        "NOQUEUE: reject: RCPT from {peer}: 504 5.5.2 <{h}>: Helo command rejected: need fully-qualified hostname; from=<{f}> to=<{to}> proto=ESMTP helo=<{h}>",
                        h = s.helo,
                        f = m.from,
                        to = r.addr
                    );
                    self.push(t, prog, pid, &line);
                }
                continue;
            }
            // Recipients our MX refuses at RCPT time (incoming mail to unknown local users).
            let kept;
            let m = if m.rcpts.iter().any(|r| matches!(r.fate, Fate::LocalUnknown)) {
                for r in m
                    .rcpts
                    .iter()
                    .filter(|r| matches!(r.fate, Fate::LocalUnknown))
                {
                    rcpt_all += 1;
                    t += 30_000;
                    let line = format!(
                        "NOQUEUE: reject: RCPT from {peer}: 550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table; from=<{f}> to=<{to}> proto=ESMTP helo=<{h}>",
                        h = s.helo,
                        f = m.from,
                        to = r.addr
                    );
                    self.push(t, prog, pid, &line);
                }
                kept = Msg {
                    rcpts: m
                        .rcpts
                        .iter()
                        .filter(|r| !matches!(r.fate, Fate::LocalUnknown))
                        .cloned()
                        .collect(),
                    ..m.clone()
                };
                if kept.rcpts.is_empty() {
                    continue;
                }
                &kept
            } else {
                m
            };
            let action = if auth.is_some() {
                "permit_sasl_authenticated"
            } else if *inbound {
                "permit_auth_destination"
            } else {
                "permit_mynetworks"
            };
            let qid = self.qid(t);
            for (k, r) in m.rcpts.iter().enumerate() {
                rcpt_all += 1;
                rcpt_ok += 1;
                t += 20_000 + self.rng.below(60_000) as i64;
                let q = if k == 0 { "NOQUEUE" } else { qid.as_str() };
                let line = format!(
                    "{q}: permit: RCPT from {peer}: action={action} for Client host={peer}; from=<{f}> to=<{to}> proto=ESMTP helo=<{h}>",
                    f = m.from,
                    to = r.orig_to.as_deref().unwrap_or(&r.addr),
                    h = s.helo
                );
                self.push(t, prog, pid, &line);
                if k == 0 {
                    let c = match auth {
                        Some(u) => {
                            format!("{qid}: client={peer}, sasl_method=PLAIN, sasl_username={u}")
                        }
                        None => format!("{qid}: client={peer}"),
                    };
                    self.push(t + 1, prog, pid, &c);
                }
            }
            data += 1;
            t += 100_000 + self.rng.below(400_000) as i64;
            let cpid = 1000 + self.rng.below(400) as u32 * 7;
            let mid = format!(
                "{}.{}@{}",
                t / MICRO,
                self.rng.below(1 << 40),
                m.from.rsplit('@').next().unwrap_or("localhost")
            );
            self.push(
                t,
                "postfix/cleanup",
                cpid,
                &format!("{qid}: message-id=<{mid}>"),
            );
            t += 5_000;
            if *inbound {
                if let (Some(f), Some(is_spam)) = (self.filter, m.spam) {
                    t += 20_000 + self.rng.below(200_000) as i64;
                    self.filter_line(t, f, is_spam, &qid, &mid, s, m);
                }
            }
            let n = m.rcpts.len();
            self.push(
                t,
                "postfix/qmgr",
                1203,
                &format!(
                    "{qid}: from=<{}>, size={}, nrcpt={n} (queue active)",
                    m.from, m.size
                ),
            );
            if t < self.end {
                accepted.push(t);
            }
            self.deliveries(t, &qid, m);
        }
        t += 50_000;
        let mut c = String::new();
        let mut total = 0u32;
        let mut ok = 0u32;
        let mut add = |c: &mut String, name: &str, good: u32, all: u32| {
            if all == 0 {
                return;
            }
            if good == all {
                let _ = write!(c, " {name}={all}");
            } else {
                let _ = write!(c, " {name}={good}/{all}");
            }
            total += all;
            ok += good;
        };
        if *submission {
            add(&mut c, "ehlo", 2, 2);
            add(&mut c, "starttls", 1, 1);
        } else {
            add(&mut c, "ehlo", 1, 1);
        }
        if auth.is_some() {
            add(&mut c, "auth", 1, 1);
        }
        add(&mut c, "mail", mail, mail);
        add(&mut c, "rcpt", rcpt_ok, rcpt_all);
        add(&mut c, "data", data, data);
        add(&mut c, "quit", 1, 1);
        let cmds = if ok == total {
            format!("commands={total}")
        } else {
            format!("commands={ok}/{total}")
        };
        self.push(t, prog, pid, &format!("disconnect from {peer}{c} {cmds}"));
        accepted
    }

    /// The spam filter's verdict line on one incoming message (rspamd's or spamd's, see
    /// [`FilterKind`]): spam is judged spam with probability `catch`, ham with
    /// `false_positive`.
    #[allow(clippy::too_many_arguments)]
    fn filter_line(
        &mut self,
        t: i64,
        f: SimFilter,
        is_spam: bool,
        qid: &str,
        mid: &str,
        s: &Session,
        m: &Msg,
    ) {
        let flagged = self
            .rng
            .chance(if is_spam { f.catch } else { f.false_positive });
        let rcpt = m.rcpts.first().map(|r| r.addr.as_str()).unwrap_or("");
        match f.kind {
            FilterKind::Rspamd => {
                let score = if flagged {
                    RSPAMD_TAG_SCORE
                        + self.rng.f64() * (RSPAMD_REJECT_SCORE - RSPAMD_TAG_SCORE - 0.1)
                } else {
                    -2.0 + self.rng.f64() * (RSPAMD_TAG_SCORE + 1.9)
                };
                let (letter, action, symbols) = if flagged {
                    ("T", "add header", "BAYES_SPAM(5.10){99.1%;},MIME_HTML_ONLY(0.20){},R_SPF_SOFTFAIL(0.00){~all;}")
                } else {
                    ("F", "no action", "BAYES_HAM(-3.00){99.9%;},R_SPF_ALLOW(-0.20){+ip4;},MIME_GOOD(-0.10){text/plain;}")
                };
                let tag = self.rng.below(1 << 24);
                let ms = 20 + self.rng.below(400);
                let dns = self.rng.below(20);
                let digest = self.rng.next_u64();
                let line = format!(
                    "<{tag:06x}>; task; rspamd_task_write_log: id: <{mid}>, qid: <{qid}>, ip: {ip}, from: <{from}>, (default: {letter} ({action}): [{score:.2}/{RSPAMD_REJECT_SCORE:.2}] [{symbols}]), len: {len}, time: {ms}.{frac}ms, dns req: {dns}, digest: <{digest:016x}>, rcpts: <{rcpt}>, mime_rcpts: <{rcpt}>",
                    ip = s.ip,
                    from = m.from,
                    len = m.size,
                    frac = self.rng.below(1000),
                );
                self.push(t, "rspamd", 2800, &line);
            }
            FilterKind::Spamd => {
                let score = if flagged {
                    SPAMD_REQUIRED + self.rng.f64() * 12.0
                } else {
                    -3.0 + self.rng.f64() * (SPAMD_REQUIRED + 2.9)
                };
                let (flag, tests) = if flagged {
                    (
                        "Y",
                        "BAYES_99,HTML_MESSAGE,RCVD_IN_SBL_CSS,URIBL_ABUSE_SURBL",
                    )
                } else {
                    (".", "BAYES_00,DKIM_SIGNED,DKIM_VALID,SPF_PASS")
                };
                let line = format!(
                    "spamd: result: {flag} {score} - {tests} scantime={st}.{sf},size={size},user=spamass-milter,uid=117,required_score={SPAMD_REQUIRED:.1},rhost=localhost,raddr=127.0.0.1,rport={port},mid=<{mid}>,autolearn=no",
                    score = score.round() as i64,
                    st = self.rng.below(4),
                    sf = self.rng.below(10),
                    size = m.size,
                    port = 30_000 + self.rng.below(30_000),
                );
                self.push(t, "spamd", 4100, &line);
            }
        }
    }

    fn session_id(&mut self) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..16)
            .map(|_| B64[self.rng.below(64) as usize] as char)
            .collect()
    }

    /// Postfix delivery, bounce and removal lines of one queued message.
    fn deliveries(&mut self, t0: i64, qid: &str, m: &Msg) {
        let mut last = t0;
        let mut bounced = 0;
        let mut pending = false;
        for r in &m.rcpts {
            let spid = 2000 + self.rng.below(3000) as u32;
            let mut t = t0 + 100_000 + self.rng.below(2_000_000) as i64;
            let lat = (t - t0) as f64 / 1e6;
            let to = &r.addr;
            // The log's `to=<…>` field, with `orig_to=<…>` after alias expansion.
            let tof = match &r.orig_to {
                Some(o) => format!("{to}>, orig_to=<{o}"),
                None => to.clone(),
            };
            let line = match &r.fate {
                Fate::Local => {
                    let mx = format!("mailstore1.{}[10.20.0.11]:24", self.domain_of_host());
                    let dl = self.delay_line(lat, lat * 0.3);
                    let tag = self.rng.below(1 << 32);
                    self.push(t, "postfix/lmtp", spid, &format!("{qid}: to=<{tof}>, relay={mx}, {dl}, dsn=2.0.0, status=sent (250 2.0.0 <{to}> 9Ckx{tag:08x} Saved)"));
                    None
                }
                Fate::Sent(mx) => Some((
                    mx,
                    "2.0.0",
                    "sent",
                    mx.ok
                        .replace("<msg>", &format!("<{qid}@{}>", self.hostname)),
                )),
                Fate::Unknown(mx) => {
                    bounced += 1;
                    Some((mx, "5.1.1", "bounced", format!("host {}[{}] said: 550 5.1.1 <{to}>: Recipient address rejected: User unknown (in reply to RCPT TO command)", mx.host, mx.ip)))
                }
                Fate::Spam(mx) => {
                    bounced += 1;
                    Some((mx, "5.7.1", "bounced", format!("host {}[{}] said: 554 5.7.1 Message rejected as spam (in reply to end of DATA command)", mx.host, mx.ip)))
                }
                Fate::Malware(mx) => {
                    bounced += 1;
                    Some((mx, "5.7.1", "bounced", format!("host {}[{}] said: 554 5.7.1 Message rejected: virus found in attachment (in reply to end of DATA command)", mx.host, mx.ip)))
                }
                Fate::NoDomain => {
                    bounced += 1;
                    let dom = to.rsplit('@').next().unwrap_or("");
                    let dl = self.delay_line(lat, lat * 0.5);
                    self.push(t, "postfix/smtp", spid, &format!("{qid}: to=<{tof}>, relay=none, {dl}, dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for name={dom} type=MX: Host not found)"));
                    None
                }
                Fate::Grey(mx) => {
                    let dl = self.delay_line(lat, lat * 0.3);
                    self.push(t, "postfix/smtp", spid, &format!("{qid}: to=<{tof}>, relay={}[{}]:25, {dl}, dsn=4.7.1, status=deferred (host {}[{}] said: 451 4.7.1 Greylisted, please try again later (in reply to RCPT TO command))", mx.host, mx.ip, mx.host, mx.ip));
                    t += (300 + self.rng.below(700) as i64) * MICRO;
                    let lat2 = (t - t0) as f64 / 1e6;
                    let dl = self.delay_line(lat2, lat2 - 1.0);
                    let spid2 = 2000 + self.rng.below(3000) as u32;
                    let ok = mx
                        .ok
                        .replace("<msg>", &format!("<{qid}@{}>", self.hostname));
                    self.push(t, "postfix/smtp", spid2, &format!("{qid}: to=<{tof}>, relay={}[{}]:25, {dl}, dsn=2.0.0, status=sent ({ok})", mx.host, mx.ip));
                    None
                }
                Fate::LocalUnknown => None,
                Fate::Dead(mx) => {
                    pending = true;
                    let mut back = 300i64;
                    let mut n = 0;
                    while t < self.end && n < 64 {
                        let lat = (t - t0) as f64 / 1e6;
                        let dl = self.delay_line(lat, lat - 0.5);
                        let spid = 2000 + self.rng.below(3000) as u32;
                        self.push(t, "postfix/smtp", spid, &format!("{qid}: to=<{tof}>, relay=none, {dl}, dsn=4.4.1, status=deferred (connect to {}[{}]:25: Connection timed out)", mx.host, mx.ip));
                        t += back * MICRO + 30 * MICRO;
                        back = (back * 2).min(4000);
                        n += 1;
                    }
                    None
                }
            };
            if let Some((mx, dsn, status, reply)) = line {
                let dl = self.delay_line(lat, lat * 0.3);
                self.push(t, "postfix/smtp", spid, &format!("{qid}: to=<{tof}>, relay={}[{}]:25, {dl}, dsn={dsn}, status={status} ({reply})", mx.host, mx.ip));
            }
            last = last.max(t);
        }
        if pending {
            return;
        }
        let mut t = last + 20_000;
        if bounced > 0 {
            let bq = self.qid(t);
            let bpid = 4000 + self.rng.below(100) as u32;
            self.push(
                t,
                "postfix/bounce",
                bpid,
                &format!("{qid}: sender non-delivery notification: {bq}"),
            );
            t += 3_000;
            let cpid = 1000 + self.rng.below(400) as u32 * 7;
            self.push(
                t,
                "postfix/cleanup",
                cpid,
                &format!("{bq}: message-id=<{}.{bq}@{}>", t / MICRO, self.hostname),
            );
            t += 3_000;
            self.push(
                t,
                "postfix/qmgr",
                1203,
                &format!(
                    "{bq}: from=<>, size={}, nrcpt=1 (queue active)",
                    2400 + m.size.min(60_000)
                ),
            );
            t += 10_000;
            if m.local_sender {
                let dl = self.delay_line(0.05, 0.01);
                let host = self.domain_of_host();
                let lp = 2000 + self.rng.below(3000) as u32;
                let tag = self.rng.below(1 << 32);
                self.push(t, "postfix/lmtp", lp, &format!("{bq}: to=<{}>, relay=mailstore1.{host}[10.20.0.11]:24, {dl}, dsn=2.0.0, status=sent (250 2.0.0 <{}> 9Ckx{tag:08x} Saved)", m.from, m.from));
            } else {
                let dl = self.delay_line(0.8, 0.01);
                let dom = m.from.rsplit('@').next().unwrap_or("invalid");
                let sp = 2000 + self.rng.below(3000) as u32;
                self.push(t, "postfix/smtp", sp, &format!("{bq}: to=<{}>, relay=none, {dl}, dsn=5.4.4, status=bounced (Host or domain name not found. Name service error for name={dom} type=MX: Host not found)", m.from));
            }
            t += 3_000;
            self.push(t, "postfix/qmgr", 1203, &format!("{bq}: removed"));
        }
        self.push(t + 1_000, "postfix/qmgr", 1203, &format!("{qid}: removed"));
    }

    fn domain_of_host(&self) -> String {
        "example-isp.de".to_string()
    }

    fn exim(&mut self, s: &Session) -> Vec<i64> {
        let mut accepted = Vec::new();
        let mut t = s.t;
        let port = 49152 + self.rng.below(16000);
        let hpart = match &s.host {
            Some(h) if *h == s.helo => h.to_string(),
            Some(h) => format!("{h} ({})", s.helo),
            None => format!("({})", s.helo),
        };
        match &s.kind {
            Kind::Imap { .. } => return accepted,
            Kind::AuthFail { user, attempts } => {
                for _ in 0..*attempts {
                    t += MICRO / 2 + self.rng.below(2 * MICRO as u64) as i64;
                    self.push(t, "", 0, &format!("dovecot_login authenticator failed for ({}) [{}]:{port}: 535 Incorrect authentication data (set_id={user})", s.helo, s.ip));
                }
                return accepted;
            }
            Kind::Smtp { .. } => {}
        }
        let Kind::Smtp {
            auth,
            submission,
            msgs,
            ..
        } = &s.kind
        else {
            return accepted;
        };
        let pid = self.pid();
        for m in msgs {
            t += 300_000 + self.rng.below(700_000) as i64;
            let id = self.exim_id(t, pid);
            let (lport, proto, a) = match auth {
                Some(u) => (
                    587,
                    "esmtpsa",
                    format!(" X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_plain:{u}"),
                ),
                None if *submission => (
                    587,
                    "esmtps",
                    " X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no".to_string(),
                ),
                None => (25, "esmtp", String::new()),
            };
            // Recipients our MX refuses at RCPT time (incoming mail to unknown local users):
            // Exim's router finds no local user, "Unrouteable address".
            let kept;
            let m = if m.rcpts.iter().any(|r| matches!(r.fate, Fate::LocalUnknown)) {
                for r in m
                    .rcpts
                    .iter()
                    .filter(|r| matches!(r.fate, Fate::LocalUnknown))
                {
                    self.push(t, "", 0, &format!("H={hpart} [{}]:{port} I=[10.20.0.2]:25 F=<{}> rejected RCPT <{}>: Unrouteable address", s.ip, m.from, r.addr));
                    t += 30_000;
                }
                kept = Msg {
                    rcpts: m
                        .rcpts
                        .iter()
                        .filter(|r| !matches!(r.fate, Fate::LocalUnknown))
                        .cloned()
                        .collect(),
                    ..m.clone()
                };
                if kept.rcpts.is_empty() {
                    continue;
                }
                &kept
            } else {
                m
            };
            let mid = format!(
                "{}.{}@{}",
                t / MICRO,
                self.rng.below(1 << 40),
                m.from.rsplit('@').next().unwrap_or("localhost")
            );
            self.push(t, "", 0, &format!("{id} <= {} H={hpart} [{}]:{port} I=[10.20.0.2]:{lport} P={proto}{a} S={} id={mid}", m.from, s.ip, m.size));
            if t < self.end {
                accepted.push(t);
            }
            let mut last = t;
            let mut bounced = false;
            let mut pending = false;
            for r in &m.rcpts {
                let mut tt = t + 100_000 + self.rng.below(2_000_000) as i64;
                let to = &r.addr;
                // The delivery line's address, with the original one after alias expansion.
                let tof = match &r.orig_to {
                    Some(o) => format!("{to} <{o}>"),
                    None => to.clone(),
                };
                match &r.fate {
                    Fate::Local => self.push(tt, "", 0, &format!("{id} => {tof} R=localuser T=dovecot_lmtp H=mailstore1.example-isp.de [10.20.0.11] C=\"250 2.0.0 <{to}> Saved\"")),
                    Fate::Sent(mx) => {
                        let ok = mx.ok.replace("<msg>", &format!("<{id}@{}>", self.hostname));
                        self.push(tt, "", 0, &format!("{id} => {tof} R=dnslookup T=remote_smtp H={} [{}] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"{ok}\"", mx.host, mx.ip));
                    }
                    Fate::Unknown(mx) => {
                        bounced = true;
                        self.push(tt, "", 0, &format!("{id} ** {tof} R=dnslookup T=remote_smtp H={} [{}]: SMTP error from remote mail server after RCPT TO:<{to}>: 550 5.1.1 <{to}>: Recipient address rejected: User unknown", mx.host, mx.ip));
                    }
                    Fate::Spam(mx) | Fate::Malware(mx) => {
                        bounced = true;
                        let why = if matches!(r.fate, Fate::Spam(_)) { "Message rejected as spam" } else { "Message rejected: virus found in attachment" };
                        self.push(tt, "", 0, &format!("{id} ** {tof} R=dnslookup T=remote_smtp H={} [{}]: SMTP error from remote mail server after end of data: 554 5.7.1 {why}", mx.host, mx.ip));
                    }
                    Fate::NoDomain => {
                        bounced = true;
                        self.push(tt, "", 0, &format!("{id} ** {tof}: Unrouteable address"));
                    }
                    Fate::Grey(mx) => {
                        self.push(tt, "", 0, &format!("{id} == {tof} R=dnslookup T=remote_smtp defer (-44) H={} [{}]: SMTP error from remote mail server after RCPT TO:<{to}>: 451 4.7.1 Greylisted, please try again later", mx.host, mx.ip));
                        tt += (300 + self.rng.below(700) as i64) * MICRO;
                        let ok = mx.ok.replace("<msg>", &format!("<{id}@{}>", self.hostname));
                        self.push(tt, "", 0, &format!("{id} => {tof} R=dnslookup T=remote_smtp H={} [{}] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"{ok}\"", mx.host, mx.ip));
                    }
                    Fate::LocalUnknown => {}
                    Fate::Dead(mx) => {
                        pending = true;
                        let mut back = 900i64;
                        let mut n = 0;
                        while tt < self.end && n < 64 {
                            self.push(tt, "", 0, &format!("{id} == {tof} R=dnslookup T=remote_smtp defer (110): Connection timed out H={} [{}]", mx.host, mx.ip));
                            tt += back * MICRO;
                            back = (back * 3 / 2).min(7200);
                            n += 1;
                        }
                    }
                }
                last = last.max(tt);
            }
            if pending {
                continue;
            }
            let mut tc = last + 20_000;
            if bounced {
                let bid = self.exim_id(tc, pid.wrapping_add(1));
                self.push(
                    tc,
                    "",
                    0,
                    &format!(
                        "{bid} <= <> R={id} U=Debian-exim P=local S={}",
                        2400 + m.size.min(60_000)
                    ),
                );
                tc += 10_000;
                if m.local_sender {
                    self.push(tc, "", 0, &format!("{bid} => {} R=localuser T=dovecot_lmtp H=mailstore1.example-isp.de [10.20.0.11] C=\"250 2.0.0 <{}> Saved\"", m.from, m.from));
                } else {
                    self.push(
                        tc,
                        "",
                        0,
                        &format!("{bid} ** {}: Unrouteable address", m.from),
                    );
                }
                self.push(tc + 1_000, "", 0, &format!("{bid} Completed"));
            }
            self.push(tc + 2_000, "", 0, &format!("{id} Completed"));
        }
        accepted
    }
}

fn fmt_d(x: f64) -> String {
    if x >= 10.0 {
        format!("{}", x.round() as i64)
    } else if x >= 0.1 {
        let s = format!("{x:.1}");
        s.trim_end_matches(".0").to_string()
    } else {
        let s = format!("{x:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() {
            "0".to_string()
        } else {
            s.to_string()
        }
    }
}

fn b62(mut v: u64, width: usize) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for i in (0..width).rev() {
        out[i] = A[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}
