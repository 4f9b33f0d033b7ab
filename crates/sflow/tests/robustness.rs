//! Malformed input never panics: truncation at every length and fixed-seed random byte
//! flips of every corpus datagram; truncation always yields an error located inside the
//! truncated buffer.

mod common;

use common::*;

/// For the two large captures only every Nth datagram is truncated at every length, to keep
/// the debug-mode test run short; every datagram still gets the byte-flip treatment.
const LARGE_CAPTURE_STRIDE: usize = 40;
/// Mutated copies per datagram.
const FLIPS_PER_DATAGRAM: usize = 8;
/// Serialize every Nth mutated datagram to JSON too (JSON is the slow part in debug).
const JSON_EVERY: usize = 16;
/// Captures up to this size are cut at every length; larger ones at every 7th.
const SMALL_CAPTURE: usize = 4096;
/// Fixed seed: failures must reproduce.
const SEED: u64 = 0x5f10_c0de_2026_0001;

/// xorshift64*: tiny, deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn touch(d: &sflow::Decoded<'_>) -> usize {
    // Walk everything, including the observation view, so lazily computed paths run too.
    d.datagram
        .as_ref()
        .map_or(0, |dg| dg.flow_observations().count() + dg.samples.len())
}

#[test]
fn truncation_at_every_length() {
    let all = all_datagrams();
    assert!(all.len() > 2500, "{}", all.len());
    let mut checked = 0usize;
    for (i, (name, bytes)) in all.iter().enumerate() {
        let large = name.starts_with("overflowd/") || name.starts_with("oxyflow/");
        if large && i % LARGE_CAPTURE_STRIDE != 0 {
            continue;
        }
        // Some files hold bytes after the datagram (cistern's flow_samples_2.dump holds a
        // second datagram): only cuts inside the datagram must fail.
        let full = sflow::decode(bytes)
            .datagram
            .map_or(bytes.len(), |d| d.length);
        for len in 0..full {
            let dec = sflow::decode(&bytes[..len]);
            let _ = touch(&dec);
            let e = dec
                .error
                .unwrap_or_else(|| panic!("{name} cut at {len}: no error"));
            assert!(e.offset() <= len, "{name} cut at {len}: {e}");
            checked += 1;
        }
    }
    assert!(checked > 50_000, "{checked}");
}

#[test]
fn random_byte_flips() {
    let mut rng = Rng(SEED);
    let mut errors = 0usize;
    let mut total = 0usize;
    for (_, bytes) in all_datagrams() {
        let mut buf = bytes.clone();
        for _ in 0..FLIPS_PER_DATAGRAM {
            buf.copy_from_slice(&bytes);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len());
                buf[at] = rng.next() as u8;
            }
            let dec = sflow::decode(&buf);
            let _ = touch(&dec);
            if let Some(e) = &dec.error {
                assert!(e.offset() <= buf.len());
                let _ = e.to_string();
                errors += 1;
            }
            if total % JSON_EVERY == 0 {
                let _ = serde_json::to_string(&dec).expect("serializable");
            }
            total += 1;
        }
    }
    // Flips in lengths/counts must be caught as errors some of the time, not all of it.
    assert!(errors > total / 50 && errors < total, "{errors} of {total}");
}

#[test]
fn captures_survive_truncation_and_flips() {
    let mut rng = Rng(SEED);
    for (path, _) in PCAPS.iter().skip(2) {
        let buf = read(path);
        let step = if buf.len() > SMALL_CAPTURE { 7 } else { 1 };
        for len in (0..buf.len()).step_by(step) {
            let frames = sflow::Capture::new(&buf[..len])
                .map(|c| c.count())
                .unwrap_or(0);
            assert!(frames <= buf.len());
        }
        let mut m = buf.clone();
        for _ in 0..200 {
            m.copy_from_slice(&buf);
            let at = rng.below(m.len());
            m[at] = rng.next() as u8;
            if let Ok(c) = sflow::Capture::new(&m) {
                for f in c.flatten() {
                    if let Some(u) = f.udp_payload_to(sflow::SFLOW_PORT) {
                        let _ = touch(&sflow::decode(u.payload));
                    }
                }
            }
        }
    }
}

#[test]
fn huge_counts_do_not_allocate() {
    // A header claiming 4 billion samples, each claiming 4 billion records.
    let mut b = vec![
        0, 0, 0, 5, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 32]);
    b.extend_from_slice(&[0; 28]);
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    let dec = sflow::decode(&b);
    let e = dec.error.expect("error");
    assert!(e.offset() <= b.len());
    let d = dec.datagram.expect("header decoded");
    assert_eq!(d.sample_count, u32::MAX);
    assert_eq!(d.samples.len(), 1);
    assert!(d.samples.capacity() <= b.len());
}
