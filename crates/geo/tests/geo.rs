//! Integration tests of the geo crate against the real data in
//! `tests/data/geo` (the sources of the built-in table) and the shipped built-in table.
//!
//! Modules:
//! - `known`: addresses whose answers were read from the source files;
//! - `sources`: the built-in table against independent oracles (maxminddb's
//!   own lookup on the source mmdb, a plain scan of the source CSVs);
//! - `overrides`: precedence and partial fields;
//! - `mmdb`: both record styles and the IPv4-in-IPv6 layout, on tiny
//!   databases written by `support/mmdb_writer.rs`;
//! - `damaged`: bad files give errors, never panics.

mod support {
    pub mod mmdb_writer;
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use geo::{Country, GeoDb, GeoError, Overrides};

/// A source file of the built-in table (`tests/data/geo/`, unpacked by `testdata`).
fn source(file: &str) -> PathBuf {
    testdata::geo().join(file)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cc(s: &str) -> Option<Country> {
    Country::parse(s)
}

/// xorshift64*: fixed-seed randomness without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u128) -> u128 {
        (((self.next() as u128) << 64) | self.next() as u128) % n
    }
}

/// One row of the source ASN CSVs, parsed independently of the crate.
struct Row {
    first: u128,
    last: u128,
    asn: u32,
    org: String,
}

fn read_csv_rows(file: &str) -> Vec<Row> {
    let text = zstd::stream::decode_all(std::fs::File::open(source(file)).unwrap()).unwrap();
    let text = String::from_utf8(text).unwrap();
    let key = |s: &str| match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    };
    text.lines()
        .map(|l| {
            let mut it = l.splitn(4, ',');
            let (a, b, n, org) = (
                it.next().unwrap(),
                it.next().unwrap(),
                it.next().unwrap(),
                it.next().unwrap(),
            );
            let org = match org.strip_prefix('"').and_then(|o| o.strip_suffix('"')) {
                Some(q) => q.replace("\"\"", "\""),
                None => org.to_string(),
            };
            Row {
                first: key(a),
                last: key(b),
                asn: n.parse().unwrap(),
                // The crate trims organisation names.
                org: org.trim().to_string(),
            }
        })
        .collect()
}

/// The ASN the CSV gives `key`, or None; `Err(())` where rows overlap.
fn csv_asn(rows: &[Row], key: u128) -> Result<Option<(u32, &str)>, ()> {
    let hits: Vec<&Row> = rows
        .iter()
        .filter(|r| r.first <= key && key <= r.last)
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [r] => Ok(Some((r.asn, r.org.as_str()))),
        _ => Err(()),
    }
}

mod known {
    use super::*;

    #[test]
    fn well_known_ipv4() {
        let db = GeoDb::builtin();
        // geo-whois-asn-country.mmdb: 8.8.0.0/15 US, 1.1.1.0/24 AU,
        // 193.0.0.0/20 NL; asn-ipv4.csv: 8.8.8.0-8.8.8.255 15169 Google LLC,
        // 1.1.1.0-1.1.1.255 13335, 193.0.0.0-193.0.7.255 3333 RIPE NCC.
        let g = db.lookup(ip("8.8.8.8"));
        assert_eq!(g.country, cc("US"));
        assert_eq!(g.asn, Some(15169));
        assert_eq!(g.as_org.as_deref(), Some("Google LLC"));
        assert_eq!(g.label, None);
        let g = db.lookup(ip("1.1.1.1"));
        assert_eq!((g.country, g.asn), (cc("AU"), Some(13335)));
        assert_eq!(g.as_org.as_deref(), Some("Cloudflare, Inc."));
        let g = db.lookup(ip("193.0.0.1"));
        assert_eq!((g.country, g.asn), (cc("NL"), Some(3333)));
        assert_eq!(
            g.as_org.as_deref(),
            Some("Reseaux IP Europeens Network Coordination Centre (RIPE NCC)")
        );
        // Neighbouring rows of the CSV: 8.8.9.0/24 is AS23089.
        assert_eq!(db.lookup_fast(ip("8.8.9.1")).1, Some(23089));
        // Quoted organisation with doubled quotes: 2.26.200.0-2.26.215.255.
        assert_eq!(
            db.lookup(ip("2.26.210.7")).as_org.as_deref(),
            Some("LLC \"SPUTNIK\"")
        );
        // Private and loopback space: nothing.
        assert_eq!(db.lookup(ip("10.0.0.1")), geo::GeoInfo::default());
        assert_eq!(db.lookup_fast(ip("127.0.0.1")), (None, None));
    }

    #[test]
    fn well_known_ipv6() {
        let db = GeoDb::builtin();
        // mmdb: 2001:4860::/32 US, 2001:67c:2e8::/48 NL; csv rows
        // 2001:4860::-2001:4860:4804:ffff:.. 15169, 2001:67c:2e8::/48 3333,
        // 2001:4:112::/48 112 DNS-OARC (no country in the mmdb).
        assert_eq!(
            db.lookup_fast(ip("2001:4860:4860::8888")),
            (cc("US"), Some(15169))
        );
        assert_eq!(
            db.lookup_fast(ip("2001:67c:2e8::1")),
            (cc("NL"), Some(3333))
        );
        let g = db.lookup(ip("2001:4:112::1"));
        assert_eq!(
            (g.country, g.asn, g.as_org.as_deref()),
            (None, Some(112), Some("DNS-OARC"))
        );
        // 2001:4860:4805::/48 is a different AS inside Google's /32.
        assert_eq!(db.lookup_fast(ip("2001:4860:4805::1")).1, Some(43515));
        // IPv4-mapped addresses are answered as IPv4.
        assert_eq!(db.lookup(ip("::ffff:8.8.8.8")), db.lookup(ip("8.8.8.8")));
    }

    #[test]
    fn countries_and_ranges() {
        let db = GeoDb::builtin();
        let countries = db.countries();
        assert!(countries.len() > 200, "{}", countries.len());
        assert_eq!(countries[0].0, Country(*b"US"));
        let total: u64 = countries.iter().map(|c| c.1).sum();
        assert!(total > 3_000_000_000 && total < 1 << 32, "{total}");
        let nl = db.v4_ranges_for_country(Country(*b"NL"));
        let x = u32::from(Ipv4Addr::new(193, 0, 0, 1));
        assert!(nl.iter().any(|(a, b)| *a <= x && x <= *b));
        assert!(nl.windows(2).all(|w| w[0].1 + 1 < w[1].0), "sorted, merged");
        let n_nl = countries.iter().find(|c| c.0 == Country(*b"NL")).unwrap().1;
        assert_eq!(
            nl.iter().map(|(a, b)| (b - a) as u64 + 1).sum::<u64>(),
            n_nl
        );
        // Every sampled address of those ranges really is NL.
        for (a, b) in nl.iter().step_by(97) {
            for x in [*a, *b, a + (b - a) / 2] {
                assert_eq!(db.lookup_fast(IpAddr::V4(x.into())).0, cc("NL"));
            }
        }
        assert!(db.v4_ranges_for_country(Country(*b"QQ")).is_empty());
    }

    #[test]
    fn prefix_keys() {
        use geo::prefix_key;
        assert_eq!(prefix_key(ip("192.0.2.1")), prefix_key(ip("192.0.2.254")));
        assert_ne!(prefix_key(ip("192.0.2.1")), prefix_key(ip("192.0.3.1")));
        assert_eq!(prefix_key(ip("192.0.2.1")), (1 << 48) | 0xc0_00_02);
        assert_eq!(
            prefix_key(ip("2001:db8:1:2::1")),
            prefix_key(ip("2001:db8:1:ffff::1"))
        );
        assert_ne!(
            prefix_key(ip("2001:db8:1::1")),
            prefix_key(ip("2001:db8:2::1"))
        );
        assert_eq!(prefix_key(ip("2001:db8:1::")), 0x2001_0db8_0001);
        assert_eq!(
            prefix_key(ip("::ffff:192.0.2.9")),
            prefix_key(ip("192.0.2.1"))
        );
        // ::c000:200/48 is ::/48, not 192.0.2.0/24.
        assert_ne!(prefix_key(ip("::192.0.2.1")), prefix_key(ip("192.0.2.1")));
    }

    #[test]
    fn builtin_is_loaded_once_and_sized() {
        let a = GeoDb::builtin() as *const GeoDb;
        assert_eq!(a, GeoDb::builtin() as *const GeoDb);
        assert!(GeoDb::try_builtin().is_ok());
        let s = GeoDb::builtin().stats();
        assert!(s.v4_segments > 500_000 && s.v6_segments > 200_000, "{s:?}");
    }
}

mod sources {
    use super::*;

    /// Random addresses: half uniform, half inside random CSV rows.
    fn sample(n: usize, seed: u64, v4_rows: &[Row], v6_rows: &[Row]) -> Vec<IpAddr> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|i| match i % 4 {
                0 => IpAddr::V4(Ipv4Addr::from(rng.next() as u32)),
                1 => {
                    let r = &v4_rows[rng.below(v4_rows.len() as u128) as usize];
                    IpAddr::V4(Ipv4Addr::from(
                        (r.first + rng.below(r.last - r.first + 1)) as u32,
                    ))
                }
                2 => {
                    let r = &v6_rows[rng.below(v6_rows.len() as u128) as usize];
                    IpAddr::V6(Ipv6Addr::from(
                        r.first + rng.below((r.last - r.first).saturating_add(1).max(1)),
                    ))
                }
                _ => IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | rng.below(1 << 124))),
            })
            .collect()
    }

    /// The built-in table answers like maxminddb's own lookup on the source
    /// mmdb (country) and like a scan of the source CSVs (ASN, organisation).
    fn check_against_sources(n: usize, seed: u64) {
        let db = GeoDb::builtin();
        let reader =
            maxminddb::Reader::open_readfile(source("geo-whois-asn-country.mmdb")).unwrap();
        let mut v4_rows = read_csv_rows("asn-ipv4.csv.zst");
        let mut v6_rows = read_csv_rows("asn-ipv6.csv.zst");
        v4_rows.sort_by_key(|r| r.first);
        v6_rows.sort_by_key(|r| r.first);
        let addrs = sample(n, seed, &v4_rows, &v6_rows);
        let (mut with_country, mut with_asn) = (0, 0);
        for a in addrs {
            #[derive(serde::Deserialize)]
            struct Rec {
                country_code: Option<String>,
            }
            let want_cc = reader
                .lookup(a)
                .unwrap()
                .decode::<Rec>()
                .unwrap()
                .and_then(|r| r.country_code)
                .and_then(|c| Country::parse(&c));
            let (key, rows) = match a {
                IpAddr::V4(v) => (u32::from(v) as u128, &v4_rows),
                IpAddr::V6(v) => (u128::from(v), &v6_rows),
            };
            // Rows are sorted and (but for one pair) disjoint: check the row
            // at or before `key` and its neighbours.
            let i = rows.partition_point(|r| r.first <= key);
            let near = &rows[i.saturating_sub(3)..(i + 1).min(rows.len())];
            let got = db.lookup(a);
            assert_eq!(got.country, want_cc, "{a}");
            with_country += want_cc.is_some() as usize;
            if let Ok(want) = csv_asn(near, key) {
                assert_eq!(got.asn, want.map(|w| w.0), "{a}");
                assert_eq!(
                    got.as_org.as_deref(),
                    want.map(|w| w.1).filter(|o| !o.is_empty()),
                    "{a}"
                );
                with_asn += want.is_some() as usize;
            }
        }
        // The sample must exercise data, not only empty space.
        assert!(
            with_country > n / 3 && with_asn > n / 3,
            "{with_country} {with_asn} of {n}"
        );
    }

    #[test]
    fn builtin_matches_sources_2000() {
        check_against_sources(2_000, 42);
    }

    #[test]
    #[ignore = "slow: reads the source geo data fully and compiles it (run with --ignored --release)"]
    fn builtin_matches_sources_100k_and_fresh_build() {
        check_against_sources(100_000, 7);
        let fresh = geo::build_default_from_dir(&source("")).unwrap();
        let db = GeoDb::builtin();
        let mut rng = Rng(7);
        for _ in 0..100_000 {
            let a = if rng.next() % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | rng.below(1 << 124)))
            };
            assert_eq!(db.lookup(a), fresh.lookup(a), "{a}");
        }
        let (x, y) = (db.stats(), fresh.stats());
        assert_eq!(
            (x.v4_segments, x.v6_segments, x.values),
            (y.v4_segments, y.v6_segments, y.values)
        );
        assert_eq!(
            db.to_table_bytes().unwrap(),
            fresh.to_table_bytes().unwrap()
        );
    }

    #[test]
    fn asn_csv_loader_on_source_rows() {
        // The first 3000 lines of asn-ipv4.csv, through the public loader.
        let text =
            zstd::stream::decode_all(std::fs::File::open(source("asn-ipv4.csv.zst")).unwrap())
                .unwrap();
        let head: Vec<&[u8]> = text.split(|b| *b == b'\n').take(3000).collect();
        let head = head.join(&b'\n');
        let db = GeoDb::from_asn_csv(&head[..], "head.csv").unwrap();
        let rows = read_csv_rows("asn-ipv4.csv.zst");
        for r in rows.iter().take(3000).step_by(7) {
            for k in [r.first, r.last] {
                let g = db.lookup(IpAddr::V4(Ipv4Addr::from(k as u32)));
                assert_eq!(g.asn, Some(r.asn));
                assert_eq!(g.country, None);
                assert_eq!(g.as_org.as_deref().unwrap_or(""), r.org);
            }
        }
    }
}

mod overrides {
    use super::*;

    const TEXT: &str = "\
# test overrides
cidr,country,asn,label
8.0.0.0/8,,,wide
8.8.8.0/24,DE,,outer
8.8.8.8/32,,64500,
198.51.100.0/24,,13335,corporate NAT
127.1.0.0/16,DE,,test-germany
2001:4860::/32,,,\"google, v6\"
2001:4860:4860::8888,JP,,
";

    #[test]
    fn most_specific_wins_per_field() {
        let ov = Overrides::parse_csv(TEXT, "test.csv").unwrap();
        assert_eq!(ov.len(), 7);
        let db = GeoDb::builtin().clone().with_overrides(ov);
        // /32 sets the ASN; country and label come from the /24.
        let g = db.lookup(ip("8.8.8.8"));
        assert_eq!(
            (g.country, g.asn, g.label.as_deref()),
            (cc("DE"), Some(64500), Some("outer"))
        );
        assert_eq!(g.as_org, None, "AS64500 is not in the data");
        // Neighbour in the /24: data ASN, override country and label.
        let g = db.lookup(ip("8.8.8.9"));
        assert_eq!(
            (g.country, g.asn, g.label.as_deref()),
            (cc("DE"), Some(15169), Some("outer"))
        );
        assert_eq!(g.as_org.as_deref(), Some("Google LLC"));
        // Only the /8 label: data country and ASN stay.
        let g = db.lookup(ip("8.8.4.4"));
        assert_eq!(
            (g.country, g.asn, g.label.as_deref()),
            (cc("US"), Some(15169), Some("wide"))
        );
        // An override ASN known to the data brings its organisation.
        let g = db.lookup(ip("198.51.100.7"));
        assert_eq!(
            (g.asn, g.as_org.as_deref()),
            (Some(13335), Some("Cloudflare, Inc."))
        );
        assert_eq!(g.label.as_deref(), Some("corporate NAT"));
        assert_eq!(db.lookup_fast(ip("127.1.2.3")), (cc("DE"), None));
        assert_eq!(
            db.lookup(ip("127.1.2.3")).label.as_deref(),
            Some("test-germany")
        );
        assert_eq!(db.lookup(ip("127.2.0.1")), geo::GeoInfo::default());
        // IPv6, and mapped IPv4.
        let g = db.lookup(ip("2001:4860:4860::8888"));
        assert_eq!(
            (g.country, g.asn, g.label.as_deref()),
            (cc("JP"), Some(15169), Some("google, v6"))
        );
        assert_eq!(db.lookup(ip("2001:4860:4860::8889")).country, cc("US"));
        assert_eq!(db.lookup(ip("::ffff:8.8.8.8")), db.lookup(ip("8.8.8.8")));
        // Untouched elsewhere.
        assert_eq!(
            db.lookup(ip("1.1.1.1")),
            GeoDb::builtin().lookup(ip("1.1.1.1"))
        );
        assert_eq!(
            db.lookup(ip("9.0.0.1")),
            GeoDb::builtin().lookup(ip("9.0.0.1"))
        );
    }

    #[test]
    fn over_an_empty_database() {
        let ov = Overrides::parse_csv("10.0.0.0/8,,64512,corp\n10.1.0.0/16,FR,,\n", "x").unwrap();
        let db = GeoDb::empty().with_overrides(ov);
        assert_eq!(db.lookup_fast(ip("10.2.0.1")), (None, Some(64512)));
        let g = db.lookup(ip("10.1.0.1"));
        assert_eq!(
            (g.country, g.asn, g.label.as_deref()),
            (cc("FR"), Some(64512), Some("corp"))
        );
        assert_eq!(db.lookup(ip("11.0.0.1")), geo::GeoInfo::default());
        assert_eq!(db.countries(), vec![(Country(*b"FR"), 65536)]);
    }

    #[test]
    fn load_errors_name_the_file() {
        let e = Overrides::load(Path::new("/nonexistent/overrides.csv")).unwrap_err();
        assert!(matches!(e, GeoError::Io { .. }));
        assert!(
            e.to_string().starts_with("/nonexistent/overrides.csv: "),
            "{e}"
        );
        let e = Overrides::parse_csv(
            "cidr,country,asn,label\n10.0.0.0/8,DE\n10.0.0.1/8,DE\n",
            "ovr.csv",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ovr.csv:3: `10.0.0.1/8` has host bits set (did you mean `10.0.0.0/8`?)"
        );
    }
}

mod mmdb {
    use super::support::mmdb_writer::{Value, Writer};
    use super::*;

    fn maxmind_country(iso: &'static str) -> Value {
        Value::Map(vec![
            (
                "country",
                Value::Map(vec![
                    ("iso_code", Value::Str(iso)),
                    ("geoname_id", Value::U32(2921044)),
                    ("names", Value::Map(vec![("en", Value::Str("Somewhere"))])),
                ]),
            ),
            (
                "registered_country",
                Value::Map(vec![("iso_code", Value::Str("ZZ"))]),
            ),
        ])
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("geo-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn maxmind_style_ipv6_db_with_ipv4_subtree_and_alias() {
        let mut w = Writer::new(6);
        w.insert("192.0.2.0/24", &maxmind_country("DE"));
        w.insert("198.51.100.0/25", &maxmind_country("us"));
        // Only a registered country (e.g. anycast).
        w.insert(
            "198.51.100.128/25",
            &Value::Map(vec![(
                "registered_country",
                Value::Map(vec![("iso_code", Value::Str("FR"))]),
            )]),
        );
        w.insert("2001:db8::/32", &maxmind_country("JP"));
        w.alias("::ffff:0:0/96", "::/96");
        let bytes = w.finish("GeoLite2-Country");
        // Our writer is right: maxminddb itself resolves the alias.
        let r = maxminddb::Reader::from_source(&bytes[..]).unwrap();
        assert!(r.lookup(ip("::ffff:192.0.2.1")).unwrap().has_data());

        let dir = tmpdir("mm6");
        let p = write(&dir, "country.mmdb", &bytes);
        let db = GeoDb::from_mmdb_files(Some(&p), None).unwrap();
        assert_eq!(db.lookup_fast(ip("192.0.2.77")), (cc("DE"), None));
        assert_eq!(db.lookup_fast(ip("::ffff:192.0.2.77")), (cc("DE"), None));
        assert_eq!(db.lookup_fast(ip("198.51.100.1")).0, cc("US"));
        assert_eq!(db.lookup_fast(ip("198.51.100.200")).0, cc("FR"));
        assert_eq!(db.lookup_fast(ip("2001:db8:5::1")).0, cc("JP"));
        assert_eq!(db.lookup_fast(ip("203.0.113.1")).0, None);
        assert_eq!(db.lookup_fast(ip("2001:db9::1")).0, None);
        // The IPv4 subtree and its alias were not copied into the IPv6 table:
        // it holds only gap, 2001:db8::/32, gap.
        assert_eq!(db.stats().v6_segments, 3);
        assert_eq!(db.countries().len(), 3);
        // A country file configured as the ASN file is refused.
        let e = GeoDb::from_mmdb_files(None, Some(&p)).unwrap_err();
        assert!(
            matches!(
                e,
                GeoError::WrongDatabaseKind {
                    expected: "asn",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("GeoLite2-Country"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ipv4_only_asn_db_merged_with_country_db() {
        let mut w = Writer::new(4);
        w.insert(
            "192.0.2.0/24",
            &Value::Map(vec![
                ("autonomous_system_number", Value::U32(64500)),
                ("autonomous_system_organization", Value::Str("Example Net")),
            ]),
        );
        // A record without ASN fields counts as no data.
        w.insert("192.0.3.0/24", &Value::Map(vec![]));
        let asn = w.finish("GeoLite2-ASN");
        let mut w = Writer::new(6);
        w.insert(
            "192.0.0.0/16",
            &Value::Map(vec![("country_code", Value::Str("NL"))]),
        );
        let country = w.finish("country ipvAll");
        let dir = tmpdir("mm4");
        let (pa, pc) = (
            write(&dir, "asn.mmdb", &asn),
            write(&dir, "c.mmdb", &country),
        );
        let db = GeoDb::from_mmdb_files(Some(&pc), Some(&pa)).unwrap();
        let g = db.lookup(ip("192.0.2.9"));
        assert_eq!(
            (g.country, g.asn, g.as_org.as_deref()),
            (cc("NL"), Some(64500), Some("Example Net"))
        );
        assert_eq!(db.lookup_fast(ip("192.0.3.9")), (cc("NL"), None));
        assert_eq!(db.lookup_fast(ip("192.1.0.0")), (None, None));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shipped_ip_location_db_file() {
        let db = GeoDb::from_mmdb_files(Some(&source("geo-whois-asn-country.mmdb")), None).unwrap();
        assert_eq!(db.lookup_fast(ip("8.8.8.8")), (cc("US"), None));
        assert_eq!(db.lookup_fast(ip("193.0.0.1")), (cc("NL"), None));
        assert_eq!(db.lookup_fast(ip("2001:67c:2e8::1")), (cc("NL"), None));
        // Same countries as the built-in table (which was compiled from it).
        for a in [
            "1.1.1.1",
            "203.0.113.5",
            "2a00:1450::1",
            "41.0.0.1",
            "2c0f:f000::1",
        ] {
            assert_eq!(
                db.lookup_fast(ip(a)).0,
                GeoDb::builtin().lookup_fast(ip(a)).0,
                "{a}"
            );
        }
    }
}

mod damaged {
    use super::*;

    fn no_panic_mmdb(bytes: &[u8]) -> Result<GeoDb, GeoError> {
        let mut b = geo::GeoDbBuilder::new();
        b.country_mmdb(bytes, "bad.mmdb")?;
        Ok(b.build())
    }

    #[test]
    fn bad_mmdb_files_give_errors() {
        let real = std::fs::read(source("geo-whois-asn-country.mmdb")).unwrap();
        assert!(matches!(no_panic_mmdb(b""), Err(GeoError::Mmdb { .. })));
        assert!(matches!(
            no_panic_mmdb(&real[..100_000]),
            Err(GeoError::Mmdb { .. })
        ));
        let e = no_panic_mmdb(b"garbage garbage garbage").unwrap_err();
        assert!(
            e.to_string().starts_with("bad.mmdb: invalid MaxMind DB"),
            "{e}"
        );
        // Only the metadata: the tree claims more nodes than the file has.
        let tail = &real[real.len() - 300..];
        assert!(no_panic_mmdb(tail).is_err());
        // Damaged data section: flipping bytes must give Ok or Err, no panic.
        let mut rng = Rng(3);
        for _ in 0..3 {
            let mut bad = real.clone();
            for _ in 0..50 {
                let i = rng.below(bad.len() as u128) as usize;
                bad[i] ^= 0x5a;
            }
            let _ = no_panic_mmdb(&bad);
        }
        let e = GeoDb::from_mmdb_files(Some(Path::new("/nonexistent.mmdb")), None).unwrap_err();
        assert!(matches!(e, GeoError::Io { .. }));
    }

    #[test]
    fn bad_tables_give_errors() {
        let good = GeoDb::empty()
            .with_overrides(
                Overrides::parse_csv("10.0.0.0/8,DE,64500,x\n2001:db8::/32,JP,,\n", "x").unwrap(),
            )
            .to_table_bytes()
            .unwrap();
        let back = GeoDb::from_table_bytes(&good).unwrap();
        assert_eq!(back.lookup(ip("10.1.1.1")).label.as_deref(), Some("x"));
        assert_eq!(back.lookup_fast(ip("2001:db8::1")), (cc("JP"), None));
        for n in 0..good.len() {
            assert!(
                GeoDb::from_table_bytes(&good[..n]).is_err(),
                "truncated to {n}"
            );
        }
        // A flipped bit is detected (zstd frame checksum, then our own
        // checks), or lands in bits the decoder ignores and changes nothing.
        let mut detected = 0;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            match GeoDb::from_table_bytes(&bad) {
                Err(_) => detected += 1,
                Ok(db) => assert_eq!(db.to_table_bytes().unwrap(), good, "flipped byte {i}"),
            }
        }
        assert!(
            detected > good.len() * 3 / 4,
            "{detected} of {}",
            good.len()
        );
        assert!(GeoDb::from_table_bytes(b"SSGEOTBL").is_err());
        // Valid zstd around a wrong payload.
        let wrong = zstd::bulk::compress(b"SSGEOTBL\x02\x00\x00\x00", 1).unwrap();
        let e = GeoDb::from_table_bytes(&wrong).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid geo table: unsupported table format version"
        );
    }

    #[test]
    fn bad_csv_lines_name_file_and_line() {
        let text = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n1.0.4.0,1.0.7.255,AS-x,Foo\n";
        let e = GeoDb::from_asn_csv(text.as_bytes(), "asn.csv").unwrap_err();
        assert_eq!(e.to_string(), "asn.csv:2: `AS-x` is not an AS number");
        let e = GeoDb::from_asn_csv(&b"1.0.0.0,1.0.0.255,5,\"open\n"[..], "a.csv").unwrap_err();
        assert_eq!(e.to_string(), "a.csv:1: quoted field is not closed");
        let e = GeoDb::from_asn_csv(&b"\n\n1.0.0.0,1.0.0.255\n"[..], "a.csv").unwrap_err();
        assert_eq!(e.to_string(), "a.csv:3: field `asn` is missing");
        let e = GeoDb::from_asn_csv(&[0xffu8, 0xfe, b'\n'][..], "a.csv").unwrap_err();
        assert_eq!(e.to_string(), "a.csv:1: line is not valid UTF-8");
        let mut rng = Rng(11);
        let junk: Vec<u8> = (0..20_000).map(|_| rng.next() as u8).collect();
        assert!(GeoDb::from_asn_csv(&junk[..], "junk").is_err());
    }
}

mod garbage {
    use super::*;

    /// Random and mutated inputs never panic any parser.
    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(99);
        let seeds: [&[u8]; 3] = [
            b"10.0.0.0/8,DE,64500,\"corp, x\"\n2001:db8::/32,,,y\n",
            b"1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n",
            b"cidr,country,asn,label\n::ffff:1.2.3.0/120,fr,AS1,\n",
        ];
        let table = GeoDb::empty()
            .with_overrides(Overrides::parse_csv("10.0.0.0/8,DE,64500,x\n", "x").unwrap())
            .to_table_bytes()
            .unwrap();
        for round in 0..3000 {
            let base: &[u8] = if round % 4 == 3 {
                &table
            } else {
                seeds[round % 3]
            };
            let mut b = base.to_vec();
            for _ in 0..1 + rng.next() % 4 {
                let i = rng.below(b.len() as u128) as usize;
                match rng.next() % 3 {
                    0 => b[i] = rng.next() as u8,
                    1 => b.truncate(i),
                    _ => b.insert(i, b",\"/:\n\xc3"[rng.next() as usize % 6]),
                }
                if b.is_empty() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&b);
            let _ = Overrides::parse_csv(&text, "fuzz");
            let _ = Overrides::read(&b[..], "fuzz");
            let _ = GeoDb::from_asn_csv(&b[..], "fuzz");
            let _ = GeoDb::from_table_bytes(&b);
            let mut builder = geo::GeoDbBuilder::new();
            let _ = builder.country_mmdb(&b, "fuzz");
        }
    }

    #[test]
    fn geodb_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GeoDb>();
        send_sync::<Overrides>();
        send_sync::<GeoError>();
    }
}
