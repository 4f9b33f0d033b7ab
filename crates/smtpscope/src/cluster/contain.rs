//! The cluster's containment list as the sink publishes it and an edge assembles it.
//!
//! Two paths carry a change of the sink's containment set to the edges:
//! - **durable**: the key-value bucket `<prefix>-contain`, one key per entity
//!   (`<kind>.<hex of the lower-cased id>`, the [`Stored`] entry as JSON), and after every key of a
//!   change the key `stamp.<node>` with the change's [`stamp`](Now::stamp). An edge that starts
//!   late, or was cut off, reads it from there. A write needs the bucket stream's leader: when
//!   the server leading it is lost, nothing can be stored until the others elect a new one (5 s
//!   and more in our tests).
//! - **fast**: the whole set, stamped, published on the plain (not JetStream) subject
//!   `<prefix>.contain.now` ([`Now`]), which any server routes to every subscribed edge at once,
//!   leader or none; published again every [`REPEAT_FAST_MS`] for [`REPEAT_FAST_FOR_MS`] and
//!   then every second for as long as the bucket has not stored that stamp, for an edge that
//!   was reconnecting when it went out.
//!
//! An edge answers from the newer of the two for each sink ([`View::set`]): the bucket's
//! entries of a sink whose published set is newer than the bucket's stamp for it are replaced
//! by that set. So a containment reaches the edges within the time of one plain publish even
//! while the bucket has no leader, and the bucket takes over once it has caught up.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::serve::contain::{Entry, Set};

/// The fast path is published again this often just after a change.
pub const REPEAT_FAST_MS: u64 = 250;
/// ... for this long after a change; then every second while the bucket lags.
pub const REPEAT_FAST_FOR_MS: u64 = 2_000;
/// A set larger than this (serialized) goes only through the bucket (a NATS server's default
/// `max_payload` is 1 MiB).
pub const MAX_NOW_BYTES: usize = 512 * 1024;

/// A bucket value: the entry and the sink that published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The containment.
    #[serde(flatten)]
    pub entry: Entry,
    /// The publishing sink's node name (absent in values of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The fast path's message: a sink's whole containment set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Now {
    /// Schema version (1).
    pub v: u32,
    /// The sink's node name.
    pub node: String,
    /// Increases with every change of the sink's set (milliseconds since the epoch at the
    /// change, or one more than the last stamp).
    pub stamp: u64,
    /// Every contained entity.
    pub entries: Vec<Entry>,
}

/// The bucket key of an entity.
pub fn kv_key(e: &Entry) -> String {
    let id: String =
        e.id.to_ascii_lowercase()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
    format!("{}.{id}", e.kind)
}

/// The bucket key of a sink's stamp.
pub fn stamp_key(node: &str) -> String {
    format!("stamp.{node}")
}

/// The next stamp after `last` at `now_ms`.
pub fn next_stamp(last: u64, now_ms: u64) -> u64 {
    now_ms.max(last + 1)
}

/// A sink's set as bucket keys and values.
pub fn desired(set: &Set, node: &str) -> HashMap<String, Stored> {
    set.iter()
        .map(|e| {
            (
                kv_key(e),
                Stored {
                    entry: e.clone(),
                    node: Some(node.to_string()),
                },
            )
        })
        .collect()
}

/// One write to the bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Put the value under the key.
    Put(String, Stored),
    /// Delete the key.
    Delete(String),
}

/// The writes that make the bucket's keys of this sink (`stored`, what it is known to hold)
/// what the set wants (`want`). A write that fails stays out of `stored`, so it is computed
/// again on the next round (retried until it succeeds).
pub fn ops(want: &HashMap<String, Stored>, stored: &HashMap<String, Stored>) -> Vec<Op> {
    let mut v: Vec<Op> = want
        .iter()
        .filter(|(k, e)| stored.get(*k) != Some(*e))
        .map(|(k, e)| Op::Put(k.clone(), e.clone()))
        .collect();
    v.extend(
        stored
            .keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| Op::Delete(k.clone())),
    );
    // Stable order (for the log and the tests).
    v.sort_by(|a, b| {
        let k = |o: &Op| match o {
            Op::Put(k, _) | Op::Delete(k) => k.clone(),
        };
        k(a).cmp(&k(b))
    });
    v
}

/// An edge's view: the bucket as watched, and each sink's last published set.
#[derive(Debug, Default)]
pub struct View {
    kv: HashMap<String, Stored>,
    kv_stamp: HashMap<String, u64>,
    now: HashMap<String, (u64, Vec<Entry>)>,
}

impl View {
    /// A key of the bucket put; true when the view changed.
    pub fn kv_put(&mut self, key: &str, value: &[u8]) -> bool {
        if let Some(node) = key.strip_prefix("stamp.") {
            let Some(s) = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            else {
                return false;
            };
            return self.kv_stamp.insert(node.to_string(), s) != Some(s);
        }
        match serde_json::from_slice::<Stored>(value) {
            Ok(v) => self.kv.insert(key.to_string(), v.clone()) != Some(v),
            Err(_) => false,
        }
    }

    /// A key of the bucket deleted or purged; true when the view changed.
    pub fn kv_delete(&mut self, key: &str) -> bool {
        if let Some(node) = key.strip_prefix("stamp.") {
            return self.kv_stamp.remove(node).is_some();
        }
        self.kv.remove(key).is_some()
    }

    /// A sink's published set; true when it is newer than the last one of that sink.
    pub fn now(&mut self, msg: &[u8]) -> bool {
        let Ok(n) = serde_json::from_slice::<Now>(msg) else {
            return false;
        };
        if n.v != 1 {
            return false;
        }
        match self.now.get(&n.node) {
            Some((s, _)) if *s >= n.stamp => false,
            _ => {
                self.now.insert(n.node, (n.stamp, n.entries));
                true
            }
        }
    }

    /// The sinks whose published set is newer than what the bucket holds of them.
    fn ahead(&self) -> Vec<&str> {
        self.now
            .iter()
            .filter(|(n, (s, _))| *s > self.kv_stamp.get(*n).copied().unwrap_or(0))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The containment set to answer from.
    pub fn set(&self) -> Set {
        let ahead = self.ahead();
        let mut s = Set::default();
        for v in self.kv.values() {
            if v.node.as_deref().is_some_and(|n| ahead.contains(&n)) {
                continue;
            }
            s.insert(v.entry.clone());
        }
        for n in ahead {
            for e in &self.now[n].1 {
                s.insert(e.clone());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::PolicyAction;
    use detect::EntityKind;

    fn entry(id: &str) -> Entry {
        Entry {
            kind: EntityKind::Account,
            id: id.into(),
            incident: 1,
            action: PolicyAction::Hold,
            since: 0,
            until: None,
            by: "test".into(),
            reason: String::new(),
        }
    }

    fn stored(id: &str) -> (String, Vec<u8>) {
        let e = entry(id);
        (
            kv_key(&e),
            serde_json::to_vec(&Stored {
                entry: e,
                node: Some("s".into()),
            })
            .unwrap(),
        )
    }

    fn now(stamp: u64, ids: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&Now {
            v: 1,
            node: "s".into(),
            stamp,
            entries: ids.iter().map(|i| entry(i)).collect(),
        })
        .unwrap()
    }

    fn ids(v: &View) -> Vec<String> {
        let mut x: Vec<String> = v.set().iter().map(|e| e.id.clone()).collect();
        x.sort();
        x
    }

    #[test]
    fn the_newer_of_bucket_and_published_set_is_answered() {
        let mut v = View::default();
        let (ka, a) = stored("a");
        assert!(v.kv_put(&ka, &a));
        assert!(v.kv_put("stamp.s", b"10"));
        assert_eq!(ids(&v), ["a"]);
        // The sink contains b while its bucket has no leader: the published set is newer.
        assert!(v.now(&now(11, &["a", "b"])));
        assert_eq!(ids(&v), ["a", "b"]);
        // ... and releases a: gone at once, although the bucket still holds it.
        assert!(v.now(&now(12, &["b"])));
        assert_eq!(ids(&v), ["b"]);
        // An older message (a repeat that arrived late) changes nothing.
        assert!(!v.now(&now(11, &["a", "b"])));
        assert_eq!(ids(&v), ["b"]);
        // The bucket catches up (its keys first, then the stamp): the same answer throughout.
        let (kb, b) = stored("b");
        v.kv_put(&kb, &b);
        assert_eq!(ids(&v), ["b"]);
        v.kv_delete(&ka);
        assert_eq!(ids(&v), ["b"]);
        v.kv_put("stamp.s", b"12");
        assert_eq!(ids(&v), ["b"]);
        // From now on the bucket is answered: a later release through it alone is seen.
        v.kv_delete(&kb);
        v.kv_put("stamp.s", b"13");
        assert!(ids(&v).is_empty());
    }

    #[test]
    fn values_of_other_sinks_and_older_versions_are_kept() {
        let mut v = View::default();
        let e = entry("old");
        // A value without a node (an older version's) and one of another sink.
        v.kv_put(&kv_key(&e), &serde_json::to_vec(&e).unwrap());
        let o = Stored {
            entry: entry("other"),
            node: Some("t".into()),
        };
        v.kv_put(&kv_key(&o.entry), &serde_json::to_vec(&o).unwrap());
        v.now(&now(5, &["new"]));
        assert_eq!(ids(&v), ["new", "old", "other"]);
        // Not JSON, a wrong version: ignored.
        assert!(!v.now(b"{"));
        assert!(!v.kv_put("account.00", b"x"));
        let mut m: serde_json::Value = serde_json::from_slice(&now(9, &[])).unwrap();
        m["v"] = 2.into();
        assert!(!v.now(&serde_json::to_vec(&m).unwrap()));
        assert_eq!(ids(&v), ["new", "old", "other"]);
    }

    #[test]
    fn failed_writes_are_computed_again() {
        let mut set = Set::default();
        set.insert(entry("a"));
        set.insert(entry("b"));
        let want = desired(&set, "s");
        let mut stored = HashMap::new();
        let first = ops(&want, &stored);
        assert_eq!(first.len(), 2);
        // Only the first put succeeds (the bucket lost its leader): the second stays due.
        if let Op::Put(k, e) = &first[0] {
            stored.insert(k.clone(), e.clone());
        }
        assert_eq!(ops(&want, &stored), first[1..].to_vec());
        // A release while that write is still due: only the delete of what was stored.
        set.remove(EntityKind::Account, "a");
        set.remove(EntityKind::Account, "b");
        let want = desired(&set, "s");
        assert_eq!(ops(&want, &stored), vec![Op::Delete(kv_key(&entry("a")))]);
        assert!(next_stamp(7, 5) == 8 && next_stamp(7, 100) == 100);
    }
}
