//! Fuzz target: the sFlow datagram decoder and the pcap/pcapng reader.
//!
//! The input is decoded three ways: as one raw sFlow datagram; as a capture whose UDP
//! payloads to port 6343 are decoded in turn; and, when it starts with a byte below 8,
//! as a frame of one of the supported link types (first byte picks it) from which the
//! UDP payload is extracted. Everything decoded is walked (flow observations, JSON
//! serialization is left out to keep executions fast) and the error offset is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Link types tried for the "single frame" interpretation.
const LINK_TYPES: [u32; 8] = [
    sflow::linktype::ETHERNET,
    sflow::linktype::RAW,
    sflow::linktype::IPV4,
    sflow::linktype::IPV6,
    sflow::linktype::LINUX_SLL,
    sflow::linktype::LINUX_SLL2,
    sflow::linktype::NULL,
    sflow::linktype::LOOP,
];

fn walk(payload: &[u8]) {
    let d = sflow::decode(payload);
    if let Some(e) = &d.error {
        assert!(
            e.offset() <= payload.len(),
            "error offset past the input: {e}"
        );
    }
    if let Some(dg) = &d.datagram {
        assert!(dg.length <= payload.len());
        assert!(dg.samples.len() <= dg.sample_count as usize);
        for o in dg.flow_observations() {
            std::hint::black_box(o);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data);
    if let Ok(cap) = sflow::Capture::new(data) {
        for frame in cap.take(1024) {
            let Ok(frame) = frame else { break };
            if let Some(u) = frame.udp_payload_to(sflow::SFLOW_PORT) {
                walk(u.payload);
            }
        }
    }
    if let Some((&sel, frame)) = data.split_first() {
        if let Some(&lt) = LINK_TYPES.get(usize::from(sel)) {
            if let Some(u) = sflow::udp_in_frame(lt, frame) {
                walk(u.payload);
            }
        }
    }
});
