//! Shared helpers of the integration tests: corpus paths and loading.
#![allow(dead_code)]

use std::path::PathBuf;

/// Root of the third-party sFlow corpus (`tests/data/corpus/sflow.tar.zst`, unpacked by the
/// `testdata` crate).
pub fn corpus() -> PathBuf {
    testdata::sflow()
}

pub fn read(rel: &str) -> Vec<u8> {
    let p = corpus().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The UDP payloads of a capture, in frame order (asserting every frame is sFlow).
pub fn pcap_datagrams(buf: &[u8]) -> Vec<&[u8]> {
    let cap = sflow::Capture::new(buf).expect("capture header");
    let mut out = Vec::new();
    for (i, f) in cap.enumerate() {
        let f = f.unwrap_or_else(|e| panic!("frame {}: {e}", i + 1));
        let u = f
            .udp_payload_to(sflow::SFLOW_PORT)
            .unwrap_or_else(|| panic!("frame {} is not UDP/6343", i + 1));
        out.push(u.payload);
    }
    out
}

/// Every raw-datagram folder, with its tshark summary file.
pub const RAW_FOLDERS: &[(&str, &str)] = &[
    ("telegraf", "telegraf"),
    ("cistern-sflow", "cistern-sflow"),
    ("logstash-codec-sflow", "logstash-codec-sflow"),
    ("vectors/gopacket", "vectors_gopacket"),
    ("vectors/goflow2", "vectors_goflow2"),
    ("vectors/cloudflare-goflow", "vectors_cloudflare-goflow"),
];

/// Every capture, with its tshark summary file.
pub const PCAPS: &[(&str, &str)] = &[
    ("overflowd/sflow.pcap", "overflowd_sflow"),
    ("oxyflow/sflow.pcap", "oxyflow_sflow"),
    ("loadme/sflow.pcap", "loadme_sflow"),
    ("ndpi/sflow.pcap", "ndpi_sflow"),
    (
        "nxthdr-sflow-parser/sflow.pcap",
        "nxthdr-sflow-parser_sflow",
    ),
    ("akvorado/data-1140.pcap", "akvorado_data-1140"),
    (
        "akvorado/data-discard-interface.pcap",
        "akvorado_data-discard-interface",
    ),
    (
        "akvorado/data-encap-vxlan.pcap",
        "akvorado_data-encap-vxlan",
    ),
    ("akvorado/data-icmpv4.pcap", "akvorado_data-icmpv4"),
    ("akvorado/data-icmpv6.pcap", "akvorado_data-icmpv6"),
    (
        "akvorado/data-local-interface.pcap",
        "akvorado_data-local-interface",
    ),
    (
        "akvorado/data-multiple-interfaces.pcap",
        "akvorado_data-multiple-interfaces",
    ),
    ("akvorado/data-qinq.pcap", "akvorado_data-qinq"),
    (
        "akvorado/data-sflow-expanded-sample.pcap",
        "akvorado_data-sflow-expanded-sample",
    ),
    (
        "akvorado/data-sflow-ipv4-data.pcap",
        "akvorado_data-sflow-ipv4-data",
    ),
    (
        "akvorado/data-sflow-raw-ipv4.pcap",
        "akvorado_data-sflow-raw-ipv4",
    ),
    (
        "akvorado/data-vlan-interfaces.pcap",
        "akvorado_data-vlan-interfaces",
    ),
];

/// Every raw datagram file of a folder, in file-name order.
pub fn raw_files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus().join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".bin") || n.ends_with(".dump") || n.ends_with(".dat"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).expect("read datagram");
            (n, b)
        })
        .collect()
}

/// Every datagram of the corpus (raw files and capture payloads), owned.
pub fn all_datagrams() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (folder, _) in RAW_FOLDERS {
        for (n, b) in raw_files(folder) {
            out.push((format!("{folder}/{n}"), b));
        }
    }
    for (p, _) in PCAPS {
        let buf = read(p);
        for (i, d) in pcap_datagrams(&buf).into_iter().enumerate() {
            out.push((format!("{p}#{}", i + 1), d.to_vec()));
        }
    }
    out
}
