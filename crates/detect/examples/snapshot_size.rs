//! Size and time of an engine snapshot (docs/PERFORMANCE.md, "Checkpoints").
//!
//! `cargo run --release -p detect --example snapshot_size -- mail.log [DAYS] [YEAR]`
//!
//! Feeds the log (UTC stamps; `YEAR` for year-less ones, default 2026) to an engine with the
//! default settings and the built-in geo database, closing idle messages as `analyze` does,
//! until the end of day `DAYS` (default 1) of the log; then takes a snapshot five times and
//! restores it five times, and prints the size and the median times.

use std::io::BufRead;
use std::time::Instant;

use detect::{Config, Engine};
use maillog::{LineParser, TimeContext, Ts};

/// `analyze`'s idle policy (smtpscope's `pipeline::IDLE_CLOSE_SECS`, `IDLE_SWEEP_SECS`).
const IDLE_CLOSE_SECS: i64 = 86_400;
const IDLE_SWEEP_SECS: i64 = 3_600;

/// CPU time of this process so far, in milliseconds (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) * 10.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: snapshot_size mail.log [DAYS] [YEAR]");
    let days: i64 = args.get(2).map_or(1, |d| d.parse().expect("DAYS"));
    let year: i64 = args.get(3).map_or(2026, |y| y.parse().expect("YEAR"));
    let f = std::io::BufReader::new(std::fs::File::open(path).expect("open the log"));
    let mut parser = LineParser::new(TimeContext::utc(year));
    let mut e = Engine::new(Config::default());
    let (mut lines, mut cut, mut next_sweep): (u64, Option<Ts>, Option<Ts>) = (0, None, None);
    let fed = Instant::now();
    for line in f.lines() {
        let line = line.expect("read");
        let p = parser.parse(&line);
        let (Some(h), Some(ev)) = (&p.header, &p.event) else {
            continue;
        };
        let end = *cut
            .get_or_insert_with(|| Ts::from_secs((h.ts.secs().div_euclid(86_400) + days) * 86_400));
        if h.ts >= end {
            break;
        }
        lines += 1;
        e.feed(h.ts, h.host, h.program, h.pid, ev);
        let now = e.stats().last_ts.unwrap_or(h.ts);
        match next_sweep {
            Some(t) if now < t => {}
            Some(_) => {
                e.flush_idle(IDLE_CLOSE_SECS);
                next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS));
            }
            None => next_sweep = Some(now.plus_secs(IDLE_SWEEP_SECS)),
        }
        e.take_alerts();
    }
    let fed = fed.elapsed().as_secs_f64();
    let mut snap = Vec::new();
    let (mut ser, mut zst) = (Vec::new(), Vec::new());
    let (mut ser_cpu, mut zst_cpu) = (0.0, 0.0);
    let mut raw_len = 0;
    for _ in 0..5 {
        // The engine thread's part (serialize) and the part that can run elsewhere (compress).
        let cpu0 = cpu_ms();
        let t = Instant::now();
        let raw = e.snapshot_raw().expect("snapshot");
        ser.push(t.elapsed().as_secs_f64() * 1e3);
        let cpu1 = cpu_ms();
        let t = Instant::now();
        snap = raw.compress().expect("compress");
        zst.push(t.elapsed().as_secs_f64() * 1e3);
        ser_cpu += (cpu1 - cpu0) / 5.0;
        zst_cpu += (cpu_ms() - cpu1) / 5.0;
        raw_len = raw.len();
    }
    let take: Vec<f64> = ser.iter().zip(&zst).map(|(a, b)| a + b).collect();
    let take_cpu = ser_cpu + zst_cpu;
    let mut restore = Vec::new();
    let cpu0 = cpu_ms();
    for _ in 0..5 {
        let mut r = Engine::new(Config::default());
        let t = Instant::now();
        r.restore(&snap).expect("restore");
        restore.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let restore_cpu = (cpu_ms() - cpu0) / 5.0;
    let (accounts, heap) = e.hijack_memory();
    println!(
        "events fed: {lines} (up to {}) in {fed:.1} s",
        cut.map(|t| t.rfc3339()).unwrap_or_default()
    );
    println!(
        "hijack accounts: {accounts} (~{:.1} MiB heap), extrusion entities: {}",
        heap as f64 / 1048576.0,
        e.tracked_entities()
    );
    println!(
        "snapshot: {} bytes ({:.2} MiB) compressed",
        snap.len(),
        snap.len() as f64 / 1048576.0
    );
    println!(
        "snapshot time: median {:.1} ms wall (of 5), {take_cpu:.0} ms CPU each",
        median(take)
    );
    println!(
        "  serialize ({raw_len} bytes): median {:.1} ms wall, {ser_cpu:.0} ms CPU; compress: median {:.1} ms wall, {zst_cpu:.0} ms CPU",
        median(ser),
        median(zst)
    );
    println!(
        "restore time: median {:.1} ms wall (of 5), {restore_cpu:.0} ms CPU each",
        median(restore)
    );
}
