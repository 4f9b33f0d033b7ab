//! The containment set: which accounts, clients and senders get the policy action.
//!
//! The store thread owns it (every change is written to SQLite first) and publishes an
//! immutable snapshot; the policy server reads the snapshot without a lock.

use std::collections::HashMap;

use detect::EntityKind;
// An id's key, lower-cased only when needed (the policy server's hot path).
use maillog::bytes::ascii_lower;
use serde::{Deserialize, Serialize};

use super::PolicyAction;

/// One contained entity (also the value of the cluster's containment bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Kind.
    pub kind: EntityKind,
    /// Id as in the alert.
    pub id: String,
    /// Incident that caused it.
    pub incident: i64,
    /// Answer.
    pub action: PolicyAction,
    /// Since (unix seconds).
    pub since: i64,
    /// Until (unix seconds); None = until released.
    pub until: Option<i64>,
    /// Who contained it ("auto" or the operator's name).
    pub by: String,
    /// Why.
    pub reason: String,
}

impl Entry {
    /// Still in force at `now`?
    pub fn active(&self, now: i64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// Contained entities by kind, keyed by lower-cased id.
#[derive(Debug, Clone, Default)]
pub struct Set {
    accounts: HashMap<String, Entry>,
    clients: HashMap<String, Entry>,
    senders: HashMap<String, Entry>,
}

impl Set {
    fn map(&self, kind: EntityKind) -> Option<&HashMap<String, Entry>> {
        match kind {
            EntityKind::Account => Some(&self.accounts),
            EntityKind::Client => Some(&self.clients),
            EntityKind::Sender => Some(&self.senders),
            EntityKind::Campaign | EntityKind::Network => None,
        }
    }

    fn map_mut(&mut self, kind: EntityKind) -> Option<&mut HashMap<String, Entry>> {
        match kind {
            EntityKind::Account => Some(&mut self.accounts),
            EntityKind::Client => Some(&mut self.clients),
            EntityKind::Sender => Some(&mut self.senders),
            EntityKind::Campaign | EntityKind::Network => None,
        }
    }

    /// Add or replace (campaigns cannot be contained directly: false).
    pub fn insert(&mut self, e: Entry) -> bool {
        let k = ascii_lower(&e.id).into_owned();
        match self.map_mut(e.kind) {
            Some(m) => {
                m.insert(k, e);
                true
            }
            None => false,
        }
    }

    /// Remove.
    pub fn remove(&mut self, kind: EntityKind, id: &str) -> Option<Entry> {
        self.map_mut(kind)?.remove(ascii_lower(id).as_ref())
    }

    /// The entry for an entity, if contained (expired entries included).
    pub fn get(&self, kind: EntityKind, id: &str) -> Option<&Entry> {
        if id.is_empty() {
            return None;
        }
        self.map(kind)?.get(ascii_lower(id).as_ref())
    }

    /// The first active entry among a policy request's account, client address and sender.
    pub fn lookup(
        &self,
        now: i64,
        account: Option<&str>,
        client: Option<&str>,
        sender: Option<&str>,
    ) -> Option<&Entry> {
        let cands = [
            (EntityKind::Account, account),
            (EntityKind::Client, client),
            (EntityKind::Sender, sender),
        ];
        for (k, id) in cands {
            if let Some(e) = id.and_then(|id| self.get(k, id)) {
                if e.active(now) {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.accounts.len() + self.clients.len() + self.senders.len()
    }

    /// No entries?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.accounts
            .values()
            .chain(self.clients.values())
            .chain(self.senders.values())
    }

    /// Entries whose time ran out at `now`.
    pub fn expired(&self, now: i64) -> Vec<(EntityKind, String)> {
        self.iter()
            .filter(|e| !e.active(now))
            .map(|e| (e.kind, e.id.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntityKind, id: &str, until: Option<i64>) -> Entry {
        Entry {
            kind,
            id: id.into(),
            incident: 1,
            action: PolicyAction::Hold,
            since: 0,
            until,
            by: "auto".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_respects_expiry() {
        let mut s = Set::default();
        assert!(s.insert(entry(EntityKind::Account, "Taro@Example.JP", Some(100))));
        assert!(s.insert(entry(EntityKind::Client, "192.0.2.7", None)));
        assert!(!s.insert(entry(EntityKind::Campaign, "c1", None)));
        assert_eq!(s.len(), 2);
        let e = s.lookup(50, Some("taro@example.jp"), None, None).unwrap();
        assert_eq!(e.id, "Taro@Example.JP");
        assert!(s.lookup(100, Some("taro@example.jp"), None, None).is_none());
        let e = s
            .lookup(100, Some("taro@example.jp"), Some("192.0.2.7"), None)
            .unwrap();
        assert_eq!(e.kind, EntityKind::Client);
        assert!(s.lookup(0, Some(""), Some("192.0.2.8"), Some("")).is_none());
        assert_eq!(
            s.expired(100),
            vec![(EntityKind::Account, "Taro@Example.JP".to_string())]
        );
        assert!(s.remove(EntityKind::Account, "TARO@example.jp").is_some());
        assert_eq!(s.len(), 1);
    }
}
