//! What `analyze` saw, kept small for the HTML report's figures: one compact row per message
//! record that names a submitting entity (its account, client or sender), with the client
//! address and the minute it was accepted. `serve` keeps one too, for the dashboard's overview
//! (the same figures, computed by the same `html::figures` code).
//!
//! Filled from the records the engine completes (never in a detector): by `pipeline::analyze`
//! for the report, by the service's engine thread for the dashboard. Bounded by [`Bounds`]:
//! past the row cap only rows of entities that already have an alert are kept and the others
//! are counted in [`Seen::dropped`]. The service's collector ([`Bounds::SERVE`]) is bounded
//! for good, since it runs for months and an attacker chooses how many accounts, senders and
//! addresses it sees: rows older than its window are let go, at the cap a flagged entity's
//! row replaces the oldest one, the entities and addresses no row refers to any more are
//! forgotten, and so are alerted entities past [`Bounds::max_watched`]; each loss is counted.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use detect::{Alert, Entity};
use maillog::record::MessageRecord;
use maillog::Ts;

/// Most rows kept for every entity by `analyze` (12 bytes each: 48 MB). A day of 200,000
/// users has about 1.5 million records; a week of them fits. Past the cap only entities with
/// an alert are kept, so the figures of what was flagged stay whole. Our own idea.
pub const MAX_ROWS: usize = 4 << 20;

/// Most rows the service keeps (12 bytes each: 12 MB, with at most twice as many interned
/// entities and addresses of up to a log line's length each). A quarter of `analyze`'s: the
/// service holds it for good beside its detection state. Our own idea.
pub const SERVE_MAX_ROWS: usize = 1 << 20;

/// The service's window: the overview shows the last week (IIJ's figures are read by the day;
/// a week shows a campaign's start and its tail). Rows older than this before the newest are
/// let go. Our own idea.
pub const SERVE_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// Most alerted entities the service keeps past the row cap (an entity costs its name and a
/// few words: a few MB). Incoming-failures alerts on outside hosts are the many; an alert past
/// this is not watched (counted in [`Seen::watch_refused`]). Our own idea.
pub const SERVE_MAX_WATCHED: usize = 65_536;

/// Index of an address that is not known (a record without a client address).
const NO_IP: u32 = u32::MAX;

/// How a [`Seen`] is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Rows kept; past it only rows of entities with an alert.
    pub max_rows: usize,
    /// Rows whose minute is this far behind the newest row are let go (oldest first, in the
    /// order the records completed); `None`: kept for the whole run.
    pub window_minutes: Option<u32>,
    /// At the cap, a row of an entity with an alert replaces the oldest row (`true`, the
    /// service: memory stays bounded) or is added past the cap (`false`, `analyze`: the
    /// flagged entities' figures stay whole for the run).
    pub replace_oldest: bool,
    /// Most entities with an alert remembered.
    pub max_watched: usize,
}

impl Bounds {
    /// `analyze`'s: [`MAX_ROWS`], no window.
    pub const ANALYZE: Bounds = Bounds {
        max_rows: MAX_ROWS,
        window_minutes: None,
        replace_oldest: false,
        max_watched: usize::MAX,
    };
    /// The service's: [`SERVE_MAX_ROWS`] over [`SERVE_WINDOW_MINUTES`].
    pub const SERVE: Bounds = Bounds {
        max_rows: SERVE_MAX_ROWS,
        window_minutes: Some(SERVE_WINDOW_MINUTES),
        replace_oldest: true,
        max_watched: SERVE_MAX_WATCHED,
    };
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds::ANALYZE
    }
}

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
    bounds: Bounds,
    entity_ids: HashMap<Entity, u32>,
    entities: Vec<Entity>,
    ip_ids: HashMap<IpAddr, u32>,
    ips: Vec<IpAddr>,
    /// Per entity, the minute of its latest alert (kept past the cap), by index.
    watched: Vec<Option<u32>>,
    /// Entities with an alert.
    n_watched: usize,
    rows: VecDeque<Row>,
    /// Newest minute of a row.
    newest: u32,
    /// Entities and addresses interned since the last compaction.
    interned: usize,
    /// Newest minute at the last compaction for a watch (at most one a minute of log time).
    watch_compacted: Option<u32>,
    /// Rows left out at the cap.
    pub dropped: u64,
    /// Rows let go: out of the window, or replaced at the cap by a flagged entity's row.
    pub evicted: u64,
    /// Alerts whose entity was not watched: [`Bounds::max_watched`] reached.
    pub watch_refused: u64,
}

impl Seen {
    /// An empty collection with `analyze`'s bounds.
    pub fn new() -> Seen {
        Seen::default()
    }

    /// An empty collection with these bounds.
    pub fn bounded(bounds: Bounds) -> Seen {
        Seen {
            bounds,
            ..Seen::default()
        }
    }

    /// Its bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    fn intern_entity(&mut self, e: &Entity) -> u32 {
        if let Some(i) = self.entity_ids.get(e) {
            return *i;
        }
        let i = self.entities.len() as u32;
        self.entities.push(e.clone());
        self.watched.push(None);
        self.entity_ids.insert(e.clone(), i);
        self.interned += 1;
        i
    }

    fn intern_ip(&mut self, ip: Option<IpAddr>) -> u32 {
        let Some(ip) = ip else { return NO_IP };
        if let Some(i) = self.ip_ids.get(&ip) {
            return *i;
        }
        let i = self.ips.len() as u32;
        self.ips.push(ip);
        self.ip_ids.insert(ip, i);
        self.interned += 1;
        i
    }

    /// Keep `a`'s entity past the cap.
    pub fn watch(&mut self, a: &Alert) {
        let minute = minute_of(a.ts);
        let known = self.entity_ids.get(&a.entity).copied();
        if known.is_none_or(|i| self.watched[i as usize].is_none())
            && self.n_watched >= self.bounds.max_watched
        {
            if self.watch_compacted != Some(self.newest) {
                self.watch_compacted = Some(self.newest);
                self.compact();
            }
            if self.n_watched >= self.bounds.max_watched {
                self.watch_refused += 1;
                return;
            }
        }
        let i = self.intern_entity(&a.entity) as usize;
        if self.watched[i].is_none() {
            self.n_watched += 1;
        }
        self.watched[i] = Some(self.watched[i].map_or(minute, |m| m.max(minute)));
    }

    fn is_watched(&self, e: &Entity) -> bool {
        self.entity_ids
            .get(e)
            .is_some_and(|i| self.watched[*i as usize].is_some())
    }

    /// Note one completed record submitted by `entity`.
    pub fn record(&mut self, r: &MessageRecord, entity: &Entity) {
        self.note(entity, r.client_ip, r.accepted);
    }

    /// Note one message of `entity` from `client` accepted at `at`.
    pub fn note(&mut self, entity: &Entity, client: Option<IpAddr>, at: Ts) {
        let minute = minute_of(at);
        self.newest = self.newest.max(minute);
        self.age();
        if self.rows.len() >= self.bounds.max_rows {
            if !self.is_watched(entity) {
                self.dropped += 1;
                return;
            }
            if self.bounds.replace_oldest {
                self.rows.pop_front();
                self.evicted += 1;
            }
        }
        let e = self.intern_entity(entity);
        let ip = self.intern_ip(client);
        self.rows.push_back(Row {
            entity: e,
            ip,
            minute,
        });
        // Every interned name is referred to by a row or a watch: once as many more were
        // interned as rows are kept, a compaction finds them (amortized O(1) a row).
        if self.bounds.window_minutes.is_some() && self.interned > self.bounds.max_rows {
            self.compact();
        }
    }

    /// The first minute of the window.
    fn window_start(&self) -> Option<u32> {
        self.bounds
            .window_minutes
            .map(|w| self.newest.saturating_sub(w))
    }

    /// Let go of the rows out of the window (in the order they completed).
    fn age(&mut self) {
        let Some(from) = self.window_start() else {
            return;
        };
        while self.rows.front().is_some_and(|r| r.minute < from) {
            self.rows.pop_front();
            self.evicted += 1;
        }
    }

    /// Forget the entities and addresses no row refers to (and the alerted entities whose
    /// alert left the window and that have no row), renumbering the rest.
    fn compact(&mut self) {
        self.age();
        let from = self.window_start().unwrap_or(0);
        let mut emap = vec![u32::MAX; self.entities.len()];
        let mut imap = vec![NO_IP; self.ips.len()];
        let old_entities = std::mem::take(&mut self.entities);
        let old_watched = std::mem::take(&mut self.watched);
        let old_ips = std::mem::take(&mut self.ips);
        self.entity_ids.clear();
        self.ip_ids.clear();
        self.n_watched = 0;
        for (i, w) in old_watched.iter().enumerate() {
            if w.is_some_and(|m| m >= from) {
                emap[i] = self.entities.len() as u32;
                self.entity_ids
                    .insert(old_entities[i].clone(), self.entities.len() as u32);
                self.entities.push(old_entities[i].clone());
                self.watched.push(*w);
                self.n_watched += 1;
            }
        }
        for r in self.rows.iter_mut() {
            let e = r.entity as usize;
            if emap[e] == u32::MAX {
                emap[e] = self.entities.len() as u32;
                self.entity_ids
                    .insert(old_entities[e].clone(), self.entities.len() as u32);
                self.entities.push(old_entities[e].clone());
                self.watched.push(None);
            }
            r.entity = emap[e];
            if r.ip != NO_IP {
                let i = r.ip as usize;
                if imap[i] == NO_IP {
                    imap[i] = self.ips.len() as u32;
                    self.ip_ids.insert(old_ips[i], self.ips.len() as u32);
                    self.ips.push(old_ips[i]);
                }
                r.ip = imap[i];
            }
        }
        self.interned = 0;
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
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter()
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No row kept.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Entities and addresses interned (what the names cost, beside the rows).
    pub fn interned(&self) -> (usize, usize) {
        (self.entities.len(), self.ips.len())
    }

    /// The first and last minute of the rows, as times.
    pub fn span(&self) -> Option<(Ts, Ts)> {
        let lo = self.rows.iter().map(|r| r.minute).min()?;
        let hi = self.rows.iter().map(|r| r.minute).max()?;
        Some((
            Ts::from_secs(i64::from(lo) * 60),
            Ts::from_secs(i64::from(hi) * 60 + 59),
        ))
    }

    /// The rows of the entities `want` (one pass over all rows).
    pub fn rows_of(&self, want: &[&Entity]) -> Vec<Row> {
        let mut mask = vec![false; self.entities.len()];
        let mut any = false;
        for e in want {
            if let Some(i) = self.entity_ids.get(*e) {
                mask[*i as usize] = true;
                any = true;
            }
        }
        if !any {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|r| mask[r.entity as usize])
            .copied()
            .collect()
    }

    /// A copy holding only the rows of `want` (the dashboard computes its figures on it, after
    /// letting go of the service's collector).
    pub fn subset(&self, want: &[&Entity]) -> Seen {
        let mut out = Seen::bounded(Bounds {
            max_rows: usize::MAX,
            ..Bounds::ANALYZE
        });
        for r in self.rows_of(want) {
            let e = out.intern_entity(self.entity(&r));
            let ip = out.intern_ip(self.ip(&r));
            out.rows.push_back(Row {
                entity: e,
                ip,
                minute: r.minute,
            });
        }
        out.newest = self.newest;
        out
    }
}

/// Minutes since the epoch of `at` (0 before it; `u32::MAX` minutes is the year 10136).
fn minute_of(at: Ts) -> u32 {
    (at.secs().max(0) / 60).min(i64::from(u32::MAX)) as u32
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

    fn acct(i: usize) -> Entity {
        Entity::new(EntityKind::Account, format!("u{i}@x.example"))
    }

    fn alert(e: &Entity, minute: i64) -> Alert {
        Alert {
            ts: Ts::from_secs(minute * 60),
            detector: detect::Detector::AuthHijack,
            entity: e.clone(),
            score: 1.0,
            summary: String::new(),
            evidence: serde_json::Value::Null,
        }
    }

    const SMALL: Bounds = Bounds {
        max_rows: 100,
        window_minutes: Some(60),
        replace_oldest: true,
        max_watched: 5,
    };

    /// An attacker who sends under a new name from a new address for every message does not
    /// grow the service's collector: rows stay at the cap, the names at most twice it, and
    /// every row left out or let go is counted.
    #[test]
    fn the_service_collector_stays_bounded_under_new_names() {
        let mut s = Seen::bounded(SMALL);
        let n = 10_000usize;
        for i in 0..n {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            // 20 messages a minute: 40 minutes of the window hold 800 > 100 rows.
            s.note(&acct(i), Some(ip), Ts::from_secs(60 * (i / 20) as i64));
            assert!(s.len() <= SMALL.max_rows);
            let (e, a) = s.interned();
            assert!(
                e + a <= 2 * SMALL.max_rows + 2 * SMALL.max_rows,
                "{e} {a} at {i}"
            );
        }
        assert_eq!(s.len() as u64 + s.dropped + s.evicted, n as u64);
        assert!(s.dropped > 0 && s.evicted > 0);
        // Every kept row is within the window of the newest one.
        let newest = s.rows().map(|r| r.minute).max().unwrap();
        assert!(s.rows().all(|r| r.minute + 60 >= newest));
    }

    /// At the cap a flagged account's rows replace the oldest rows, others are refused; an
    /// alert past `max_watched` is counted, and a watch whose alert left the window is
    /// forgotten to make room.
    #[test]
    fn flagged_rows_replace_the_oldest_and_watches_are_bounded() {
        let mut s = Seen::bounded(SMALL);
        let hijacked = acct(0);
        s.watch(&alert(&hijacked, 0));
        for i in 0..100 {
            s.note(&acct(1000 + i), None, Ts::from_secs(60));
        }
        s.note(&acct(5000), None, Ts::from_secs(60));
        assert_eq!((s.dropped, s.evicted), (1, 0));
        s.note(&hijacked, "192.0.2.1".parse().ok(), Ts::from_secs(120));
        assert_eq!((s.len(), s.evicted), (100, 1));
        assert_eq!(s.rows_of(&[&hijacked]).len(), 1);
        for i in 1..5 {
            s.watch(&alert(&acct(i), 2));
        }
        s.watch(&alert(&acct(99), 2));
        assert_eq!(s.watch_refused, 1);
        // An hour and more later the first watch (minute 0, no row left) makes room.
        s.note(&acct(7), None, Ts::from_secs(63 * 60));
        s.watch(&alert(&acct(99), 63));
        assert_eq!(
            s.watch_refused, 1,
            "a watch out of the window was forgotten"
        );
        assert!(s.is_watched(&acct(99)));
        assert!(!s.is_watched(&hijacked));
    }

    #[test]
    fn a_subset_has_the_rows_of_its_entities_with_their_addresses() {
        let mut s = Seen::bounded(SMALL);
        let (a, b) = (acct(1), acct(2));
        s.note(&a, "192.0.2.1".parse().ok(), Ts::from_secs(60));
        s.note(&b, "192.0.2.2".parse().ok(), Ts::from_secs(120));
        s.note(&a, None, Ts::from_secs(180));
        let sub = s.subset(&[&a]);
        let got: Vec<(&Entity, Option<IpAddr>, u32)> = sub
            .rows()
            .map(|r| (sub.entity(r), sub.ip(r), r.minute))
            .collect();
        assert_eq!(got, vec![(&a, "192.0.2.1".parse().ok(), 1), (&a, None, 3)]);
        assert_eq!(sub.span(), Some((Ts::from_secs(60), Ts::from_secs(239))));
    }
}
