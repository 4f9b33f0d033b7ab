//! `analyze --format ecs`: every field of every document is an ECS field of the version we
//! name, with a value of its ECS type, and the allowed values of `event.kind/category/type`
//! (checked against the definitions copied from ECS's `ecs_flat.yml` into `tests/data/ecs/`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod sim_util;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpscope"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One ECS field definition (the keys we copied).
#[derive(Debug, serde::Deserialize)]
struct FieldDef {
    flat_name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    normalize: Vec<String>,
    #[serde(default)]
    object_type: Option<String>,
    #[serde(default)]
    allowed_values: Vec<Allowed>,
}

#[derive(Debug, serde::Deserialize)]
struct Allowed {
    name: String,
    #[serde(default)]
    expected_event_types: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Defs {
    ecs_version: String,
    fields: Vec<FieldDef>,
}

fn defs() -> (String, BTreeMap<String, FieldDef>) {
    let p = repo().join("tests/data/ecs/ecs_flat-8.17.0-subset.json");
    let d: Defs = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    (
        d.ecs_version,
        d.fields
            .into_iter()
            .map(|f| (f.flat_name.clone(), f))
            .collect(),
    )
}

/// Flatten a document into (dotted name, leaf value); arrays stay whole.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// Whether a scalar is a value of the ECS type.
fn of_type(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "match_only_text" | "wildcard" | "constant_keyword" => v.is_string(),
        "date" => v
            .as_str()
            .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok()),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "long" => v.is_i64() || v.is_u64(),
        "float" | "scaled_float" => v.is_number(),
        _ => false,
    }
}

/// Check one document; returns the problems.
fn check(doc: &Value, version: &str, defs: &BTreeMap<String, FieldDef>) -> Vec<String> {
    let mut bad = Vec::new();
    let mut leaves = Vec::new();
    flatten("", doc, &mut leaves);
    for (name, v) in &leaves {
        // `labels.*`: an object field whose values have the object type.
        let (def, ty) = match defs.get(name) {
            Some(d) => (d, d.ty.as_str()),
            None => match name.rsplit_once('.').and_then(|(p, _)| defs.get(p)) {
                Some(d) if d.ty == "object" && d.object_type.is_some() => {
                    (d, d.object_type.as_deref().unwrap())
                }
                _ => {
                    bad.push(format!("{name}: not an ECS {version} field"));
                    continue;
                }
            },
        };
        let values: Vec<&Value> = match v {
            Value::Array(a) => {
                if !def.normalize.iter().any(|n| n == "array") {
                    bad.push(format!("{name}: an array, but ECS does not make it one"));
                }
                a.iter().collect()
            }
            _ => vec![v],
        };
        for x in values {
            if !of_type(ty, x) {
                bad.push(format!("{name}: {x} is not of ECS type {ty}"));
            }
            if !def.allowed_values.is_empty()
                && !def
                    .allowed_values
                    .iter()
                    .any(|a| Some(a.name.as_str()) == x.as_str())
            {
                bad.push(format!("{name}: {x} is not an allowed value"));
            }
        }
    }
    // Each category expects certain event types.
    let cats = defs.get("event.category").unwrap();
    for c in doc["event"]["category"].as_array().into_iter().flatten() {
        let a = cats
            .allowed_values
            .iter()
            .find(|a| Some(a.name.as_str()) == c.as_str());
        for t in doc["event"]["type"].as_array().into_iter().flatten() {
            if a.is_some_and(|a| {
                !a.expected_event_types
                    .iter()
                    .any(|e| Some(e.as_str()) == t.as_str())
            }) {
                bad.push(format!("event.type {t} is not expected with category {c}"));
            }
        }
    }
    if doc["ecs"]["version"] != version {
        bad.push(format!(
            "ecs.version is {}, not {version}",
            doc["ecs"]["version"]
        ));
    }
    bad
}

#[test]
fn the_checker_refuses_what_ecs_does_not_define() {
    let (version, defs) = defs();
    let good = serde_json::json!({"@timestamp": "2026-11-16T02:12:26Z", "ecs": {"version": version},
        "event": {"kind": "alert", "category": ["email"], "type": ["info"]}, "labels": {"x": "y"}});
    assert!(check(&good, &version, &defs).is_empty());
    for (bad, why) in [
        (
            serde_json::json!({"event": {"kind": "notakind"}}),
            "allowed",
        ),
        (
            serde_json::json!({"source": {"ip": "203.0.113.0/24"}}),
            "type ip",
        ),
        (
            serde_json::json!({"source": {"as": {"number": "1"}}}),
            "type long",
        ),
        (serde_json::json!({"user": {"name": ["a"]}}), "array"),
        (serde_json::json!({"smtpscope": {"x": 1}}), "not an ECS"),
        (
            serde_json::json!({"event": {"category": ["authentication"], "type": ["denied"]}}),
            "expected",
        ),
    ] {
        let got = check(&bad, &version, &defs);
        assert!(got.iter().any(|g| g.contains(why)), "{bad}: {got:?}");
    }
}

#[test]
fn analyze_format_ecs_emits_only_ecs_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = sim_util::simulated_day(dir.path());
    let out = bin()
        .args([
            "analyze", "-q", "--format", "ecs", "--year", "2026", "--tz", "UTC",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jsonl = bin()
        .args([
            "analyze", "-q", "--format", "jsonl", "--year", "2026", "--tz", "UTC",
        ])
        .arg(&log)
        .output()
        .unwrap();
    let alerts: Vec<Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (version, defs) = defs();
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ds = |d: &str| {
        docs.iter()
            .filter(|x| x["event"]["dataset"] == d)
            .collect::<Vec<_>>()
    };
    let (al, inc) = (ds("smtpscope.alert"), ds("smtpscope.incident"));
    assert_eq!(al.len(), alerts.len(), "one document per alert");
    assert!(!inc.is_empty(), "incidents too");
    assert_eq!(al.len() + inc.len(), docs.len());
    for d in &docs {
        let bad = check(d, &version, &defs);
        assert!(bad.is_empty(), "{d}\n{bad:#?}");
    }
    // The documents say what the JSON Lines say, in ECS's words.
    let mut kinds = BTreeSet::new();
    for (d, a) in al.iter().zip(&alerts) {
        assert_eq!(d["rule"]["name"], a["detector"]);
        assert_eq!(d["@timestamp"], a["ts"]);
        assert_eq!(d["labels"]["entity_id"], a["entity"]["id"]);
        let id = a["entity"]["id"].as_str().unwrap();
        match a["entity"]["kind"].as_str().unwrap() {
            "account" => assert_eq!(d["user"]["name"], id),
            "client" => assert_eq!(d["source"]["ip"], id),
            "network" => assert_eq!(d["source"]["address"], id),
            _ => {}
        }
        kinds.insert(a["entity"]["kind"].as_str().unwrap().to_string());
    }
    // The sample is rich enough to exercise each mapping.
    for k in ["account", "client", "network"] {
        assert!(kinds.contains(k), "no {k} alert in the sample: {kinds:?}");
    }
    assert!(
        al.iter()
            .any(|d| d["source"]["geo"]["country_iso_code"].is_string()
                && d["source"]["as"]["number"].is_u64()),
        "geo and AS where known"
    );
    assert!(al.iter().any(|d| d["email"]["from"]["address"].is_array()));
    let cats: BTreeSet<String> = al
        .iter()
        .flat_map(|d| d["event"]["category"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(
        cats.contains("email") && cats.contains("authentication"),
        "{cats:?}"
    );
}
