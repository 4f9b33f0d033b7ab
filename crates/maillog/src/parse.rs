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

    /// Add a parser's pending counts of one program ([`Pending`]).
    fn add_pending(&mut self, p: Pending) {
        for c in [
            self.by_format.entry(p.format).or_default(),
            self.by_program
                .entry(p.by_program_key().to_string())
                .or_default(),
        ] {
            c.lines += p.counts.lines;
            c.recognized += p.counts.recognized;
        }
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
                self.by_program.entry(OTHER_PROGRAMS.into()).or_default()
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
/// the whole name when it has none), found by a reverse byte loop: `rsplit('/')` cost about
/// 190 instructions a line, `memrchr`, whose call layers cost more than reading the daemon's
/// few bytes, about 58 (docs/PERFORMANCE.md).
fn postfix_daemon(program: &str) -> &str {
    let b = program.as_bytes();
    b.iter()
        .rposition(|&c| c == b'/')
        .map_or(program, |i| &program[i + 1..])
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

/// Programs whose lines a [`LineParser`] counts on the side before it adds them to its
/// [`Stats`] ([`Pending`]): the daemons of one MTA whose lines interleave, as the header names
/// them (Postfix's `postfix/smtpd` and `postfix/submission/smtpd`, cleanup, qmgr, smtp, lmtp,
/// bounce, …, Dovecot, a spam filter). The benchmark's simulated ISP log has nine, which
/// eight slots could not hold: about one line in 54 then replaced a pending entry. Our own
/// choice.
const PENDING_PROGRAMS: usize = 16;

/// Program names longer than this are not looked for among the pending ones: each such line
/// gets an entry of its own (the oldest leaves), so a flood of long names in attacker-written
/// lines costs a copy of each name, not sixteen comparisons of it per line. Far above any
/// daemon's name (`postfix/submission/smtpd` is 24 bytes). Our own choice.
const PENDING_NAME_MAX_BYTES: usize = 64;

/// Lines of one program (as the header gives it, with the format it was read as) not yet added
/// to [`Stats::by_format`] and [`Stats::by_program`]. Two map look-ups and the program's
/// normalized name per line were 3.5% of `analyze`'s instructions (issue 12); a line of one of
/// the last few programs now adds to its entry here, found by comparing the name.
#[derive(Debug, Clone)]
struct Pending {
    format: Format,
    /// The program as the header gave it.
    program: Box<str>,
    /// Where its daemon name ([`classify_program`]'s second answer, a suffix of it) starts.
    daemon_at: usize,
    /// Its normalized name ([`program_key`]), which unrecognized shapes are kept under.
    name: Box<str>,
    /// Counted under `(other)` in [`Stats::by_program`], not under `name`: the map was full at
    /// the program's first line (decided then, as it was before there were pending counts).
    other: bool,
    counts: Counts,
}

impl Pending {
    /// Its entry in [`Stats::by_program`].
    fn by_program_key(&self) -> &str {
        if self.other {
            OTHER_PROGRAMS
        } else {
            &self.name
        }
    }
}

/// The [`Stats::by_program`] entry of the programs past [`MAX_PROGRAMS`].
const OTHER_PROGRAMS: &str = "(other)";

/// Turns lines into events, keeping the time context (year, zone) and statistics.
#[derive(Debug, Clone)]
pub struct LineParser {
    ctx: TimeContext,
    stats: Stats,
    /// Reused buffer for the `postfix/<daemon>` counting key (no allocation per line).
    key: String,
    /// Counts of the last programs seen, not yet in `stats` (see [`Pending`]).
    pending: Vec<Pending>,
    /// The entry of `pending` the next new program replaces when all are taken.
    next_out: usize,
}

impl LineParser {
    /// A parser with the given year/zone context.
    pub fn new(ctx: TimeContext) -> Self {
        LineParser {
            ctx,
            stats: Stats::default(),
            key: String::new(),
            pending: Vec::with_capacity(PENDING_PROGRAMS),
            next_out: 0,
        }
    }

    /// Statistics so far (the pending per-program counts added first).
    pub fn stats(&mut self) -> &Stats {
        self.settle();
        &self.stats
    }

    /// Take the statistics, leaving empty ones.
    pub fn take_stats(&mut self) -> Stats {
        self.settle();
        std::mem::take(&mut self.stats)
    }

    /// Add every pending per-program count to the statistics.
    fn settle(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.stats.add_pending(p);
        }
        self.next_out = 0;
    }

    /// The entry of `pending` for lines of `program` read as `format`: found, or made (its
    /// `by_program` entry decided now), replacing the oldest when all are taken. A name over
    /// [`PENDING_NAME_MAX_BYTES`] is not looked for.
    fn pending_for(&mut self, format: Format, program: &str) -> usize {
        if program.len() <= PENDING_NAME_MAX_BYTES {
            let same = |p: &Pending| {
                crate::bytes::same(p.program.as_bytes(), program.as_bytes()) && p.format == format
            };
            if let Some(i) = self.pending.iter().position(same) {
                return i;
            }
        }
        let name: Box<str> = program_key(format, program, &mut self.key).into();
        let by_program = &mut self.stats.by_program;
        let other = !by_program.contains_key(&*name) && by_program.len() >= MAX_PROGRAMS;
        let fresh = Pending {
            format,
            program: program.into(),
            daemon_at: program.len() - classify_program(program).1.len(),
            name,
            other,
            counts: Counts::default(),
        };
        by_program
            .entry(fresh.by_program_key().to_string())
            .or_default();
        if self.pending.len() < PENDING_PROGRAMS {
            self.pending.push(fresh);
            return self.pending.len() - 1;
        }
        let i = self.next_out;
        self.next_out = (i + 1) % PENDING_PROGRAMS;
        let out = std::mem::replace(&mut self.pending[i], fresh);
        self.stats.add_pending(out);
        i
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

    /// Parse one line (without its line ending): what [`parse_line`] gives, counted. A
    /// program's format and daemon name are taken from its pending counts' entry, found by
    /// the name as before, instead of classifying the name again for every line (about 55
    /// instructions a line).
    pub fn parse<'a>(&mut self, line: &'a str) -> Parsed<'a> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some(h) = parse_header(line, &mut self.ctx) else {
            let p = Parsed::headless();
            self.count(&p, line);
            return p;
        };
        if h.program.is_empty() || h.program.len() > PENDING_NAME_MAX_BYTES {
            // Native log files (no program) and names not kept pending: as `parse_line` reads them.
            let (format, event) = format_and_event(&h);
            let p = Parsed {
                header: Some(h),
                format,
                event,
            };
            self.count(&p, line);
            return p;
        }
        let i = self.pending_for_program(h.program);
        let (format, daemon_at) = (self.pending[i].format, self.pending[i].daemon_at);
        // SAFETY: `daemon_at` is where the daemon's name starts in the entry's program name,
        // whose bytes these are (`pending_for_program` finds the entry by them): the place
        // after its last `/` or its start, a character boundary within it.
        let daemon =
            unsafe { crate::bytes::between_boundaries(h.program, daemon_at, h.program.len()) };
        let event = event_of(format, daemon, &h);
        let msg = h.msg;
        let p = Parsed {
            header: Some(h),
            format,
            event,
        };
        self.count_in(i, &p, msg, line);
        p
    }

    /// The entry of `pending` for a program named in a header (not empty, at most
    /// [`PENDING_NAME_MAX_BYTES`]): such a name is read as one format only
    /// ([`classify_program`]), so its entry is found by the name alone.
    fn pending_for_program(&mut self, program: &str) -> usize {
        let same = |p: &Pending| crate::bytes::same(p.program.as_bytes(), program.as_bytes());
        match self.pending.iter().position(same) {
            Some(i) => i,
            None => self.pending_for(classify_program(program).0, program),
        }
    }

    fn count(&mut self, p: &Parsed<'_>, line: &str) {
        let Some(h) = &p.header else {
            let st = &mut self.stats;
            st.lines += 1;
            st.recognized += u64::from(p.event.is_some());
            st.no_header += 1;
            let c = st.by_format.entry(Format::Other).or_default();
            c.lines += 1;
            return;
        };
        let i = self.pending_for(p.format, h.program);
        self.count_in(i, p, h.msg, line);
    }

    /// Count a line with a header (whose message is `msg`) in `pending[i]`, its program's
    /// entry.
    fn count_in(&mut self, i: usize, p: &Parsed<'_>, msg: &str, line: &str) {
        let st = &mut self.stats;
        st.lines += 1;
        let ok = p.event.is_some();
        if ok {
            st.recognized += 1;
        }
        let pending = &mut self.pending[i];
        pending.counts.lines += 1;
        pending.counts.recognized += ok as u64;
        if !ok && p.format != Format::Other {
            let st = &mut self.stats;
            let shape = shape_of(msg);
            let key = (pending.name.to_string(), shape);
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
        return Parsed::headless();
    };
    let (format, event) = format_and_event(&h);
    Parsed {
        header: Some(h),
        format,
        event,
    }
}

/// The format and event of a line with header `h`: from the message for a native log file,
/// else from the program's name ([`classify_program`]).
fn format_and_event<'a>(h: &Header<'a>) -> (Format, Option<Event<'a>>) {
    if is_native_log(h) {
        native_log_event(h)
    } else {
        let (format, daemon) = classify_program(h.program);
        (format, event_of(format, daemon, h))
    }
}

impl Parsed<'_> {
    /// A line without a header anyone knows.
    fn headless() -> Self {
        Parsed {
            header: None,
            format: Format::Other,
            event: None,
        }
    }
}

/// Whether `h` is of an MTA's or server's own log file, stamped without a program: its format
/// is read from the message ([`native_log_event`]), not from a program name.
fn is_native_log(h: &Header<'_>) -> bool {
    h.program.is_empty() && h.stamp == crate::header::StampKind::Exim
}

/// The format and event of a line of a native log file ([`is_native_log`]).
fn native_log_event<'a>(h: &Header<'a>) -> (Format, Option<Event<'a>>) {
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
}

/// The event of a line whose program ([`Header::program`]) is of `format`, `daemon` its name
/// for counting ([`classify_program`]).
fn event_of<'a>(format: Format, daemon: &'a str, h: &Header<'a>) -> Option<Event<'a>> {
    match format {
        Format::Postfix => postfix::parse(daemon, h.msg),
        Format::Exim => exim::parse(h.msg),
        Format::Dovecot => dovecot::parse(h.program, h.msg),
        Format::Sendmail => sendmail::parse(h.msg),
        Format::Filter => filter::parse(daemon, h.msg),
        Format::Other => None,
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

    /// Everything in `st`, in a fixed order.
    fn snapshot(st: &Stats) -> String {
        let sorted = |v: Vec<String>| {
            let mut v = v;
            v.sort();
            v.join("\n")
        };
        format!(
            "{} {} {} {} {}\n{}\n{}\n{}",
            st.lines,
            st.recognized,
            st.no_header,
            st.invalid_utf8,
            st.shapes_dropped,
            sorted(
                st.by_format
                    .iter()
                    .map(|(k, v)| format!("{k:?} {v:?}"))
                    .collect()
            ),
            sorted(
                st.by_program
                    .iter()
                    .map(|(k, v)| format!("{k} {v:?}"))
                    .collect()
            ),
            sorted(
                st.shapes
                    .iter()
                    .map(|(k, v)| format!("{k:?} {v:?}"))
                    .collect()
            ),
        )
    }

    /// A line parser gives what `parse_line` gives, its program's format and daemon name
    /// taken from its pending entry: for more programs than are kept pending (so entries are
    /// replaced and made again), every format, native log files, empty, long and odd program
    /// names, and lines with no header.
    #[test]
    fn the_line_parser_reads_lines_as_parse_line_does() {
        let mut lines = vec![
            "2026-11-20 10:47:15 1vLtK3-0007aB-2c <= a@example.org H=x [192.0.2.1] P=esmtp S=1".to_string(),
            "2013-08-11 03:56:40 auth-worker(default): Info: pam(x,192.0.2.9): pam_authenticate() failed".to_string(),
            "2015-09-02 16:41:59 #45015(normal) <ed2abb>; task; rspamd_task_write_log: id: <x>".to_string(),
            "Nov 16 00:00:22 mx : empty program".to_string(),
            format!("Nov 16 00:00:22 mx {}[1]: long program", "p".repeat(PENDING_NAME_MAX_BYTES + 1)),
            "no header at all".to_string(),
            "Nov 16 00:00:22 mx sendmail[9]: x1: from=<a@b.example>, size=1, nrcpt=1".to_string(),
            "Nov 16 00:00:22 mx dovecot[9]: imap-login: Login: user=<u>, rip=192.0.2.3".to_string(),
            "Nov 16 00:00:22 mx exim[9]: 1vLtK3-0007aB-2c Completed".to_string(),
            "Nov 16 00:00:22 mx amavis[9]: (1-2) Passed CLEAN {RelayedInbound}, <a@b.example> -> <c@d.example>".to_string(),
        ];
        for round in 0..3 {
            for i in 0..PENDING_PROGRAMS * 2 {
                let d = ["smtpd", "qmgr", "smtp", "cleanup"][(i + round) % 4];
                lines.push(format!(
                    "Nov 16 00:00:22 mx postfix{i}/{d}[{i}]: connect from a.example[192.0.2.{i}]"
                ));
                lines.push(format!("Nov 16 00:00:22 mx prog{i}[1]: hello"));
                // A delivery names its daemon (the transport): the cached name must be right.
                lines.push(format!(
                    "Nov 16 00:00:22 mx postfix{i}/{d}[{i}]: 4B1C2D3E4F: to=<a@b.example>, relay=r[192.0.2.1]:25, delay=1, dsn=2.0.0, status=sent (250 ok)"
                ));
                lines.push(format!(
                    "Nov 16 00:00:23 mx postfix/submission/smtpd[2]: NOQUEUE: reject: RCPT from u[192.0.2.{i}]: 550 no; from=<a@b> to=<c@d> proto=ESMTP helo=<h>"
                ));
            }
        }
        let mut parser = LineParser::new(TimeContext::utc(2026));
        let mut ctx = TimeContext::utc(2026);
        for l in &lines {
            let (got, want) = (parser.parse(l), parse_line(l, &mut ctx));
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{l}");
        }
        assert_eq!(parser.stats().lines, lines.len() as u64);
    }

    /// The per-program counts kept on the side give the statistics that adding every line at
    /// once gives (a parser asked for its statistics after every line, which leaves nothing
    /// pending): more programs than are kept pending and than `by_program` holds (which ones get
    /// their own entry is decided by first appearance either way), programs coming back after
    /// they left, formats of one empty program, recognized and unrecognized lines, lines with
    /// no header; and again after the statistics were taken.
    #[test]
    fn pending_counts_give_the_statistics_of_counting_each_line() {
        let mut lines = Vec::new();
        let programs = MAX_PROGRAMS + 100;
        for round in 0..3 {
            for i in 0..programs {
                // Each round visits the programs in another order and mixes in mail lines.
                let j = (i * (2 * round + 1) + round * 7) % programs;
                lines.push(format!(
                    "Nov 16 00:00:{:02} host prog{j}[1]: hello {i}",
                    i % 60
                ));
                if i % 5 == 0 {
                    lines.push(format!(
                        "Nov 16 00:01:00 mx postfix/smtpd[2]: connect from a{i}.example[192.0.2.{}]",
                        i % 250
                    ));
                    lines.push(format!("Nov 16 00:01:00 mx postfix/qmgr[3]: odd text {i}"));
                    lines.push(format!(
                        "Nov 16 00:01:00 mx postfix-out/smtp[4]: B{i:X}: weird"
                    ));
                }
                if i % 11 == 0 {
                    // Names over PENDING_NAME_MAX_BYTES, the same one again and others.
                    let long = format!("{}{}", "x".repeat(PENDING_NAME_MAX_BYTES), i % 3);
                    lines.push(format!("Nov 16 00:02:00 host {long}[9]: hello"));
                    lines.push(format!("Nov 16 00:02:00 mx postfix/{long}[9]: odd"));
                }
                if i % 7 == 0 {
                    lines.push("2026-11-16 00:00:01 1tA0aa-000001-AB <= a@b.example".into());
                    lines.push("2026-11-16 00:00:01 auth-worker(1): Info: x".into());
                    lines.push(format!("not a log line {i}"));
                }
            }
        }
        let ctx = || TimeContext::new(2026, jiff::tz::TimeZone::UTC);
        let (mut each, mut end) = (LineParser::new(ctx()), LineParser::new(ctx()));
        for (n, l) in lines.iter().enumerate() {
            each.parse(l);
            each.stats();
            end.parse(l);
            if n == lines.len() / 2 {
                assert_eq!(snapshot(&each.take_stats()), snapshot(&end.take_stats()));
            }
        }
        let (a, b) = (snapshot(each.stats()), snapshot(end.stats()));
        assert_eq!(a, b);
        // The entries of `by_program`, counted the long way over the second half: the first
        // MAX_PROGRAMS names by first appearance have their own, the rest share `(other)`.
        let mut expect: Vec<(String, u64)> = Vec::new();
        let mut tctx = ctx();
        let mut key = String::new();
        for l in &lines[lines.len() / 2 + 1..] {
            let p = parse_line(l, &mut tctx);
            let Some(h) = &p.header else { continue };
            let name = program_key(p.format, h.program, &mut key).into_owned();
            let slot = if expect.iter().any(|(n, _)| *n == name) || expect.len() < MAX_PROGRAMS {
                name
            } else {
                "(other)".to_string()
            };
            match expect.iter_mut().find(|(n, _)| *n == slot) {
                Some(e) => e.1 += 1,
                None => expect.push((slot, 1)),
            }
        }
        let st = end.stats();
        let mut got: Vec<(String, u64)> = st
            .by_program
            .iter()
            .map(|(k, v)| (k.clone(), v.lines))
            .collect();
        got.sort();
        expect.sort();
        assert_eq!(got, expect);
        assert!(
            st.by_program.len() > MAX_PROGRAMS,
            "{}",
            st.by_program.len()
        );
        assert!(st.by_program.get("(other)").is_some_and(|c| c.lines > 0));
        assert!(st
            .by_program
            .get("postfix/smtp")
            .is_some_and(|c| c.lines > 0));
        assert!(st.by_program.get("(long)").is_some_and(|c| c.lines > 0));
        assert!(!st.shapes.is_empty());
    }
}
