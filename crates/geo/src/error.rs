//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while loading geo data.
///
/// Every variant names the file (or source name) it came from; line-oriented
/// formats also give the 1-based line number.
#[derive(Debug)]
#[non_exhaustive]
pub enum GeoError {
    /// A file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A MaxMind DB file is not valid or could not be decoded.
    Mmdb {
        /// The file (or source name).
        source_name: String,
        /// What the MaxMind DB reader said.
        message: String,
    },
    /// A MaxMind DB file holds none of the fields this role needs (e.g. an ASN
    /// database configured as the country database).
    WrongDatabaseKind {
        /// The file (or source name).
        source_name: String,
        /// The role it was configured for: "country" or "asn".
        expected: &'static str,
        /// The `database_type` from the file's metadata.
        database_type: String,
    },
    /// A line of a CSV file (ASN ranges or overrides) is wrong.
    Line {
        /// The file (or source name).
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        kind: LineError,
    },
    /// A compiled table (the built-in default or a `.bin` file) is invalid.
    Table {
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// What is wrong with one line of a CSV input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// The line is longer than [`crate::MAX_LINE_BYTES`].
    TooLong,
    /// The line is not valid UTF-8.
    NotUtf8,
    /// A quoted field is not closed.
    UnterminatedQuote,
    /// More fields than the format has.
    TooManyFields {
        /// Fields found.
        found: usize,
        /// Fields the format has.
        max: usize,
    },
    /// A required field is missing or empty.
    MissingField(&'static str),
    /// A field that must be an IP address is not one.
    BadIp(String),
    /// `first_ip` and `last_ip` are of different families or in the wrong order.
    BadRange,
    /// Not an AS number.
    BadAsn(String),
    /// Not a two-letter country code.
    BadCountry(String),
    /// Not a CIDR network (`192.0.2.0/24`, `2001:db8::/32`) or a single address.
    BadCidr(String),
    /// The CIDR has bits set beyond its prefix length.
    HostBitsSet {
        /// As written.
        cidr: String,
        /// The network it probably meant.
        network: String,
    },
    /// An override that sets none of country, ASN, label.
    EmptyOverride,
    /// More override lines than [`crate::MAX_OVERRIDES`].
    TooManyOverrides,
    /// The same network is overridden twice.
    Duplicate {
        /// Line of the first definition.
        first_line: u64,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong => write!(f, "line longer than {} bytes", crate::MAX_LINE_BYTES),
            LineError::NotUtf8 => write!(f, "line is not valid UTF-8"),
            LineError::UnterminatedQuote => write!(f, "quoted field is not closed"),
            LineError::TooManyFields { found, max } => {
                write!(f, "{found} fields, at most {max} expected")
            }
            LineError::MissingField(name) => write!(f, "field `{name}` is missing"),
            LineError::BadIp(s) => write!(f, "`{s}` is not an IP address"),
            LineError::BadRange => {
                write!(
                    f,
                    "first and last address differ in family or are out of order"
                )
            }
            LineError::BadAsn(s) => write!(f, "`{s}` is not an AS number"),
            LineError::BadCountry(s) => write!(f, "`{s}` is not a two-letter country code"),
            LineError::BadCidr(s) => write!(f, "`{s}` is not a network (address/prefix-length)"),
            LineError::HostBitsSet { cidr, network } => {
                write!(f, "`{cidr}` has host bits set (did you mean `{network}`?)")
            }
            LineError::EmptyOverride => write!(f, "override sets no country, ASN or label"),
            LineError::TooManyOverrides => {
                write!(f, "more than {} overrides", crate::MAX_OVERRIDES)
            }
            LineError::Duplicate { first_line } => {
                write!(f, "network already overridden on line {first_line}")
            }
        }
    }
}

impl fmt::Display for GeoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            GeoError::Mmdb {
                source_name,
                message,
            } => write!(f, "{source_name}: invalid MaxMind DB: {message}"),
            GeoError::WrongDatabaseKind {
                source_name,
                expected,
                database_type,
            } => write!(
                f,
                "{source_name}: database type `{database_type}` has no {expected} data \
                 (is it the right file for the {expected} database?)"
            ),
            GeoError::Line {
                source_name,
                line,
                kind,
            } => write!(f, "{source_name}:{line}: {kind}"),
            GeoError::Table { problem } => write!(f, "invalid geo table: {problem}"),
        }
    }
}

impl std::error::Error for GeoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GeoError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
