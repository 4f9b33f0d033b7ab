//! Operator overrides: `cidr,country,asn,label` lines.
//!
//! ```text
//! # our own ranges
//! cidr,country,asn,label
//! 198.51.100.0/24,,64500,corporate NAT
//! 127.1.0.0/16,DE,,test-germany
//! 2001:db8::/32,JP,,"mobile carrier CGNAT, Tokyo"
//! ```
//! Any field but the first may be empty (or missing at the end of the line);
//! a bare address means a /32 or /128. Where overrides nest, the most specific
//! one wins for the fields it sets; the others come from the next less
//! specific override, then from the database.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::csv::{parse_asn, split_fields, LineErrorOrIo, Lines};
use crate::error::{GeoError, LineError};
use crate::Country;

/// Most override lines accepted from one file: an override file describes
/// an operator's own networks, a few thousand lines at most in practice.
pub const MAX_OVERRIDES: usize = 1_000_000;

/// A parsed override file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub(crate) entries: Vec<Entry>,
}

/// One override line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub v6: bool,
    pub start: u128,
    pub end: u128,
    pub fields: Fields,
}

/// The fields an override sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub country: Option<Country>,
    pub asn: Option<u32>,
    pub label: Option<Arc<str>>,
}

impl Fields {
    /// Lays `inner` (more specific) over `self`.
    pub(crate) fn overlay(&mut self, inner: &Fields) {
        if inner.country.is_some() {
            self.country = inner.country;
        }
        if inner.asn.is_some() {
            self.asn = inner.asn;
        }
        if inner.label.is_some() {
            self.label = inner.label.clone();
        }
    }
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Overrides {
        Overrides::default()
    }

    /// Number of override lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses override text; `source_name` is used in error messages.
    pub fn parse_csv(text: &str, source_name: &str) -> Result<Overrides, GeoError> {
        Self::read(text.as_bytes(), source_name)
    }

    /// Reads an override file.
    pub fn load(path: &Path) -> Result<Overrides, GeoError> {
        let file = std::fs::File::open(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::read(std::io::BufReader::new(file), &path.display().to_string())
    }

    /// Reads override lines from any buffered reader.
    pub fn read<R: BufRead>(reader: R, source_name: &str) -> Result<Overrides, GeoError> {
        let mut lines = Lines::new(reader);
        let mut entries = Vec::new();
        let mut first_line: HashMap<(bool, u128, u128), u64> = HashMap::new();
        let mut seen_data = false;
        while let Some((line_no, res)) = lines.next_line() {
            let err = |kind| GeoError::Line {
                source_name: source_name.to_string(),
                line: line_no,
                kind,
            };
            let text = match res {
                Ok(t) => t,
                Err(LineErrorOrIo::Line(k)) => return Err(err(k)),
                Err(LineErrorOrIo::Io(source)) => {
                    return Err(GeoError::Io {
                        path: source_name.into(),
                        source,
                    })
                }
            };
            let t = text.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let is_first = !seen_data;
            seen_data = true;
            if is_first && t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("cidr")) {
                continue;
            }
            let entry = parse_line(t).map_err(err)?;
            let key = (entry.v6, entry.start, entry.end);
            if let Some(&first) = first_line.get(&key) {
                return Err(err(LineError::Duplicate { first_line: first }));
            }
            if entries.len() >= MAX_OVERRIDES {
                return Err(err(LineError::TooManyOverrides));
            }
            first_line.insert(key, line_no);
            entries.push(entry);
        }
        Ok(Overrides { entries })
    }
}

fn parse_line(line: &str) -> Result<Entry, LineError> {
    let f = split_fields(line, 4)?;
    let field = |i: usize| f.get(i).map(|s| s.as_str()).filter(|s| !s.is_empty());
    let cidr = field(0).ok_or(LineError::MissingField("cidr"))?;
    let (v6, start, end) = parse_cidr(cidr)?;
    let country = match field(1) {
        None => None,
        Some(c) => Some(Country::parse(c).ok_or_else(|| LineError::BadCountry(c.to_string()))?),
    };
    let asn = match field(2) {
        None => None,
        Some(a) => Some(parse_asn(a)?),
    };
    let label = field(3).map(|l| Arc::from(l.trim()));
    if country.is_none() && asn.is_none() && label.is_none() {
        return Err(LineError::EmptyOverride);
    }
    Ok(Entry {
        v6,
        start,
        end,
        fields: Fields {
            country,
            asn,
            label,
        },
    })
}

/// Parses `addr/len` or a bare address into (is_v6, first, last).
/// IPv4-mapped IPv6 networks (`::ffff:192.0.2.0/120`) are taken as IPv4.
pub(crate) fn parse_cidr(s: &str) -> Result<(bool, u128, u128), LineError> {
    let bad = || LineError::BadCidr(s.to_string());
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            (a, Some(l.parse::<u32>().map_err(|_| bad())?))
        }
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let (v6, bits, value) = match ip {
        IpAddr::V4(a) => (false, 32u32, u32::from(a) as u128),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) if !matches!(len, Some(l) if l < 96) => {
                let l4 = len.map(|l| l - 96);
                return parse_cidr(&match l4 {
                    Some(l) => format!("{m}/{l}"),
                    None => m.to_string(),
                })
                .map_err(|_| bad());
            }
            _ => (true, 128u32, u128::from(a)),
        },
    };
    let len = len.unwrap_or(bits);
    if len > bits {
        return Err(bad());
    }
    let host_bits = bits - len;
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = value & !host_mask;
    if start != value {
        let network = match ip {
            IpAddr::V4(_) => std::net::Ipv4Addr::from(start as u32).to_string(),
            IpAddr::V6(_) => std::net::Ipv6Addr::from(start).to_string(),
        };
        return Err(LineError::HostBitsSet {
            cidr: s.to_string(),
            network: format!("{network}/{len}"),
        });
    }
    Ok((v6, start, start | host_mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Ok((false, 0x0a00_0000, 0x0aff_ffff))
        );
        assert_eq!(
            parse_cidr("192.0.2.1"),
            Ok((false, 0xc000_0201, 0xc000_0201))
        );
        assert_eq!(parse_cidr("0.0.0.0/0"), Ok((false, 0, u32::MAX as u128)));
        assert_eq!(parse_cidr("::/0"), Ok((true, 0, u128::MAX)));
        assert_eq!(
            parse_cidr("::ffff:192.0.2.0/120"),
            Ok((false, 0xc000_0200, 0xc000_02ff))
        );
        assert_eq!(
            parse_cidr("10.0.0.1/8"),
            Err(LineError::HostBitsSet {
                cidr: "10.0.0.1/8".into(),
                network: "10.0.0.0/8".into()
            })
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0/").is_err());
        assert!(parse_cidr("10.0.0.0/+8").is_err());
        assert!(parse_cidr("host.example").is_err());
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let text = "# comment\ncidr,country,asn,label\n10.0.0.0/8,DE,,x\n\n10.0.0.0/33,DE,,x\n";
        let e = Overrides::parse_csv(text, "ovr.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ovr.csv:5: `10.0.0.0/33` is not a network (address/prefix-length)"
        );
        let cases = [
            ("10.0.0.0/8,DEU", 1, LineError::BadCountry("DEU".into())),
            ("10.0.0.0/8,,AS-x", 1, LineError::BadAsn("AS-x".into())),
            ("10.0.0.0/8,,,", 1, LineError::EmptyOverride),
            ("10.0.0.0/8", 1, LineError::EmptyOverride),
            (",DE", 1, LineError::MissingField("cidr")),
            (
                "10.0.0.0/8,DE,1,x,y",
                1,
                LineError::TooManyFields { found: 5, max: 4 },
            ),
            (
                "1.0.0.0/8,DE\n2.0.0.0/8,,5\n1.0.0.0/8,FR",
                3,
                LineError::Duplicate { first_line: 1 },
            ),
            (
                "1.0.0.0/8,DE\ncidr,country",
                2,
                LineError::BadCidr("cidr".into()),
            ),
            // Not a char boundary at byte 4: must not panic.
            ("abcé,DE", 1, LineError::BadCidr("abcé".into())),
        ];
        for (text, line, kind) in cases {
            match Overrides::parse_csv(text, "x") {
                Err(GeoError::Line {
                    line: l, kind: k, ..
                }) => {
                    assert_eq!((l, k), (line, kind), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn parses_fields() {
        let o = Overrides::parse_csv(
            "CIDR,Country,ASN,Label\n198.51.100.0/24,,64500,corporate NAT\n2001:db8::/32, jp ,AS7,\"CGNAT, Tokyo\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o.entries[0].fields.asn, Some(64500));
        assert_eq!(o.entries[0].fields.country, None);
        assert_eq!(o.entries[0].fields.label.as_deref(), Some("corporate NAT"));
        assert!(o.entries[1].v6);
        assert_eq!(o.entries[1].fields.country, Country::parse("JP"));
        assert_eq!(o.entries[1].fields.label.as_deref(), Some("CGNAT, Tokyo"));
    }
}
