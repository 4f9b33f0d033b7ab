//! Line -> event dispatch and the recognition statistics.

use serde::Serialize;

use crate::event::{Event, Format};
use crate::header::{parse_header, Header};
use crate::time::TimeContext;
use crate::{dovecot, exim, filter, postfix, sendmail};

/// What one line gave.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    /// The prefix, if the line had a recognisable one.
    pub header: Option<Header<'a>>,
    /// The family the line belongs to.
    pub format: Format,
    /// The event, if the message was understood.
    pub event: Option<Event<'a>>,
}

/// Most distinct unrecognized shapes remembered (an attacker controls some log text; the map
/// must not grow without bound). Past this, further shapes are counted under one key.
pub const MAX_SHAPES: usize = 4096;
/// Most distinct program names counted separately; others go under `(other)`.
pub const MAX_PROGRAMS: usize = 512;
/// Characters of a sample line kept per unrecognized shape.
pub const SAMPLE_CHARS: usize = 300;

/// Per-program counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Lines seen.
    pub lines: u64,
    /// Lines turned into an event.
    pub recognized: u64,
}

/// An unrecognized line shape with its count and first sample.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    /// Program (normalized).
    pub program: String,
    /// The shape: the message with ids, numbers, addresses and bracketed parts masked.
    pub shape: String,
    /// How many lines had it.
    pub count: u64,
    /// The first such line (cut to [`SAMPLE_CHARS`]).
    pub sample: String,
}

/// Recognition statistics over everything a [`LineParser`] saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// All lines.
    pub lines: u64,
    /// Lines that gave an event.
    pub recognized: u64,
    /// Lines with no header we know.
    pub no_header: u64,
    /// Lines that are not valid UTF-8 (they are read lossily).
    pub invalid_utf8: u64,
    /// Per format.
    pub by_format: crate::hash::Map<Format, Counts>,
    /// Per normalized program (`postfix/smtpd`, `exim`, `dovecot`, `cron`…).
    pub by_program: crate::hash::Map<String, Counts>,
    /// Unrecognized shapes of known formats.
    pub shapes: crate::hash::Map<(String, String), Shape>,
    /// Unrecognized lines whose shape was not recorded because [`MAX_SHAPES`] was reached.
    pub shapes_dropped: u64,
}

impl Stats {
    /// Lines not turned into events.
    pub fn unrecognized(&self) -> u64 {
        self.lines - self.recognized
    }

    /// Lines of the mail formats (Postfix, Exim, Dovecot, Sendmail, and the spam filters).
    pub fn mail_counts(&self) -> Counts {
        let mut c = Counts::default();
        for (f, n) in &self.by_format {
            if *f != Format::Other {
                c.lines += n.lines;
                c.recognized += n.recognized;
            }
        }
        c
    }

    /// Add another parser's statistics (parallel parsing).
    pub fn merge(&mut self, o: &Stats) {
        self.lines += o.lines;
        self.recognized += o.recognized;
        self.no_header += o.no_header;
        self.invalid_utf8 += o.invalid_utf8;
        for (k, v) in &o.by_format {
            let e = self.by_format.entry(*k).or_default();
            e.lines += v.lines;
            e.recognized += v.recognized;
        }
        // Past the caps, which names are kept must not depend on a map's order: sorted.
        let mut progs: Vec<(&String, &Counts)> = o.by_program.iter().collect();
        progs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in progs {
            let e = if self.by_program.len() < MAX_PROGRAMS || self.by_program.contains_key(k) {
                self.by_program.entry(k.clone()).or_default()
            } else {
                self.by_program.entry("(other)".into()).or_default()
            };
            e.lines += v.lines;
            e.recognized += v.recognized;
        }
        let mut shapes: Vec<(&(String, String), &Shape)> = o.shapes.iter().collect();
        shapes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in shapes {
            if let Some(e) = self.shapes.get_mut(k) {
                e.count += v.count;
            } else if self.shapes.len() < MAX_SHAPES {
                self.shapes.insert(k.clone(), v.clone());
            } else {
                self.shapes_dropped += v.count;
            }
        }
        self.shapes_dropped += o.shapes_dropped;
    }

    /// Unrecognized shapes, most frequent first.
    pub fn top_shapes(&self, n: usize) -> Vec<&Shape> {
        let mut v: Vec<&Shape> = self.shapes.values().collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.shape.cmp(&b.shape)));
        v.truncate(n);
        v
    }
}

/// The daemon after a Postfix program name's last `/` (`postfix/submission/smtpd` -> `smtpd`;
/// the whole name when it has none), found with memrchr: `rsplit('/')` cost about 190
/// instructions a line (docs/PERFORMANCE.md).
fn postfix_daemon(program: &str) -> &str {
    memchr::memrchr(b'/', program.as_bytes()).map_or(program, |i| &program[i + 1..])
}

/// Which family a program name belongs to, and the program name used for counting.
pub fn classify_program(program: &str) -> (Format, &str) {
    if program.starts_with("postfix") {
        return (Format::Postfix, postfix_daemon(program));
    }
    if program.starts_with("exim") {
        return (Format::Exim, program);
    }
    if program.starts_with("dovecot")
        || program.ends_with("-login")
        || program.starts_with("auth-worker")
        || program.starts_with("auth(")
        || program == "auth"
        || program == "imap"
        || program == "pop3"
    {
        return (Format::Dovecot, program);
    }
    if program == "sendmail" || program.starts_with("sm-") {
        return (Format::Sendmail, program);
    }
    if filter::is_filter_program(program) {
        return (Format::Filter, program);
    }
    (Format::Other, program)
}

/// Mask the variable parts of a message so similar lines group together.
pub fn shape_of(msg: &str) -> String {
    let mut out = String::with_capacity(64);
    for (words, w) in msg.split(' ').enumerate() {
        if words == 8 {
            out.push_str(" …");
            break;
        }
        if words > 0 {
            out.push(' ');
        }
        let has_digit = w.bytes().any(|c| c.is_ascii_digit());
        let is_hexish = w.len() >= 8
            && w.trim_end_matches(':')
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b'-');
        if w.contains('@') {
            out.push_str("<addr>");
        } else if w.contains('[') {
            out.push_str("<peer>");
        } else if is_hexish || (has_digit && w.len() > 3) {
            out.push_str(if w.ends_with(':') { "<id>:" } else { "<id>" });
        } else if has_digit {
            out.push('N');
        } else {
            let cut: String = w.chars().take(24).collect();
            out.push_str(&cut);
        }
    }
    out
}

/// Turns lines into events, keeping the time context (year, zone) and statistics.
#[derive(Debug, Clone)]
pub struct LineParser {
    ctx: TimeContext,
    stats: Stats,
    /// Reused buffer for the `postfix/<daemon>` counting key (no allocation per line).
    key: String,
}

impl LineParser {
    /// A parser with the given year/zone context.
    pub fn new(ctx: TimeContext) -> Self {
        LineParser {
            ctx,
            stats: Stats::default(),
            key: String::new(),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Take the statistics, leaving empty ones.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// The time context (year and rollover state) as the lines so far left it.
    pub fn time_context(&self) -> &TimeContext {
        &self.ctx
    }

    /// The year/zone context, to move its reference time (see [`TimeContext::set_reference`]).
    pub fn time_context_mut(&mut self) -> &mut TimeContext {
        &mut self.ctx
    }

    /// Count a line that was not valid UTF-8 (the caller reads it lossily and still parses it).
    pub fn note_invalid_utf8(&mut self) {
        self.stats.invalid_utf8 += 1;
    }

    /// Parse one line (without its line ending).
    pub fn parse<'a>(&mut self, line: &'a str) -> Parsed<'a> {
        let p = parse_line(line, &mut self.ctx);
        self.count(&p, line);
        p
    }

    fn count(&mut self, p: &Parsed<'_>, line: &str) {
        let st = &mut self.stats;
        st.lines += 1;
        let ok = p.event.is_some();
        if ok {
            st.recognized += 1;
        }
        let Some(h) = &p.header else {
            st.no_header += 1;
            let c = st.by_format.entry(Format::Other).or_default();
            c.lines += 1;
            return;
        };
        let fc = st.by_format.entry(p.format).or_default();
        fc.lines += 1;
        fc.recognized += ok as u64;
        let prog = program_key(p.format, h.program, &mut self.key);
        let pc = if let Some(c) = st.by_program.get_mut(prog.as_ref()) {
            c
        } else if st.by_program.len() < MAX_PROGRAMS {
            st.by_program.entry(prog.clone().into_owned()).or_default()
        } else {
            st.by_program.entry("(other)".into()).or_default()
        };
        pc.lines += 1;
        pc.recognized += ok as u64;
        if !ok && p.format != Format::Other {
            let shape = shape_of(h.msg);
            let key = (prog.into_owned(), shape);
            if let Some(s) = st.shapes.get_mut(&key) {
                s.count += 1;
            } else if st.shapes.len() < MAX_SHAPES {
                let sample: String = line.chars().take(SAMPLE_CHARS).collect();
                st.shapes.insert(
                    key.clone(),
                    Shape {
                        program: key.0,
                        shape: key.1,
                        count: 1,
                        sample,
                    },
                );
            } else {
                st.shapes_dropped += 1;
            }
        }
    }
}

fn program_key<'a>(
    format: Format,
    program: &'a str,
    buf: &'a mut String,
) -> std::borrow::Cow<'a, str> {
    match format {
        Format::Postfix => {
            buf.clear();
            buf.push_str("postfix/");
            buf.push_str(postfix_daemon(program));
            std::borrow::Cow::Borrowed(buf.as_str())
        }
        Format::Exim if program.is_empty() => std::borrow::Cow::Borrowed("exim"),
        _ => {
            // Cap attacker-chosen names.
            if program.len() > 32 {
                std::borrow::Cow::Borrowed("(long)")
            } else {
                std::borrow::Cow::Borrowed(program)
            }
        }
    }
}

/// Parse one line without statistics.
pub fn parse_line<'a>(line: &'a str, ctx: &mut TimeContext) -> Parsed<'a> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(h) = parse_header(line, ctx) else {
        return Parsed {
            header: None,
            format: Format::Other,
            event: None,
        };
    };
    let (format, event) = if h.program.is_empty() && h.stamp == crate::header::StampKind::Exim {
        // Dovecot's own log file uses the same stamp: "2013-08-11 03:56:40 auth-worker(default): …".
        let tag = h.msg.split(' ').next().unwrap_or("");
        match tag.strip_suffix(':') {
            // rspamd's own log file: "2015-09-02 16:41:59 #45015(normal) <ed2abb>; task; …".
            _ if tag.starts_with('#') && tag.ends_with(')') => {
                (Format::Filter, filter::parse("rspamd", h.msg))
            }
            Some(t) if classify_program(t).0 == Format::Dovecot => {
                let rest = &h.msg[tag.len()..].trim_start();
                (Format::Dovecot, dovecot::parse(t, rest))
            }
            _ => (Format::Exim, exim::parse(h.msg)),
        }
    } else {
        let (format, daemon) = classify_program(h.program);
        let ev = match format {
            Format::Postfix => postfix::parse(daemon, h.msg),
            Format::Exim => exim::parse(h.msg),
            Format::Dovecot => dovecot::parse(h.program, h.msg),
            Format::Sendmail => sendmail::parse(h.msg),
            Format::Filter => filter::parse(daemon, h.msg),
            Format::Other => None,
        };
        (format, ev)
    };
    Parsed {
        header: Some(h),
        format,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_daemon_is_the_part_after_the_last_slash() {
        for (program, daemon) in [
            ("postfix/smtpd", "smtpd"),
            ("postfix/submission/smtpd", "smtpd"),
            ("postfix-out/qmgr", "qmgr"),
            ("postfix", "postfix"),
            ("postfix/", ""),
            ("postfix/é/smtp", "smtp"),
        ] {
            assert_eq!(
                classify_program(program),
                (Format::Postfix, daemon),
                "{program}"
            );
            assert_eq!(Some(daemon), program.rsplit('/').next());
        }
        assert_eq!(classify_program("exim"), (Format::Exim, "exim"));
    }
}
