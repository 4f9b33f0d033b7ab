//! IP address → country, autonomous system and operator label.
//!
//! smtpscope's detectors ask "from how many countries / ASNs / networks did
//! this account log in?" for every authentication, so lookups must be cheap:
//! all sources are compiled at load time into one flat, sorted segment table
//! per address family (see `table.rs`), and a lookup is one index probe plus a
//! short binary search, with no allocation ([`GeoDb::lookup_fast`]) or a few
//! reference-count bumps ([`GeoDb::lookup`]).
//!
//! Sources, merged into that table:
//! - MaxMind DB files: GeoLite2/GeoIP2 Country and ASN, and ip-location-db's
//!   country files ([`GeoDb::from_mmdb_files`], [`GeoDbBuilder`]);
//! - CSV ranges `first_ip,last_ip,asn,organisation`, plain or zstd
//!   ([`GeoDb::from_asn_csv`], [`GeoDbBuilder::asn_csv_file`]);
//! - operator [`Overrides`] (`cidr,country,asn,label`), laid over the rest
//!   with [`GeoDb::with_overrides`];
//! - a built-in default compiled from public data (CC BY 4.0, see
//!   `data/NOTICE`), embedded in the binary ([`GeoDb::builtin`]).
//!
//! Never panics on bad input: damaged files give a [`GeoError`] that names
//! the file and, for line formats, the line.

#![deny(missing_docs)]

mod country;
mod csv;
mod error;
mod mmdb;
mod overrides;
mod ranges;
mod table;

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use country::Country;
pub use error::{GeoError, LineError};
pub use overrides::{Overrides, MAX_OVERRIDES};

use ranges::{Range, Segments};
use table::{Interner, Table, Val, NO_STR};

/// Longest line accepted in a CSV input (ASN ranges, overrides). Real lines
/// are under 300 bytes; the cap keeps a file without newlines from being
/// buffered whole.
pub const MAX_LINE_BYTES: usize = 4096;

/// Largest MaxMind DB file read into memory. The biggest commercial
/// databases are a few hundred megabytes.
pub const MAX_MMDB_BYTES: u64 = 2 << 30;

/// The built-in table, compiled from the public data in `data/` (see
/// `data/README.md` for how to regenerate it).
static BUILTIN_TABLE: &[u8] = include_bytes!("../../../data/geo-default.bin");
/// [`BUILTIN_TABLE`] decoded, once, at its first use ([`GeoDb::try_builtin`]).
static BUILTIN: OnceLock<Result<GeoDb, GeoError>> = OnceLock::new();

/// What is known about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// Country (ISO 3166-1 alpha-2).
    pub country: Option<Country>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Name of the autonomous system's organisation.
    pub as_org: Option<Arc<str>>,
    /// The operator's label from an override ("corporate NAT", ...).
    pub label: Option<Arc<str>>,
}

/// Sizes of a loaded table, for logs and the performance docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeoStats {
    /// IPv4 segments (ranges with one value, gaps included).
    pub v4_segments: usize,
    /// IPv6 segments.
    pub v6_segments: usize,
    /// Distinct (country, ASN, organisation, label) values.
    pub values: usize,
    /// Distinct organisation names and labels.
    pub strings: usize,
    /// Approximate heap memory used by the table.
    pub heap_bytes: usize,
}

/// The compiled lookup table.
#[derive(Clone, Debug)]
pub struct GeoDb {
    table: Table,
}

/// The /24 (IPv4) or /48 (IPv6) network of `ip` as one number, for counting
/// distinct networks. IPv4 keys are `1 << 48 | (ip >> 8)`, IPv6 keys are the
/// top 48 bits, so the two never collide. IPv4-mapped IPv6 addresses give
/// the key of their IPv4 address.
pub fn prefix_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => (1u64 << 48) | (u32::from(a) >> 8) as u64,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => prefix_key(IpAddr::V4(m)),
            None => (u128::from(a) >> 80) as u64,
        },
    }
}

impl GeoDb {
    /// The built-in default database, decoded on first use (tens of
    /// milliseconds) and shared afterwards. If the embedded table were
    /// damaged (a test guards against it) this is the empty database; use
    /// [`GeoDb::try_builtin`] to see the error.
    pub fn builtin() -> &'static GeoDb {
        static EMPTY: OnceLock<GeoDb> = OnceLock::new();
        match GeoDb::try_builtin() {
            Ok(db) => db,
            Err(_) => EMPTY.get_or_init(GeoDb::empty),
        }
    }

    /// Start decoding the built-in database on a thread of its own and return at once: a
    /// caller with other start-up work (`analyze` with more than one thread reads and parses
    /// the first lines meanwhile; `serve` opens its listeners) gets [`GeoDb::builtin`] without
    /// waiting the decoding's ~60 ms (it waits only for what is left of it). Only the first
    /// call does anything.
    pub fn decode_builtin_in_background() {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            // A thread that cannot start leaves the decoding to the first look-up.
            let _ = std::thread::Builder::new()
                .name("geo-decode".into())
                .spawn(|| {
                    GeoDb::builtin();
                });
        });
    }

    /// Whether the built-in database is decoded yet (by [`GeoDb::builtin`] or in the
    /// background): nothing in a process decodes it before its first use.
    pub fn builtin_is_decoded() -> bool {
        BUILTIN.get().is_some()
    }

    /// The built-in default database, or why it could not be decoded.
    pub fn try_builtin() -> Result<&'static GeoDb, &'static GeoError> {
        BUILTIN
            .get_or_init(|| GeoDb::from_table_bytes(BUILTIN_TABLE))
            .as_ref()
    }

    /// A database that knows nothing (overrides can be laid over it).
    pub fn empty() -> GeoDb {
        GeoDb {
            table: Table::empty(),
        }
    }

    /// Loads a MaxMind DB country file and/or ASN file and merges them.
    pub fn from_mmdb_files(country: Option<&Path>, asn: Option<&Path>) -> Result<GeoDb, GeoError> {
        let mut b = GeoDbBuilder::new();
        if let Some(p) = country {
            b.country_mmdb_file(p)?;
        }
        if let Some(p) = asn {
            b.asn_mmdb_file(p)?;
        }
        Ok(b.build())
    }

    /// Loads ASN ranges (`first_ip,last_ip,asn,organisation`) from a reader
    /// of plain CSV; `source_name` is used in error messages.
    pub fn from_asn_csv<R: Read>(reader: R, source_name: &str) -> Result<GeoDb, GeoError> {
        let mut b = GeoDbBuilder::new();
        b.asn_csv(reader, source_name)?;
        Ok(b.build())
    }

    /// Loads ASN range files (`.csv` or `.csv.zst`), e.g. one for IPv4 and
    /// one for IPv6.
    pub fn from_asn_csv_files(paths: &[&Path]) -> Result<GeoDb, GeoError> {
        let mut b = GeoDbBuilder::new();
        for p in paths {
            b.asn_csv_file(p)?;
        }
        Ok(b.build())
    }

    /// Decodes a compiled table (the format of `data/geo-default.bin`).
    pub fn from_table_bytes(bytes: &[u8]) -> Result<GeoDb, GeoError> {
        Ok(GeoDb {
            table: Table::from_bytes(bytes)?,
        })
    }

    /// Encodes this database as a compiled table (zstd-compressed). Fails
    /// only if the compressor cannot allocate.
    pub fn to_table_bytes(&self) -> std::io::Result<Vec<u8>> {
        self.table.to_bytes()
    }

    /// Lays operator overrides over this database. The most specific
    /// override holding an address wins for the fields it sets; fields it
    /// leaves empty come from less specific overrides, then from the data.
    /// An override that sets an ASN also sets that ASN's organisation name
    /// if the data knows it.
    pub fn with_overrides(self, overrides: Overrides) -> GeoDb {
        if overrides.is_empty() {
            return self;
        }
        let t = self.table;
        let mut asn_org: HashMap<u32, u32> = HashMap::new();
        for v in &t.vals {
            if v.asn != 0 && v.org != NO_STR {
                asn_org.entry(v.asn).or_insert(v.org);
            }
        }
        let mut interner = Interner::with_strings(t.strings.clone());
        let (mut o4, mut o6) = (Vec::new(), Vec::new());
        for e in overrides.entries {
            let r = Range {
                start: e.start,
                end: e.end,
                val: e.fields,
            };
            if e.v6 {
                o6.push(r)
            } else {
                o4.push(r)
            }
        }
        let mut apply = |base: &Segments<Val>, ovr: Vec<Range<overrides::Fields>>, max: u128| {
            let ov = ranges::sweep(ovr, max, |acc, inner| acc.overlay(inner));
            ranges::zip(base, &ov, |b, o| {
                let mut v = *b;
                if let Some(f) = o {
                    if let Some(c) = f.country {
                        v.country = c.0;
                    }
                    if let Some(a) = f.asn {
                        if a != v.asn {
                            v.org = asn_org.get(&a).copied().unwrap_or(NO_STR);
                        }
                        v.asn = a;
                    }
                    if let Some(l) = &f.label {
                        v.label = interner.string(l);
                    }
                }
                v
            })
        };
        let v4 = apply(&t.v4.to_segments(&t.vals), o4, u32::MAX as u128);
        let v6 = apply(&t.v6.to_segments(&t.vals), o6, u128::MAX);
        GeoDb {
            table: Table::from_segments(interner, &v4, &v6),
        }
    }

    /// The packed value (see `table::pack`) of the segment holding `ip`.
    #[inline]
    fn packed(&self, ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(a) => self.table.v4.find(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(m) => self.table.v4.find(u32::from(m)),
                None => self.table.v6.find(u128::from(a)),
            },
        }
    }

    /// Everything known about `ip`. IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let p = self.packed(ip);
        let (as_org, label) = match self.table.texts(p) {
            Some([org, label]) => (org.clone(), label.clone()),
            None => (None, None),
        };
        GeoInfo {
            country: table::packed_country(p),
            asn: Some(table::packed_asn(p)).filter(|a| *a != 0),
            as_org,
            label,
        }
    }

    /// Country and ASN of `ip`, without allocating or touching reference
    /// counts.
    #[inline]
    pub fn lookup_fast(&self, ip: IpAddr) -> (Option<Country>, Option<u32>) {
        let p = self.packed(ip);
        (
            table::packed_country(p),
            Some(table::packed_asn(p)).filter(|a| *a != 0),
        )
    }

    /// The IPv4 ranges (first, last; inclusive) of a country, merged where
    /// adjacent, in address order.
    pub fn v4_ranges_for_country(&self, c: Country) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for (first, last, p) in self.table.v4.iter() {
            if table::packed_country(p) != Some(c) {
                continue;
            }
            let (first, last) = (first as u32, last as u32);
            match out.last_mut() {
                Some(prev) if prev.1.checked_add(1) == Some(first) => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        out
    }

    /// Every country with its number of IPv4 addresses, most addresses first
    /// (ties by code).
    pub fn countries(&self) -> Vec<(Country, u64)> {
        let mut counts: HashMap<Country, u64> = HashMap::new();
        for (first, last, p) in self.table.v4.iter() {
            if let Some(c) = table::packed_country(p) {
                *counts.entry(c).or_default() += (last - first + 1) as u64;
            }
        }
        let mut out: Vec<(Country, u64)> = counts.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Table sizes and memory use.
    pub fn stats(&self) -> GeoStats {
        GeoStats {
            v4_segments: self.table.v4.starts.len(),
            v6_segments: self.table.v6.starts.len(),
            values: self.table.vals.len(),
            strings: self.table.strings.len(),
            heap_bytes: self.table.heap_bytes(),
        }
    }
}

/// Compiles the built-in default from the ip-location-db files in `dir`:
/// `geo-whois-asn-country.mmdb` (country), `asn-ipv4.csv.zst` and
/// `asn-ipv6.csv.zst` (ASN and organisation).
pub fn build_default_from_dir(dir: &Path) -> Result<GeoDb, GeoError> {
    let mut b = GeoDbBuilder::new();
    b.country_mmdb_file(&dir.join("geo-whois-asn-country.mmdb"))?;
    b.asn_csv_file(&dir.join("asn-ipv4.csv.zst"))?;
    b.asn_csv_file(&dir.join("asn-ipv6.csv.zst"))?;
    Ok(b.build())
}

/// Collects sources and compiles them into a [`GeoDb`].
///
/// Country data comes from the country sources, ASN and organisation from
/// the ASN sources; where sources of one kind overlap, the more specific
/// range wins (and among equal ranges the one added last).
#[derive(Default)]
pub struct GeoDbBuilder {
    interner: Interner,
    country_v4: Vec<Range<[u8; 2]>>,
    country_v6: Vec<Range<[u8; 2]>>,
    asn_v4: Vec<Range<(u32, u32)>>,
    asn_v6: Vec<Range<(u32, u32)>>,
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, GeoError> {
    let io = |source| GeoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    file.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(io(std::io::Error::other(format!(
            "file larger than {max} bytes"
        ))));
    }
    Ok(buf)
}

impl GeoDbBuilder {
    /// No sources yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the country data of a MaxMind DB file held in memory.
    pub fn country_mmdb(&mut self, bytes: &[u8], source_name: &str) -> Result<&mut Self, GeoError> {
        let sink = mmdb::Sink {
            v4: &mut self.country_v4,
            v6: &mut self.country_v6,
        };
        mmdb::read(
            bytes,
            source_name,
            "country",
            |r| r.country().map(|c| c.0),
            sink,
        )?;
        Ok(self)
    }

    /// Adds the country data of a MaxMind DB file.
    pub fn country_mmdb_file(&mut self, path: &Path) -> Result<&mut Self, GeoError> {
        let bytes = read_file(path, MAX_MMDB_BYTES)?;
        self.country_mmdb(&bytes, &path.display().to_string())
    }

    /// Adds the ASN data of a MaxMind DB file held in memory.
    pub fn asn_mmdb(&mut self, bytes: &[u8], source_name: &str) -> Result<&mut Self, GeoError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        let sink = mmdb::Sink {
            v4: &mut v4,
            v6: &mut v6,
        };
        mmdb::read(bytes, source_name, "asn", |r| r.asn(), sink)?;
        self.add_asn_ranges(v4, v6);
        Ok(self)
    }

    /// Adds the ASN data of a MaxMind DB file.
    pub fn asn_mmdb_file(&mut self, path: &Path) -> Result<&mut Self, GeoError> {
        let bytes = read_file(path, MAX_MMDB_BYTES)?;
        self.asn_mmdb(&bytes, &path.display().to_string())
    }

    /// Adds ASN ranges from plain CSV.
    pub fn asn_csv<R: Read>(
        &mut self,
        reader: R,
        source_name: &str,
    ) -> Result<&mut Self, GeoError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        csv::read_asn_csv(BufReader::new(reader), source_name, &mut v4, &mut v6)?;
        self.add_asn_ranges(v4, v6);
        Ok(self)
    }

    /// Adds ASN ranges from a `.csv` file, or a zstd-compressed one if the
    /// name ends in `.zst`.
    pub fn asn_csv_file(&mut self, path: &Path) -> Result<&mut Self, GeoError> {
        let name = path.display().to_string();
        let io = |source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        if path.extension().is_some_and(|e| e == "zst") {
            let dec = zstd::stream::read::Decoder::new(file).map_err(io)?;
            self.asn_csv(dec, &name)
        } else {
            self.asn_csv(file, &name)
        }
    }

    fn add_asn_ranges(&mut self, v4: Vec<Range<(u32, String)>>, v6: Vec<Range<(u32, String)>>) {
        for (src, dst) in [(v4, &mut self.asn_v4), (v6, &mut self.asn_v6)] {
            for r in src {
                if r.val.0 == 0 {
                    continue;
                }
                let org = if r.val.1.is_empty() {
                    NO_STR
                } else {
                    self.interner.string(&r.val.1)
                };
                dst.push(Range {
                    start: r.start,
                    end: r.end,
                    val: (r.val.0, org),
                });
            }
        }
    }

    /// Compiles everything added into one lookup table.
    pub fn build(self) -> GeoDb {
        let replace = |a: &mut _, b: &_| *a = *b;
        let family = |country: Vec<Range<[u8; 2]>>, asn: Vec<Range<(u32, u32)>>, max: u128| {
            let c = ranges::sweep(country, max, replace);
            let a = ranges::sweep(asn, max, |x: &mut (u32, u32), y: &(u32, u32)| *x = *y);
            ranges::zip(&c, &a, |c, a| Val {
                country: c.unwrap_or([0, 0]),
                asn: a.map_or(0, |a| a.0),
                org: a.map_or(NO_STR, |a| a.1),
                label: NO_STR,
            })
        };
        let v4 = family(self.country_v4, self.asn_v4, u32::MAX as u128);
        let v6 = family(self.country_v6, self.asn_v6, u128::MAX);
        GeoDb {
            table: Table::from_segments(self.interner, &v4, &v6),
        }
    }
}
