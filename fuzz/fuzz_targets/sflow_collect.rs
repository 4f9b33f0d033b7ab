//! Fuzz target: the collector and the port-25 activity analysis.
//!
//! The input is cut into datagrams at every `0xff 0xff 0xff 0xff` marker; each piece is fed
//! to a `Collector` that accepts one agent (so both the accepted and the rejected paths
//! run), with a fake clock that moves by the first byte of the piece in hours (so hours,
//! blocks and restarts are exercised), and every flow observation goes to an `Activity`
//! with tiny caps. Checks: counters add up, caps hold, fills and variations stay in 0..=1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sflow::activity::{Activity, ActivityConfig};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let mut c = sflow::Collector::new(sflow::CollectorConfig {
        agents: vec![
            IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
        ],
        max_sources: 8,
    });
    let mut a = Activity::new(ActivityConfig {
        smtp_ports: vec![25, 0],
        max_hosts: 16,
        max_dests: 8,
        max_hours: 8,
        min_samples: 1,
        max_nets: 8,
        judge_after_secs: 3600,
        ..ActivityConfig::default()
    });
    let mut ts: i64 = 1_700_000_000;
    let mut pieces = 0u64;
    for piece in data.split(|&b| b == 0xff).filter(|p| !p.is_empty()) {
        pieces += 1;
        ts += i64::from(piece[0]) * 3600 - 3600;
        if let Ok((dg, _)) = c.feed(piece) {
            for o in dg.flow_observations() {
                a.observe(ts, &o);
            }
        }
        if piece[0] & 1 == 1 {
            let _ = a.take_new_suspicious(ts);
        }
    }
    let st = c.stats();
    assert_eq!(st.datagrams, pieces);
    assert_eq!(st.accepted + st.rejected_agent + st.malformed, st.datagrams);
    assert!(st.sources <= 8);
    let s = a.stats();
    assert!(s.hosts <= 16);
    for h in a.summaries() {
        assert!(h.dst_ips <= 8 && h.dst_nets <= 8 && h.hours <= 8);
        assert!((0.0..=1.0).contains(&h.fill) && (0.0..=1.0).contains(&h.dest_variation));
        assert!((0.0..=1.0).contains(&h.score));
        assert!(h.blocks <= h.hours);
    }
});
