//! Decoding errors: data, not panics.
//!
//! Every error says *what* was being decoded and the byte offset (from the start of the
//! buffer handed to the decoder) where decoding stopped, so a caller can log it, count it
//! and keep whatever was decoded before it.

use std::fmt;

/// The structure that was being read when decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Context {
    /// The datagram header (version, agent, sequence, uptime, sample count).
    DatagramHeader,
    /// A sample's format/length envelope.
    SampleHeader,
    /// The fixed fields of a flow or expanded flow sample.
    FlowSample,
    /// The fixed fields of a counter or expanded counter sample.
    CounterSample,
    /// The fixed fields of a discarded-packet sample.
    DiscardSample,
    /// A flow record's format/length envelope.
    FlowRecordHeader,
    /// The body of a flow record.
    FlowRecord,
    /// A counter record's format/length envelope.
    CounterRecordHeader,
    /// The body of a counter record.
    CounterRecord,
    /// An address (type + bytes).
    Address,
    /// A variable-length XDR string or opaque.
    Opaque,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Context::DatagramHeader => "datagram header",
            Context::SampleHeader => "sample header",
            Context::FlowSample => "flow sample",
            Context::CounterSample => "counter sample",
            Context::DiscardSample => "discarded-packet sample",
            Context::FlowRecordHeader => "flow record header",
            Context::FlowRecord => "flow record",
            Context::CounterRecordHeader => "counter record header",
            Context::CounterRecord => "counter record",
            Context::Address => "address",
            Context::Opaque => "opaque/string",
        };
        f.write_str(s)
    }
}

/// Why an sFlow datagram could not be (fully) decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// The buffer ended before a field could be read.
    Truncated {
        /// What was being read.
        context: Context,
        /// Offset of the field that did not fit.
        offset: usize,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The datagram version is not 5.
    UnsupportedVersion {
        /// The version found.
        version: u32,
        /// Always 0: the version is the first field.
        offset: usize,
    },
    /// An address type other than 0 (unknown), 1 (IPv4) or 2 (IPv6).
    BadAddressType {
        /// What the address belonged to.
        context: Context,
        /// The type found.
        value: u32,
        /// Offset of the type field.
        offset: usize,
    },
    /// A sample or record declares a length larger than what is left of its container.
    LengthOverrun {
        /// What declared the length.
        context: Context,
        /// The declared length.
        declared: u32,
        /// The bytes left in the container.
        available: usize,
        /// Offset of the length field.
        offset: usize,
    },
}

impl Error {
    /// Byte offset (from the start of the decoded buffer) where decoding stopped.
    pub fn offset(&self) -> usize {
        match self {
            Error::Truncated { offset, .. }
            | Error::UnsupportedVersion { offset, .. }
            | Error::BadAddressType { offset, .. }
            | Error::LengthOverrun { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated {
                context,
                offset,
                needed,
                available,
            } => write!(
                f,
                "truncated {context} at offset {offset}: needed {needed} bytes, {available} left"
            ),
            Error::UnsupportedVersion { version, .. } => {
                write!(f, "unsupported sFlow version {version} (only 5 is decoded)")
            }
            Error::BadAddressType {
                context,
                value,
                offset,
            } => write!(
                f,
                "bad address type {value} in {context} at offset {offset}"
            ),
            Error::LengthOverrun {
                context,
                declared,
                available,
                offset,
            } => write!(
                f,
                "{context} at offset {offset} declares {declared} bytes but only {available} remain"
            ),
        }
    }
}

impl std::error::Error for Error {}
