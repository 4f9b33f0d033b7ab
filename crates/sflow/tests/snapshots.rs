//! Snapshots of the full decoded JSON of a few small vectors, committed under
//! `tests/snapshots/`. Each covers record kinds the other tests only count:
//! telegraf's port-name counter sample, goflow2's ACL discard sample, gopacket's reference-
//! agent datagram (gateway AS path, user, URL records), gopacket's IPv4 tunnel record and
//! akvorado's QinQ header. Regenerate after an intended change with
//! `UPDATE_SNAPSHOTS=1 cargo test -p sflow --test snapshots` and review the diff.

mod common;

use common::*;

fn check(name: &str, payload: &[u8]) {
    let json = serde_json::to_string_pretty(&sflow::decode(payload)).expect("json") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &json).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert!(
        want == json,
        "{name}: decoded JSON differs from {}:\n{json}",
        path.display()
    );
}

#[test]
fn snapshots() {
    check(
        "telegraf_sflow_v5_example",
        &read("telegraf/sflow_v5_example__sflow_v5.bin"),
    );
    check(
        "goflow2_drop_extended_acl",
        &read("vectors/goflow2/TestSFlowDecodeDropExtendedACL.bin"),
    );
    check(
        "gopacket_packet2",
        &read("vectors/gopacket/SFlowTestPacket2.bin"),
    );
    check(
        "gopacket_packet6",
        &read("vectors/gopacket/SFlowTestPacket6.bin"),
    );
    let q = read("akvorado/data-qinq.pcap");
    check("akvorado_qinq", pcap_datagrams(&q)[0]);
}
