//! `smtpscope serve`: the Postfix policy server (answers, containment, malformed and slow
//! clients, unix socket, observe mode and reload) and the HTTP API's token rule.

mod serve_util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serve_util::*;

#[test]
fn policy_answers_contains_and_survives_malformed_requests() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(
        d.path(),
        "mode = \"enforce\"\n[serve.limits]\nrequest_timeout = \"1s\"\n",
    );
    let mut c = srv.policy_conn();
    assert_eq!(
        ask(&mut c, &rcpt("alice", "127.1.0.5", "x@example.org")),
        "action=DUNNO\n\n"
    );

    // Changing state needs the token.
    let body = r#"{"kind":"account","id":"Alice","minutes":30,"by":"tester","note":"test"}"#;
    assert_eq!(srv.post_json("/api/contain", body, None).0, 401);
    assert_eq!(srv.post_json("/api/contain", body, Some("wrong")).0, 401);
    let (code, resp) = srv.post_json("/api/contain", body, Some(TOKEN));
    assert_eq!(code, 200, "{resp}");
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    let inc = v["incident"].as_i64().unwrap();

    // The same connection (Postfix reuses them) now gets HOLD for alice only.
    let hold = wait_for(5, "HOLD", || {
        let a = ask(&mut c, &rcpt("alice", "127.1.0.5", "y@example.org"));
        a.starts_with("action=HOLD").then_some(a)
    });
    assert_eq!(
        hold,
        "action=HOLD Your account is blocked for suspected abuse; please contact the abuse desk\n\n"
    );
    assert_eq!(
        ask(&mut c, &rcpt("bob", "127.1.0.6", "y@example.org")),
        "action=DUNNO\n\n"
    );

    // Malformed requests are answered DUNNO (garbage, missing fields, binary) on the same
    // connection, or the connection is dropped (over-long) — and the server goes on.
    assert_eq!(ask(&mut c, "GET / HTTP/1.0\n"), "action=DUNNO\n\n");
    assert_eq!(
        ask(&mut c, "request=smtpd_access_policy\n"),
        "action=DUNNO\n\n"
    );
    assert_eq!(
        ask(&mut c, "protocol_state=RCPT\nsasl_username=alice\n"),
        "action=DUNNO\n\n"
    );
    c.write_all(b"request=smtpd_access_policy\nsasl_username=\xff\xfe\x00\n\n")
        .unwrap();
    assert_eq!(read_answer(&mut c), "action=DUNNO\n\n");
    let mut long = srv.policy_conn();
    let _ = long.write_all(format!("x={}\n\n", "a".repeat(100_000)).as_bytes());
    let mut buf = [0u8; 16];
    assert!(
        matches!(long.read(&mut buf), Ok(0) | Err(_)),
        "over-long request: connection closed"
    );

    // A slow client is dropped after request_timeout, and does not delay anyone else.
    let mut slow = srv.policy_conn();
    slow.write_all(b"request=smtpd_access_policy\nprotocol_state=RC")
        .unwrap();
    let t0 = Instant::now();
    let mut c2 = srv.policy_conn();
    assert_eq!(
        ask(&mut c2, &rcpt("carol", "127.1.0.7", "z@example.org")),
        "action=DUNNO\n\n"
    );
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(matches!(slow.read(&mut buf), Ok(0) | Err(_)));
    assert!(t0.elapsed() < Duration::from_secs(5));

    // The unix socket answers the same way.
    let mut u = std::os::unix::net::UnixStream::connect(d.path().join("policy.sock")).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.write_all(rcpt("ALICE", "127.1.0.5", "q@example.org").as_bytes())
        .unwrap();
    u.write_all(b"\n").unwrap();
    assert!(read_answer(&mut u).starts_with("action=HOLD "));

    assert_eq!(srv.metric("smtpscope_policy_malformed_total"), 3.0);
    assert_eq!(srv.metric("smtpscope_policy_timeouts_total"), 1.0);
    assert_eq!(srv.metric("smtpscope_contained_entities"), 1.0);
    assert_eq!(
        srv.metric("smtpscope_policy_requests_total{answer=\"action\"}"),
        2.0
    );
    assert_eq!(srv.metric("smtpscope_policy_fail_open_total"), 0.0);

    // Release by hand: mail flows again; the incident's timeline says who did what.
    let (code, r) = srv.post_json(
        &format!("/api/incidents/{inc}/release"),
        r#"{"by":"tester","note":"ok now"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{r}");
    wait_for(5, "DUNNO after release", || {
        (ask(&mut c, &rcpt("alice", "127.1.0.5", "w@example.org")) == "action=DUNNO\n\n")
            .then_some(())
    });
    let (_, j) = srv.get(&format!("/api/incidents/{inc}"));
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["incident"]["state"], "released");
    let tl: Vec<(String, String)> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["by"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        tl,
        [
            ("opened".into(), "tester".into()),
            ("contained".into(), "tester".into()),
            ("released".into(), "tester".into())
        ]
    );
    assert_eq!(srv.term(), 0);
}

/// Transparent huge pages are off for the whole process (`main`'s
/// `no_transparent_huge_pages`): with them, the kernel zeroed whole 2 MiB pages for each new
/// connection thread's first allocations, and again after the allocator returned memory
/// (docs/PERFORMANCE.md, "Transparent huge pages off").
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "");
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.child.id())).unwrap();
    // Kernels before 5.0 do not show the flag.
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    srv.term();
}

#[test]
fn observe_mode_logs_and_sighup_switches_to_enforce() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "mode = \"observe\"\n");
    let (code, _) = srv.post_json(
        "/api/contain",
        r#"{"kind":"client","id":"127.9.9.9"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200);
    let mut c = srv.policy_conn();
    wait_for(5, "would act", || {
        ask(&mut c, &rcpt("dave", "127.9.9.9", "x@example.org"));
        (srv.metric("smtpscope_policy_requests_total{answer=\"would_act\"}") >= 1.0).then_some(())
    });
    assert_eq!(
        ask(&mut c, &rcpt("dave", "127.9.9.9", "x@example.org")),
        "action=DUNNO\n\n"
    );
    // Reload: the same file with enforce.
    let text = std::fs::read_to_string(&srv.config).unwrap().replace("mode = \"observe\"", "mode = \"enforce\"\n[serve.containment]\naction = \"REJECT\"\ntext = \"Blocked, call 555-0100\"");
    std::fs::write(&srv.config, text).unwrap();
    signal(&srv.child, "HUP");
    wait_for(5, "reload", || {
        (srv.metric("smtpscope_reloads_total") == 1.0).then_some(())
    });
    // The entry keeps the action it was contained with (HOLD); the text is the new one.
    assert_eq!(
        ask(&mut c, &rcpt("dave", "127.9.9.9", "x@example.org")),
        "action=HOLD Blocked, call 555-0100\n\n"
    );
    // A bad config on reload is refused and the old one kept.
    std::fs::write(&srv.config, "[serve]\nmode = \"sometimes\"\n").unwrap();
    signal(&srv.child, "HUP");
    wait_for(5, "reload refusal logged", || {
        srv.log_text().contains("reload failed").then_some(())
    });
    assert!(ask(&mut c, &rcpt("dave", "127.9.9.9", "x@example.org")).starts_with("action=HOLD"));
    assert_eq!(srv.term(), 0);
}

#[test]
fn bad_config_names_key_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    std::fs::write(
        &p,
        "[serve]\nmode = \"observe\"\npolicyy = [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .args(["serve", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("policyy") && e.contains("line 3"), "{e}");
}
