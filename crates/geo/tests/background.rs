//! The built-in table decoded on a thread of its own (its own test binary: the table is decoded
//! once per process, and no other test here may decode it first).

use std::time::{Duration, Instant};

/// Longer than any decoding takes, even under valgrind on a busy machine.
const PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn the_builtin_table_is_decoded_in_the_background_and_only_once() {
    assert!(!geo::GeoDb::builtin_is_decoded(), "nothing decoded it yet");
    geo::GeoDb::decode_builtin_in_background();
    // A second call starts nothing more.
    geo::GeoDb::decode_builtin_in_background();
    let start = Instant::now();
    while !geo::GeoDb::builtin_is_decoded() {
        assert!(
            start.elapsed() < PATIENCE,
            "the background decoding never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let db = geo::GeoDb::try_builtin().expect("the built-in table decodes");
    assert!(db.stats().v4_segments > 100_000);
    assert!(
        std::ptr::eq(db, geo::GeoDb::builtin()),
        "decoded once, shared"
    );
}
