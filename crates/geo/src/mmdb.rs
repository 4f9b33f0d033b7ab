//! Reading MaxMind DB files into range lists.
//!
//! Two record styles are understood:
//! - MaxMind GeoLite2/GeoIP2: `country.iso_code`, falling back to
//!   `registered_country.iso_code` (set where MaxMind knows only the
//!   registrant, e.g. anycast and satellite ranges); ASN files hold
//!   `autonomous_system_number` and `autonomous_system_organization`.
//! - ip-location-db: a map with one key, `country_code`.
//!
//! IPv4 in an IPv6 database lives in the subtree at `::/96`; MaxMind also
//! aliases it at `::ffff:0:0/96` (IPv4-mapped), `2002::/16` (6to4) and
//! `2001::/32` (Teredo). We read the IPv4 subtree once, as IPv4, by iterating
//! `0.0.0.0/0`; the IPv6 pass over `::/0` skips the aliases (maxminddb does by
//! default) and drops what it yields from the IPv4 subtree. IPv4-mapped
//! addresses are answered from the IPv4 table at lookup time.

use std::collections::HashMap;

use ipnetwork::IpNetwork;
use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use crate::error::GeoError;
use crate::ranges::Range;
use crate::Country;

/// Cap on the networks read from one file: far above any real database
/// (GeoIP2-City has about 5 million), low enough to stop a crafted search
/// tree from making us iterate forever.
pub(crate) const MAX_MMDB_NETWORKS: usize = 50_000_000;

/// The fields we read from a record, in both styles.
#[derive(Deserialize, Default, Debug)]
pub(crate) struct Record<'a> {
    #[serde(borrow, default)]
    pub country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    pub registered_country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    pub country_code: Option<&'a str>,
    #[serde(default)]
    pub autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    pub autonomous_system_organization: Option<&'a str>,
}

/// `{ "iso_code": "DE", ... }`
#[derive(Deserialize, Default, Debug)]
pub(crate) struct IsoCode<'a> {
    #[serde(borrow, default)]
    pub iso_code: Option<&'a str>,
}

impl Record<'_> {
    /// The country: `country.iso_code`, else `registered_country.iso_code`,
    /// else `country_code`. Values that are not two letters are ignored.
    pub(crate) fn country(&self) -> Option<Country> {
        let iso =
            |c: &Option<IsoCode<'_>>| c.as_ref().and_then(|c| c.iso_code).and_then(Country::parse);
        iso(&self.country)
            .or_else(|| iso(&self.registered_country))
            .or_else(|| self.country_code.and_then(Country::parse))
    }

    /// ASN (0 counts as none) and organisation.
    pub(crate) fn asn(&self) -> Option<(u32, String)> {
        let asn = self.autonomous_system_number.filter(|a| *a != 0)?;
        Some((
            asn,
            self.autonomous_system_organization
                .unwrap_or("")
                .to_string(),
        ))
    }
}

/// Which range lists a read fills.
pub(crate) struct Sink<'s, V> {
    pub v4: &'s mut Vec<Range<V>>,
    pub v6: &'s mut Vec<Range<V>>,
}

/// Reads every network of `bytes` whose record yields a value.
pub(crate) fn read<V: Clone>(
    bytes: &[u8],
    source_name: &str,
    expected: &'static str,
    extract: impl Fn(&Record<'_>) -> Option<V>,
    sink: Sink<'_, V>,
) -> Result<(), GeoError> {
    let err = |e: maxminddb::MaxMindDbError| GeoError::Mmdb {
        source_name: source_name.to_string(),
        message: e.to_string(),
    };
    let reader = Reader::from_source(bytes).map_err(err)?;
    let ip_version = reader.metadata().ip_version;
    let mut cache: HashMap<usize, Option<V>> = HashMap::new();
    let mut seen = 0usize;
    let mut found = 0usize;

    let mut pass = |cidr: &str, want_v6: bool, sink: &mut Vec<Range<V>>| -> Result<(), GeoError> {
        // Both literals are valid networks.
        let Ok(net) = cidr.parse() else {
            return Ok(());
        };
        for item in reader.within(net, WithinOptions::default()).map_err(err)? {
            let item = item.map_err(err)?;
            seen += 1;
            if seen > MAX_MMDB_NETWORKS {
                return Err(GeoError::Mmdb {
                    source_name: source_name.to_string(),
                    message: format!("more than {MAX_MMDB_NETWORKS} networks"),
                });
            }
            let Some(offset) = item.offset() else {
                continue;
            };
            let network = item.network().map_err(err)?;
            let (start, end) = match network {
                IpNetwork::V4(n) if !want_v6 => {
                    let start = u32::from(n.network()) as u128;
                    (start, start + ((1u128 << (32 - n.prefix() as u32)) - 1))
                }
                IpNetwork::V6(n) if want_v6 => {
                    let start = u128::from(n.network());
                    let host_bits = 128 - n.prefix() as u32;
                    let size_minus_1 = if host_bits == 128 {
                        u128::MAX
                    } else {
                        (1u128 << host_bits) - 1
                    };
                    (start, start.saturating_add(size_minus_1))
                }
                IpNetwork::V6(n) if !want_v6 => {
                    // An IPv6 database without an IPv4 subtree: the record
                    // covering ::/96, if any, covers all of IPv4.
                    if n.prefix() <= 96 && u128::from(n.network()) == 0 {
                        (0, u32::MAX as u128)
                    } else {
                        continue;
                    }
                }
                // IPv4 subtree seen from the IPv6 pass: already read.
                _ => continue,
            };
            let val = match cache.get(&offset) {
                Some(v) => v.clone(),
                None => {
                    let rec: Record<'_> = item.decode().map_err(err)?.unwrap_or_default();
                    let v = extract(&rec);
                    cache.insert(offset, v.clone());
                    v
                }
            };
            if let Some(val) = val {
                found += 1;
                sink.push(Range { start, end, val });
            }
        }
        Ok(())
    };
    pass("0.0.0.0/0", false, sink.v4)?;
    if ip_version == 6 {
        pass("::/0", true, sink.v6)?;
    }
    if found == 0 {
        return Err(GeoError::WrongDatabaseKind {
            source_name: source_name.to_string(),
            expected,
            database_type: reader.metadata().database_type.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(s: &str) -> Option<IsoCode<'_>> {
        Some(IsoCode { iso_code: Some(s) })
    }

    #[test]
    fn country_fallbacks() {
        let r = Record {
            country: iso("de"),
            registered_country: iso("FR"),
            ..Default::default()
        };
        assert_eq!(r.country(), Country::parse("DE"));
        let r = Record {
            country: Some(IsoCode { iso_code: None }),
            registered_country: iso("FR"),
            ..Default::default()
        };
        assert_eq!(r.country(), Country::parse("FR"));
        let r = Record {
            country_code: Some("jp"),
            ..Default::default()
        };
        assert_eq!(r.country(), Country::parse("JP"));
        let r = Record {
            country: iso("Germany"),
            ..Default::default()
        };
        assert_eq!(r.country(), None);
        let r = Record {
            autonomous_system_number: Some(0),
            ..Default::default()
        };
        assert_eq!(r.asn(), None);
        let r = Record {
            autonomous_system_number: Some(3320),
            autonomous_system_organization: Some("Deutsche Telekom AG"),
            ..Default::default()
        };
        assert_eq!(r.asn(), Some((3320, "Deutsche Telekom AG".to_string())));
    }
}
