//! An engine with the built-in geo database decodes it at its first look-up, not when it is
//! made (its own test binary: the table is decoded once per process).

use detect::{Config, Engine, GeoRef};
use maillog::{Event, Peer, Ts};

#[test]
fn an_engine_decodes_the_builtin_table_at_its_first_lookup() {
    let mut e = Engine::with_geo(Config::default(), GeoRef::Builtin);
    assert!(
        !geo::GeoDb::builtin_is_decoded(),
        "making an engine decodes nothing"
    );
    let ts = Ts(1_763_600_000_000_000);
    e.feed(
        ts,
        "mx",
        "postfix/qmgr",
        Some(9),
        &Event::Removed { qid: "4ABC" },
    );
    assert!(
        !geo::GeoDb::builtin_is_decoded(),
        "a line without an address looks nothing up"
    );
    e.feed(
        ts,
        "smtp",
        "postfix/submission/smtpd",
        Some(7),
        &Event::Client {
            qid: "5DEF",
            client: Peer {
                host: Some("unknown"),
                ip: Some("198.51.100.7"),
                port: None,
            },
            sasl_method: Some("PLAIN"),
            sasl_username: Some("alice"),
            uid: None,
            from: None,
            orig_qid: None,
        },
    );
    assert!(
        geo::GeoDb::builtin_is_decoded(),
        "a login's address is looked up"
    );
}
