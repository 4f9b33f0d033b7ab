//! Criterion benches of the detection engine, one per detector (issue 12, item 6): the same
//! simulated day (the simulator's default ISP, [`USERS`] accounts, seed [`SEED`], its
//! hijacks, brute force, spam runs and incoming traffic) parsed once, then fed to an engine
//! with only that detector switched on. `engine` (every detector off: the correlator, the
//! direction and the bookkeeping) is the floor the others add to; `all` is the default
//! configuration. Throughput is events.
//!
//! `cargo bench -p simulate --bench detectors`; docs/PERFORMANCE.md has the figures.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use detect::{Config, Engine, GeoRef};
use maillog::{parse_line, Event, TimeContext, Ts};

/// Accounts of the simulated ISP: small enough for one iteration to take about a second.
const USERS: u32 = 1_000;
/// The simulator's seed (a training seed of docs/DETECTION.md).
const SEED: u64 = 1;

/// One parsed line: what `Engine::feed` takes.
type Fed<'a> = (Ts, &'a str, &'a str, Option<u32>, Event<'a>);

/// Simulates the day into a temporary directory and returns its log.
fn simulated_log() -> String {
    let dir = std::env::temp_dir().join(format!("smtpscope-bench-{}", std::process::id()));
    let cfg = simulate::SimConfig {
        users: USERS,
        days: 1,
        seed: SEED,
        ..simulate::SimConfig::default()
    };
    simulate::run(&cfg, &dir).expect("simulate");
    let log = std::fs::read_to_string(dir.join("mail.log")).expect("mail.log");
    let _ = std::fs::remove_dir_all(&dir);
    log
}

/// The configurations benched: every detector off, each alone, and all (the default).
fn configs() -> Vec<(&'static str, Config)> {
    let off = || {
        let mut c = Config::default();
        c.delivery_failures.enabled = false;
        c.helo.enabled = false;
        c.incoming.enabled = false;
        c.hijack.enabled = false;
        c.campaign.enabled = false;
        c.bruteforce.enabled = false;
        c
    };
    let with = |f: fn(&mut Config)| {
        let mut c = off();
        f(&mut c);
        c
    };
    vec![
        ("engine", off()),
        (
            "delivery-failures",
            with(|c| c.delivery_failures.enabled = true),
        ),
        ("helo-anomaly", with(|c| c.helo.enabled = true)),
        ("auth-hijack", with(|c| c.hijack.enabled = true)),
        (
            "auth-hijack+campaign",
            with(|c| {
                c.hijack.enabled = true;
                c.campaign.enabled = true;
            }),
        ),
        ("auth-bruteforce", with(|c| c.bruteforce.enabled = true)),
        ("incoming", with(|c| c.incoming.enabled = true)),
        ("all", Config::default()),
    ]
}

fn detectors(c: &mut Criterion) {
    let log = simulated_log();
    let mut cx = TimeContext::new(2026, jiff::tz::TimeZone::UTC);
    let fed: Vec<Fed<'_>> = log
        .lines()
        .filter_map(|l| {
            let p = parse_line(l, &mut cx);
            let h = p.header?;
            Some((h.ts, h.host, h.program, h.pid, p.event?))
        })
        .collect();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(fed.len() as u64));
    for (name, cfg) in configs() {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut e = Engine::with_geo(cfg.clone(), GeoRef::Builtin);
                for (ts, host, program, pid, ev) in &fed {
                    e.feed(*ts, host, program, *pid, black_box(ev));
                }
                e.finish();
                e.take_alerts().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
