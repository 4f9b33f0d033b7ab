//! Exim parser against real and reference corpora (see `tests/data/corpus/README.md`).
//!
//! - Exim's own test suite expected main/reject logs: recognition and per-line structure;
//! - two real main logs (ddgrey, artik292): recognition and event counts checked against
//!   counts taken from the raw text;
//! - fail2ban, crowdsec and ossec fixtures: the offending IP / user each one names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use maillog::{DeliveryStatus, Event, Format, LineParser, TimeContext};

/// The exim part of the corpus (`tests/data/corpus/mail.tar.zst`, unpacked by `testdata`).
fn corpus_dir() -> PathBuf {
    testdata::mail().join("exim")
}

fn path(rel: &str) -> PathBuf {
    corpus_dir().join(rel)
}

fn read(p: &Path) -> String {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    String::from_utf8_lossy(&b).into_owned()
}

/// Every IP an event names.
fn event_ip<'a>(e: &'a Event<'a>) -> Option<&'a str> {
    match e {
        Event::Connect { client }
        | Event::Disconnect { client, .. }
        | Event::Helo { client, .. } => client.ip,
        Event::AuthSuccess { client, .. } | Event::AuthFailure { client, .. } => client.ip,
        Event::Check { client, .. } | Event::Info { client, .. } => client.and_then(|c| c.ip),
        Event::Queued { client, .. } => client.and_then(|c| c.ip),
        _ => None,
    }
}

/// (lines of the Exim format, recognised) for one text.
fn rate(text: &str) -> (u64, u64) {
    let mut p = LineParser::new(TimeContext::utc(1999));
    for l in text.lines() {
        p.parse(l);
    }
    let c = p
        .stats()
        .by_format
        .get(&Format::Exim)
        .cloned()
        .unwrap_or_default();
    (c.lines, c.recognized)
}

fn suite_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["exim-testsuite/log", "exim-testsuite/rejectlog"] {
        for e in std::fs::read_dir(path(d)).expect("test-suite dir") {
            v.push(e.expect("dir entry").path());
        }
    }
    v.sort();
    v
}

/// Whether an unrecognised message is one Exim itself writes in a shape we claim to know
/// (as opposed to the test configurations' own `logwrite` text).
fn core_shape(msg: &str) -> bool {
    let first = msg.split(' ').next().unwrap_or("");
    maillog::exim::is_message_id(first)
        || msg.starts_with("H=")
        || msg.starts_with("SMTP connection from")
        || msg.contains(" authenticator failed for ")
        || msg.contains(" rejected RCPT ")
        || msg.starts_with("Start queue run")
}

#[test]
fn testsuite_recognition_and_structure() {
    let files = suite_files();
    assert!(
        files.len() > 900,
        "expected the whole suite, got {} files",
        files.len()
    );
    let mut total = (0u64, 0u64);
    let mut worst: Vec<(f64, String, u64)> = Vec::new();
    let mut core_misses = Vec::new();
    let (mut arrivals, mut queued, mut completed, mut removed, mut bounced_lines, mut bounced) =
        (0, 0, 0, 0, 0, 0);
    let (mut deferred_lines, mut deferred, mut sss, mut sss_none) = (0, 0, 0, 0);
    for f in &files {
        let text = read(f);
        let mut p = LineParser::new(TimeContext::utc(1999));
        for line in text.lines() {
            let parsed = p.parse(line);
            let Some(h) = &parsed.header else { continue };
            if parsed.format != Format::Exim {
                continue;
            }
            let msg = h.msg;
            let mut tok = msg.split(' ');
            let (t0, t1) = (tok.next().unwrap_or(""), tok.next().unwrap_or(""));
            let id_line = maillog::exim::is_message_id(t0);
            match &parsed.event {
                None => {
                    if core_shape(msg) {
                        core_misses.push(line.to_owned());
                    }
                }
                Some(ev) if id_line => assert_eq!(ev.qid(), Some(t0), "{line}"),
                Some(_) => {}
            }
            if !id_line {
                continue;
            }
            match t1 {
                "<=" => {
                    arrivals += 1;
                    let Some(Event::Queued { size, from, .. }) = &parsed.event else {
                        panic!("arrival not Queued: {line}")
                    };
                    queued += 1;
                    if msg.contains(" S=sss") {
                        sss += 1;
                        sss_none += size.is_none() as u32;
                    }
                    let sender = msg.split(' ').nth(2).unwrap_or("");
                    if sender == "<>" {
                        assert_eq!(*from, "", "{line}");
                    }
                }
                "Completed" => {
                    completed += 1;
                    assert!(
                        matches!(parsed.event, Some(Event::Removed { .. })),
                        "{line}"
                    );
                }
                "**" => {
                    bounced_lines += 1;
                    if let Some(Event::Delivery {
                        status: DeliveryStatus::Bounced,
                        ..
                    }) = &parsed.event
                    {
                        bounced += 1;
                    }
                }
                "==" => {
                    deferred_lines += 1;
                    if let Some(Event::Delivery {
                        status: DeliveryStatus::Deferred,
                        ..
                    }) = &parsed.event
                    {
                        deferred += 1;
                    }
                }
                "=>" | "->" | "*>" => {
                    let Some(Event::Delivery { status, to, .. }) = &parsed.event else {
                        panic!("{line}")
                    };
                    let want = if *to == ":blackhole:" {
                        DeliveryStatus::Discarded
                    } else {
                        DeliveryStatus::Sent
                    };
                    assert_eq!(*status, want, "{line}");
                }
                _ => {}
            }
            if let Some(Event::Removed { .. }) = parsed.event {
                removed += 1;
            }
        }
        let c = p
            .stats()
            .by_format
            .get(&Format::Exim)
            .cloned()
            .unwrap_or_default();
        total.0 += c.lines;
        total.1 += c.recognized;
        if c.lines > 0 {
            let name = f
                .strip_prefix(corpus_dir())
                .unwrap_or(f)
                .display()
                .to_string();
            worst.push((c.recognized as f64 / c.lines as f64, name, c.lines));
        }
    }
    worst.sort_by(|a, b| a.0.total_cmp(&b.0));
    let r = total.1 as f64 / total.0 as f64;
    println!(
        "exim test suite: {} / {} Exim lines recognised = {r:.4}",
        total.1, total.0
    );
    for (rate, name, n) in worst.iter().take(10) {
        println!("  worst {name}: {rate:.3} of {n}");
    }
    assert!(
        core_misses.is_empty(),
        "unrecognised core Exim lines: {:#?}",
        &core_misses[..core_misses.len().min(20)]
    );
    // The rest of the unrecognised lines are the test configurations' own ACL `logwrite`
    // text (certificate dumps, `peer dn`, `tls_in_resumption`, …), not lines Exim writes.
    assert!(r >= 0.92, "recognition {r}");
    assert!(arrivals > 3000, "{arrivals}");
    assert_eq!(arrivals, queued);
    assert_eq!(sss, sss_none, "every S=sss gives size None");
    assert!(sss > 2500);
    // Removed = Completed + "removed by …" (queue removals via -Mrm).
    assert!(completed > 2400);
    assert!(
        removed >= completed && removed - completed < 50,
        "{removed} {completed}"
    );
    assert_eq!(bounced_lines, bounced);
    assert_eq!(deferred_lines, deferred);
}

fn count_lines(text: &str, pat: &str) -> usize {
    text.lines().filter(|l| l.contains(pat)).count()
}

#[test]
fn ddgrey_mainlog() {
    let text = read(&path("ddgrey/mainlog"));
    let (n, ok) = rate(&text);
    println!("ddgrey/mainlog: {ok}/{n} = {:.4}", ok as f64 / n as f64);
    assert!(ok as f64 / n as f64 >= 0.99);
    let mut p = LineParser::new(TimeContext::utc(2020));
    let (mut queued, mut sent, mut bounced, mut rcpt_rejects, mut removed) = (0, 0, 0, 0, 0);
    let mut remote_arrivals = 0;
    for l in text.lines() {
        match p.parse(l).event {
            Some(Event::Queued { client, size, .. }) => {
                queued += 1;
                assert!(size.is_some(), "{l}");
                remote_arrivals += client.is_some() as usize;
            }
            Some(Event::Delivery {
                status: DeliveryStatus::Sent,
                ..
            }) => sent += 1,
            Some(Event::Delivery {
                status: DeliveryStatus::Bounced,
                ..
            }) => bounced += 1,
            Some(Event::Check {
                stage: Some("RCPT"),
                to: Some(_),
                client: Some(_),
                ..
            }) => rcpt_rejects += 1,
            Some(Event::Removed { .. }) => removed += 1,
            _ => {}
        }
    }
    assert_eq!(queued, count_lines(&text, " <= "));
    assert_eq!(queued, 43);
    assert_eq!(sent, count_lines(&text, " => "));
    assert_eq!(sent, 41);
    assert_eq!(bounced, count_lines(&text, " ** "));
    assert_eq!(bounced, 6);
    assert_eq!(rcpt_rejects, count_lines(&text, " rejected RCPT "));
    assert_eq!(removed, count_lines(&text, " Completed"));
    assert_eq!(
        remote_arrivals,
        count_lines(&text, " <= ") - count_lines(&text, " P=local")
    );
}

#[test]
fn artik292_bruteforce() {
    let text = read(&path("artik292/exim_mainlog"));
    let (n, ok) = rate(&text);
    println!(
        "artik292/exim_mainlog: {ok}/{n} = {:.4}",
        ok as f64 / n as f64
    );
    assert!(ok as f64 / n as f64 >= 0.99);
    let mut p = LineParser::new(TimeContext::utc(2023));
    let mut fails = 0;
    let mut campaign = 0;
    let mut users = HashSet::new();
    let mut ips = HashSet::new();
    let (mut connects, mut lost) = (0, 0);
    for l in text.lines() {
        match p.parse(l).event {
            Some(Event::AuthFailure {
                client,
                user,
                mechanism,
                ..
            }) => {
                fails += 1;
                assert_eq!(mechanism, Some("dovecot_login"));
                let ip = client.ip.expect("ip");
                campaign += ip.starts_with("46.148.40.") as usize;
                ips.insert(ip.to_owned());
                if let Some(u) = user {
                    users.insert(u.to_owned());
                }
            }
            Some(Event::Connect { .. }) | Some(Event::Helo { .. }) => connects += 1,
            Some(Event::Disconnect { .. }) => lost += 1,
            _ => {}
        }
    }
    assert_eq!(fails, count_lines(&text, "authenticator failed for"));
    assert_eq!(fails, 5196);
    let campaign_lines = text
        .lines()
        .filter(|l| l.contains("authenticator failed for") && l.contains("[46.148.40."))
        .count();
    assert_eq!(campaign, campaign_lines);
    assert_eq!(campaign, 5104);
    assert_eq!(connects, count_lines(&text, "(TCP/IP connection count"));
    assert!(lost > 5000, "{lost}");
    println!("artik292: {} users, {} ips", users.len(), ips.len());
    assert!(users.len() > 100 && users.len() < fails, "{}", users.len());
    assert!(ips.len() > 1 && ips.len() <= 256, "{}", ips.len());
}

/// `# failJSON: {…"match": true, "host": "ip"}` followed by the log line it describes.
fn fail2ban_cases(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut want: Option<String> = None;
    for l in text.lines() {
        if let Some(j) = l.strip_prefix("# failJSON:") {
            let v: serde_json::Value = serde_json::from_str(j.trim()).expect("failJSON");
            want = match (
                v.get("match").and_then(|m| m.as_bool()),
                v.get("host").and_then(|h| h.as_str()),
            ) {
                (Some(true), Some(h)) => Some(h.to_owned()),
                _ => None,
            };
            continue;
        }
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        if let Some(h) = want.take() {
            out.push((h, l.to_owned()));
        }
    }
    out
}

#[test]
fn fail2ban_exim() {
    for f in ["fail2ban-exim.log", "fail2ban-exim-spam.log"] {
        let cases = fail2ban_cases(&read(&path(f)));
        assert!(cases.len() >= 8, "{f}");
        let mut p = LineParser::new(TimeContext::utc(2013));
        let mut checked = 0;
        let mut no_header = Vec::new();
        for (ip, line) in &cases {
            let parsed = p.parse(line);
            if parsed.header.is_none() {
                // systemd-journal export lines (`host exim[pid]: stamp …`) have no stamp first.
                no_header.push(line.clone());
                continue;
            }
            let ev = parsed
                .event
                .unwrap_or_else(|| panic!("{f}: not recognised: {line}"));
            assert_eq!(event_ip(&ev), Some(ip.as_str()), "{f}: {line} -> {ev:?}");
            checked += 1;
        }
        println!(
            "{f}: {checked} failJSON lines checked, {} without a header",
            no_header.len()
        );
        assert!(no_header.len() <= 1, "{no_header:?}");
    }
}

/// crowdsec `parser.assert`: `results["s01-parse"]["crowdsecurity/…"][N].Evt.Parsed["key"] == "v"`.
pub fn crowdsec_expect(assert_text: &str, key: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let pat = format!(".Evt.Parsed[\"{key}\"] == \"");
    for l in assert_text.lines() {
        if !l.starts_with("results[\"s01-parse\"]") {
            continue;
        }
        let Some(p) = l.find(&pat) else { continue };
        let idx_end = l[..p].rfind(']').expect("index");
        let idx_start = l[..idx_end].rfind('[').expect("index");
        let idx: usize = l[idx_start + 1..idx_end].parse().expect("index");
        let v = &l[p + pat.len()..];
        out.push((idx, v.strip_suffix('"').unwrap_or(v).to_owned()));
    }
    out
}

#[test]
fn crowdsec_exim() {
    let mut checked = 0;
    for t in ["exim-logs", "exim-syslog-logs"] {
        let dir = path(&format!("crowdsec/{t}"));
        let log = read(&dir.join("exim-logs.log"));
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let asserts = read(&dir.join("parser.assert"));
        let mut p = LineParser::new(TimeContext::utc(2022));
        let events: Vec<_> = lines.iter().map(|l| p.parse(l).event).collect();
        for (i, ip) in crowdsec_expect(&asserts, "source_ip") {
            let ev = events[i]
                .as_ref()
                .unwrap_or_else(|| panic!("{t}: line {i} not recognised"));
            assert_eq!(event_ip(ev), Some(ip.as_str()), "{t} {i}: {ev:?}");
            checked += 1;
        }
        for (i, user) in crowdsec_expect(&asserts, "target_user") {
            // the SMTP AUTH user, or the recipient of a rejected RCPT
            let got = match &events[i] {
                Some(Event::AuthFailure { user, .. }) => *user,
                Some(Event::Check { to, .. }) => *to,
                other => panic!("{t} {i}: {other:?}"),
            };
            assert_eq!(got, Some(user.as_str()), "{t} {i}");
            checked += 1;
        }
        for (i, port) in crowdsec_expect(&asserts, "source_port") {
            let port: u16 = port.parse().expect("port");
            let got = match &events[i] {
                Some(Event::AuthFailure { client, .. }) => client.port,
                Some(Event::Check { client, .. }) => client.and_then(|c| c.port),
                other => panic!("{t} {i}: {other:?}"),
            };
            assert_eq!(got, Some(port), "{t} {i}");
            checked += 1;
        }
        for (i, dns) in crowdsec_expect(&asserts, "source_dns") {
            let host = match &events[i] {
                Some(Event::Check { client, .. }) => client.and_then(|c| c.host),
                Some(Event::AuthFailure { client, .. }) => client.host,
                other => panic!("{t} {i}: {other:?}"),
            };
            assert_eq!(host, Some(dns.as_str()), "{t} {i}");
            checked += 1;
        }
        for (i, helo) in crowdsec_expect(&asserts, "source_helo") {
            if let Some(Event::Check { helo: h, .. }) = &events[i] {
                assert_eq!(*h, Some(helo.as_str()), "{t} {i}");
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked}");
}

#[test]
fn crowdsec_exim_scenario_logs_recognised() {
    for t in ["exim-bf/exim-bf.log", "exim-spam/exim-spam.log"] {
        let (n, ok) = rate(&read(&path(&format!("crowdsec/{t}"))));
        assert!(n > 0);
        assert_eq!(n, ok, "{t}");
    }
}

#[test]
fn ossec_exim() {
    let text = read(&path("ossec-exim.ini"));
    let mut p = LineParser::new(TimeContext::utc(2017));
    let mut n = 0;
    for l in text.lines() {
        let Some(pos) = l.find(" pass = ") else {
            continue;
        };
        let line = &l[pos + 8..];
        let parsed = p.parse(line);
        let ev = parsed
            .event
            .unwrap_or_else(|| panic!("not recognised: {line}"));
        assert!(event_ip(&ev).is_some(), "{line}");
        n += 1;
    }
    assert_eq!(n, 5);
}

/// Deterministic pseudo-random numbers (64-bit LCG, Knuth's MMIX constants).
pub struct Lcg(pub u64);

impl Lcg {
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn no_panic_on_truncation_and_mutation() {
    let mut samples: Vec<String> = Vec::new();
    for f in [
        "ddgrey/mainlog",
        "artik292/exim_mainlog",
        "fail2ban-exim.log",
    ] {
        let text = read(&path(f));
        let lines: Vec<&str> = text.lines().collect();
        for i in (0..lines.len()).step_by((lines.len() / 20).max(1)).take(20) {
            samples.push(lines[i].to_owned());
        }
    }
    for f in suite_files().iter().step_by(80) {
        if let Some(l) = read(f)
            .lines()
            .find(|l| l.contains(" <= ") || l.contains(" ** "))
        {
            samples.push(l.to_owned());
        }
    }
    assert!(samples.len() >= 50);
    let mut rng = Lcg(0x5eed);
    let bytes = b" <>[]():=\"\\,@-0123456789abcdefH";
    for s in &samples {
        for (i, _) in s.char_indices() {
            let _ = maillog::exim::parse(&s[i..]);
            let _ = maillog::exim::parse(&s[..i]);
            let mut p = LineParser::new(TimeContext::utc(2020));
            let _ = p.parse(&s[..i]);
        }
        for _ in 0..200 {
            let mut b = s.clone().into_bytes();
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() as usize) % b.len().max(1);
                let c = bytes[(rng.next_u64() as usize) % bytes.len()];
                match rng.next_u64() % 3 {
                    0 if !b.is_empty() => b[at] = c,
                    1 => b.insert(at.min(b.len()), c),
                    _ if !b.is_empty() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            let m = String::from_utf8_lossy(&b);
            let _ = maillog::exim::parse(&m);
            let mut p = LineParser::new(TimeContext::utc(2020));
            let _ = p.parse(&m);
        }
    }
}
