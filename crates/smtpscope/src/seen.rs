//! What `analyze` saw, kept small for the HTML report's figures: one compact row per message
//! record that names a submitting entity (its account, client or sender), with the client
//! address and the minute it was accepted.
//!
//! Filled by `pipeline::analyze` from the records the engine completes (never in a detector),
//! bounded by [`MAX_ROWS`]: past it only rows of entities that already have an alert are kept
//! and the others are counted in [`Seen::dropped`].

use std::collections::HashMap;
use std::net::IpAddr;

use detect::{Alert, Entity};
use maillog::record::MessageRecord;
use maillog::Ts;

/// Most rows kept for every entity (12 bytes each: 48 MB). A day of 200,000 users has about
/// 1.5 million records; a week of them fits. Past the cap only entities with an alert are kept,
/// so the figures of what was flagged stay whole. Our own idea.
pub const MAX_ROWS: usize = 4 << 20;

/// Index of an address that is not known (a record without a client address).
const NO_IP: u32 = u32::MAX;

/// One message record: who submitted it, from where, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Index into [`Seen::entity`].
    pub entity: u32,
    /// Index into [`Seen::ip`], `u32::MAX` when unknown.
    ip: u32,
    /// Minutes since the epoch, of acceptance.
    pub minute: u32,
}

/// The rows and their interned entities and addresses.
#[derive(Debug, Default)]
pub struct Seen {
    entity_ids: HashMap<Entity, u32>,
    entities: Vec<Entity>,
    ip_ids: HashMap<IpAddr, u32>,
    ips: Vec<IpAddr>,
    /// Entities with an alert (kept past the cap), by index.
    watched: Vec<bool>,
    rows: Vec<Row>,
    /// Rows left out past [`MAX_ROWS`].
    pub dropped: u64,
}

impl Seen {
    /// An empty collection.
    pub fn new() -> Seen {
        Seen::default()
    }

    fn intern_entity(&mut self, e: &Entity) -> u32 {
        if let Some(i) = self.entity_ids.get(e) {
            return *i;
        }
        let i = self.entities.len() as u32;
        self.entities.push(e.clone());
        self.watched.push(false);
        self.entity_ids.insert(e.clone(), i);
        i
    }

    /// Keep `a`'s entity past the cap.
    pub fn watch(&mut self, a: &Alert) {
        let i = self.intern_entity(&a.entity) as usize;
        self.watched[i] = true;
    }

    /// Note one completed record submitted by `entity`.
    pub fn record(&mut self, r: &MessageRecord, entity: &Entity) {
        self.note(entity, r.client_ip, r.accepted);
    }

    /// Note one message of `entity` from `client` accepted at `at`.
    pub fn note(&mut self, entity: &Entity, client: Option<IpAddr>, at: Ts) {
        if self.rows.len() >= MAX_ROWS {
            match self.entity_ids.get(entity) {
                Some(i) if self.watched[*i as usize] => {}
                _ => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        let e = self.intern_entity(entity);
        let ip = match client {
            Some(ip) => match self.ip_ids.get(&ip) {
                Some(i) => *i,
                None => {
                    let i = self.ips.len() as u32;
                    self.ips.push(ip);
                    self.ip_ids.insert(ip, i);
                    i
                }
            },
            None => NO_IP,
        };
        let minute = (at.secs().max(0) / 60).min(i64::from(u32::MAX)) as u32;
        self.rows.push(Row {
            entity: e,
            ip,
            minute,
        });
    }

    /// The entity of a row.
    pub fn entity(&self, r: &Row) -> &Entity {
        &self.entities[r.entity as usize]
    }

    /// The entity of an index ([`Row::entity`]).
    pub fn entity_at(&self, i: u32) -> &Entity {
        &self.entities[i as usize]
    }

    /// The client address of a row.
    pub fn ip(&self, r: &Row) -> Option<IpAddr> {
        self.ips.get(r.ip as usize).copied()
    }

    /// Every row, in the order the records completed.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows of the entities `want` (one pass over all rows).
    pub fn rows_of(&self, want: &[&Entity]) -> Vec<Row> {
        let ids: Vec<u32> = want
            .iter()
            .filter_map(|e| self.entity_ids.get(*e).copied())
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|r| ids.contains(&r.entity))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detect::EntityKind;

    #[test]
    fn past_the_cap_only_watched_entities_are_kept_and_the_rest_counted() {
        let mut s = Seen::new();
        let a = Entity::new(EntityKind::Account, "a@x.example");
        let b = Entity::new(EntityKind::Account, "b@x.example");
        s.note(&a, "192.0.2.1".parse().ok(), Ts::from_secs(60));
        s.watch(&Alert {
            ts: Ts::from_secs(60),
            detector: detect::Detector::AuthHijack,
            entity: a.clone(),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        });
        s.rows.resize(MAX_ROWS, s.rows[0]);
        s.note(&b, "192.0.2.2".parse().ok(), Ts::from_secs(120));
        s.note(&a, "192.0.2.3".parse().ok(), Ts::from_secs(180));
        assert_eq!(s.dropped, 1);
        assert_eq!(s.rows.len(), MAX_ROWS + 1);
        let last = s.rows[MAX_ROWS];
        assert_eq!(s.entity(&last), &a);
        assert_eq!(s.ip(&last), "192.0.2.3".parse().ok());
        assert_eq!(last.minute, 3);
    }
}
