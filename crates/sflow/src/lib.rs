//! Zero-copy sFlow version 5 decoder, with pcap/pcapng readers.
//!
//! * [`decode`] turns one UDP payload into a [`Decoded`]: the [`Datagram`] (agent,
//!   sequence numbers, samples and their records, all borrowing from the input) and the
//!   error that stopped decoding, if any. Malformed input never panics and never reads out
//!   of bounds; counts from the wire never size an allocation beyond what the remaining
//!   bytes could hold.
//! * Sampled packet headers are decoded as far as Ethernet / 802.1Q / QinQ / IPv4 / IPv6 /
//!   TCP / UDP / ICMP ([`PacketSummary`]); [`Datagram::flow_observations`] reduces flow
//!   samples to 5-tuples for traffic analysis.
//! * [`Capture`] reads pcap or pcapng from memory and finds UDP payloads to a port.
//!
//! Specifications: "sFlow Version 5" (sflow.org, 2004), "sFlow Dropped Packet Notification
//! Structures" (sflow.org, 2020) for discard samples and records 1036–1038, "sFlow Host
//! Structures" for record 2000, the tcpdump.org pcap/pcapng drafts for captures.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod decode;
mod error;
mod observe;
mod packet;
mod pcap;
mod types;
mod xdr;

pub use decode::{decode, Decoded, SFLOW_VERSION};
pub use error::{Context, Error};
pub use observe::FlowObservation;
pub use packet::{
    linktype, summarize, udp_in_frame, IpSummary, MacAddr, PacketSummary, UdpPacket,
    HEADER_PROTOCOL_ETHERNET, HEADER_PROTOCOL_IPV4, HEADER_PROTOCOL_IPV6,
};
pub use pcap::{Capture, CaptureError, Frame, SFLOW_PORT};
pub use types::*;
