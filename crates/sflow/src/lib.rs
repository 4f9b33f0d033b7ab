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
//!
//! ```
//! // A datagram from agent 192.0.2.1 with no samples.
//! let bytes = [
//!     0, 0, 0, 5, 0, 0, 0, 1, 192, 0, 2, 1, // version 5, IPv4 agent
//!     0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 0, // sub-agent, sequence, uptime, 0 samples
//! ];
//! let decoded = sflow::decode(&bytes);
//! assert_eq!(decoded.error, None);
//! let d = decoded.datagram.unwrap();
//! assert_eq!((d.agent.unwrap().to_string(), d.sequence_number), ("192.0.2.1".into(), 7));
//! // Cut short, it still reports what failed and where.
//! let cut = sflow::decode(&bytes[..10]);
//! assert_eq!(cut.error.unwrap().offset(), 8);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod activity;
pub mod clock;
mod collector;
mod decode;
mod error;
pub mod learn;
mod observe;
mod packet;
mod pcap;
mod types;
mod xdr;

pub use collector::{Collector, CollectorConfig, CollectorStats, Rejected, SequenceEvent};
pub use decode::{decode, Decoded, SFLOW_VERSION};
pub use error::{Context, Error};
pub use observe::FlowObservation;
pub use packet::{
    linktype, summarize, udp_in_frame, IpSummary, MacAddr, PacketSummary, UdpPacket,
    HEADER_PROTOCOL_ETHERNET, HEADER_PROTOCOL_IPV4, HEADER_PROTOCOL_IPV6,
};
pub use pcap::{Capture, CaptureError, Frame, SFLOW_PORT};
pub use types::*;
