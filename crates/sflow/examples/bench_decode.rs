//! Micro benchmark: decodes every datagram of `overflowd/sflow.pcap` (1,000 datagrams,
//! 5,855 flow samples) in a loop and prints flow samples per second on one core.
//!
//! `cargo run --release -p sflow --example bench_decode [-- SECONDS]` (default 3 s).
//! The capture is read and its UDP payloads extracted once, outside the timed loop; the
//! loop decodes each datagram completely (samples, records, sampled headers) and walks
//! the flow observations, as the analysis path does.
//!
//! On Linux it also reports the rate per second of CPU time this thread actually got
//! (from `/proc/thread-self/schedstat`), which is the per-core figure on a shared machine.

use std::time::{Duration, Instant};

fn main() {
    let file = testdata::sflow().join("overflowd/sflow.pcap");
    let path = file.display();
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let buf = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let payloads: Vec<&[u8]> = match sflow::Capture::new(&buf) {
        Ok(c) => c
            .udp_payloads(sflow::SFLOW_PORT)
            .map(|(_, u)| u.payload)
            .collect(),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let budget = Duration::from_secs_f64(secs);
    let cpu0 = cpu_ns();
    let start = Instant::now();
    let (mut passes, mut flows, mut obs, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    while start.elapsed() < budget {
        for p in &payloads {
            let d = sflow::decode(std::hint::black_box(p));
            if let Some(dg) = &d.datagram {
                flows += dg
                    .samples
                    .iter()
                    .filter(|s| matches!(s, sflow::Sample::Flow(_)))
                    .count() as u64;
                obs += dg.flow_observations().count() as u64;
            }
            bytes += p.len() as u64;
        }
        passes += 1;
    }
    let t = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) if b > a => format!(
            "; {:.2} M flow samples per CPU second ({:.2} s on CPU)",
            flows as f64 / ((b - a) as f64 / 1e9) / 1e6,
            (b - a) as f64 / 1e9
        ),
        _ => String::new(),
    };
    println!(
        "{passes} passes over {} datagrams in {t:.2} s: {:.2} M flow samples/s, {:.0} k datagrams/s, {:.0} MB/s ({obs} observations){cpu}",
        payloads.len(),
        flows as f64 / t / 1e6,
        (passes * payloads.len() as u64) as f64 / t / 1e3,
        bytes as f64 / t / 1e6,
    );
}

/// Nanoseconds this thread has spent on a CPU (Linux), if readable.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
