//! The fuzz harnesses: each target in `fuzz_targets/` is one call into this crate (a crash
//! found is replayed by running the target's binary with the saved input as its argument).
//!
//! Every harness asserts what must hold for any input (bounds, counters adding up) on top of
//! "no panic, no hang, no unbounded memory".

use std::sync::OnceLock;

use maillog::{Format, LineParser, TimeContext};

/// Lines of one input fed to the parsers (an input is a piece of a log).
const MAX_LINES: usize = 4096;

/// A fuzz input as log text: lines split at `\n`, invalid UTF-8 replaced as the readers do.
fn lines(data: &[u8]) -> impl Iterator<Item = String> + '_ {
    data.split(|&b| b == b'\n')
        .take(MAX_LINES)
        .map(|l| String::from_utf8_lossy(l).into_owned())
}

/// Daemon names Postfix logs under (`postfix/<daemon>`), picked by the fuzzer.
const POSTFIX_DAEMONS: [&str; 12] = [
    "smtpd", "smtp", "qmgr", "cleanup", "pickup", "bounce", "local", "lmtp", "pipe", "virtual",
    "postscreen", "error",
];
/// Dovecot program names, picked by the fuzzer.
const DOVECOT_PROGRAMS: [&str; 6] = [
    "dovecot", "imap-login", "pop3-login", "auth", "auth-worker", "imap",
];

/// Spam-filter program names, picked by the fuzzer.
const FILTER_PROGRAMS: [&str; 3] = ["amavis", "spamd", "rspamd"];

/// One log through the line parser (header, dispatch by program, the format's parser) and the
/// message correlator; also every message straight into `format`'s parser, with a program name
/// chosen by the line's first byte, so messages that lost their header still reach it.
pub fn mail_log(data: &[u8], format: Format) {
    let mut p = LineParser::new(TimeContext::utc(2026));
    let mut c = maillog::record::Correlator::new(64);
    let mut n = 0u64;
    for (i, line) in lines(data).enumerate() {
        n += 1;
        let parsed = p.parse(&line);
        if let (Some(h), Some(ev)) = (&parsed.header, &parsed.event) {
            c.feed(h.ts, h.host, h.pid, ev);
            assert!(c.in_flight() <= 64, "correlator over its bound");
        }
        let msg = parsed.header.as_ref().map_or(line.as_str(), |h| h.msg);
        let pick = line.bytes().next().map_or(i, usize::from);
        match format {
            Format::Postfix => {
                let _ = maillog::postfix::parse(POSTFIX_DAEMONS[pick % POSTFIX_DAEMONS.len()], msg);
            }
            Format::Dovecot => {
                let _ = maillog::dovecot::parse(DOVECOT_PROGRAMS[pick % DOVECOT_PROGRAMS.len()], msg);
            }
            Format::Exim => {
                let _ = maillog::exim::parse(msg);
            }
            Format::Sendmail => {
                let _ = maillog::sendmail::parse(msg);
            }
            Format::Filter => {
                let _ = maillog::filter::parse(FILTER_PROGRAMS[pick % FILTER_PROGRAMS.len()], msg);
            }
            _ => {}
        }
        if i % 97 == 0 {
            c.flush_idle(3600);
        }
    }
    c.finish();
    let lines_counted: u64 = p.stats().lines;
    assert_eq!(lines_counted, n, "every line is counted once");
}

/// A current-thread runtime for the async framing code.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    })
}

/// Syslog over TCP (RFC 6587 octet counting or newline framing): frames read until the end,
/// with a read buffer whose size the first byte chooses (so frames straddle buffer refills).
/// Checks: no frame is longer than `MAX_MSG`, and reading always ends.
pub fn syslog_frames(data: &[u8]) {
    use smtpscope::serve::syslog::{read_frame, Frame, MAX_MSG};
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let cap = 1 + usize::from(sel) * 3;
    runtime().block_on(async {
        let mut r = tokio::io::BufReader::with_capacity(cap, body);
        let mut frames = 0usize;
        loop {
            match read_frame(&mut r).await {
                Ok(Frame::Msg(m)) => {
                    assert!(m.len() <= MAX_MSG, "frame of {} bytes", m.len());
                    frames += 1;
                    assert!(frames <= body.len(), "more frames than bytes");
                }
                Ok(Frame::Eof) | Ok(Frame::Bad) | Err(_) => break,
            }
        }
    });
}

/// Postfix policy delegation: the request parser and the event it gives.
pub fn policy_request(data: &[u8]) {
    use smtpscope::serve::policy::{Request, MAX_ATTRS};
    let text = String::from_utf8_lossy(data);
    if let Ok(req) = Request::parse(&text) {
        assert_eq!(req.get("request"), Some("smtpd_access_policy"));
        assert!(text.split('\n').filter(|l| !l.trim_end_matches('\r').is_empty()).count() <= MAX_ATTRS);
        std::hint::black_box(req.event());
    }
}

/// A few log lines run through an engine built from a configuration that passed validation:
/// a value the checks accept must not make the engine panic.
const ENGINE_LOG: &str = include_str!("engine.log");

/// smtpscope.toml: parse and validate; a configuration that passes runs the detectors on a
/// short log (so a value the checks let through cannot panic `analyze`).
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = smtpscope::config::FileConfig::parse(text, "fuzz.toml") else {
        return;
    };
    let mut engine = detect::Engine::new(cfg.detect_config());
    let mut p = LineParser::new(TimeContext::utc(2026));
    for line in ENGINE_LOG.lines() {
        let parsed = p.parse(line);
        if let (Some(h), Some(ev)) = (&parsed.header, &parsed.event) {
            engine.feed(h.ts, h.host, h.program, h.pid, ev);
        }
    }
    engine.finish();
    std::hint::black_box(engine.take_alerts());
}
