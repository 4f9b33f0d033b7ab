//! Prints how long decoding the built-in table takes in this build profile.
fn main() {
    let t = std::time::Instant::now();
    let db = geo::GeoDb::builtin();
    println!(
        "builtin load: {:.2?} ({} IPv4 segments)",
        t.elapsed(),
        db.stats().v4_segments
    );
}
