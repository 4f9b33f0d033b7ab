//! docs/examples/prometheus-rules.yml names only what `serve` exports: every `smtpscope_*`
//! metric in it is in the /metrics output of a running server, and every label matcher
//! `name{label="value"}` names a series that exists. (`promtool check rules` checks the
//! syntax in tests/e2e/prometheus_rules.sh.)

mod serve_util;

use std::collections::BTreeSet;
use std::path::Path;

use serve_util::*;

fn rules() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/prometheus-rules.yml");
    std::fs::read_to_string(p).unwrap()
}

/// `smtpscope_…` names and, where a `{…}` selector follows, its `label="value"` matchers.
fn selectors(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("smtpscope_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let mut matchers = Vec::new();
        if let Some(sel) = tail[end..].strip_prefix('{') {
            let close = sel.find('}').expect("closed selector");
            matchers = sel[..close]
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| m.contains("=\"") && !m.contains("=~") && !m.contains("!="))
                .collect();
        }
        out.push((name, matchers));
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_metric_in_the_rules_is_exported() {
    let text = rules();
    let sel = selectors(&text);
    assert!(sel.len() >= 10, "the rules name our metrics: {sel:?}");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "");
    let (code, metrics) = s.get("/metrics");
    assert_eq!(code, 200);
    let series: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let names: BTreeSet<&str> = series
        .iter()
        .map(|s| s.split('{').next().unwrap())
        .collect();
    for (name, matchers) in &sel {
        assert!(
            names.contains(name.as_str()),
            "{name} is not exported by serve"
        );
        for m in matchers {
            assert!(
                series
                    .iter()
                    .any(|s| s.starts_with(&format!("{name}{{")) && s.contains(m.as_str())),
                "no series {name}{{{m}}} in /metrics"
            );
        }
    }
    // The checker sees a name that does not exist.
    assert!(!names.contains("smtpscope_no_such_metric_total"));
    assert_eq!(
        selectors("x smtpscope_alerts_total{detector=\"auth-hijack\"} > 1")[0].1,
        vec!["detector=\"auth-hijack\"".to_string()]
    );
    s.term();
}
