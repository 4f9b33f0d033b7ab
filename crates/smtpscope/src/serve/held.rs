//! Postfix's hold queue, end to end: which queue ids Postfix held for a contained entity (from
//! the mail log's `hold:` lines and from policy requests that carry a `queue_id`), and the
//! `postsuper` commands that release or delete them.
//!
//! Postfix logs a HOLD from `check_policy_service` at RCPT time before the queue file exists
//! (`smtpd_delay_open_until_valid_rcpt`, the default), so the line says `NOQUEUE`:
//!
//! ```text
//! postfix/smtpd[24860]: NOQUEUE: hold: RCPT from unknown[127.37.0.16]: <bad6-0@nowhere.test>: Recipient address TEXT; from=<victim@e2e.test> to=<bad6-0@nowhere.test> proto=ESMTP helo=<pc>
//! postfix/smtpd[24860]: D7C189940CB: client=unknown[127.37.0.16], sasl_method=PLAIN, sasl_username=victim@e2e.test
//! ```
//!
//! (Postfix 3.7 in the end-to-end harness; the held message then never reaches qmgr.) The queue
//! id is the next `client=` line of the same smtpd process for the same client address. A hold
//! decided after the queue file exists is logged with the queue id itself (`QID: hold: …`).
//!
//! Queue ids come from logs and policy requests, which an attacker can shape, so every id is
//! checked ([`valid_queue_id`]) before it is stored or handed to `postsuper`, and it is handed
//! over on standard input (`postsuper -H -`), never as an argument or through a shell.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maillog::event::Action;
use maillog::parse::Parsed;
use maillog::Event;
use serde::Serialize;

/// Most `NOQUEUE: hold` lines waiting for their queue id (one per smtpd process in the middle
/// of a held message; a mail server runs at most a few hundred smtpd processes). Past it the
/// line is dropped and counted: its message is not listed under its incident.
pub const MAX_PENDING: usize = 10_000;

/// Most held queue ids kept per incident: a contained account of a spam run can have its
/// thousands of messages held; past this the incident lists the first ones and the rest are
/// counted in `smtpscope_held_dropped_total` (postsuper still handles them by hand).
pub const MAX_HELD_PER_INCIDENT: i64 = 10_000;

/// Longest queue id accepted: a short Postfix id is 5 hex digits of microseconds then the inode
/// number in hex (21 at most for a 64-bit inode), a long one about 15 to 17 characters; nothing
/// longer is handed to `postsuper`.
pub const MAX_QUEUE_ID: usize = 24;

/// Shortest queue id accepted (a short Postfix id: 5 hex digits and at least one of the inode).
pub const MIN_QUEUE_ID: usize = 6;

/// Queue ids handed to one `postsuper` run (on standard input; a bound on one command's work
/// and on the output it returns).
pub const BATCH: usize = 1000;

/// How long one `postsuper` run may take before it is killed (it moves files in the queue
/// directory: seconds even for thousands of messages).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of a command's standard error kept for the timeline.
pub const MAX_STDERR: usize = 2000;

/// A Postfix queue id, as `postsuper` takes it: a short id (upper-case hex digits) or a long id
/// (letters and digits, with at least one digit; `enable_long_queue_ids`). Anything else
/// (punctuation, a leading `-` that `postsuper` would read as an option, `ALL`, spaces) is
/// refused.
pub fn valid_queue_id(s: &str) -> bool {
    let b = s.as_bytes();
    if !(MIN_QUEUE_ID..=MAX_QUEUE_ID).contains(&b.len()) {
        return false;
    }
    if !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let short = b
        .iter()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c));
    let long = b.len() >= 12 && b.iter().any(u8::is_ascii_digit);
    short || long
}

/// A message Postfix put on hold, with what the log or request says about who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Queue id (valid).
    pub qid: String,
    /// SASL login.
    pub account: Option<String>,
    /// Client address.
    pub client: Option<String>,
    /// Envelope sender.
    pub sender: Option<String>,
}

/// Where a held queue id was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A `hold:` line of the mail log.
    Log,
    /// A policy request (with `queue_id`) answered with HOLD.
    Policy,
}

impl Source {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Log => "log",
            Source::Policy => "policy",
        }
    }
}

/// A `NOQUEUE: hold` line waiting for the `client=` line that names its queue id.
#[derive(Debug, Clone)]
struct Pending {
    client: Option<IpAddr>,
    sender: Option<String>,
}

/// Follows `hold:` lines to the queue ids they held.
#[derive(Debug, Default)]
pub struct Tracker {
    /// By (host, smtpd pid).
    pending: HashMap<(String, u32), Pending>,
    /// `NOQUEUE: hold` lines dropped because [`MAX_PENDING`] were waiting.
    pub dropped: u64,
}

fn ip_of(p: &maillog::Peer<'_>) -> Option<IpAddr> {
    p.ip.and_then(|s| s.parse().ok())
}

impl Tracker {
    /// Look at one parsed line; a held message when this line completes one.
    pub fn observe(&mut self, p: &Parsed<'_>) -> Option<Held> {
        let (h, ev) = (p.header.as_ref()?, p.event.as_ref()?);
        match ev {
            Event::Check {
                qid,
                action: Action::Hold,
                client,
                from,
                ..
            } => match qid {
                Some(q) => valid_queue_id(q).then(|| Held {
                    qid: q.to_string(),
                    account: None,
                    client: client.as_ref().and_then(ip_of).map(|i| i.to_string()),
                    sender: from.filter(|f| !f.is_empty()).map(str::to_string),
                }),
                None => {
                    let pid = h.pid?;
                    let key = (h.host.to_string(), pid);
                    if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
                        self.dropped += 1;
                        return None;
                    }
                    self.pending.insert(
                        key,
                        Pending {
                            client: client.as_ref().and_then(ip_of),
                            sender: from.filter(|f| !f.is_empty()).map(str::to_string),
                        },
                    );
                    None
                }
            },
            Event::Client {
                qid,
                client,
                sasl_username,
                ..
            } => {
                let pid = h.pid?;
                if self.pending.is_empty() {
                    return None;
                }
                let pend = self.pending.remove(&(h.host.to_string(), pid))?;
                let ip = ip_of(client);
                // Another client on the same process: the held one never got a queue file.
                if pend.client.is_some() && pend.client != ip {
                    return None;
                }
                valid_queue_id(qid).then(|| Held {
                    qid: qid.to_string(),
                    account: sasl_username.map(str::to_string),
                    client: ip.map(|i| i.to_string()),
                    sender: pend.sender,
                })
            }
            // A new connection on that process: the pending hold's message was never queued.
            Event::Connect { .. } if !self.pending.is_empty() => {
                if let Some(pid) = h.pid {
                    self.pending.remove(&(h.host.to_string(), pid));
                }
                None
            }
            _ => None,
        }
    }
}

/// What an operator does with an incident's held mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `postsuper -H`: back to the active queue, delivered as usual.
    Release,
    /// `postsuper -d … hold`: deleted, from the hold queue only.
    Delete,
}

impl Op {
    /// From the API's word.
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "release" => Some(Op::Release),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }

    /// The API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Release => "release",
            Op::Delete => "delete",
        }
    }

    /// The held rows' state after it succeeded.
    pub fn done_state(self) -> &'static str {
        match self {
            Op::Release => "released",
            Op::Delete => "deleted",
        }
    }

    /// The timeline's words.
    pub fn step(self, run: bool) -> &'static str {
        match (self, run) {
            (Op::Release, true) => "held mail released",
            (Op::Delete, true) => "held spam deleted",
            (Op::Release, false) => "would release held mail",
            (Op::Delete, false) => "would delete held spam",
        }
    }

    /// The whole argument vector: the configured prefix, then the operation with `-` (queue
    /// ids on standard input, one a line, as postsuper(1) documents for `-H -` and `-d -`);
    /// the delete names the `hold` queue so that nothing outside it can go.
    pub fn argv(self, prefix: &[String]) -> Vec<String> {
        let mut v = prefix.to_vec();
        match self {
            Op::Release => v.extend(["-H".into(), "-".into()]),
            Op::Delete => v.extend(["-d".into(), "-".into(), "hold".into()]),
        }
        v
    }
}

/// An argument as a POSIX shell would need it quoted (for display only: nothing runs a shell).
fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The command line exactly as it runs, written as bash would take it, with the queue ids
/// it reads on standard input.
pub fn display(argv: &[String], ids: &[String]) -> String {
    let cmd: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    format!(
        "{} <<< '{}'",
        cmd.join(" "),
        ids.iter()
            .filter(|i| valid_queue_id(i))
            .cloned()
            .collect::<Vec<_>>()
            .join("\\n")
    )
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Exit status; None when killed or not started.
    pub status: Option<i32>,
    /// Standard error (and output), capped at [`MAX_STDERR`].
    pub stderr: String,
    /// The error when it could not start or was killed.
    pub error: Option<String>,
}

impl Outcome {
    /// Exit status 0.
    pub fn ok(&self) -> bool {
        self.status == Some(0) && self.error.is_none()
    }
}

/// Run `argv` (no shell) with `ids` on standard input, one a line; killed after `timeout`.
pub fn run(argv: &[String], ids: &[String], timeout: Duration) -> Outcome {
    let fail = |e: String| Outcome {
        status: None,
        stderr: String::new(),
        error: Some(e),
    };
    let Some((prog, args)) = argv.split_first() else {
        return fail("no command configured".into());
    };
    let mut child = match Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot run {prog}: {e}")),
    };
    let mut input = String::new();
    for i in ids.iter().filter(|i| valid_queue_id(i)) {
        input.push_str(i);
        input.push('\n');
    }
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(input.as_bytes());
    }
    let (mut so, mut se) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(e) = se.as_mut() {
            let _ = e.take(64 * 1024).read_to_end(&mut out);
        }
        if let Some(o) = so.as_mut() {
            let _ = o.take(64 * 1024).read_to_end(&mut out);
        }
        out
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("killed after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let out = reader.join().unwrap_or_default();
    let mut text: String = String::from_utf8_lossy(&out).trim().to_string();
    if text.len() > MAX_STDERR {
        let mut cut = MAX_STDERR;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    match status {
        Ok(s) => Outcome {
            status: s.code(),
            stderr: text,
            error: None,
        },
        Err(e) => Outcome {
            status: None,
            stderr: text,
            error: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maillog::{LineParser, TimeContext};

    #[test]
    fn queue_ids_are_checked() {
        for ok in [
            "4BDEF9940C4",
            "D7C189940CB",
            "ABCDEF",
            "3Pxv2D0g8Wz1x2Y",
            "4Zx2vX3Tp1zTqW9",
        ] {
            assert!(valid_queue_id(ok), "{ok}");
        }
        for bad in [
            "",
            "ALL",
            "-d",
            "ABC",
            "abcdef",
            "4BDEF9940C4 ",
            "4BDEF;rm",
            "../../x",
            "A-B-C-D-E-F",
            "ABCDEFABCDEFABCDEFABCDEF0",
            "ALLALLALLALL",
            "ÄBCDEF1234",
        ] {
            assert!(!valid_queue_id(bad), "{bad:?}");
        }
    }

    fn feed(t: &mut Tracker, lines: &[&str]) -> Vec<Held> {
        let mut p = LineParser::new(TimeContext::new(2026, jiff::tz::TimeZone::UTC));
        lines
            .iter()
            .filter_map(|l| t.observe(&p.parse(l)))
            .collect()
    }

    /// The real lines of Postfix 3.7 in the e2e harness: NOQUEUE hold, then the queue id on
    /// the same process's client= line; a QID hold line directly; another client on the same
    /// process, or a new connection, ends the wait.
    #[test]
    fn hold_lines_give_queue_ids() {
        let mut t = Tracker::default();
        let got = feed(&mut t, &[
            "Dec 02 06:12:12 mx postfix/smtpd[24860]: NOQUEUE: hold: RCPT from unknown[127.37.0.16]: <bad6-0@nowhere.test>: Recipient address Your account is blocked; from=<victim@e2e.test> to=<bad6-0@nowhere.test> proto=ESMTP helo=<pc-127-37-0-16>",
            "Dec 02 06:12:12 mx postfix/smtpd[24861]: 1111111111A: client=unknown[127.20.0.1], sasl_method=PLAIN, sasl_username=user0@e2e.test",
            "Dec 02 06:12:12 mx postfix/smtpd[24860]: D7C189940CB: client=unknown[127.37.0.16], sasl_method=PLAIN, sasl_username=victim@e2e.test",
            "Dec 02 06:12:13 mx postfix/smtpd[24860]: D7C189940CD: client=unknown[127.37.0.16], sasl_method=PLAIN, sasl_username=victim@e2e.test",
            "Dec 02 06:12:14 mx postfix/cleanup[9]: 4104E3D: hold: body spam text from x[192.0.2.1]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>",
            "Dec 02 06:12:15 mx postfix/smtpd[7]: NOQUEUE: hold: RCPT from unknown[192.0.2.9]: <x@y.example>: Recipient address held; from=<s@e.example> to=<x@y.example> proto=ESMTP helo=<h>",
            "Dec 02 06:12:16 mx postfix/smtpd[7]: connect from unknown[192.0.2.10]",
            "Dec 02 06:12:16 mx postfix/smtpd[7]: 5555555555A: client=unknown[192.0.2.10]",
        ]);
        assert_eq!(
            got,
            vec![
                Held {
                    qid: "D7C189940CB".into(),
                    account: Some("victim@e2e.test".into()),
                    client: Some("127.37.0.16".into()),
                    sender: Some("victim@e2e.test".into()),
                },
                Held {
                    qid: "4104E3D".into(),
                    account: None,
                    client: Some("192.0.2.1".into()),
                    sender: Some("a@b.example".into()),
                },
            ]
        );
        assert!(t.pending.is_empty());
    }

    #[test]
    fn pending_holds_are_bounded() {
        let mut t = Tracker::default();
        let mut p = LineParser::new(TimeContext::new(2026, jiff::tz::TimeZone::UTC));
        for pid in 0..(MAX_PENDING as u32 + 5) {
            let l = format!("Dec 02 06:12:15 mx postfix/smtpd[{pid}]: NOQUEUE: hold: RCPT from unknown[192.0.2.9]: <x@y.example>: held; from=<s@e.example> to=<x@y.example> proto=ESMTP helo=<h>");
            assert!(t.observe(&p.parse(&l)).is_none());
        }
        assert_eq!(t.pending.len(), MAX_PENDING);
        assert_eq!(t.dropped, 5);
    }

    /// The sudo form: the prefix as configured, then the operation; ids never in argv.
    #[test]
    fn argv_and_display() {
        let prefix: Vec<String> = ["sudo", "-n", "/usr/sbin/postsuper", "-c", "/etc/postfix"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            Op::Release.argv(&prefix),
            [
                "sudo",
                "-n",
                "/usr/sbin/postsuper",
                "-c",
                "/etc/postfix",
                "-H",
                "-"
            ]
        );
        assert_eq!(
            Op::Delete.argv(&prefix),
            [
                "sudo",
                "-n",
                "/usr/sbin/postsuper",
                "-c",
                "/etc/postfix",
                "-d",
                "-",
                "hold"
            ]
        );
        let ids = vec![
            "D7C189940CB".to_string(),
            "x;rm -rf".into(),
            "4BDEF9940C4".into(),
        ];
        assert_eq!(
            display(&Op::Delete.argv(&prefix), &ids),
            "sudo -n /usr/sbin/postsuper -c /etc/postfix -d - hold <<< 'D7C189940CB\\n4BDEF9940C4'"
        );
        assert_eq!(quote("a b'c"), "'a b'\\''c'");
    }

    /// The command gets exactly the valid ids on standard input; its status and standard error
    /// come back; a missing program is an error, not a panic.
    #[test]
    fn runs_without_a_shell() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("in");
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!("cat > {}; echo done >&2; exit 3", out.display()),
        ];
        let o = run(
            &argv,
            &["ABCDEF1".into(), "$(reboot)".into(), "4BDEF9940C4".into()],
            COMMAND_TIMEOUT,
        );
        assert_eq!(o.status, Some(3));
        assert_eq!(o.stderr, "done");
        assert!(!o.ok());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "ABCDEF1\n4BDEF9940C4\n"
        );
        let o = run(&["/nonexistent/postsuper".into()], &[], COMMAND_TIMEOUT);
        assert!(o.error.unwrap().contains("cannot run"));
        let o = run(
            &["sleep".into(), "5".into()],
            &[],
            Duration::from_millis(100),
        );
        assert!(o.error.unwrap().contains("killed"));
    }
}
