//! Abuse reports: the XARF JSON validates against the XARF v4.2.0 schemas copied into
//! `tests/data/xarf/` (formats asserted), except for the one field our logs cannot give
//! (`source_port`, see `abuse.rs`); the ARF mail parses as MIME with RFC 5965's three parts.

use std::path::{Path, PathBuf};
use std::process::Command;

use detect::evidence::{MessageSample, RcptSample};
use mail_parser::MimeHeaders;
use maillog::record::Outcome;
use maillog::Ts;
use serde_json::Value;
use smtpscope::abuse::{self, Case, ReportKind, Us};

mod sim_util;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/xarf")
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data().join(name)).unwrap()).unwrap()
}

/// The schema errors of a report against its type's schema: (instance path, message).
fn schema_errors(report: &Value) -> Vec<(String, String)> {
    let ty = match report["type"].as_str() {
        Some("login_attack") => "connection-login-attack.json",
        Some("spam") => "messaging-spam.json",
        t => panic!("unexpected type {t:?}"),
    };
    let core = load("xarf-core.json");
    let registry = jsonschema::Registry::new()
        .add(
            "https://xarf.org/schemas/v4/xarf-core.json",
            jsonschema::Resource::from_contents(core),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let v = jsonschema::options()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&load(ty))
        .unwrap();
    v.iter_errors(report)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

/// What the schema may miss in our reports: only `source_port`, which XARF requires for an
/// address source and every SMTP spam report and our logs do not carry.
fn only_source_port_missing(errs: &[(String, String)]) -> bool {
    errs.iter()
        .all(|(_, m)| m.contains("\"source_port\" is a required property"))
}

fn us() -> Us {
    Us {
        org: "Example ISP".into(),
        contact: "abuse@example-isp.net".into(),
        domain: "example-isp.net".into(),
    }
}

fn sample(client: &str, sender: &str) -> MessageSample {
    MessageSample {
        time: "2026-11-20 10:47:15".into(),
        qid: "4B7E31018A6".into(),
        sender: sender.into(),
        size: Some(2199),
        client: Some(client.into()),
        helo: Some("paypal.com".into()),
        auth_user: None,
        recipients: vec![
            RcptSample {
                addr: "olga@example.org".into(),
                outcome: Outcome::Bounced,
                dsn: Some("5.7.1".into()),
                reply: Some("550 5.7.1 spam".into()),
            },
            RcptSample {
                addr: "ivan@example.net".into(),
                outcome: Outcome::Delivered,
                dsn: Some("2.0.0".into()),
                reply: None,
            },
        ],
        more_delivered: 0,
        more_failed: 3,
    }
}

fn case(kind: ReportKind, source: &str) -> Case {
    let t = Ts::parse_rfc3339("2026-11-20T10:47:15Z").unwrap();
    let messages = match kind {
        ReportKind::Spam => vec![sample(source, "security@paypal.example")],
        ReportKind::LoginAttack => vec![],
    };
    Case {
        kind,
        source: source.into(),
        first: t,
        last: t,
        description: "failed logins against 10 names within 24 h".into(),
        confidence: 0.9,
        attempts: Some(40),
        services: vec!["imap".into(), "pop3".into()],
        evidence: messages.iter().map(abuse::message_line).collect(),
        messages,
        incident: Some(3),
    }
}

#[test]
fn xarf_login_attack_from_a_network_is_valid() {
    let r = serde_json::to_value(abuse::xarf(
        &us(),
        &case(ReportKind::LoginAttack, "192.0.2.0/24"),
    ))
    .unwrap();
    let errs = schema_errors(&r);
    assert!(errs.is_empty(), "{errs:#?}\n{r:#}");
}

#[test]
fn xarf_from_one_address_misses_only_the_source_port() {
    for kind in [ReportKind::LoginAttack, ReportKind::Spam] {
        let r = serde_json::to_value(abuse::xarf(&us(), &case(kind, "198.51.100.7"))).unwrap();
        let errs = schema_errors(&r);
        assert!(
            !errs.is_empty(),
            "the schema does require source_port for {kind:?}"
        );
        assert!(
            only_source_port_missing(&errs),
            "{kind:?}: {errs:#?}\n{r:#}"
        );
        // With the port the report would be complete: the rest of it is right.
        let mut with_port = r.clone();
        with_port["source_port"] = 50123.into();
        let errs = schema_errors(&with_port);
        assert!(errs.is_empty(), "{kind:?}: {errs:#?}");
    }
}

#[test]
fn the_schema_check_catches_a_broken_report() {
    let mut r = serde_json::to_value(abuse::xarf(
        &us(),
        &case(ReportKind::LoginAttack, "192.0.2.0/24"),
    ))
    .unwrap();
    r["reporter"]["contact"] = "not an address".into();
    r["report_id"] = "42".into();
    let errs = schema_errors(&r);
    assert!(
        errs.iter().any(|(p, _)| p == "/reporter/contact"),
        "{errs:#?}"
    );
    assert!(errs.iter().any(|(p, _)| p == "/report_id"), "{errs:#?}");
}

#[test]
fn xarf_carries_the_evidence_lines() {
    let c = case(ReportKind::Spam, "198.51.100.7");
    let r = abuse::xarf(&us(), &c);
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(&r.evidence[0].payload)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("2026-11-20 10:47:15 4B7E31018A6 client=198.51.100.7 helo=<paypal.com> from=<security@paypal.example> !!! <olga@example.org> 5.7.1 -> <ivan@example.net> 2.0.0 (+3 more)"), "{text}");
    assert_eq!(r.smtp_from.as_deref(), Some("security@paypal.example"));
    // The same facts, the same id (a desk drops the duplicate).
    assert_eq!(r.report_id, abuse::xarf(&us(), &c).report_id);
}

#[test]
fn arf_is_a_feedback_report_with_three_parts() {
    let c = case(ReportKind::Spam, "198.51.100.7");
    let raw = abuse::arf(&us(), &c, "abuse@example.net").unwrap();
    let m = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("MIME");
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("feedback-report"));
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some("abuse@example-isp.net")
    );
    // Parts: the container, then its three children.
    let kids: Vec<_> = m.parts.iter().skip(1).collect();
    let types: Vec<String> = kids
        .iter()
        .map(|p| {
            let t = p.content_type().unwrap();
            format!("{}/{}", t.ctype(), t.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        &types[..3],
        [
            "text/plain",
            "message/feedback-report",
            "text/rfc822-headers"
        ]
    );
    let fb = String::from_utf8_lossy(kids[1].contents());
    for f in [
        "Feedback-Type: abuse",
        "Version: 1",
        "User-Agent: smtpscope/",
        "Original-Mail-From: <security@paypal.example>",
        "Original-Rcpt-To: <olga@example.org>",
        "Source-IP: 198.51.100.7",
        "Arrival-Date: Fri, 20 Nov 2026 10:47:15 +0000",
    ] {
        assert!(fb.contains(f), "{f} missing in\n{fb}");
    }
    let hdr = String::from_utf8_lossy(kids[2].contents());
    assert!(
        hdr.contains("Received: from paypal.com ([198.51.100.7])"),
        "{hdr}"
    );
}

#[test]
fn analyze_writes_valid_reports() {
    let dir = tempfile::tempdir().unwrap();
    let log = sim_util::simulated_day(dir.path());
    let bin = env!("CARGO_BIN_EXE_smtpscope");
    let cfg = dir.path().join("smtpscope.toml");
    std::fs::write(
        &cfg,
        "[abuse]\norg = \"Example ISP\"\ncontact = \"abuse@example-isp.net\"\ndomain = \"example-isp.net\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("reports");
    // Without [abuse] the run stops before any work and names the keys.
    let o = Command::new(bin)
        .args([
            "analyze",
            "-q",
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
            "--abuse-reports",
        ])
        .arg(&out_dir)
        .arg(&log)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("[abuse]") && e.contains("org, contact, domain"),
        "{e}"
    );
    let o = Command::new(bin)
        .args([
            "analyze",
            "-q",
            "--format",
            "jsonl",
            "-o",
            "/dev/null",
            "--year",
            "2026",
            "--tz",
            "UTC",
            "-c",
        ])
        .arg(&cfg)
        .arg("--abuse-reports")
        .arg(&out_dir)
        .arg(&log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut login, mut spam, mut arf) = (0, 0, 0);
    for f in std::fs::read_dir(&out_dir).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".xarf.json") {
            let r: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let errs = schema_errors(&r);
            let network = r["source_identifier"].as_str().unwrap().contains('/');
            if network && r["type"] == "login_attack" {
                assert!(errs.is_empty(), "{name}: {errs:#?}");
            } else {
                assert!(only_source_port_missing(&errs), "{name}: {errs:#?}");
            }
            match r["type"].as_str() {
                Some("login_attack") => login += 1,
                _ => spam += 1,
            }
        } else if name.ends_with(".arf.eml") {
            let raw = std::fs::read(&p).unwrap();
            let m = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("MIME");
            assert_eq!(
                m.content_type().unwrap().attribute("report-type"),
                Some("feedback-report")
            );
            arf += 1;
        }
    }
    assert!(login > 0 && spam > 0, "login {login}, spam {spam}");
    assert_eq!(arf, spam, "one ARF per spam report");
}
