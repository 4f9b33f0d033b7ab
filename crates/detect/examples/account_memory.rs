//! Memory per tracked account (docs/PERFORMANCE.md, "Memory per tracked account"; issue 12).
//!
//! `cargo run --release -p detect --example account_memory -- ACCOUNTS [MSGS] [IPS] [DAYS]`
//! `cargo run --release -p detect --example account_memory -- --log FILE`
//!
//! With `--log`, a real or simulated log file is fed instead (lines that do not parse are
//! skipped), and each part's heap is printed in bytes, not per account: where the memory of a
//! long log goes (bench/memory/flat.sh).
//!
//! Generates, in memory, a Postfix log (the simulator's line shapes) of ACCOUNTS distinct
//! authenticated accounts, each submitting MSGS messages a day (default 3) from IPS addresses
//! (default 2; its own /24 per account, so every account has its own networks) over DAYS days
//! (default 1), with its own HELO, one recipient per message (one in ten fails with 550), and
//! one Dovecot IMAP login a day; the messages are spread evenly over the day, accounts
//! interleaved. Each line is parsed and fed to an engine with the default settings and the
//! built-in geo database, as `analyze` does (idle messages closed hourly). Every message is
//! complete (`removed`), so the correlator holds almost nothing at the end: what is left is
//! the detectors' state for the accounts (auth-hijack, extrusion, auth-bruteforce, HELO).
//!
//! Prints one JSON line: the engine's live heap (a counting global allocator: bytes allocated
//! and not freed, after feeding, minus before creating the engine), the process's peak RSS
//! (`VmHWM`), the tracked accounts and entities, and bytes per account.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use detect::{Config, Engine};
use maillog::{LineParser, TimeContext, Ts};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            LIVE.fetch_add(new, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

/// `analyze`'s idle policy (smtpscope's `pipeline::IDLE_CLOSE_SECS`, `IDLE_SWEEP_SECS`).
const IDLE_CLOSE_SECS: i64 = 86_400;
const IDLE_SWEEP_SECS: i64 = 3_600;

/// A field of a kB line of /proc/self/status, in bytes.
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// CPU seconds of this process so far (`/proc/self/stat`, 100 ticks a second).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// A fixed permutation of 0..n (so accounts are interleaved, not one after the other).
fn scatter(i: u64, n: u64) -> u64 {
    // An odd multiplier is a bijection modulo a power of two; walk until inside 0..n.
    let m = n.next_power_of_two();
    let mut x = i;
    loop {
        x = (x
            .wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1)
            .wrapping_add(0x632B_E59B))
            & (m - 1);
        if x < n {
            return x;
        }
    }
}

fn ip(a: u64, k: u64) -> String {
    // 20.0.0.0 upwards: one /24 per account (up to 16.7 M accounts), host k+1.
    format!(
        "{}.{}.{}.{}",
        20 + (a >> 16),
        (a >> 8) & 255,
        a & 255,
        k + 1
    )
}

/// Syslog stamp of `secs` since 2026-11-16 00:00 UTC (days stay within November for ≤ 14).
fn stamp(out: &mut String, secs: i64) {
    let day = 16 + secs / 86_400;
    let s = secs % 86_400;
    let _ = write!(
        out,
        "Nov {day:2} {:02}:{:02}:{:02} smtp1 ",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.get(1).map(String::as_str) == Some("--log") {
        log_memory(a.get(2).expect("usage: account_memory --log FILE"));
        return;
    }
    let accounts: u64 = a
        .get(1)
        .expect("usage: account_memory ACCOUNTS [MSGS] [IPS] [DAYS]")
        .parse()
        .expect("ACCOUNTS");
    let msgs: u64 = a.get(2).map_or(3, |v| v.parse().expect("MSGS"));
    let ips: u64 = a.get(3).map_or(2, |v| v.parse().expect("IPS"));
    let days: i64 = a.get(4).map_or(1, |v| v.parse().expect("DAYS"));

    builtin_geo_decoded();
    let live0 = LIVE.load(Ordering::Relaxed);
    let parser = LineParser::new(TimeContext::utc(2026));
    let mut e = Engine::new(Config::default());
    let live_empty = LIVE.load(Ordering::Relaxed);
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut line = String::with_capacity(512);
    let mut feeder = Feeder::new(parser);
    let mut feed = |line: &str, e: &mut Engine| {
        assert!(feeder.feed(line, e), "not parsed: {line}");
    };
    let per_day = accounts * msgs;
    let mut qid: u64 = 0x10_0000;
    for day in 0..days {
        // The day's IMAP logins, spread over its first hour.
        for i in 0..accounts {
            let acct = scatter(i, accounts);
            line.clear();
            stamp(&mut line, day * 86_400 + (i * 3600 / accounts) as i64);
            let _ = write!(
                line,
                "dovecot[0]: imap-login: Login: user=<user{acct}@example-isp.de>, method=PLAIN, rip={}, lip=10.20.0.5, mpid={}, TLS, session=<s{i:x}>",
                ip(acct, 0),
                1000 + i % 100_000
            );
            feed(&line, &mut e);
        }
        for j in 0..per_day {
            let acct = scatter(j % accounts, accounts);
            let k = (j / accounts) % ips;
            let t = day * 86_400 + 3600 + (j * (86_400 - 7200) / per_day) as i64;
            let (client, pid) = (ip(acct, k), 100_000 + j % 3_000_000);
            qid += 1;
            let rcpt = format!("r{}@example.org", j % 100_003);
            let user = format!("user{acct}@example-isp.de");
            let host = format!("pc-{acct}.dsl.example.net");
            let smtpd = format!("postfix/submission/smtpd[{pid}]: ");
            let mut put = |secs: i64, text: std::fmt::Arguments<'_>, e: &mut Engine| {
                line.clear();
                stamp(&mut line, secs);
                let _ = line.write_fmt(text);
                feed(&line, e);
            };
            put(
                t,
                format_args!("{smtpd}connect from {host}[{client}]"),
                &mut e,
            );
            put(t, format_args!("{smtpd}NOQUEUE: permit: RCPT from {host}[{client}]: action=permit_sasl_authenticated for Client host={host}[{client}]; from=<{user}> to=<{rcpt}> proto=ESMTP helo=<pc-{acct}>"), &mut e);
            put(t, format_args!("{smtpd}{qid:X}: client={host}[{client}], sasl_method=PLAIN, sasl_username={user}"), &mut e);
            put(
                t,
                format_args!(
                    "postfix/cleanup[2253]: {qid:X}: message-id=<{qid}.{acct}@example-isp.de>"
                ),
                &mut e,
            );
            put(
                t,
                format_args!(
                    "postfix/qmgr[1203]: {qid:X}: from=<{user}>, size=1917, nrcpt=1 (queue active)"
                ),
                &mut e,
            );
            put(t, format_args!("{smtpd}disconnect from {host}[{client}] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8"), &mut e);
            if j % 10 == 9 {
                put(t + 1, format_args!("postfix/smtp[2104]: {qid:X}: to=<{rcpt}>, relay=mx.example.org[192.0.2.25]:25, delay=1.1, delays=0.6/0/0.3/0.2, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.25] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown (in reply to RCPT TO command))"), &mut e);
            } else {
                put(t + 1, format_args!("postfix/smtp[2104]: {qid:X}: to=<{rcpt}>, relay=mx.example.org[192.0.2.25]:25, delay=1.1, delays=0.6/0/0.3/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {qid:X})"), &mut e);
            }
            put(
                t + 1,
                format_args!("postfix/qmgr[1203]: {qid:X}: removed"),
                &mut e,
            );
        }
    }
    let lines = feeder.lines;
    let cpu = cpu_secs() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    drop(line);
    let heap = LIVE.load(Ordering::Relaxed) - live0;
    let state = LIVE.load(Ordering::Relaxed) - live_empty;
    let (hijack_accounts, hijack_heap_estimate) = e.hijack_memory();
    let records = e.correlator_stats().records;
    let extrusion_entities = e.tracked_entities();
    // The packed states' compression dictionaries live in zstd's (C) memory, which the
    // counting allocator does not see: added from zstd's own sizes.
    let dictionaries = e.frozen().dictionary_bytes;
    let per_tracked = (state + dictionaries) as f64 / hijack_accounts.max(1) as f64;
    // Each part's heap: what dropping it frees (after the totals above were taken).
    let mut parts = String::new();
    let tracked = hijack_accounts.max(1) as f64;
    for part in Engine::PARTS {
        let before = LIVE.load(Ordering::Relaxed);
        if e.reset_part(part) {
            let freed = before.saturating_sub(LIVE.load(Ordering::Relaxed));
            let _ = write!(
                parts,
                "{}\"{part}\":{:.0}",
                if parts.is_empty() { "" } else { "," },
                freed as f64 / tracked
            );
        }
    }
    println!(
        "{{\"accounts\":{accounts},\"msgs_per_day\":{msgs},\"ips\":{ips},\"days\":{days},\"lines\":{lines},\"cpu_s\":{cpu:.2},\"wall_s\":{wall:.2},\"engine_heap_bytes\":{heap},\"empty_engine_bytes\":{},\"state_bytes\":{state},\"peak_rss_bytes\":{},\"hijack_accounts\":{hijack_accounts},\"hijack_heap_estimate\":{hijack_heap_estimate},\"extrusion_entities\":{},\"records\":{},\"bytes_per_account\":{:.0},\"rss_per_account\":{:.0},\"packing_dictionary_bytes\":{dictionaries},\"bytes_per_tracked_account\":{per_tracked:.0},\"per_tracked_account_by_part\":{{{parts}}}}}",
        live_empty - live0,
        status_kb("VmHWM:"),
        extrusion_entities,
        records,
        state as f64 / accounts as f64,
        status_kb("VmHWM:") as f64 / accounts as f64,
    );
}

/// Decode the built-in geo table now, before the heap is first read: it is the process's,
/// shared by every engine, not any account's state. Since an engine decodes it at its first
/// look-up (not when made), it was otherwise decoded while the log was fed and counted as
/// state: about 330 bytes per tracked account at 100,000 accounts (docs/PERFORMANCE.md,
/// "Memory per tracked account").
fn builtin_geo_decoded() {
    geo::GeoDb::builtin();
}

/// `--log FILE`: feed the file's lines as `analyze --threads 1` does (idle messages closed by
/// the same sweep), then print the engine's heap and each part's, in bytes.
fn log_memory(path: &str) {
    use std::io::BufRead as _;
    builtin_geo_decoded();
    let live0 = LIVE.load(Ordering::Relaxed);
    let parser = LineParser::new(TimeContext::utc(2026));
    let mut e = Engine::new(Config::default());
    let live_empty = LIVE.load(Ordering::Relaxed);
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("open the log"));
    let mut feeder = Feeder::new(parser);
    for line in file.lines() {
        feeder.feed(&line.expect("read the log"), &mut e);
    }
    let lines = feeder.lines;
    let state = LIVE.load(Ordering::Relaxed) - live_empty;
    let in_flight = e.correlator_stats().peak_in_flight;
    let (tracked, _) = e.hijack_memory();
    let frozen = e.frozen();
    let mut parts = String::new();
    for part in Engine::PARTS {
        let before = LIVE.load(Ordering::Relaxed);
        if e.reset_part(part) {
            let freed = before.saturating_sub(LIVE.load(Ordering::Relaxed));
            let sep = if parts.is_empty() { "" } else { "," };
            let _ = write!(parts, "{sep}\"{part}\":{freed}");
        }
    }
    println!(
        "{{\"log\":{path:?},\"lines\":{lines},\"empty_engine_bytes\":{},\"state_bytes\":{state},\"peak_in_flight\":{in_flight},\"peak_rss_bytes\":{},\"hijack_accounts\":{tracked},\"packed\":{{\"hijack\":{},\"extrusion\":{},\"helo\":{},\"bruteforce\":{}}},\"packing_dictionary_bytes\":{},\"bytes_by_part\":{{{parts}}}}}",
        live_empty - live0,
        status_kb("VmHWM:"),
        frozen.hijack,
        frozen.extrusion,
        frozen.helo,
        frozen.bruteforce,
        frozen.dictionary_bytes,
    );
}

/// Feeds log lines to an engine as `analyze --threads 1` does: idle messages closed by the same
/// sweep (`IDLE_SWEEP_SECS`, `IDLE_CLOSE_SECS`), alerts taken and dropped.
struct Feeder {
    parser: LineParser,
    next_sweep: Option<Ts>,
    /// Lines fed (parsed ones).
    lines: u64,
}

impl Feeder {
    fn new(parser: LineParser) -> Self {
        Feeder {
            parser,
            next_sweep: None,
            lines: 0,
        }
    }

    /// Feed one line; false when it does not parse into an event.
    fn feed(&mut self, line: &str, e: &mut Engine) -> bool {
        let p = self.parser.parse(line);
        let (Some(h), Some(ev)) = (&p.header, &p.event) else {
            return false;
        };
        e.feed(h.ts, h.host, h.program, h.pid, ev);
        let now = e.stats().last_ts.unwrap_or(h.ts);
        match self.next_sweep {
            Some(t) if now < t => {}
            Some(_) => {
                e.flush_idle(IDLE_CLOSE_SECS);
                self.next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS));
            }
            None => self.next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS)),
        }
        e.take_alerts();
        self.lines += 1;
        true
    }
}
