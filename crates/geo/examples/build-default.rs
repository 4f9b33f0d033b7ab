//! Compiles the built-in default table from the ip-location-db files.
//!
//! `cargo run -p geo --example build-default --release -- - data/geo-default.bin`
//!
//! (`-` is the repository's copy of the sources, `tests/data/geo/`, as unpacked by the
//! `testdata` crate; any directory holding the files can be named instead.)
//!
//! Reads `geo-whois-asn-country.mmdb` (country) and `asn-ipv4.csv.zst`,
//! `asn-ipv6.csv.zst` (ASN and organisation) from the given directory.

use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!(
            "usage: build-default <ip-location-db dir, or - for tests/data/geo> <output.bin>"
        );
        std::process::exit(2);
    }
    let repo_copy = testdata::geo();
    let dir = if args[1] == "-" {
        repo_copy.as_path()
    } else {
        Path::new(&args[1])
    };
    let t = Instant::now();
    let db = match geo::build_default_from_dir(dir) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let built = t.elapsed();
    let bytes = match db.to_table_bytes() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: encoding the table: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = std::fs::write(&args[2], &bytes) {
        eprintln!("error: {}: {e}", args[2]);
        std::process::exit(1);
    }
    // Check the file decodes to the same table.
    let back = geo::GeoDb::from_table_bytes(&bytes).expect("written table decodes");
    let (a, b) = (back.stats(), db.stats());
    assert_eq!(
        (a.v4_segments, a.v6_segments, a.values, a.strings),
        (b.v4_segments, b.v6_segments, b.values, b.strings)
    );
    eprintln!(
        "built in {:.2?}: {:?}; wrote {} bytes to {}",
        built,
        db.stats(),
        bytes.len(),
        args[2]
    );
}
