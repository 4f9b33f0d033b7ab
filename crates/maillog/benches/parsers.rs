//! Criterion benches of the parsers (issue 12, item 6): one bench per format, each over the
//! lines of a real third-party log of the corpus (tests/data/corpus, unpacked by the testdata
//! crate), so a regression shows in the parser where it happens. Throughput is bytes of log.
//!
//! `cargo bench -p maillog --bench parsers`; docs/PERFORMANCE.md has the figures.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use maillog::{parse_line, TimeContext};

/// The corpus logs benched, by format: the largest real log of each.
const LOGS: [(&str, &str); 4] = [
    ("postfix", "postfix/pflgviewer/mail.log"),
    ("exim", "exim/artik292/exim_mainlog"),
    ("dovecot", "dovecot/ladywhyfi/mail.log"),
    ("sendmail", "sendmail/infohtreasure-sendmail.log"),
];

/// The year the corpus logs' syslog stamps (which carry none) are read in.
const YEAR: i64 = 2016;

fn read(rel: &str) -> String {
    let p = testdata::mail().join(rel);
    let bytes = std::fs::read(Path::new(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ctx() -> TimeContext {
    TimeContext::new(YEAR, jiff::tz::TimeZone::UTC)
}

/// Benches `recognised` over every line of each log in group `group`: the count of lines it
/// recognises, so the work is not optimised away.
fn each_log(c: &mut Criterion, group: &str, recognised: fn(&str, &mut TimeContext) -> bool) {
    let mut g = c.benchmark_group(group);
    for (name, rel) in LOGS {
        let text = read(rel);
        let lines: Vec<&str> = text.lines().collect();
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut cx = ctx();
                lines
                    .iter()
                    .filter(|l| recognised(black_box(l), &mut cx))
                    .count()
            })
        });
    }
    g.finish();
}

/// Header and format parser of every line (what `analyze` does per line).
fn parse_lines(c: &mut Criterion) {
    each_log(c, "parse_line", |l, cx| parse_line(l, cx).event.is_some());
}

/// The syslog/Exim header alone, to separate it from the message parsers.
fn parse_headers(c: &mut Criterion) {
    each_log(c, "parse_header", |l, cx| {
        maillog::header::parse_header(l, cx).is_some()
    });
}

criterion_group!(benches, parse_lines, parse_headers);
criterion_main!(benches);
