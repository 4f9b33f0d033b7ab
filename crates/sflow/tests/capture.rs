//! pcap/pcapng readers and UDP extraction: the frames of a real capture are re-encoded into
//! every supported container and link type, and must yield the same sFlow payloads and
//! timestamps as the original.

mod common;

use common::*;
use sflow::{linktype, Capture, Frame};

struct Orig {
    ts_ns: u64,
    frame: Vec<u8>,
}

fn originals() -> (Vec<Orig>, Vec<Vec<u8>>) {
    let buf = read("ndpi/sflow.pcap");
    let mut frames = Vec::new();
    let mut payloads = Vec::new();
    for f in Capture::new(&buf).expect("pcap") {
        let f = f.expect("frame");
        assert_eq!(f.link_type, linktype::ETHERNET);
        payloads.push(
            f.udp_payload_to(sflow::SFLOW_PORT)
                .expect("sflow")
                .payload
                .to_vec(),
        );
        frames.push(Orig {
            ts_ns: f.timestamp_ns,
            frame: f.data.to_vec(),
        });
    }
    assert_eq!(frames.len(), 9);
    (frames, payloads)
}

fn payloads_of(buf: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let frames: Vec<Frame<'_>> = Capture::new(buf)
        .expect("capture")
        .collect::<Result<_, _>>()
        .expect("frames");
    frames
        .iter()
        .map(|f| {
            let u = f.udp_payload_to(sflow::SFLOW_PORT).expect("udp to 6343");
            (f.timestamp_ns, u.payload.to_vec())
        })
        .collect()
}

fn put32(v: &mut Vec<u8>, x: u32, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}
fn put16(v: &mut Vec<u8>, x: u16, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn classic(frames: &[(u64, Vec<u8>)], link: u32, be: bool, nanos: bool) -> Vec<u8> {
    let mut v = Vec::new();
    put32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, be);
    put16(&mut v, 2, be);
    put16(&mut v, 4, be);
    put32(&mut v, 0, be);
    put32(&mut v, 0, be);
    put32(&mut v, 65535, be);
    put32(&mut v, link, be);
    for (ts, f) in frames {
        put32(&mut v, (ts / 1_000_000_000) as u32, be);
        let frac = ts % 1_000_000_000;
        put32(&mut v, if nanos { frac } else { frac / 1000 } as u32, be);
        put32(&mut v, f.len() as u32, be);
        put32(&mut v, f.len() as u32, be);
        v.extend_from_slice(f);
    }
    v
}

fn block(v: &mut Vec<u8>, ty: u32, body: &[u8], be: bool) {
    let len = 12 + body.len().div_ceil(4) * 4;
    put32(v, ty, be);
    put32(v, len as u32, be);
    v.extend_from_slice(body);
    v.resize(v.len() + (len - 12 - body.len()), 0);
    put32(v, len as u32, be);
}

/// One pcapng section: SHB, an IDB (with if_tsresol = 9 when `nanos`), an unknown block,
/// then EPBs (or SPBs when `simple`).
fn pcapng_section(
    frames: &[(u64, Vec<u8>)],
    link: u16,
    be: bool,
    nanos: bool,
    simple: bool,
) -> Vec<u8> {
    let mut v = Vec::new();
    let mut shb = Vec::new();
    put32(&mut shb, 0x1a2b_3c4d, be);
    put16(&mut shb, 1, be);
    put16(&mut shb, 0, be);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut v, 0x0a0d_0d0a, &shb, be);
    let mut idb = Vec::new();
    put16(&mut idb, link, be);
    put16(&mut idb, 0, be);
    put32(&mut idb, 0, be);
    if nanos {
        put16(&mut idb, 9, be);
        put16(&mut idb, 1, be);
        idb.extend_from_slice(&[9, 0, 0, 0]);
        put16(&mut idb, 0, be);
        put16(&mut idb, 0, be);
    }
    block(&mut v, 1, &idb, be);
    block(&mut v, 0x0000_0004, &[0; 8], be); // name resolution block: skipped
    for (ts, f) in frames {
        let mut b = Vec::new();
        if simple {
            put32(&mut b, f.len() as u32, be);
            b.extend_from_slice(f);
            block(&mut v, 3, &b, be);
        } else {
            let ticks = if nanos { *ts } else { ts / 1000 };
            put32(&mut b, 0, be);
            put32(&mut b, (ticks >> 32) as u32, be);
            put32(&mut b, ticks as u32, be);
            put32(&mut b, f.len() as u32, be);
            put32(&mut b, f.len() as u32, be);
            b.extend_from_slice(f);
            block(&mut v, 6, &b, be);
        }
    }
    v
}

fn eth_frames(orig: &[Orig]) -> Vec<(u64, Vec<u8>)> {
    orig.iter().map(|o| (o.ts_ns, o.frame.clone())).collect()
}

#[test]
fn classic_pcap_variants() {
    let (orig, payloads) = originals();
    let frames = eth_frames(&orig);
    for be in [false, true] {
        for nanos in [false, true] {
            let got = payloads_of(&classic(&frames, linktype::ETHERNET, be, nanos));
            let want: Vec<_> = orig
                .iter()
                .map(|o| o.ts_ns)
                .zip(payloads.iter().cloned())
                .collect();
            assert_eq!(got, want, "be={be} nanos={nanos}");
        }
    }
}

#[test]
fn pcapng_variants() {
    let (orig, payloads) = originals();
    let frames = eth_frames(&orig);
    for be in [false, true] {
        for nanos in [false, true] {
            let got = payloads_of(&pcapng_section(&frames, 1, be, nanos, false));
            let want: Vec<_> = orig
                .iter()
                .map(|o| o.ts_ns)
                .zip(payloads.iter().cloned())
                .collect();
            assert_eq!(got, want, "be={be} nanos={nanos}");
        }
    }
    // Two sections of different byte order; the second uses simple packet blocks.
    let mut two = pcapng_section(&frames[..4], 1, false, true, false);
    two.extend(pcapng_section(&frames[4..], 1, true, false, true));
    let got: Vec<_> = payloads_of(&two).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, payloads);
}

/// Re-encodes each Ethernet frame for another link type.
fn relink(orig: &[Orig], link: u32) -> Vec<(u64, Vec<u8>)> {
    orig.iter()
        .map(|o| {
            let ip = &o.frame[14..];
            let ethertype = [o.frame[12], o.frame[13]];
            let f = match link {
                linktype::RAW | linktype::IPV4 => ip.to_vec(),
                linktype::NULL => [&2u32.to_le_bytes()[..], ip].concat(),
                linktype::LOOP => [&2u32.to_be_bytes()[..], ip].concat(),
                linktype::LINUX_SLL => {
                    let mut h = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
                    h.extend_from_slice(&ethertype);
                    [&h[..], ip].concat()
                }
                linktype::LINUX_SLL2 => {
                    let mut h = ethertype.to_vec();
                    h.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
                    [&h[..], ip].concat()
                }
                // Ethernet with an 802.1ad + 802.1Q tag pair.
                _ => {
                    let mut f = o.frame[..12].to_vec();
                    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14]);
                    f.extend_from_slice(&o.frame[12..]);
                    f
                }
            };
            (o.ts_ns, f)
        })
        .collect()
}

#[test]
fn link_types() {
    let (orig, payloads) = originals();
    for link in [
        linktype::RAW,
        linktype::IPV4,
        linktype::NULL,
        linktype::LOOP,
        linktype::LINUX_SLL,
        linktype::LINUX_SLL2,
        linktype::ETHERNET,
    ] {
        let frames = relink(&orig, link);
        let got: Vec<_> = payloads_of(&classic(&frames, link, false, false))
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(got, payloads, "link type {link}");
    }
}

#[test]
fn ipv6_udp_and_port_filter() {
    let (_, payloads) = originals();
    let p = &payloads[0];
    let udp_len = (8 + p.len()) as u16;
    let mut f = vec![0x60, 0, 0, 0];
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    f.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    f.extend_from_slice(&[0x30, 0x39, 0x18, 0xc7]); // 12345 -> 6343
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(p);
    let u = sflow::udp_in_frame(linktype::IPV6, &f).expect("udp");
    assert_eq!((u.src_port, u.dst_port), (12345, 6343));
    assert_eq!(u.src.to_string(), "2001:db8::1");
    assert_eq!(u.payload, &p[..]);
    let cap = classic(&[(0, f)], linktype::IPV6, false, false);
    let fr = Capture::new(&cap).unwrap().next().unwrap().unwrap();
    assert!(fr.udp_payload_to(6343).is_some());
    assert!(
        fr.udp_payload_to(9999).is_none(),
        "other ports are filtered out"
    );
}

#[test]
fn malformed_captures_are_errors() {
    assert!(matches!(
        Capture::new(b"GIF8"),
        Err(sflow::CaptureError::UnknownFormat { .. })
    ));
    assert!(Capture::new(b"").is_err());
    let (orig, _) = originals();
    let good = classic(&eth_frames(&orig), 1, false, false);
    let cut = &good[..good.len() - 3];
    let items: Vec<_> = Capture::new(cut).unwrap().collect();
    assert_eq!(items.len(), 9);
    assert!(matches!(
        items[8],
        Err(sflow::CaptureError::Truncated { .. })
    ));
    let ng = pcapng_section(&eth_frames(&orig), 1, false, false, false);
    let items: Vec<_> = Capture::new(&ng[..ng.len() - 1]).unwrap().collect();
    assert!(items.last().unwrap().is_err());
}
