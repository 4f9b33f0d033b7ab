//! Measures builtin load time and lookup throughput (run in release):
//! `cargo run -p geo --example bench-lookup --release`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// Lookups per measurement.
const N: usize = 5_000_000;

/// xorshift64*: a fixed-seed generator so runs are comparable.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// CPU time of this thread in nanoseconds (Linux; 0 elsewhere), so the rate
/// is meaningful on a shared, loaded machine.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `(first, last)` of every row of a source ASN CSV (`tests/data/geo/`).
fn read_rows(file: &str) -> Vec<(u128, u128)> {
    let path = testdata::geo().join(file);
    let text = std::fs::File::open(path)
        .and_then(zstd::stream::decode_all)
        .expect("tests/data/geo ASN CSV readable");
    let key = |s: &str| match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(u32::from(a) as u128),
        IpAddr::V6(a) => Some(u128::from(a)),
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((key(f.next()?)?, key(f.next()?)?))
        })
        .collect()
}

fn main() {
    let t = Instant::now();
    let db = geo::GeoDb::builtin();
    let load = t.elapsed();
    // A second decode of the same bytes, for the pure decode time.
    let bytes = db.to_table_bytes().expect("encodes");
    let t = Instant::now();
    let again = geo::GeoDb::from_table_bytes(&bytes).expect("decodes");
    println!(
        "decode again: {:.2?} ({} compressed bytes)",
        t.elapsed(),
        bytes.len()
    );
    drop(again);
    let s = db.stats();
    println!(
        "builtin load: {load:.2?}; {s:?} ({:.1} MiB)",
        s.heap_bytes as f64 / (1 << 20) as f64
    );

    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let v4: Vec<IpAddr> = (0..N)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng(&mut st) as u32)))
        .collect();
    // Addresses inside random rows of the ASN CSVs, i.e. where the table is
    // dense (uniform random IPv6 would mostly hit empty space).
    let rows = read_rows("asn-ipv6.csv.zst");
    let rows4 = read_rows("asn-ipv4.csv.zst");
    let v4_dense: Vec<IpAddr> = (0..N)
        .map(|_| {
            let (a, b) = rows4[rng(&mut st) as usize % rows4.len()];
            IpAddr::V4(Ipv4Addr::from(
                (a + rng(&mut st) as u128 % (b - a + 1)) as u32,
            ))
        })
        .collect();
    let v6: Vec<IpAddr> = (0..N)
        .map(|_| {
            let (a, b) = rows[rng(&mut st) as usize % rows.len()];
            let r = ((rng(&mut st) as u128) << 64) | rng(&mut st) as u128;
            IpAddr::V6(Ipv6Addr::from(a + r % (b - a).saturating_add(1).max(1)))
        })
        .collect();
    // A log's working set: 20,000 distinct addresses (half IPv6), repeated.
    let repeated: Vec<IpAddr> = (0..N)
        .map(|i| {
            if i % 2 == 0 {
                v4_dense[i % 10_000]
            } else {
                v6[i % 10_000]
            }
        })
        .collect();
    let tiny4: Vec<IpAddr> = (0..N).map(|i| v4_dense[i % 100]).collect();
    let tiny6: Vec<IpAddr> = (0..N).map(|i| v6[i % 100]).collect();
    for (name, ips) in [
        ("100 distinct IPv4 repeated", &tiny4),
        ("100 distinct IPv6 repeated", &tiny6),
        ("20k distinct IPv4+IPv6 repeated", &repeated),
        ("IPv4 inside random ASN rows", &v4_dense),
        ("IPv4 uniform random", &v4),
        ("IPv6 inside random ASN rows", &v6),
    ] {
        for round in 0..2 {
            let (t, c) = (Instant::now(), cpu_ns());
            let mut hits = 0usize;
            for ip in ips.iter() {
                let (c, a) = db.lookup_fast(black_box(*ip));
                hits += c.is_some() as usize + a.is_some() as usize;
            }
            let (e, ce) = (
                t.elapsed().as_nanos() as f64,
                cpu_ns().saturating_sub(c) as f64,
            );
            let (t, c) = (Instant::now(), cpu_ns());
            let mut orgs = 0usize;
            for ip in ips.iter() {
                orgs += db.lookup(black_box(*ip)).as_org.is_some() as usize;
            }
            let (e2, ce2) = (
                t.elapsed().as_nanos() as f64,
                cpu_ns().saturating_sub(c) as f64,
            );
            if round == 1 {
                let rate = |ns: f64| {
                    if ns > 0.0 {
                        N as f64 / ns * 1e3
                    } else {
                        f64::NAN
                    }
                };
                println!(
                    "{name}: lookup_fast {:.1} M/s wall, {:.1} M/s per CPU-second; \
                     lookup {:.1} M/s wall, {:.1} M/s per CPU-second (hits {hits}, orgs {orgs})",
                    rate(e),
                    rate(ce),
                    rate(e2),
                    rate(ce2)
                );
            }
        }
    }
}
