//! The engine's work per policy request (docs/PERFORMANCE.md, "Policy server"; issue 12).
//!
//! `cargo run --release -p detect --example policy_engine -- [REQUESTS] [USERS] [RATE]`
//!
//! Feeds REQUESTS (default 1,000,000) `RCPT`-state policy requests to an engine with the
//! default settings and the built-in geo database, as `serve`'s engine thread does
//! (`Engine::feed_policy`), without the network: the same requests as `bench/policy/loadgen`
//! sends (USERS accounts, default 1,000, taking turns; each request its own SMTP transaction,
//! so each makes a claim and a session HELO entry), RATE requests per second of policy clock
//! (default 60,000, about what the policy benchmark reaches). The first fifth warms the engine
//! up to its steady state (the claims' and HELOs' caps reached, so every request also retires
//! one); the rest is timed.
//!
//! Prints one JSON line: requests timed, nanoseconds per request, and the claim counters.
//! Under `valgrind --tool=callgrind` the instruction count per request is the steady figure on
//! a shared machine (the warm-up and the built-in geo database's decoding are in the total;
//! run twice with different REQUESTS and take the difference).

use std::time::Instant;

use detect::{Config, Engine};
use maillog::{Event, Peer, Ts};

/// One request's attribute values, as the load generator writes them.
struct Request {
    ip: String,
    helo: String,
    user: String,
    rcpt: String,
    instance: String,
}

fn request(i: u64, users: u64) -> Request {
    let u = i % users;
    Request {
        ip: format!("10.{}.{}.{}", (u >> 16) & 255, (u >> 8) & 255, u & 255),
        helo: format!("pc-{u}"),
        user: format!("user{u}@example.net"),
        rcpt: format!("rcpt{i}@example.org"),
        instance: format!("{i:x}.5f3a.0"),
    }
}

fn feed(e: &mut Engine, ts: Ts, r: &Request) {
    let ev = Event::Policy {
        protocol_state: "RCPT",
        client: Peer {
            host: Some("unknown"),
            ip: Some(&r.ip),
            port: Some(50_000),
        },
        helo: Some(&r.helo),
        sender: Some(&r.user),
        recipient: Some(&r.rcpt),
        recipient_count: Some(0),
        sasl_username: Some(&r.user),
        sasl_method: Some("PLAIN"),
        qid: None,
        instance: Some(&r.instance),
        size: Some(0),
    };
    e.feed_policy(ts, &ev);
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let (n, users, rate) = (arg(1, 1_000_000), arg(2, 1_000), arg(3, 60_000).max(1));
    let mut e = Engine::new(Config::default());
    let start = Ts::from_secs(1_764_547_200);
    let at = |i: u64| Ts(start.0 + (i as i64) * 1_000_000 / rate as i64);
    let warm = n / 5;
    let reqs: Vec<Request> = (0..n).map(|i| request(i, users)).collect();
    for (i, r) in reqs.iter().enumerate().take(warm as usize) {
        feed(&mut e, at(i as u64), r);
    }
    let t0 = Instant::now();
    for (i, r) in reqs.iter().enumerate().skip(warm as usize) {
        feed(&mut e, at(i as u64), r);
    }
    let secs = t0.elapsed().as_secs_f64();
    let timed = n - warm;
    let s = e.claim_stats();
    println!(
        "{{\"requests\":{timed},\"ns_per_request\":{:.0},\"claimed\":{},\"overflowed\":{},\"policy_only\":{},\"helo_dropped\":{},\"alerts\":{}}}",
        secs * 1e9 / timed.max(1) as f64,
        s.claimed,
        s.overflowed,
        s.policy_only,
        s.helo_dropped,
        e.take_alerts().len()
    );
}
