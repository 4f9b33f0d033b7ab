//! Where the tests, examples and benches find the repository's third-party test data.
//!
//! The data lives in `tests/data/` (with its licences and provenance); the build script
//! unpacks it into this crate's `OUT_DIR`, so every path below is a plain directory of plain
//! files. Nothing here reads anything outside the repository.

use std::path::{Path, PathBuf};

/// Root of the unpacked data.
fn root() -> &'static Path {
    Path::new(concat!(env!("OUT_DIR"), "/data"))
}

/// The corpus of real and reference logs (`mail/`) and sFlow captures (`sflow/`), laid out
/// like `tests/data/corpus/` with its archives unpacked.
pub fn corpus() -> PathBuf {
    root().join("corpus")
}

/// `corpus()/mail`: Postfix, Exim, Dovecot and Sendmail logs and their third-party expectations.
pub fn mail() -> PathBuf {
    corpus().join("mail")
}

/// `corpus()/sflow`: sFlow datagrams and captures with tshark's reading of them.
pub fn sflow() -> PathBuf {
    corpus().join("sflow")
}

/// The ip-location-db country mmdb and ASN CSVs (`geo-whois-asn-country.mmdb`,
/// `asn-ipv4.csv.zst`, `asn-ipv6.csv.zst`), the sources of `data/geo-default.bin`.
pub fn geo() -> PathBuf {
    root().join("geo")
}
