//! Issue 11, the hold queue through the real `serve` binary: queue ids Postfix held for a
//! containment (from a policy request with `queue_id` answered HOLD, and from the mail log's
//! `NOQUEUE: hold` + `client=` lines) are listed under the incident; "release held mail" runs
//! the configured command with exactly those ids on standard input and records it in the
//! timeline; observe mode shows and records what would run, runs nothing, and says "would
//! contain", never "contained". (tests/e2e/hold_queue.py does the same against real Postfix.)

mod serve_util;

use serve_util::*;
use std::io::Write;
use std::path::Path;

/// A stand-in for postsuper: appends its arguments and its standard input to `out`.
fn fake_postsuper(dir: &Path) -> (String, std::path::PathBuf) {
    let out = dir.join("postsuper.out");
    let cmd = format!(
        "postsuper_command = [\"sh\", \"-c\", \"echo args: \\\"$*\\\" >> {0}; cat >> {0}; echo 'postsuper: Released from hold: 2 messages' >&2\", \"postsuper\"]\n",
        out.display()
    );
    (cmd, out)
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn held(srv: &Server, inc: i64) -> Vec<(String, String, String)> {
    let v = json(&srv.get(&format!("/api/incidents/{inc}")).1);
    v["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["queue_id"].as_str().unwrap().to_string(),
                h["source"].as_str().unwrap().to_string(),
                h["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const HOLD_LINES: [&str; 3] = [
    "Dec  1 06:12:12 mx postfix/smtpd[24860]: connect from unknown[127.37.0.16]",
    "Dec  1 06:12:12 mx postfix/smtpd[24860]: NOQUEUE: hold: RCPT from unknown[127.37.0.16]: <bad6-0@nowhere.test>: Recipient address blocked; from=<victim@example.org> to=<bad6-0@nowhere.test> proto=ESMTP helo=<pc>",
    "Dec  1 06:12:12 mx postfix/smtpd[24860]: D7C189940CB: client=unknown[127.37.0.16], sasl_method=PLAIN, sasl_username=victim@example.org",
];

#[test]
fn held_mail_is_listed_released_and_recorded() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, &[]);
    let (cmd, out) = fake_postsuper(d.path());
    let srv = Server::start(
        d.path(),
        &format!(
            "mode = \"enforce\"\nfollow = [\"{}\"]\n[serve.containment]\n{cmd}",
            log.display()
        ),
    );
    let (code, body) = srv.post_json(
        "/api/contain",
        r#"{"kind":"account","id":"victim@example.org","by":"t"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let inc = json(&body)["incident"].as_i64().unwrap();

    // A second recipient of an open message: the request has its queue id, the answer is HOLD.
    let mut c = srv.policy_conn();
    let req = rcpt("victim@example.org", "127.37.0.16", "x@example.net")
        .replace("instance=abc.1\n", "instance=abc.1\nqueue_id=4BDEF9940C4\n");
    assert!(ask(&mut c, &req).starts_with("action=HOLD"));
    // A request with a queue id that is no queue id is not recorded.
    let bad = req.replace("queue_id=4BDEF9940C4", "queue_id=-d ALL");
    assert!(ask(&mut c, &bad).starts_with("action=HOLD"));
    append(&log, &HOLD_LINES);
    let got = wait_for(10, "two held queue ids", || {
        let h = held(&srv, inc);
        (h.len() == 2).then_some(h)
    });
    assert_eq!(
        got,
        [
            ("4BDEF9940C4".into(), "policy".into(), "held".into()),
            ("D7C189940CB".into(), "log".into(), "held".into()),
        ]
    );
    assert_eq!(srv.metric("smtpscope_held_recorded_total"), 2.0);

    // The page shows the ids and the exact command; a wrong token runs nothing.
    let (_, page) = srv.get(&format!("/incidents/{inc}"));
    assert!(page.contains("D7C189940CB") && page.contains("4BDEF9940C4"));
    assert!(page.contains("id=\"cmd-release\">sh -c "), "{page}");
    assert!(page.contains(" postsuper -H - &lt;&lt;&lt; &#39;4BDEF9940C4\\nD7C189940CB&#39;"));
    let (code, _) = srv.post_json(
        &format!("/api/incidents/{inc}/held/release"),
        "{}",
        Some("wrong"),
    );
    assert_eq!(code, 401);
    assert!(!out.exists());

    let (code, body) = srv.post_json(
        &format!("/api/incidents/{inc}/held/release"),
        r#"{"by":"alice","note":"checked by hand"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let r = json(&body);
    assert_eq!(r["ok"], true);
    assert_eq!(r["ids"], 2);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "args: -H -\n4BDEF9940C4\nD7C189940CB\n"
    );
    assert!(held(&srv, inc).iter().all(|h| h.2 == "released"));
    let v = json(&srv.get(&format!("/api/incidents/{inc}")).1);
    let tl = v["timeline"].as_array().unwrap();
    let e = tl.last().unwrap();
    assert_eq!(e["action"], "held mail released");
    assert_eq!(e["by"], "alice");
    let note = e["note"].as_str().unwrap();
    assert!(
        note.starts_with("2 queue id(s): sh -c ")
            && note.ends_with(
                "; exit status 0; stderr: postsuper: Released from hold: 2 messages; note: checked by hand"
            ),
        "{note}"
    );
    // Nothing left on hold: a second release runs nothing.
    let (_, body) = srv.post_json(
        &format!("/api/incidents/{inc}/held/release"),
        "{}",
        Some(TOKEN),
    );
    assert_eq!(json(&body)["ids"], 0);
    assert_eq!(srv.metric("smtpscope_postsuper_runs_total"), 1.0);

    // Dismissing with the opt-out leaves held mail alone.
    let (_, body) = srv.post_json(
        "/api/contain",
        r#"{"kind":"client","id":"192.0.2.77"}"#,
        Some(TOKEN),
    );
    let inc2 = json(&body)["incident"].as_i64().unwrap();
    append(&log, &["Dec  1 06:13:00 mx postfix/cleanup[9]: 4104E3DAB: hold: body spam text from x[192.0.2.77]; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<h>"]);
    wait_for(10, "held by client", || {
        (held(&srv, inc2).len() == 1).then_some(())
    });
    let (code, body) = srv.post_json(
        &format!("/api/incidents/{inc2}/dismiss"),
        r#"{"release_held": false}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    assert!(json(&body).get("held").is_none());
    assert_eq!(held(&srv, inc2)[0].2, "held");
    assert_eq!(srv.metric("smtpscope_postsuper_runs_total"), 1.0);
    assert_eq!(srv.term(), 0);
}

#[test]
fn observe_mode_says_would_and_runs_nothing() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, &[]);
    let (cmd, out) = fake_postsuper(d.path());
    let srv = Server::start(
        d.path(),
        &format!(
            "mode = \"observe\"\nfollow = [\"{}\"]\n[serve.containment]\n{cmd}",
            log.display()
        ),
    );
    let (_, body) = srv.post_json(
        "/api/contain",
        r#"{"kind":"account","id":"victim@example.org"}"#,
        Some(TOKEN),
    );
    let inc = json(&body)["incident"].as_i64().unwrap();
    // The policy server answers DUNNO: a request with a queue id is not a held message.
    let mut c = srv.policy_conn();
    let req = rcpt("victim@example.org", "127.37.0.16", "x@example.net")
        .replace("instance=abc.1\n", "instance=abc.1\nqueue_id=4BDEF9940C4\n");
    assert_eq!(ask(&mut c, &req), "action=DUNNO\n\n");
    // What the log says Postfix held (another policy server, a header check) is listed.
    append(&log, &HOLD_LINES);
    wait_for(10, "held from the log", || {
        (held(&srv, inc).len() == 1).then_some(())
    });
    assert_eq!(held(&srv, inc)[0].0, "D7C189940CB");

    let (_, list) = srv.get("/api/incidents");
    let list = json(&list);
    assert_eq!(list[0]["effect"], "would contain");
    let (_, dash) = srv.get("/");
    assert!(dash.contains(">would contain</span>"), "{dash}");
    assert!(!dash.contains(">contained<"), "{dash}");
    let (_, page) = srv.get(&format!("/incidents/{inc}"));
    assert!(page.contains("id=\"state\">would contain</span>"), "{page}");
    assert!(page.contains("would hold (observe mode"));
    // /health, the containment list and the overview count what would be contained.
    let h = json(&srv.get("/health").1);
    assert_eq!(h["would_contain"], 1, "{h}");
    assert!(h.get("contained").is_none(), "{h}");
    assert_eq!(
        json(&srv.get("/api/containment").1)[0]["effect"],
        "would contain"
    );
    let (_, overview) = srv.get("/overview");
    assert!(
        overview.contains("would contain now: <b id=\"contained\">1</b>"),
        "{overview}"
    );
    assert!(!overview.contains(">contained<"), "{overview}");
    assert!(page.contains("would run (observe mode: shown and recorded, not run)"));
    assert!(!page.contains(">contained<"), "{page}");

    let (code, body) = srv.post_json(
        &format!("/api/incidents/{inc}/held/delete"),
        r#"{"by":"bob"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let r = json(&body);
    assert_eq!(
        (r["ok"].as_bool(), r["ids"].as_i64()),
        (Some(false), Some(1))
    );
    assert!(r["outcomes"].as_array().unwrap().is_empty());
    assert!(!out.exists(), "observe mode ran the command");
    let v = json(&srv.get(&format!("/api/incidents/{inc}")).1);
    assert_eq!(v["incident"]["effect"], "would contain");
    let tl = v["timeline"].as_array().unwrap();
    assert!(tl
        .iter()
        .any(|e| e["action"] == "would contain (observe mode)"));
    assert!(!tl.iter().any(|e| e["action"] == "contained"));
    let e = tl.last().unwrap();
    assert_eq!(e["action"], "would delete held spam");
    assert!(e["note"]
        .as_str()
        .unwrap()
        .contains(" -d - hold <<< 'D7C189940CB' (observe mode: not run)"));
    assert_eq!(held(&srv, inc)[0].2, "held");
    assert_eq!(srv.term(), 0);
}
