//! The batch pipeline shared by `analyze`, `parse` and `demo`: inputs -> lines -> events -> engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use maillog::{LineParser, Parsed, TimeContext, Ts};
use serde::Serialize;

use crate::input::{
    append_line, fill_buf, first_month, infer_year, lines, read_line, Source, MAX_LINE,
};

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

/// Read every source in order and hand each parsed line to `f`, on this thread.
pub fn run(
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    f: impl FnMut(&Parsed<'_>, &str),
) -> Result<RunStats> {
    run_threads(srcs, t, progress, 1, f)
}

/// Like [`run`], parsing on `threads` threads: a reader cuts the (decompressed) input into
/// line-aligned chunks, workers parse them, and `f` still sees every line once, in input order,
/// on the calling thread, with the same results as one thread. `threads <= 1` parses inline.
pub fn run_threads(
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    threads: usize,
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
        let mut r = src.open(bar.as_ref().map(|_| counter.clone()))?;
        let mut is = InputStats {
            name: src.name(),
            lines: 0,
            bytes: 0,
            year,
        };
        if threads > 1 {
            let tick = || {
                if let Some(b) = &bar {
                    b.set_position(counter.load(Ordering::Relaxed));
                }
            };
            let st = par::run_source(&mut *r, src, year, &tz, threads, &mut is, &mut f, tick)?;
            stats.parse.merge(&st);
            stats.inputs.push(is);
            continue;
        }
        let mut parser = LineParser::new(TimeContext::new(year, tz));
        let reading = || format!("error reading {}", src.name());
        loop {
            let avail = fill_buf(&mut *r).with_context(reading)?;
            if avail.is_empty() {
                break;
            }
            // The whole lines in the reader's buffer, parsed where they lie; a line that
            // crosses the buffer's end is read on its own.
            let (lines, bytes) = match memchr::memrchr(b'\n', avail) {
                Some(last) => {
                    let got = parse_block(&avail[..=last], &mut parser, &mut f);
                    r.consume(last + 1);
                    got
                }
                None => {
                    buf.clear();
                    if append_line(&mut *r, &mut buf)
                        .with_context(reading)?
                        .is_none()
                    {
                        break;
                    }
                    parse_block(&buf, &mut parser, &mut f)
                }
            };
            is.lines += lines;
            is.bytes += bytes;
            if let Some(b) = &bar {
                b.set_position(counter.load(Ordering::Relaxed));
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

/// Parse one line's bytes cut at [`MAX_LINE`], read lossily when not UTF-8 (counted).
fn parse_raw(raw: &[u8], parser: &mut LineParser, f: &mut impl FnMut(&Parsed<'_>, &str)) {
    let raw = &raw[..raw.len().min(MAX_LINE)];
    match simdutf8::basic::from_utf8(raw) {
        Ok(line) => f(&parser.parse(line), line),
        Err(_) => {
            parser.note_invalid_utf8();
            let line = String::from_utf8_lossy(raw);
            f(&parser.parse(&line), &line);
        }
    }
}

/// Parse `block` (whole lines, each ending in `\n`) line by line, each line cut at
/// [`MAX_LINE`] bytes and read lossily when not UTF-8, as [`read_line`] reads it; returns
/// the lines and the bytes they count for (each line's kept length and its `\n`).
///
/// The one-thread path hands it the whole lines in the reader's buffer, so a line is neither
/// copied nor checked for UTF-8 on its own (docs/PERFORMANCE.md, "Reading in blocks").
fn parse_block(
    block: &[u8],
    parser: &mut LineParser,
    f: &mut impl FnMut(&Parsed<'_>, &str),
) -> (u64, u64) {
    let (mut n, mut cut) = (0u64, 0u64);
    match simdutf8::basic::from_utf8(block) {
        Ok(text) => {
            for line in lines(text) {
                n += 1;
                if line.len() <= MAX_LINE {
                    f(&parser.parse(line), line);
                } else {
                    cut += (line.len() - MAX_LINE) as u64;
                    parse_raw(line.as_bytes(), parser, f);
                }
            }
        }
        Err(_) => {
            for raw in block.split_inclusive(|&c| c == b'\n') {
                let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                n += 1;
                cut += raw.len().saturating_sub(MAX_LINE) as u64;
                parse_raw(raw, parser, f);
            }
        }
    }
    (n, block.len() as u64 - cut)
}

/// A message with no log line for this long is gone from the queue (rotated out of the log, or
/// the log was cut): a deferred message is retried at least every 67 minutes by Postfix
/// (`maximal_backoff_time`) and every 6 hours by Exim's default retry rule, and its bounce may
/// come days later, so a day of silence is long past any retry. Closing such messages keeps
/// memory flat in the length of the input. The one idle policy of `analyze` and `serve`.
pub const IDLE_CLOSE_SECS: i64 = 86_400;
/// Log time between sweeps for idle messages (a sweep looks at every message in flight). A sweep
/// happens when the log's event time has moved this far since the last one, so where sweeps fall
/// depends on the log alone, never on how it was read (threads, chunks, ticks). Our own idea.
pub const IDLE_SWEEP_SECS: i64 = 3_600;

/// The one driver of the engine, for `analyze` (batch) and `serve` (real time): parsed log lines
/// and policy requests in, the idle policy applied by log time, alerts out.
///
/// Everything that decides *when* the engine does something lives here, so both commands give
/// the same alerts for the same log: the idle sweep is driven by the log's event time
/// ([`IDLE_SWEEP_SECS`], [`IDLE_CLOSE_SECS`]); policy requests and the service's ticks move only
/// the policy clock (see `detect::claims`), never the log's.
#[derive(Debug)]
pub struct Driver {
    engine: detect::Engine,
    /// Log time of the next idle sweep (set by the first event).
    next_sweep: Option<Ts>,
    /// Whether [`analyze`] gives the per-entity detectors a thread of their own.
    detector_thread: DetectorThread,
}

/// Least `--threads` with which [`DetectorThread::Auto`] gives the detectors a thread of their
/// own: 2. It was 3 while the engine thread's own work was heavier (on
/// 2026-12-02 a 2-core machine gained nothing from the extra thread); measured again on
/// 2026-12-04 with `aa2aad9`, `--threads 2` took 19.6–24.9 s wall on the 1.8 GB benchmark log
/// with the detectors on their own thread against 30.6–34.4 s without, and won in each of six
/// interleaved rounds on its first quarter (docs/PERFORMANCE.md, "How `analyze` uses more than
/// one core").
pub const DETECTOR_THREAD_MIN_THREADS: usize = 2;

/// Whether batch analysis runs the detectors on a thread of their own
/// (`detect::Engine::detectors_on_thread`). The alerts are the same either way; only the speed
/// differs (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DetectorThread {
    /// With at least [`DETECTOR_THREAD_MIN_THREADS`] threads.
    #[default]
    Auto,
    /// Always.
    On,
    /// Never: the detectors run on the engine thread.
    Off,
}

impl DetectorThread {
    /// Whether the detectors get their own thread in a run with `threads` threads.
    pub fn wanted(self, threads: usize) -> bool {
        match self {
            DetectorThread::Auto => threads >= DETECTOR_THREAD_MIN_THREADS,
            DetectorThread::On => true,
            DetectorThread::Off => false,
        }
    }
}

impl Driver {
    /// Start a batch run of `threads` threads: the detectors get a thread of their own when
    /// the driver's [`DetectorThread`] wants it, and the parsers the rest, beside the calling
    /// (engine) thread and the detectors'. Returns the parser threads for [`run_threads`]
    /// (`1`: the calling thread parses). On two cores the engine thread parsing and the
    /// detectors' thread each take about half of the work, and a third and fourth thread
    /// (a reader and a parser) cost more than they gave: the first quarter of the benchmark
    /// log in 1.47–1.58 s against 1.61 with them (docs/PERFORMANCE.md, "How `analyze` uses
    /// more than one core").
    pub fn start_threads(&mut self, threads: usize) -> usize {
        if !self.detector_thread.wanted(threads) {
            return threads;
        }
        self.engine.detectors_on_thread();
        threads.saturating_sub(2).max(1)
    }

    /// A driver for `engine`.
    pub fn new(engine: detect::Engine) -> Driver {
        Driver {
            engine,
            next_sweep: None,
            detector_thread: DetectorThread::Auto,
        }
    }

    /// Choose whether [`analyze`] gives the per-entity detectors a thread of their own.
    pub fn set_detector_thread(&mut self, d: DetectorThread) {
        self.detector_thread = d;
    }

    /// Log time of the next idle sweep (kept in a checkpoint with the engine's state, so a
    /// restored service sweeps where an uninterrupted one would).
    pub fn next_sweep(&self) -> Option<Ts> {
        self.next_sweep
    }

    /// Set the next idle sweep (restoring a checkpoint).
    pub fn set_next_sweep(&mut self, t: Option<Ts>) {
        self.next_sweep = t;
    }

    /// The engine.
    pub fn engine(&self) -> &detect::Engine {
        &self.engine
    }

    /// The engine, to restore or configure it.
    pub fn engine_mut(&mut self) -> &mut detect::Engine {
        &mut self.engine
    }

    /// Feed one parsed log line (lines without a header or event are skipped).
    pub fn feed(&mut self, p: &Parsed<'_>) {
        let (Some(h), Some(ev)) = (&p.header, &p.event) else {
            return;
        };
        self.engine.feed(h.ts, h.host, h.program, h.pid, ev);
        if matches!(ev, maillog::Event::Policy { .. }) {
            return;
        }
        let Some(now) = self.engine.stats().last_ts else {
            return;
        };
        match self.next_sweep {
            None => self.next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS)),
            Some(t) if now >= t => {
                self.engine.flush_idle(IDLE_CLOSE_SECS);
                self.next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS));
            }
            Some(_) => {}
        }
    }

    /// Feed one policy request, stamped at its arrival (policy clock).
    pub fn feed_policy(&mut self, ts: Ts, ev: &maillog::Event<'_>) {
        self.engine.feed_policy(ts, ev);
    }

    /// The service's tick: the policy clock moves to `now` (wall clock). Log-fed state is not
    /// touched: without new log lines the log's time does not move.
    pub fn tick(&mut self, now: Ts) {
        self.engine.policy_tick(now);
    }

    /// End of batch input: close every message in flight.
    pub fn finish(&mut self) {
        self.engine.finish();
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<detect::Alert> {
        self.engine.take_alerts()
    }

    /// Alerts raised since the last call, appended to `out` (see
    /// `detect::Engine::take_alerts_into`).
    pub fn take_alerts_into(&mut self, out: &mut Vec<detect::Alert>) {
        self.engine.take_alerts_into(out);
    }
}

/// The batch analysis: every source through the [`Driver`], the end of input closing what is
/// left. Returns what was read and every alert, in order. When the driver's [`DetectorThread`]
/// wants it for `threads`, the engine also runs its detectors on a thread of their own
/// (`detect::Engine::detectors_on_thread`; the same alerts in the same order) until
/// [`Driver::finish`]; the parsers get the threads left ([`Driver::start_threads`]).
pub fn analyze(
    driver: &mut Driver,
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    threads: usize,
) -> Result<(RunStats, Vec<detect::Alert>)> {
    let mut alerts = Vec::new();
    let parsers = driver.start_threads(threads);
    let run = run_threads(srcs, t, progress, parsers, |p, _| {
        driver.feed(p);
        // Asked after every line and nearly always none: appended, as a vector returned
        // for every line cost about 26 instructions a line to drop.
        driver.take_alerts_into(&mut alerts);
    })?;
    driver.finish();
    alerts.extend(driver.take_alerts());
    Ok((run, alerts))
}

/// [`analyze`], also noting every completed record that names a submitting entity in `seen`
/// (for the HTML report's figures). The engine keeps its records for this run only; alerts are
/// the same as without.
pub fn analyze_seeing(
    driver: &mut Driver,
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    threads: usize,
    seen: &mut crate::seen::Seen,
) -> Result<(RunStats, Vec<detect::Alert>)> {
    fn drain(driver: &mut Driver, seen: &mut crate::seen::Seen, alerts: &mut Vec<detect::Alert>) {
        let new = driver.take_alerts();
        for a in &new {
            seen.watch(a);
        }
        alerts.extend(new);
        for r in driver.engine.take_records() {
            if let (_, Some(e)) = driver.engine.classify(&r) {
                seen.record(&r, &e);
            }
        }
    }
    driver.engine.keep_records(true);
    let parsers = driver.start_threads(threads);
    let mut alerts = Vec::new();
    let run = run_threads(srcs, t, progress, parsers, |p, _| {
        driver.feed(p);
        drain(driver, seen, &mut alerts);
    })?;
    driver.finish();
    drain(driver, seen, &mut alerts);
    driver.engine.keep_records(false);
    Ok((run, alerts))
}

/// The incidents of a batch's alerts: each alert merged into its entity's incident, the
/// containment policy applied, all by the alerts' own times (what `serve` would have done).
/// Containments whose time ran out by the last alert are released by expiry.
pub fn incidents(
    alerts: &[detect::Alert],
    policy: detect::incident::Policy,
) -> detect::incident::Incidents {
    let mut inc = detect::incident::Incidents::new(policy);
    for a in alerts {
        inc.on_alert(a);
    }
    if let Some(last) = alerts.iter().map(|a| a.ts).max() {
        inc.expire(last.secs());
    }
    inc
}

/// Feed a parsed line to the engine directly, without the idle policy (`parse --records`).
pub fn feed(engine: &mut detect::Engine, p: &Parsed<'_>) {
    if let (Some(h), Some(ev)) = (&p.header, &p.event) {
        engine.feed(h.ts, h.host, h.program, h.pid, ev);
    }
}

/// Parallel parsing of one source.
///
/// A reader thread cuts the decompressed text into line-aligned chunks of about
/// [`par::CHUNK_BYTES`]; worker threads parse whole chunks; the calling thread takes the parsed
/// chunks back in input order and hands every line to the callback. A fixed number of chunk
/// buffers circulates (reader -> worker -> caller -> reader), so memory stays flat however large
/// the input and however slow the callback.
///
/// Year-less stamps need the year-rollover state the lines before left (December -> January).
/// A worker guesses the year at its chunk's start (the latest year any chunk reached) and reports
/// the first month it saw and the state it ended in; the caller checks the guess against the true
/// state and parses the chunk again, in order, when it was wrong (only near a new year), so the
/// output is the same as with one thread.
mod par {
    use std::collections::BTreeMap;
    use std::io::BufRead;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::mpsc::{channel, sync_channel};
    use std::sync::Mutex;

    use anyhow::{Context, Result};
    use maillog::{LineParser, Parsed, Stats, TimeContext};

    use super::InputStats;
    use crate::input::{append_lines, lines, Appended, Source, MAX_LINE};

    /// Target size of one chunk: large enough that the per-chunk overhead (channels, one small
    /// statistics table) vanishes, small enough that all chunks in flight stay a few MB.
    pub const CHUNK_BYTES: usize = 1 << 20;
    /// Chunk buffers in flight per worker (plus [`EXTRA_SLOTS`]): enough to keep every worker busy
    /// while the caller works through the oldest chunk.
    const SLOTS_PER_WORKER: usize = 2;
    /// Chunk buffers beyond the per-worker ones (the one being filled, the one being consumed).
    const EXTRA_SLOTS: usize = 2;

    /// The parses of one chunk's lines (see [`Done::items`]).
    type Items = Vec<(Parsed<'static>, &'static str)>;

    /// The buffers of one chunk in flight, reused from chunk to chunk: its text, and the
    /// vector for its parses (empty between chunks). The parses take more bytes than the text
    /// (296 bytes a line); a vector that large, allocated afresh for every chunk, was a fresh
    /// mapping each time, its pages faulted in and zeroed by the kernel.
    struct Slot {
        text: Vec<u8>,
        items: Items,
    }

    /// A chunk of whole lines, each followed by `\n`, as the reader cut it.
    struct Job {
        seq: u64,
        slot: Slot,
        bytes: u64,
    }

    /// One parsed chunk.
    struct Done {
        seq: u64,
        /// Each line's parse with the line. They borrow from `text` (see [`Done::items`]);
        /// declared before `text` so they are dropped first.
        items: Items,
        /// The chunk's text; its heap buffer is never written to or freed while `items` holds
        /// references into it.
        text: String,
        /// Lines that were not valid UTF-8 (read lossily).
        invalid: u64,
        stats: Stats,
        lines: u64,
        bytes: u64,
        /// Year the worker assumed at the chunk's start.
        year_used: i64,
        /// Month of the first year-less stamp in the chunk.
        first_month: Option<u32>,
        /// (year, last month) after the chunk's last line.
        end: (i64, u32),
    }

    impl Done {
        /// The parsed lines, with lifetimes bound to `self`.
        fn items(&self) -> &[(Parsed<'_>, &str)] {
            &self.items
        }

        /// The buffers, for reuse, once the parses borrowing the text are gone.
        fn into_slot(mut self) -> Slot {
            let mut items = std::mem::take(&mut self.items);
            items.clear();
            let mut text = std::mem::take(&mut self.text).into_bytes();
            text.clear();
            Slot { text, items }
        }
    }

    /// The chunk as text: as is when valid UTF-8, else line by line with invalid lines read
    /// lossily (as the one-thread path does). Returns the text and the number of invalid lines.
    ///
    /// The check is `simdutf8`'s (SIMD, several times std's rate on log text; the UTF-8 check
    /// was 2% of `analyze`'s instructions, docs/PERFORMANCE.md).
    fn to_text(raw: Vec<u8>) -> (String, u64) {
        match simdutf8::basic::from_utf8(&raw) {
            // SAFETY: `simdutf8` has just checked that `raw` is valid UTF-8.
            Ok(_) => (unsafe { String::from_utf8_unchecked(raw) }, 0),
            Err(_) => {
                let mut s = String::with_capacity(raw.len() + raw.len() / 8);
                let mut invalid = 0;
                for line in raw.split_inclusive(|&c| c == b'\n') {
                    match simdutf8::basic::from_utf8(line) {
                        Ok(l) => s.push_str(l),
                        Err(_) => {
                            invalid += 1;
                            s.push_str(&String::from_utf8_lossy(line));
                        }
                    }
                }
                (s, invalid)
            }
        }
    }

    fn parse_job(job: Job, year: i64, tz: &jiff::tz::TimeZone) -> Done {
        let mut parser = LineParser::new(TimeContext::new(year, tz.clone()));
        let Slot { text, mut items } = job.slot;
        let (text, invalid) = to_text(text);
        // SAFETY: `text`'s heap buffer does not move when the `String` is moved into `Done`, and
        // `Done` never writes to it or frees it before `items` (which hold these references) is
        // dropped or cleared: the field order drops `items` first, and `into_slot` clears it
        // before taking the buffer (a reused `items` holds no references). The `'static` never
        // escapes: `Done::items` hands the references out with the lifetime of `&Done`.
        let t: &'static str = unsafe { &*(text.as_str() as *const str) };
        // Room for exactly the chunk's lines (a reused vector keeps the largest chunk's):
        // `memchr`'s count is a vectorized pass, and a vector sized by guess (the worker's
        // last chunk and an eighth more) took more peak memory at two threads
        // (docs/PERFORMANCE.md, Results).
        items.clear();
        items.reserve(memchr::memchr_iter(b'\n', t.as_bytes()).count());
        let mut first_month = None;
        for line in lines(t) {
            let p = parser.parse(line);
            if first_month.is_none() {
                let m = parser.time_context().last_month();
                if m != 0 {
                    first_month = Some(m);
                }
            }
            items.push((p, line));
        }
        for _ in 0..invalid {
            parser.note_invalid_utf8();
        }
        let ctx = parser.time_context();
        let end = (ctx.year(), ctx.last_month());
        let items_len = items.len() as u64;
        Done {
            seq: job.seq,
            items,
            text,
            invalid,
            stats: parser.take_stats(),
            lines: items_len,
            bytes: job.bytes,
            year_used: year,
            first_month,
            end,
        }
    }

    /// Parse one source on `workers` threads; see the module doc. Returns its parse statistics.
    #[allow(clippy::too_many_arguments)] // the pieces of one source's run, as `run_threads` has them
    pub fn run_source(
        r: &mut (dyn BufRead + Send),
        src: &Source,
        year: i64,
        tz: &jiff::tz::TimeZone,
        workers: usize,
        is: &mut InputStats,
        f: &mut dyn FnMut(&Parsed<'_>, &str),
        tick: impl Fn(),
    ) -> Result<Stats> {
        let workers = workers.max(1);
        let slots = workers * SLOTS_PER_WORKER + EXTRA_SLOTS;
        let (slot_tx, slot_rx) = sync_channel::<Slot>(slots);
        for _ in 0..slots {
            let slot = Slot {
                text: Vec::with_capacity(CHUNK_BYTES + MAX_LINE + 1),
                items: Vec::new(),
            };
            slot_tx
                .send(slot)
                .expect("the receiver is alive and the channel has room for every slot");
        }
        let (job_tx, job_rx) = channel::<Job>();
        let job_rx = Mutex::new(job_rx);
        // `None`: a parser thread panicked on a chunk (a parser bug); the run stops with an error
        // instead of waiting for that chunk forever.
        let (done_tx, done_rx) = channel::<Option<Done>>();
        let guess = AtomicI64::new(year);
        let mut total = Stats::default();
        std::thread::scope(|s| -> Result<()> {
            // Owned by this closure, so that leaving it early also stops the reader.
            let slot_tx = slot_tx;
            let reader = s.spawn(move || -> Result<()> {
                let mut seq = 0u64;
                // The caller hangs up (drops its slot sender) only when done.
                while let Ok(mut slot) = slot_rx.recv() {
                    slot.text.clear();
                    let Appended { bytes, eof } = append_lines(r, &mut slot.text, CHUNK_BYTES)
                        .with_context(|| format!("error reading {}", src.name()))?;
                    if bytes > 0 {
                        let job = Job { seq, slot, bytes };
                        if job_tx.send(job).is_err() {
                            break;
                        }
                        seq += 1;
                    }
                    if eof {
                        break;
                    }
                }
                Ok(())
            });
            for _ in 0..workers {
                let (job_rx, done_tx, guess) = (&job_rx, done_tx.clone(), &guess);
                s.spawn(move || loop {
                    // A poisoned lock means another worker panicked: stop too.
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let year = guess.load(Ordering::Relaxed);
                    let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        parse_job(job, year, tz)
                    }))
                    .ok();
                    let stop = d.is_none();
                    if let Some(d) = &d {
                        guess.fetch_max(d.end.0, Ordering::Relaxed);
                    }
                    if done_tx.send(d).is_err() || stop {
                        return;
                    }
                });
            }
            drop(done_tx);
            let (mut year_now, mut last_month) = (year, 0u32);
            let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
            let mut next = 0u64;
            for d in done_rx.iter() {
                let d = d.ok_or_else(|| anyhow::anyhow!("a parser thread panicked"))?;
                pending.insert(d.seq, d);
                while let Some(d) = pending.remove(&next) {
                    next += 1;
                    is.lines += d.lines;
                    is.bytes += d.bytes;
                    let ok =
                        d.year_used == year_now && !(last_month == 12 && d.first_month == Some(1));
                    if ok {
                        for (p, line) in d.items() {
                            f(p, line);
                        }
                        total.merge(&d.stats);
                        if d.first_month.is_some() {
                            (year_now, last_month) = d.end;
                        }
                    } else {
                        // The guess was wrong (a new year began in an earlier chunk): parse again
                        // from the true state.
                        let mut ctx = TimeContext::new(year_now, tz.clone());
                        if last_month == 12 {
                            ctx.year_for_month(12);
                        }
                        let mut parser = LineParser::new(ctx);
                        for line in lines(&d.text) {
                            let p = parser.parse(line);
                            f(&p, line);
                        }
                        for _ in 0..d.invalid {
                            parser.note_invalid_utf8();
                        }
                        let c = parser.time_context();
                        year_now = c.year();
                        if c.last_month() != 0 {
                            last_month = c.last_month();
                        }
                        guess.fetch_max(year_now, Ordering::Relaxed);
                        total.merge(parser.stats());
                    }
                    tick();
                    // The reader may have stopped (end of input); then the buffer is not needed.
                    let _ = slot_tx.send(d.into_slot());
                }
            }
            drop(slot_tx);
            anyhow::ensure!(pending.is_empty(), "parsed chunks missing after {next}");
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))?
        })?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line as [`read_line`] reads it: cut at [`MAX_LINE`], lossy when not UTF-8.
    fn read_lines_one_by_one(src: &Source) -> Vec<String> {
        let mut r = src.open(None).unwrap();
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        while read_line(&mut *r, &mut buf).unwrap() {
            out.push(String::from_utf8_lossy(&buf).into_owned());
        }
        out
    }

    /// The parallel path reuses each chunk's buffers (its text and the vector of its parses)
    /// for later chunks: with far more chunks than buffers (12 MB through 1 MB chunks, six
    /// buffers), chunks of different line counts (lines grow and shrink along the file) and
    /// different kinds of line, every line is parsed once and as one thread parses it.
    #[test]
    fn reused_chunk_buffers_give_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut i = 0u64;
        while text.len() < 12 << 20 {
            i += 1;
            let pad = "p".repeat(((i / 2_000) % 7 * 60 + i % 13) as usize);
            let (s, m) = ((i / 60) % 60, (i / 3_600) % 24);
            let line = match i % 4 {
                0 => format!(
                    "Jan  1 {m:02}:{s:02}:{:02} mx postfix/smtpd[{i}]: {i:X}: client=c{pad}.example[192.0.2.{}]\n",
                    i % 60,
                    i % 250
                ),
                1 => format!(
                    "Jan  1 {m:02}:{s:02}:{:02} mx postfix/qmgr[7]: {i:X}: from=<a{i}@example.org>, size={}, nrcpt=1 (queue active)\n",
                    i % 60,
                    i * 7
                ),
                2 => format!(
                    "Jan  1 {m:02}:{s:02}:{:02} mx postfix/smtp[{i}]: {i:X}: to=<b{pad}@example.net>, relay=r.example.net[198.51.100.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)\n",
                    i % 60
                ),
                _ => format!("Jan  1 {m:02}:{s:02}:{:02} mx kernel: something else {pad}\n", i % 60),
            };
            text.push_str(&line);
        }
        let p = dir.path().join("mail.log");
        std::fs::write(&p, &text).unwrap();
        let src = Source::File(p);
        let t = TimeOpts {
            year: Some(2026),
            tz: Some(jiff::tz::TimeZone::UTC),
        };
        let parses = |threads| {
            let mut got = Vec::new();
            let stats = run_threads(std::slice::from_ref(&src), &t, false, threads, |p, line| {
                got.push(format!("{line}\t{p:?}"))
            })
            .unwrap();
            (got, stats.inputs[0].lines)
        };
        let (one, lines) = parses(1);
        assert_eq!(lines, i);
        assert_eq!(one.len() as u64, i);
        for threads in [2, 3] {
            let (many, lines) = parses(threads);
            assert_eq!(lines, i, "{threads} threads");
            assert_eq!(many.len(), one.len(), "{threads} threads");
            if let Some(k) = (0..one.len()).find(|&k| one[k] != many[k]) {
                panic!(
                    "{threads} threads: line {k} differs:\n{}\n{}",
                    one[k], many[k]
                );
            }
        }
    }

    /// The one-thread path parses whole lines where they lie in the reader's buffer: it sees
    /// the lines `read_line` reads, with the same counts, over buffer ends (a 3 MB file
    /// through a 1 MB buffer), lines longer than `MAX_LINE` (one cut inside a two-byte
    /// character), invalid UTF-8 inside and outside blocks, and a last line without `\n`.
    #[test]
    fn one_thread_reads_the_lines_read_line_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut text: Vec<u8> = Vec::new();
        let mut i = 0u64;
        while text.len() < 3 << 20 {
            i += 1;
            text.extend_from_slice(
                format!(
                    "Jan  1 00:00:{:02} mx postfix/smtpd[{i}]: line {i} {}\n",
                    i % 60,
                    "x".repeat((i % 300) as usize)
                )
                .as_bytes(),
            );
            match i {
                12_000 => text.extend_from_slice(b"bad \xff\xfe bytes\n"),
                2_000 => {
                    text.extend_from_slice(&vec![b'y'; MAX_LINE - 1]);
                    text.extend_from_slice("é and more\n".as_bytes());
                }
                3_000 => {
                    text.extend_from_slice(&vec![b'z'; 3 * MAX_LINE]);
                    text.push(b'\n');
                }
                _ => {}
            }
        }
        text.extend_from_slice(b"last line \xc3");
        let p = dir.path().join("mail.log");
        std::fs::write(&p, &text).unwrap();
        let src = Source::File(p);
        let want = read_lines_one_by_one(&src);
        let mut got = Vec::new();
        let t = TimeOpts {
            year: Some(2026),
            tz: Some(jiff::tz::TimeZone::UTC),
        };
        let stats = run(std::slice::from_ref(&src), &t, false, |_, line| {
            got.push(line.to_string())
        })
        .unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the lines differ");
        assert_eq!(stats.inputs[0].lines, want.len() as u64);
        let kept: u64 = want.iter().map(|l| l.len() as u64 + 1).sum();
        // The lossy lines are longer than their bytes (U+FFFD is three bytes): count bytes.
        let bytes: u64 = {
            let mut r = src.open(None).unwrap();
            let (mut buf, mut n) = (Vec::new(), 0u64);
            while read_line(&mut *r, &mut buf).unwrap() {
                n += buf.len() as u64 + 1;
            }
            n
        };
        assert!(kept > bytes);
        assert_eq!(stats.inputs[0].bytes, bytes);
        assert_eq!(stats.parse.invalid_utf8, 3, "{:?}", stats.parse);
    }
}
