//! The batch pipeline shared by `analyze`, `parse` and `demo`: inputs -> lines -> events -> engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use maillog::{LineParser, Parsed, TimeContext, Ts};
use serde::Serialize;

use crate::input::{first_month, infer_year, read_line, Source};

/// Time settings from the command line or config.
#[derive(Debug, Clone, Default)]
pub struct TimeOpts {
    /// Fixed year for year-less stamps.
    pub year: Option<i64>,
    /// Zone for zone-less stamps.
    pub tz: Option<jiff::tz::TimeZone>,
}

/// Per-input counters.
#[derive(Debug, Clone, Serialize)]
pub struct InputStats {
    /// Name.
    pub name: String,
    /// Lines.
    pub lines: u64,
    /// Bytes of text (decompressed).
    pub bytes: u64,
    /// Year assumed for year-less stamps.
    pub year: i64,
}

/// What a run read.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Inputs in the order read.
    pub inputs: Vec<InputStats>,
    /// Parser statistics over all inputs.
    pub parse: maillog::Stats,
    /// Wall-clock seconds.
    pub secs: f64,
}

impl RunStats {
    /// Bytes over all inputs.
    pub fn bytes(&self) -> u64 {
        self.inputs.iter().map(|i| i.bytes).sum()
    }
}

/// First time stamp of a source, for ordering rotated files (mail.log.2.gz before mail.log.1
/// before mail.log).
fn first_ts(src: &Source, t: &TimeOpts) -> Option<Ts> {
    let year = t.year.unwrap_or_else(|| infer_year(src, first_month(src)));
    let tz = t.tz.clone().unwrap_or_else(jiff::tz::TimeZone::system);
    let mut ctx = TimeContext::new(year, tz);
    let mut r = src.open(None).ok()?;
    let mut buf = Vec::new();
    for _ in 0..200 {
        if !read_line(&mut *r, &mut buf).ok()? {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        if let Some(h) = maillog::header::parse_header(&line, &mut ctx) {
            return Some(h.ts);
        }
    }
    None
}

/// Order inputs by their first time stamp (stdin and unreadable ones keep their place at the end).
pub fn order_sources(mut srcs: Vec<Source>, t: &TimeOpts) -> Vec<Source> {
    if srcs.len() < 2 || srcs.contains(&Source::Stdin) {
        return srcs;
    }
    let mut keyed: Vec<(Option<Ts>, usize, Source)> = srcs
        .drain(..)
        .enumerate()
        .map(|(i, s)| (first_ts(&s, t), i, s))
        .collect();
    keyed.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    keyed.into_iter().map(|(_, _, s)| s).collect()
}

/// Read every source in order and hand each parsed line to `f`.
pub fn run(
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    mut f: impl FnMut(&Parsed<'_>, &str),
) -> Result<RunStats> {
    let start = Instant::now();
    let mut stats = RunStats::default();
    let total: u64 = srcs.iter().filter_map(|s| s.len()).sum();
    let counter = Arc::new(AtomicU64::new(0));
    let bar = if progress && total > 32 << 20 {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bar:40} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("constant template is valid"),
        );
        Some(b)
    } else {
        None
    };
    let mut buf = Vec::with_capacity(4096);
    for src in srcs {
        let year = t.year.unwrap_or_else(|| infer_year(src, first_month(src)));
        let tz = t.tz.clone().unwrap_or_else(jiff::tz::TimeZone::system);
        let mut parser = LineParser::new(TimeContext::new(year, tz));
        let mut r = src.open(bar.as_ref().map(|_| counter.clone()))?;
        let mut is = InputStats {
            name: src.name(),
            lines: 0,
            bytes: 0,
            year,
        };
        let mut n = 0u32;
        while read_line(&mut *r, &mut buf)
            .with_context(|| format!("error reading {}", src.name()))?
        {
            is.lines += 1;
            is.bytes += buf.len() as u64 + 1;
            let owned;
            let line: &str = match std::str::from_utf8(&buf) {
                Ok(s) => s,
                Err(_) => {
                    parser.note_invalid_utf8();
                    owned = String::from_utf8_lossy(&buf).into_owned();
                    &owned
                }
            };
            let p = parser.parse(line);
            f(&p, line);
            n += 1;
            if n == 65_536 {
                n = 0;
                if let Some(b) = &bar {
                    b.set_position(counter.load(Ordering::Relaxed));
                }
            }
        }
        stats.parse.merge(parser.stats());
        stats.inputs.push(is);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    stats.secs = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// Feed a parsed line to the engine.
pub fn feed(engine: &mut detect::Engine, p: &Parsed<'_>) {
    if let (Some(h), Some(ev)) = (&p.header, &p.event) {
        engine.feed(h.ts, h.host, h.program, h.pid, ev);
    }
}
