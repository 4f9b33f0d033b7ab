//! Readers for classic pcap and pcapng captures held in memory.
//!
//! Both yield [`Frame`]s (timestamp, link type, captured bytes) borrowed from the buffer.
//! Classic pcap in either byte order with micro- or nanosecond timestamps; pcapng with any
//! number of sections (each with its own byte order), Interface Description, Enhanced
//! Packet and Simple Packet blocks; other blocks are skipped by their length. A malformed
//! capture yields one error and then ends.

use crate::packet::{udp_in_frame, UdpPacket};
use std::fmt;

/// Classic pcap magic, microsecond timestamps (as read big-endian).
const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
/// Classic pcap magic, nanosecond timestamps.
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Classic pcap file header length.
const PCAP_HEADER_LEN: usize = 24;
/// Classic pcap record header length.
const PCAP_RECORD_LEN: usize = 16;
/// pcapng Section Header Block type (byte-order independent).
const BLOCK_SHB: u32 = 0x0a0d_0d0a;
/// pcapng Interface Description Block type.
const BLOCK_IDB: u32 = 1;
/// pcapng Simple Packet Block type.
const BLOCK_SPB: u32 = 3;
/// pcapng Enhanced Packet Block type.
const BLOCK_EPB: u32 = 6;
/// pcapng byte-order magic.
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Smallest pcapng block (type, length, trailing length).
const MIN_BLOCK_LEN: usize = 12;
/// `if_tsresol` option code in an IDB.
const OPT_IF_TSRESOL: u16 = 9;
/// Default pcapng timestamp resolution: 10^-6 s.
const DEFAULT_TSRESOL: u8 = 6;
/// Interfaces remembered per pcapng section; more are ignored (their packets are errors).
const MAX_INTERFACES: usize = 4096;
/// Nanoseconds per second.
const NANOS: u64 = 1_000_000_000;
/// The default sFlow collector port.
pub const SFLOW_PORT: u16 = 6343;

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch (0 for pcapng simple packet blocks,
    /// which carry no timestamp).
    pub timestamp_ns: u64,
    /// Link type (`LINKTYPE_*`, see [`crate::linktype`]).
    pub link_type: u32,
    /// Original length on the wire.
    pub original_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The UDP payload of this frame if it is a UDP datagram to `port`.
    pub fn udp_payload_to(&self, port: u16) -> Option<UdpPacket<'a>> {
        udp_in_frame(self.link_type, self.data).filter(|u| u.dst_port == port)
    }
}

/// Why a capture could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureError {
    /// Neither a pcap nor a pcapng magic number.
    UnknownFormat {
        /// The first four bytes (big-endian), or fewer.
        magic: u32,
    },
    /// The buffer ended inside a header or record.
    Truncated {
        /// What was being read ("file header", "record", "block", …).
        what: &'static str,
        /// Offset where it started.
        offset: usize,
    },
    /// A pcapng block with an impossible length or a bad byte-order magic.
    BadBlock {
        /// Offset of the block.
        offset: usize,
        /// Its declared length.
        len: u32,
    },
    /// A pcapng packet referring to an interface that was not described.
    UnknownInterface {
        /// Offset of the block.
        offset: usize,
        /// The interface id.
        interface: u32,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::UnknownFormat { magic } => {
                write!(f, "not a pcap or pcapng capture (magic {magic:#010x})")
            }
            CaptureError::Truncated { what, offset } => {
                write!(f, "capture truncated in {what} at offset {offset}")
            }
            CaptureError::BadBlock { offset, len } => {
                write!(f, "bad pcapng block at offset {offset} (length {len})")
            }
            CaptureError::UnknownInterface { offset, interface } => write!(
                f,
                "pcapng packet at offset {offset} names undescribed interface {interface}"
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

#[derive(Debug, Clone, Copy)]
enum Endian {
    Big,
    Little,
}

impl Endian {
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Big => u32::from_be_bytes(s),
            Endian::Little => u32::from_le_bytes(s),
        })
    }
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Big => u16::from_be_bytes(s),
            Endian::Little => u16::from_le_bytes(s),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    /// Timestamp resolution: bit 7 clear = 10^-n s, set = 2^-n s.
    tsresol: u8,
}

#[derive(Debug, Clone)]
enum Format {
    Pcap {
        endian: Endian,
        nanos: bool,
        link_type: u32,
    },
    Pcapng {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// Iterator over the frames of a pcap or pcapng capture.
#[derive(Debug, Clone)]
pub struct Capture<'a> {
    buf: &'a [u8],
    pos: usize,
    format: Format,
    done: bool,
}

impl<'a> Capture<'a> {
    /// Recognises the capture format from its magic number.
    pub fn new(buf: &'a [u8]) -> Result<Capture<'a>, CaptureError> {
        let magic = Endian::Big.u32(buf, 0).ok_or(CaptureError::UnknownFormat {
            magic: buf.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)),
        })?;
        let le = magic.swap_bytes();
        let (endian, nanos) = match (magic, le) {
            (PCAP_MAGIC_US, _) => (Endian::Big, false),
            (PCAP_MAGIC_NS, _) => (Endian::Big, true),
            (_, PCAP_MAGIC_US) => (Endian::Little, false),
            (_, PCAP_MAGIC_NS) => (Endian::Little, true),
            (BLOCK_SHB, _) => {
                return Ok(Capture {
                    buf,
                    pos: 0,
                    format: Format::Pcapng {
                        endian: Endian::Big,
                        interfaces: Vec::new(),
                    },
                    done: false,
                })
            }
            _ => return Err(CaptureError::UnknownFormat { magic }),
        };
        let link_type = endian.u32(buf, 20).ok_or(CaptureError::Truncated {
            what: "pcap file header",
            offset: 0,
        })?;
        Ok(Capture {
            buf,
            pos: PCAP_HEADER_LEN,
            // The link type is the low 16 bits; the FCS length and its flag sit above.
            format: Format::Pcap {
                endian,
                nanos,
                link_type: link_type & 0xffff,
            },
            done: false,
        })
    }

    /// The UDP payloads sent to `port` (default [`SFLOW_PORT`]), with their capture times;
    /// frames of other kinds are skipped; a capture error ends the iteration.
    pub fn udp_payloads(self, port: u16) -> impl Iterator<Item = (u64, UdpPacket<'a>)> + 'a {
        self.map_while(Result::ok)
            .filter_map(move |f| f.udp_payload_to(port).map(|u| (f.timestamp_ns, u)))
    }

    fn next_pcap(
        &mut self,
        endian: Endian,
        nanos: bool,
        link_type: u32,
    ) -> Option<Result<Frame<'a>, CaptureError>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let b = self.buf;
        let at = self.pos;
        let trunc = CaptureError::Truncated {
            what: "pcap record",
            offset: at,
        };
        let (Some(sec), Some(frac), Some(incl), Some(orig)) = (
            endian.u32(b, at),
            endian.u32(b, at + 4),
            endian.u32(b, at + 8),
            endian.u32(b, at + 12),
        ) else {
            return Some(Err(trunc));
        };
        let start = at + PCAP_RECORD_LEN;
        let Some(data) = start
            .checked_add(incl as usize)
            .and_then(|end| b.get(start..end))
        else {
            return Some(Err(trunc));
        };
        self.pos = start + data.len();
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        Some(Ok(Frame {
            timestamp_ns: u64::from(sec) * NANOS + frac_ns,
            link_type,
            original_len: orig,
            data,
        }))
    }

    fn next_pcapng(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let b = self.buf;
            let at = self.pos;
            let Format::Pcapng { endian, interfaces } = &mut self.format else {
                return None;
            };
            let trunc = CaptureError::Truncated {
                what: "pcapng block",
                offset: at,
            };
            let Some(btype) = endian.u32(b, at) else {
                return Some(Err(trunc));
            };
            if btype == BLOCK_SHB {
                // The byte-order magic decides how to read this section, its length included.
                *endian = match Endian::Big.u32(b, at + 8) {
                    Some(BYTE_ORDER_MAGIC) => Endian::Big,
                    Some(m) if m.swap_bytes() == BYTE_ORDER_MAGIC => Endian::Little,
                    Some(_) => return Some(Err(CaptureError::BadBlock { offset: at, len: 0 })),
                    None => return Some(Err(trunc)),
                };
                interfaces.clear();
            }
            let endian = *endian;
            let Some(len) = endian.u32(b, at + 4) else {
                return Some(Err(trunc));
            };
            let ulen = len as usize;
            if ulen < MIN_BLOCK_LEN || ulen % 4 != 0 {
                return Some(Err(CaptureError::BadBlock { offset: at, len }));
            }
            let Some(block) = at.checked_add(ulen).and_then(|end| b.get(at..end)) else {
                return Some(Err(trunc));
            };
            self.pos = at + ulen;
            // Body without type, length and trailing length.
            let body = &block[8..ulen - 4];
            match btype {
                BLOCK_IDB => {
                    let Some(link_type) = endian.u16(body, 0) else {
                        return Some(Err(trunc));
                    };
                    let tsresol = idb_tsresol(endian, body.get(8..).unwrap_or(&[]));
                    if interfaces.len() < MAX_INTERFACES {
                        interfaces.push(Interface {
                            link_type: u32::from(link_type),
                            tsresol,
                        });
                    }
                }
                BLOCK_EPB => {
                    let (Some(iface), Some(hi), Some(lo), Some(cap), Some(orig)) = (
                        endian.u32(body, 0),
                        endian.u32(body, 4),
                        endian.u32(body, 8),
                        endian.u32(body, 12),
                        endian.u32(body, 16),
                    ) else {
                        return Some(Err(trunc));
                    };
                    let Some(ifc) = interfaces.get(iface as usize) else {
                        return Some(Err(CaptureError::UnknownInterface {
                            offset: at,
                            interface: iface,
                        }));
                    };
                    let Some(data) = body.get(20..20usize.saturating_add(cap as usize)) else {
                        return Some(Err(trunc));
                    };
                    let ticks = (u64::from(hi) << 32) | u64::from(lo);
                    return Some(Ok(Frame {
                        timestamp_ns: ticks_to_ns(ticks, ifc.tsresol),
                        link_type: ifc.link_type,
                        original_len: orig,
                        data,
                    }));
                }
                BLOCK_SPB => {
                    let Some(orig) = endian.u32(body, 0) else {
                        return Some(Err(trunc));
                    };
                    let Some(ifc) = interfaces.first() else {
                        return Some(Err(CaptureError::UnknownInterface {
                            offset: at,
                            interface: 0,
                        }));
                    };
                    let rest = body.get(4..).unwrap_or(&[]);
                    let data = &rest[..rest.len().min(orig as usize)];
                    return Some(Ok(Frame {
                        timestamp_ns: 0,
                        link_type: ifc.link_type,
                        original_len: orig,
                        data,
                    }));
                }
                _ => {}
            }
        }
    }
}

/// Finds `if_tsresol` in an IDB's options.
fn idb_tsresol(endian: Endian, mut opts: &[u8]) -> u8 {
    while let (Some(code), Some(len)) = (endian.u16(opts, 0), endian.u16(opts, 2)) {
        if code == 0 {
            break;
        }
        let len = usize::from(len);
        if code == OPT_IF_TSRESOL && len >= 1 {
            if let Some(&v) = opts.get(4) {
                return v;
            }
        }
        let padded = 4 + len + crate::xdr::pad(len);
        match opts.get(padded..) {
            Some(rest) => opts = rest,
            None => break,
        }
    }
    DEFAULT_TSRESOL
}

/// Converts pcapng timestamp ticks to nanoseconds (saturating).
fn ticks_to_ns(ticks: u64, tsresol: u8) -> u64 {
    let exp = u32::from(tsresol & 0x7f);
    let ns: u128 = if tsresol & 0x80 != 0 {
        let denom = 1u128.checked_shl(exp).unwrap_or(u128::MAX);
        u128::from(ticks) * u128::from(NANOS) / denom.max(1)
    } else if exp <= 9 {
        u128::from(ticks) * 10u128.pow(9 - exp)
    } else {
        u128::from(ticks) / 10u128.checked_pow(exp - 9).unwrap_or(u128::MAX)
    };
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl<'a> Iterator for Capture<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.format {
            Format::Pcap {
                endian,
                nanos,
                link_type,
            } => self.next_pcap(endian, nanos, link_type),
            Format::Pcapng { .. } => self.next_pcapng(),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
