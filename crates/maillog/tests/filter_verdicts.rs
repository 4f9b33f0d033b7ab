//! Spam-filter verdict lines (amavis, spamd, rspamd, milter and Exim refusals): the real cases
//! of the corpus, and a written MX log whose verdicts must join their messages.

use maillog::filter::{is_content_stage, is_spam_reason};
use maillog::record::{Correlator, Outcome};
use maillog::{Event, Filter, LineParser, TimeContext, Verdict};

fn read_lossy(p: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).expect("read")).into_owned()
}

/// Every SEKOIA `spamd` case of the corpus is a verdict naming the Message-ID SEKOIA expects.
#[test]
fn sekoia_spamd_cases() {
    let dir = testdata::mail().join("postfix/sekoia-intake-formats");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("sekoia dir") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .and_then(|x| x.to_str())
            .unwrap_or("")
            .to_string();
        let doc: serde_json::Value = serde_json::from_str(&read_lossy(&p)).expect("json");
        let msg = doc["input"]["message"].as_str().unwrap_or("");
        if !msg.starts_with("spamd: result: ") {
            continue;
        }
        let want = doc["expected"]["email"]["message_id"]
            .as_str()
            .filter(|m| *m != "(unknown)")
            .map(|m| m.trim_start_matches('<').trim_end_matches('>').to_string());
        match maillog::filter::parse("spamd", msg) {
            Some(Event::FilterVerdict {
                filter,
                verdict,
                score,
                message_id,
                threshold,
                ..
            }) => {
                assert_eq!(filter, Filter::Spamd, "{name}");
                assert_eq!(verdict, Verdict::Ham, "{name}: every corpus case is '.'");
                assert!(score.is_some(), "{name}");
                assert_eq!(threshold, Some(5.0), "{name}");
                assert_eq!(message_id.map(str::to_string), want, "{name}");
            }
            e => panic!("{name}: {e:?}"),
        }
        n += 1;
    }
    assert!(n >= 20, "only {n} spamd cases");
}

/// The corpus' `milter-reject` at END-OF-MESSAGE "Blocked by SpamAssassin" is a spam refusal;
/// its DATA-stage "Command rejected" is not.
#[test]
fn grok_milter_reject_cases() {
    let dir = testdata::mail().join("postfix/postfix-grok-patterns");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&read_lossy(&dir.join("cleanup_0004.yaml"))).expect("yaml");
    let data = doc["data"].as_str().expect("data");
    match maillog::postfix::parse("cleanup", data) {
        Some(Event::Check { stage, reason, .. }) => {
            assert!(is_content_stage(stage), "{data}");
            assert!(is_spam_reason(reason), "{data}");
        }
        e => panic!("{e:?}"),
    }
    let line = std::fs::read_to_string(testdata::mail().join("postfix/fail2ban-postfix.log"))
        .expect("fail2ban log");
    let l = line
        .lines()
        .find(|l| l.contains("milter-reject: DATA"))
        .expect("a DATA milter-reject");
    let mut p = LineParser::new(TimeContext::utc(2026));
    match p.parse(l).event {
        Some(Event::Check { stage, reason, .. }) => {
            assert!(is_content_stage(stage));
            assert!(!is_spam_reason(reason), "{reason}");
        }
        e => panic!("{e:?}"),
    }
}

/// The written MX log: each verdict joins its message, by queue id (amavis, rspamd), by
/// Message-ID (spamd), through a re-injection (amavis' clean copy), or from the refusal alone.
#[test]
fn verdicts_join_their_messages() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/filter/mx-verdicts.log"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut p = LineParser::new(TimeContext::utc(2026));
    let mut c = Correlator::default();
    let mut verdicts = 0;
    for line in text.lines() {
        let parsed = p.parse(line);
        let (Some(h), Some(ev)) = (parsed.header, parsed.event) else {
            panic!("not recognized: {line}");
        };
        verdicts += matches!(ev, Event::FilterVerdict { .. }) as u32;
        c.feed(h.ts, h.host, h.pid, &ev);
    }
    assert_eq!(verdicts, 5);
    c.finish();
    let recs: Vec<_> = c.drain().collect();
    let get = |q: &str| {
        recs.iter()
            .find(|r| r.qid == q)
            .unwrap_or_else(|| panic!("{q}"))
    };
    let mark = |q: &str| get(q).filter.map(|m| (m.filter, m.verdict));
    // amavis: the clean original and its re-injected copy (which carries the client).
    assert_eq!(mark("3A1B2C3D4E"), Some((Filter::Amavis, Verdict::Ham)));
    let copy = get("5F6A7B8C9D");
    assert_eq!(copy.filter.map(|m| m.verdict), Some(Verdict::Ham));
    assert_eq!(copy.client_ip, Some("198.51.100.20".parse().unwrap()));
    // amavis' discarded spam.
    let spam = get("7C8D9E0F1A");
    assert_eq!(mark("7C8D9E0F1A"), Some((Filter::Amavis, Verdict::Spam)));
    assert_eq!(spam.filter.and_then(|m| m.score), Some(12.411));
    assert_eq!(spam.client_ip, Some("203.0.113.66".parse().unwrap()));
    // spamd, by Message-ID.
    assert_eq!(mark("2B3C4D5E6F"), Some((Filter::Spamd, Verdict::Spam)));
    // rspamd's verdict, then its milter's refusal: the refused recipient is kept.
    let r = get("8A9B0C1D2E");
    assert_eq!(r.filter.map(|m| m.verdict), Some(Verdict::Spam));
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].addr(), "dave@example.org");
    assert_eq!(r.recipients[0].outcome, Outcome::Rejected);
    assert_eq!(r.client_ip, Some("2001:db8:5::9".parse().unwrap()));
    // The verdict on a message that is not in the log.
    assert_eq!(c.stats().verdicts_linked, 4);
    assert_eq!(c.stats().verdicts_unlinked, 1);
    assert_eq!(p.stats().unrecognized(), 0);
}

/// An Exim `rejected after DATA` with a spam reason marks its message and keeps its client.
#[test]
fn exim_spam_refusal() {
    let mut p = LineParser::new(TimeContext::utc(2026));
    let mut c = Correlator::default();
    for line in [
        "2026-12-02 09:00:00 1tABCD-000123-Ab H=(spam.example) [192.0.2.50]:41000 F=<a@spam.example> rejected after DATA: Your message scored 17.2 spam points",
        "2026-12-02 09:00:01 1tABCE-000124-Ab H=(ok.example) [192.0.2.51]:41001 F=<a@ok.example> rejected after DATA: message has lines too long for transport",
    ] {
        let parsed = p.parse(line);
        let (h, ev) = (parsed.header.expect("header"), parsed.event.expect("event"));
        c.feed(h.ts, h.host, h.pid, &ev);
    }
    c.finish();
    let recs: Vec<_> = c.drain().collect();
    let spam = recs
        .iter()
        .find(|r| r.qid == "1tABCD-000123-Ab")
        .expect("record");
    assert_eq!(
        spam.filter.map(|m| (m.filter, m.verdict)),
        Some((Filter::Refusal, Verdict::Spam))
    );
    assert_eq!(spam.client_ip, Some("192.0.2.50".parse().unwrap()));
    let other = recs
        .iter()
        .find(|r| r.qid == "1tABCE-000124-Ab")
        .expect("record");
    assert_eq!(other.filter, None);
}
