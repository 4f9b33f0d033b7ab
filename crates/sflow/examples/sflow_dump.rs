//! Prints one JSON object per sFlow datagram of a pcap/pcapng file or raw datagram files.
//!
//! `cargo run -p sflow --example sflow_dump -- FILE...` (a file that is not a capture is
//! decoded as one raw datagram).

use std::io::Write;

fn main() {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in std::env::args().skip(1) {
        let buf = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let payloads: Vec<&[u8]> = match sflow::Capture::new(&buf) {
            Ok(cap) => cap
                .udp_payloads(sflow::SFLOW_PORT)
                .map(|(_, u)| u.payload)
                .collect(),
            Err(_) => vec![&buf[..]],
        };
        for p in payloads {
            let d = sflow::decode(p);
            let line =
                serde_json::to_string(&d).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            if writeln!(out, "{line}").is_err() {
                return;
            }
        }
    }
}
