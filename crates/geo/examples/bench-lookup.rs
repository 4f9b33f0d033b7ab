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

fn main() {
    let t = Instant::now();
    let db = geo::GeoDb::builtin();
    let load = t.elapsed();
    let s = db.stats();
    println!(
        "builtin load: {load:.2?}; {s:?} ({:.1} MiB)",
        s.heap_bytes as f64 / (1 << 20) as f64
    );

    let mut st = 0x9e37_79b9_7f4a_7c15u64;
    let v4: Vec<IpAddr> = (0..N)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng(&mut st) as u32)))
        .collect();
    // IPv6: random addresses inside the global unicast 2000::/4 allocations
    // actually in use (2001::/16 .. 2c0f::/16), where the table is densest.
    let v6: Vec<IpAddr> = (0..N)
        .map(|_| {
            let hi = 0x2001u128 + (rng(&mut st) % (0x2c10 - 0x2001)) as u128;
            let lo = ((rng(&mut st) as u128) << 64 | rng(&mut st) as u128) & ((1u128 << 112) - 1);
            IpAddr::V6(Ipv6Addr::from(hi << 112 | lo))
        })
        .collect();
    for (name, ips) in [
        ("IPv4 uniform random", &v4),
        ("IPv6 2001::-2c0f:: random", &v6),
    ] {
        for round in 0..2 {
            let t = Instant::now();
            let mut hits = 0usize;
            for ip in ips.iter() {
                let (c, a) = db.lookup_fast(black_box(*ip));
                hits += c.is_some() as usize + a.is_some() as usize;
            }
            let e = t.elapsed();
            let t2 = Instant::now();
            let mut orgs = 0usize;
            for ip in ips.iter() {
                orgs += db.lookup(black_box(*ip)).as_org.is_some() as usize;
            }
            let e2 = t2.elapsed();
            if round == 1 {
                println!(
                    "{name}: lookup_fast {:.1} M/s, lookup {:.1} M/s (hits {hits}, orgs {orgs})",
                    N as f64 / e.as_secs_f64() / 1e6,
                    N as f64 / e2.as_secs_f64() / 1e6
                );
            }
        }
    }
}
