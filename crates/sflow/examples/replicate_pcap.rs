//! Builds a large sFlow capture for benchmarks: the sFlow datagrams of a classic pcap,
//! concatenated N times into one pcap, with datagram sequence numbers renumbered so they
//! stay consecutive per agent and timestamps shifted so they keep increasing.
//!
//! `cargo run --release -p sflow --example replicate_pcap -- IN.pcap OUT.pcap N`
//!
//! Only classic pcap input (as `overflowd/sflow.pcap`) and Ethernet/IPv4/UDP frames to port
//! 6343 are copied; other frames are dropped. The IPv4 and UDP checksums are left as they
//! were (the sequence number sits in the UDP payload, so the UDP checksum becomes wrong;
//! tshark does not verify it by default and neither does the decoder).

use std::io::Write;

/// Classic pcap file header length.
const PCAP_HEADER_LEN: usize = 24;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: replicate_pcap IN.pcap OUT.pcap N");
        std::process::exit(2);
    }
    let n: u32 = match args[3].parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("N must be a positive number");
            std::process::exit(2);
        }
    };
    let buf = match std::fs::read(&args[1]) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(1);
        }
    };
    let cap = match sflow::Capture::new(&buf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(1);
        }
    };
    // (timestamp ns, frame bytes, offset of the payload, offset of the sequence number)
    let mut frames: Vec<(u64, Vec<u8>, usize, usize)> = Vec::new();
    let mut link = 1u32;
    for f in cap.map_while(Result::ok) {
        let Some(u) = f.udp_payload_to(sflow::SFLOW_PORT) else {
            continue;
        };
        let Some(dg) = sflow::decode(u.payload).datagram else {
            continue;
        };
        // Payload offset inside the frame; the sequence number follows version, address
        // type, address and sub-agent id.
        let off = u.payload.as_ptr() as usize - f.data.as_ptr() as usize;
        let addr_len = if dg.agent.is_some_and(|a| a.is_ipv6()) {
            16
        } else {
            4
        };
        frames.push((f.timestamp_ns, f.data.to_vec(), off, off + 8 + addr_len + 4));
        link = f.link_type;
    }
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        eprintln!("{}: no sFlow datagrams", args[1]);
        std::process::exit(1);
    };
    let span = last.0 - first.0 + 1_000_000;
    let mut out = Vec::with_capacity(PCAP_HEADER_LEN + frames.len() * 1500 * n as usize);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    let mut seqs: std::collections::HashMap<Vec<u8>, u32> = std::collections::HashMap::new();
    for round in 0..u64::from(n) {
        for (ts, data, payload_at, seq_at) in &frames {
            let mut d = data.clone();
            if let Some(seq) = d.get_mut(*seq_at..*seq_at + 4) {
                // Key: address type, agent address and sub-agent id.
                let key = data
                    .get(payload_at + 4..*seq_at)
                    .unwrap_or_default()
                    .to_vec();
                let orig = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
                let next = seqs.entry(key).or_insert(orig);
                seq.copy_from_slice(&next.to_be_bytes());
                *next = next.wrapping_add(1);
            }
            let t = ts + round * span;
            out.extend_from_slice(&((t / 1_000_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((t % 1_000_000_000 / 1000) as u32).to_le_bytes());
            out.extend_from_slice(&(d.len() as u32).to_le_bytes());
            out.extend_from_slice(&(d.len() as u32).to_le_bytes());
            out.extend_from_slice(&d);
        }
    }
    let res = std::fs::File::create(&args[2]).and_then(|mut f| f.write_all(&out));
    if let Err(e) = res {
        eprintln!("{}: {e}", args[2]);
        std::process::exit(1);
    }
    eprintln!(
        "{}: {} datagrams ({} x {})",
        args[2],
        frames.len() as u64 * u64::from(n),
        n,
        frames.len()
    );
}
