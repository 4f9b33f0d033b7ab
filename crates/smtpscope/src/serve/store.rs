//! The SQLite store: incidents (with their alerts as evidence and a timeline), the
//! containment list, account baselines and followed-file positions.
//!
//! The incident lifecycle's rules (merge, auto-contain, re-arm, operator commands) are
//! `detect::incident`'s, the same `analyze` runs in memory; this module asks them and persists
//! what they decide.
//!
//! One thread writes (this module's [`Store::run`]); it batches what queued up into one
//! transaction. WAL mode with `synchronous=NORMAL`: a committed transaction survives `kill -9`
//! of the process. Alerts and the file position after the lines that raised them are committed
//! together, so a restart neither loses nor repeats them. Containment is written before it is
//! published to the policy server. The HTTP API reads through its own connections.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use detect::incident::{self, Actor, AutoVerdict, Refusal, State, Step};
use detect::EntityKind;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tracing::{error, info, warn};

use super::contain::{Entry, Set};
use super::{now_secs, PolicyAction, Shared};

/// Alerts kept per incident as evidence (the count goes on).
pub const MAX_ALERTS_PER_INCIDENT: i64 = incident::MAX_ALERTS_PER_INCIDENT as i64;
/// Most commands written in one transaction.
const MAX_BATCH: usize = 1024;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE incidents(
        id INTEGER PRIMARY KEY,
        entity_kind TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        state TEXT NOT NULL,
        detector TEXT NOT NULL,
        score REAL NOT NULL,
        summary TEXT NOT NULL,
        first_ts TEXT NOT NULL,
        last_ts TEXT NOT NULL,
        alerts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        state_by TEXT,
        state_at INTEGER);
     CREATE INDEX incidents_entity ON incidents(entity_kind, entity_id, state);
     CREATE INDEX incidents_updated ON incidents(updated_at);
     CREATE TABLE alerts(
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        ts TEXT NOT NULL,
        detector TEXT NOT NULL,
        score REAL NOT NULL,
        summary TEXT NOT NULL,
        json TEXT NOT NULL);
     CREATE INDEX alerts_incident ON alerts(incident_id);
     CREATE TABLE timeline(
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        by TEXT NOT NULL,
        note TEXT NOT NULL);
     CREATE INDEX timeline_incident ON timeline(incident_id);
     CREATE TABLE containment(
        entity_kind TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        incident_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        since INTEGER NOT NULL,
        until INTEGER,
        by TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY(entity_kind, entity_id));
     CREATE TABLE baselines(
        account TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL);
     CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE file_positions(
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        updated_at INTEGER NOT NULL);",
    // 2: the engine checkpoint (detection state) and the file positions it corresponds to.
    "CREATE TABLE checkpoint(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        engine BLOB NOT NULL,
        next_sweep INTEGER,
        taken_at INTEGER NOT NULL);
     CREATE TABLE checkpoint_positions(
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        fingerprint BLOB NOT NULL);",
];

/// The engine's detection state and the followed-file positions of exactly the lines fed to it
/// before it was taken (see `docs/OPERATIONS.md`, "Checkpoints").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// `detect::Engine::snapshot`.
    pub engine: Vec<u8>,
    /// The driver's next idle sweep (log time, microseconds).
    pub next_sweep: Option<i64>,
    /// Position of every followed file after the last of its lines the engine was fed.
    pub positions: Vec<FilePos>,
}

/// Where a followed file was read to, and which file it was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePos {
    /// Path followed.
    pub path: String,
    /// Device of the file read.
    pub dev: u64,
    /// Inode of the file read.
    pub ino: u64,
    /// Bytes consumed (complete lines).
    pub pos: u64,
    /// First bytes of the file (detects truncate-and-rewrite).
    pub fp: Vec<u8>,
}

/// An operator's action on an incident (the lifecycle's command).
pub use detect::incident::Command as Action;

/// A reply channel.
pub type Reply = tokio::sync::oneshot::Sender<Result<i64, String>>;

/// A command to the store thread.
#[derive(Debug)]
pub enum Cmd {
    /// Alerts, and the file position after the lines that raised them.
    Commit {
        /// Alerts.
        alerts: Vec<detect::Alert>,
        /// Position.
        pos: Option<FilePos>,
    },
    /// `detect::State` as JSON.
    Baselines(serde_json::Value),
    /// The engine's state and its file positions, written in one transaction.
    Checkpoint(Checkpoint),
    /// Release containments whose time ran out.
    Expire,
    /// Delete closed incidents older than this many seconds.
    Retention(i64),
    /// An operator's action on an incident.
    Act {
        /// Incident.
        incident: i64,
        /// What.
        action: Action,
        /// Containment length in seconds (contain only; None = until released).
        secs: Option<i64>,
        /// Who.
        by: String,
        /// Why.
        note: String,
        /// Answer (the incident id).
        reply: Reply,
    },
    /// Contain an entity by hand (opens an incident for it if none is open).
    ContainEntity {
        /// Kind.
        kind: EntityKind,
        /// Id.
        id: String,
        /// Seconds, None = until released.
        secs: Option<i64>,
        /// Who.
        by: String,
        /// Why.
        note: String,
        /// Answer (the incident id).
        reply: Reply,
    },
    /// Flush and stop.
    Shutdown,
}

/// The writer's connection and its copy of the containment set.
pub struct Store {
    conn: Connection,
    set: Set,
}

fn kind_str(k: EntityKind) -> &'static str {
    k.as_str()
}

/// Entity kind from its name.
pub fn parse_kind(s: &str) -> Option<EntityKind> {
    Some(match s {
        "account" => EntityKind::Account,
        "client" => EntityKind::Client,
        "sender" => EntityKind::Sender,
        "campaign" => EntityKind::Campaign,
        "network" => EntityKind::Network,
        _ => return None,
    })
}

fn parse_action(s: &str) -> PolicyAction {
    match s {
        "REJECT" => PolicyAction::Reject,
        "DEFER_IF_PERMIT" => PolicyAction::DeferIfPermit,
        _ => PolicyAction::Hold,
    }
}

/// Open a connection with the service's settings and the schema up to date.
pub fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let v = usize::try_from(v).unwrap_or(0);
    if v > MIGRATIONS.len() {
        return Err(anyhow!(
            "store schema version {v} is newer than this smtpscope knows ({})",
            MIGRATIONS.len()
        ));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(v) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        info!(version = i + 1, "store schema migrated");
    }
    Ok(conn)
}

/// A read-only connection for queries.
pub fn reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl Store {
    /// Open (creating and migrating).
    pub fn open(path: &Path) -> Result<Store> {
        let conn = connect(path)?;
        let mut s = Store {
            conn,
            set: Set::default(),
        };
        s.set = s.load_containment()?;
        Ok(s)
    }

    /// The containment list.
    pub fn load_containment(&self) -> Result<Set> {
        let mut st = self.conn.prepare(
            "SELECT entity_kind, entity_id, incident_id, action, since, until, by, reason FROM containment",
        )?;
        let mut set = Set::default();
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        for row in rows {
            let (k, id, incident, action, since, until, by, reason) = row?;
            if let Some(kind) = parse_kind(&k) {
                set.insert(Entry {
                    kind,
                    id,
                    incident,
                    action: parse_action(&action),
                    since,
                    until,
                    by,
                    reason,
                });
            }
        }
        Ok(set)
    }

    /// Saved account baselines, if any.
    pub fn load_baselines(&self) -> Result<Option<detect::State>> {
        let meta: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key='baselines'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(meta) = meta else { return Ok(None) };
        let mut v: serde_json::Value = serde_json::from_str(&meta)?;
        let mut st = self.conn.prepare("SELECT account, value FROM baselines")?;
        let mut list = Vec::new();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (a, b) = row?;
            let b: serde_json::Value = serde_json::from_str(&b)?;
            list.push(serde_json::json!([a, b]));
        }
        v["baselines"] = serde_json::Value::Array(list);
        match serde_json::from_value::<detect::State>(v) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                warn!("saved baselines do not match this version; starting without: {e}");
                Ok(None)
            }
        }
    }

    /// The last checkpoint, if any.
    pub fn load_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT engine, next_sweep FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((engine, next_sweep)) = row else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare("SELECT path, dev, ino, pos, fingerprint FROM checkpoint_positions")?;
        let positions = st
            .query_map([], file_pos)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Checkpoint {
            engine,
            next_sweep,
            positions,
        }))
    }

    /// Saved file positions by path.
    pub fn load_positions(&self) -> Result<HashMap<String, FilePos>> {
        let mut st = self
            .conn
            .prepare("SELECT path, dev, ino, pos, fingerprint FROM file_positions")?;
        let rows = st.query_map([], file_pos)?;
        let mut m = HashMap::new();
        for r in rows {
            let r = r?;
            m.insert(r.path.clone(), r);
        }
        Ok(m)
    }

    /// The writer loop.
    pub fn run(mut self, rx: std::sync::mpsc::Receiver<Cmd>, shared: &Arc<Shared>) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let stop = batch.iter().any(|c| matches!(c, Cmd::Shutdown));
            let changed = match self.apply(&mut batch, shared) {
                Ok(c) => c,
                Err(e) => {
                    shared.metrics.store_errors.inc();
                    error!("store write failed: {e:#}");
                    // Reload the truth from disk.
                    if let Ok(s) = self.load_containment() {
                        self.set = s;
                    }
                    true
                }
            };
            if changed {
                shared.contained.store(Arc::new(self.set.clone()));
            }
            if stop {
                let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                info!("store closed");
                return;
            }
        }
    }

    /// Apply a batch in one transaction; true when the containment set changed.
    fn apply(&mut self, batch: &mut Vec<Cmd>, shared: &Shared) -> Result<bool> {
        let now = now_secs();
        let live = shared.live.load();
        let mut changed = false;
        let mut replies: Vec<(Reply, Result<i64, String>)> = Vec::new();
        let tx = self.conn.transaction()?;
        let mut set = std::mem::take(&mut self.set);
        let res: Result<()> = (|| {
            for cmd in batch.drain(..) {
                match cmd {
                    Cmd::Commit { alerts, pos } => {
                        for a in &alerts {
                            changed |= on_alert(&tx, &mut set, a, now, &live.containment, shared)?;
                        }
                        if let Some(p) = pos {
                            tx.execute(
                                "INSERT INTO file_positions(path, dev, ino, pos, fingerprint, updated_at)
                                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)
                                 ON CONFLICT(path) DO UPDATE SET dev=?2, ino=?3, pos=?4, fingerprint=?5, updated_at=?6",
                                params![p.path, p.dev as i64, p.ino as i64, p.pos as i64, p.fp, now],
                            )?;
                        }
                    }
                    Cmd::Baselines(v) => save_baselines(&tx, v, now)?,
                    Cmd::Checkpoint(c) => save_checkpoint(&tx, &c, now)?,
                    Cmd::Expire => {
                        for (k, id) in set.expired(now) {
                            if let Some(e) = set.remove(k, &id) {
                                release(
                                    &tx,
                                    &e,
                                    State::Released,
                                    Actor::Expiry.name(),
                                    "containment expired",
                                    now,
                                )?;
                                changed = true;
                            }
                        }
                    }
                    Cmd::Retention(secs) => {
                        let n = tx.execute(
                            "DELETE FROM incidents WHERE state IN ('released','dismissed') AND updated_at < ?1",
                            params![now - secs],
                        )?;
                        if n > 0 {
                            info!(deleted = n, "retention: old incidents deleted");
                        }
                    }
                    Cmd::Act {
                        incident,
                        action,
                        secs,
                        by,
                        note,
                        reply,
                    } => {
                        let r = act(
                            &tx,
                            &mut set,
                            incident,
                            action,
                            secs,
                            &by,
                            &note,
                            now,
                            live.containment.action,
                        );
                        if let Ok(ch) = &r {
                            changed |= *ch;
                            if action == Action::Contain && *ch {
                                shared.metrics.containments.inc();
                            }
                        }
                        replies.push((reply, r.map(|_| incident).map_err(|e| e.to_string())));
                    }
                    Cmd::ContainEntity {
                        kind,
                        id,
                        secs,
                        by,
                        note,
                        reply,
                    } => {
                        let r = (|| -> Result<i64> {
                            let inc = match find_open(&tx, kind, &id)? {
                                Some((i, _)) => i,
                                None => {
                                    let i = new_incident(
                                        &tx,
                                        kind,
                                        &id,
                                        "manual",
                                        1.0,
                                        &note,
                                        &super::now_ts().rfc3339(),
                                        now,
                                    )?;
                                    timeline(&tx, i, now, "opened", &by, &note)?;
                                    i
                                }
                            };
                            act(
                                &tx,
                                &mut set,
                                inc,
                                Action::Contain,
                                secs,
                                &by,
                                &note,
                                now,
                                live.containment.action,
                            )?;
                            Ok(inc)
                        })();
                        if r.is_ok() {
                            changed = true;
                            shared.metrics.containments.inc();
                        }
                        replies.push((reply, r.map_err(|e| e.to_string())));
                    }
                    Cmd::Shutdown => {}
                }
            }
            Ok(())
        })();
        self.set = set;
        match res {
            Ok(()) => {
                tx.commit()?;
                for (r, v) in replies {
                    let _ = r.send(v);
                }
                Ok(changed)
            }
            Err(e) => {
                drop(tx);
                for (r, _) in replies {
                    let _ = r.send(Err(format!("store error: {e}")));
                }
                Err(e)
            }
        }
    }
}

fn find_open(tx: &Connection, kind: EntityKind, id: &str) -> Result<Option<(i64, String)>> {
    Ok(tx
        .query_row(
            "SELECT id, state FROM incidents WHERE entity_kind=?1 AND entity_id=?2
             AND state IN ('open','contained') ORDER BY id DESC LIMIT 1",
            params![kind_str(kind), id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
fn new_incident(
    tx: &Connection,
    kind: EntityKind,
    id: &str,
    detector: &str,
    score: f64,
    summary: &str,
    ts: &str,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO incidents(entity_kind, entity_id, state, detector, score, summary, first_ts, last_ts, alerts, created_at, updated_at)
         VALUES(?1, ?2, 'open', ?3, ?4, ?5, ?6, ?6, 0, ?7, ?7)",
        params![kind_str(kind), id, detector, score, summary, ts, now],
    )?;
    Ok(tx.last_insert_rowid())
}

fn timeline(
    tx: &Connection,
    incident: i64,
    at: i64,
    action: &str,
    by: &str,
    note: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO timeline(incident_id, at, action, by, note) VALUES(?1, ?2, ?3, ?4, ?5)",
        params![incident, at, action, by, note],
    )?;
    Ok(())
}

/// Merge an alert into its entity's open incident (or open one) and contain automatically when
/// the policy says so. True when the containment set changed.
fn on_alert(
    tx: &Connection,
    set: &mut Set,
    a: &detect::Alert,
    now: i64,
    policy: &super::ContainmentConfig,
    shared: &Shared,
) -> Result<bool> {
    let kind = a.entity.kind;
    let id = a.entity.id.as_str();
    let ts = a.ts.rfc3339();
    let inc = match find_open(tx, kind, id)? {
        Some((i, _)) => i,
        None => {
            let i = new_incident(
                tx,
                kind,
                id,
                a.detector.as_str(),
                a.score,
                &a.summary,
                &ts,
                now,
            )?;
            timeline(tx, i, now, "opened", a.detector.as_str(), &a.summary)?;
            shared.metrics.incidents_opened.inc();
            i
        }
    };
    let n: i64 = tx.query_row("SELECT alerts FROM incidents WHERE id=?1", [inc], |r| {
        r.get(0)
    })?;
    if n < MAX_ALERTS_PER_INCIDENT {
        tx.execute(
            "INSERT INTO alerts(incident_id, ts, detector, score, summary, json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![inc, ts, a.detector.as_str(), a.score, a.summary, serde_json::to_string(a)?],
        )?;
    }
    tx.execute(
        "UPDATE incidents SET alerts=alerts+1, last_ts=?2, score=max(score, ?3), summary=?4, updated_at=?5 WHERE id=?1",
        params![inc, ts, a.score, a.summary, now],
    )?;
    let contained = set.get(kind, id).is_some_and(|e| e.active(now));
    let closed = operator_closed_at(tx, kind, id)?;
    let until = match incident::auto_contain(&policy.policy(), a, now, contained, closed) {
        AutoVerdict::Contain { until } => until,
        AutoVerdict::NotWanted | AutoVerdict::AlreadyContained | AutoVerdict::OperatorDecided => {
            return Ok(false)
        }
    };
    let secs = until.map(|u| u - now);
    contain(
        tx,
        set,
        inc,
        kind,
        id,
        secs,
        Actor::Auto.name(),
        &a.summary,
        now,
        policy.action,
    )?;
    shared.metrics.containments.inc();
    warn!(entity = %a.entity, incident = inc, detector = a.detector.as_str(), score = a.score, "contained");
    Ok(true)
}

/// When an operator last released or dismissed an incident of this entity (expiry is no
/// operator's decision).
fn operator_closed_at(tx: &Connection, kind: EntityKind, id: &str) -> Result<Option<i64>> {
    let mut st = tx.prepare_cached(
        "SELECT state_by, state_at FROM incidents WHERE entity_kind=?1 AND entity_id=?2
         AND state IN ('released','dismissed') AND state_by IS NOT NULL AND state_at IS NOT NULL",
    )?;
    let rows = st.query_map(params![kind_str(kind), id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut last = None;
    for r in rows {
        let (by, at) = r?;
        if Actor::parse(&by).is_operator() {
            last = last.max(Some(at));
        }
    }
    Ok(last)
}

#[allow(clippy::too_many_arguments)]
fn contain(
    tx: &Connection,
    set: &mut Set,
    inc: i64,
    kind: EntityKind,
    id: &str,
    secs: Option<i64>,
    by: &str,
    reason: &str,
    now: i64,
    action: PolicyAction,
) -> Result<()> {
    let until = secs.map(|s| now + s);
    tx.execute(
        "INSERT INTO containment(entity_kind, entity_id, incident_id, action, since, until, by, reason)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(entity_kind, entity_id) DO UPDATE SET incident_id=?3, action=?4, since=?5, until=?6, by=?7, reason=?8",
        params![kind_str(kind), id, inc, action.as_str(), now, until, by, reason],
    )?;
    tx.execute(
        "UPDATE incidents SET state='contained', state_by=?2, state_at=?3, updated_at=?3 WHERE id=?1",
        params![inc, by, now],
    )?;
    let mut note = match until {
        Some(u) => format!(
            "{} until {}",
            action.as_str(),
            maillog::Ts::from_secs(u).rfc3339()
        ),
        None => format!("{} until released", action.as_str()),
    };
    if !reason.is_empty() {
        note.push_str(": ");
        note.push_str(reason);
    }
    timeline(tx, inc, now, "contained", by, &note)?;
    set.insert(Entry {
        kind,
        id: id.to_string(),
        incident: inc,
        action,
        since: now,
        until,
        by: by.to_string(),
        reason: reason.to_string(),
    });
    Ok(())
}

fn release(tx: &Connection, e: &Entry, state: State, by: &str, note: &str, now: i64) -> Result<()> {
    let state = state.as_str();
    tx.execute(
        "DELETE FROM containment WHERE entity_kind=?1 AND entity_id=?2",
        params![kind_str(e.kind), e.id],
    )?;
    tx.execute(
        "UPDATE incidents SET state=?2, state_by=?3, state_at=?4, updated_at=?4 WHERE id=?1 AND state IN ('open','contained')",
        params![e.incident, state, by, now],
    )?;
    timeline(tx, e.incident, now, state, by, note)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn act(
    tx: &Connection,
    set: &mut Set,
    incident: i64,
    action: Action,
    secs: Option<i64>,
    by: &str,
    note: &str,
    now: i64,
    policy_action: PolicyAction,
) -> Result<bool> {
    let (k, id, state): (String, String, String) = tx
        .query_row(
            "SELECT entity_kind, entity_id, state FROM incidents WHERE id=?1",
            [incident],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| anyhow!("no incident {incident}"))?;
    let kind = parse_kind(&k).ok_or_else(|| anyhow!("bad entity kind {k}"))?;
    let state = State::parse(&state).ok_or_else(|| anyhow!("bad incident state {state}"))?;
    let entry = set
        .get(kind, &id)
        .filter(|e| e.incident == incident)
        .cloned();
    let t = incident::command(state, kind, action, entry.is_some()).map_err(|r| match r {
        Refusal::NotContained => anyhow!("incident {incident} {r}"),
        Refusal::CampaignNotContainable => anyhow!("{r}"),
    })?;
    if t.reopen {
        tx.execute("UPDATE incidents SET state='open' WHERE id=?1", [incident])?;
        timeline(tx, incident, now, Step::Reopened.as_str(), by, note)?;
    }
    if t.contain {
        contain(
            tx,
            set,
            incident,
            kind,
            &id,
            secs,
            by,
            note,
            now,
            policy_action,
        )?;
        return Ok(true);
    }
    match entry.filter(|_| t.lift) {
        Some(e) => {
            set.remove(kind, &id);
            release(tx, &e, t.state, by, note, now)?;
            Ok(true)
        }
        None => {
            tx.execute(
                "UPDATE incidents SET state=?2, state_by=?3, state_at=?4, updated_at=?4 WHERE id=?1",
                params![incident, t.state.as_str(), by, now],
            )?;
            timeline(tx, incident, now, t.step.as_str(), by, note)?;
            Ok(false)
        }
    }
}

/// A `FilePos` from `path, dev, ino, pos, fingerprint`.
fn file_pos(r: &rusqlite::Row<'_>) -> rusqlite::Result<FilePos> {
    Ok(FilePos {
        path: r.get(0)?,
        dev: r.get::<_, i64>(1)? as u64,
        ino: r.get::<_, i64>(2)? as u64,
        pos: r.get::<_, i64>(3)? as u64,
        fp: r.get(4)?,
    })
}

/// The checkpoint replaces the last one, with its positions, in the caller's transaction. A
/// position of a file not in this checkpoint (no longer followed) is kept: it is only read for
/// a path that is followed again, and then it is that file's last known state.
fn save_checkpoint(tx: &Connection, c: &Checkpoint, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO checkpoint(id, version, engine, next_sweep, taken_at)
         VALUES(1, ?1, ?2, ?3, ?4)",
        params![detect::snapshot::VERSION, c.engine, c.next_sweep, now],
    )?;
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO checkpoint_positions(path, dev, ino, pos, fingerprint)
         VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in &c.positions {
        st.execute(params![
            p.path,
            p.dev as i64,
            p.ino as i64,
            p.pos as i64,
            p.fp
        ])?;
    }
    Ok(())
}

fn save_baselines(tx: &Connection, mut v: serde_json::Value, now: i64) -> Result<()> {
    let list = v
        .get_mut("baselines")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    // Upsert only: a baseline missing from the snapshot was evicted from the engine's memory,
    // not forgotten by the account; deleting it would lose what was learned.
    if let serde_json::Value::Array(items) = list {
        let mut st = tx.prepare_cached(
            "INSERT OR REPLACE INTO baselines(account, value, updated_at) VALUES(?1, ?2, ?3)",
        )?;
        for it in items {
            if let (Some(a), Some(b)) = (it.get(0).and_then(|x| x.as_str()), it.get(1)) {
                st.execute(params![a, b.to_string(), now])?;
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("baselines");
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('baselines', ?1)",
        [v.to_string()],
    )?;
    Ok(())
}

// ---- queries (HTTP API) ----

/// An incident row.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// Id.
    pub id: i64,
    /// Entity kind.
    pub entity_kind: String,
    /// Entity id.
    pub entity_id: String,
    /// open, contained, released, dismissed.
    pub state: String,
    /// First detector.
    pub detector: String,
    /// Highest score.
    pub score: f64,
    /// Latest summary.
    pub summary: String,
    /// First alert's event time.
    pub first_ts: String,
    /// Latest alert's event time.
    pub last_ts: String,
    /// Alerts merged.
    pub alerts: i64,
    /// Opened (unix seconds).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Who changed the state last.
    pub state_by: Option<String>,
}

/// A stored alert.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAlert {
    /// Event time.
    pub ts: String,
    /// Detector.
    pub detector: String,
    /// Score.
    pub score: f64,
    /// Summary.
    pub summary: String,
    /// The full alert JSON.
    pub alert: serde_json::Value,
}

/// A timeline entry.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    /// What.
    pub action: String,
    /// Who.
    pub by: String,
    /// Note.
    pub note: String,
}

const INCIDENT_COLS: &str = "id, entity_kind, entity_id, state, detector, score, summary, first_ts, last_ts, alerts, created_at, updated_at, state_by";

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        entity_kind: r.get(1)?,
        entity_id: r.get(2)?,
        state: r.get(3)?,
        detector: r.get(4)?,
        score: r.get(5)?,
        summary: r.get(6)?,
        first_ts: r.get(7)?,
        last_ts: r.get(8)?,
        alerts: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        state_by: r.get(12)?,
    })
}

/// Incidents, newest change first; `state` filters, `q` searches entity and summary.
pub fn list_incidents(
    c: &Connection,
    state: Option<&str>,
    q: Option<&str>,
    limit: i64,
) -> Result<Vec<Incident>> {
    let like = q.map(|q| format!("%{}%", q.replace(['%', '_'], "")));
    let sql = format!(
        "SELECT {INCIDENT_COLS} FROM incidents WHERE (?1 IS NULL OR state=?1)
         AND (?2 IS NULL OR entity_id LIKE ?2 OR summary LIKE ?2 OR detector LIKE ?2)
         ORDER BY updated_at DESC, id DESC LIMIT ?3"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params![state, like, limit], incident_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// An incident, its alerts and its timeline.
pub type Detail = (Incident, Vec<StoredAlert>, Vec<Event>);

/// One incident with its alerts and timeline.
pub fn get_incident(c: &Connection, id: i64) -> Result<Option<Detail>> {
    let inc = c
        .query_row(
            &format!("SELECT {INCIDENT_COLS} FROM incidents WHERE id=?1"),
            [id],
            incident_row,
        )
        .optional()?;
    let Some(inc) = inc else { return Ok(None) };
    let mut st = c.prepare(
        "SELECT ts, detector, score, summary, json FROM alerts WHERE incident_id=?1 ORDER BY id",
    )?;
    let alerts = st
        .query_map([id], |r| {
            let j: String = r.get(4)?;
            Ok(StoredAlert {
                ts: r.get(0)?,
                detector: r.get(1)?,
                score: r.get(2)?,
                summary: r.get(3)?,
                alert: serde_json::from_str(&j).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st =
        c.prepare("SELECT at, action, by, note FROM timeline WHERE incident_id=?1 ORDER BY id")?;
    let tl = st
        .query_map([id], |r| {
            Ok(Event {
                at: r.get(0)?,
                action: r.get(1)?,
                by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((inc, alerts, tl)))
}

/// Counts by state.
pub fn counts(c: &Connection) -> Result<Vec<(String, i64)>> {
    let mut st =
        c.prepare("SELECT state, count(*) FROM incidents GROUP BY state ORDER BY state")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        {
            let c = connect(&p).unwrap();
            let v: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v as usize, MIGRATIONS.len());
            c.execute("INSERT INTO meta(key, value) VALUES('x', 'y')", [])
                .unwrap();
        }
        let c = connect(&p).unwrap();
        let v: String = c
            .query_row("SELECT value FROM meta WHERE key='x'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "y");
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(connect(&p).unwrap_err().to_string().contains("newer"));
    }

    #[test]
    fn baselines_round_trip_through_rows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let mut s = Store::open(&p).unwrap();
        assert!(s.load_baselines().unwrap().is_none());
        let st = detect::State {
            version: 1,
            taken_at: 1_700_000_000,
            baselines: Vec::new(),
        };
        let tx = s.conn.transaction().unwrap();
        save_baselines(&tx, serde_json::to_value(&st).unwrap(), 5).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.load_baselines().unwrap(), Some(st));
    }

    #[test]
    fn a_checkpoint_replaces_the_last_one_with_its_positions() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("s.db")).unwrap();
        assert!(s.load_checkpoint().unwrap().is_none());
        let pos = |path: &str, at: u64| FilePos {
            path: path.into(),
            dev: 1,
            ino: 2,
            pos: at,
            fp: b"Nov 24".to_vec(),
        };
        for (engine, at) in [(b"first".to_vec(), 10), (b"second".to_vec(), 20)] {
            let cp = Checkpoint {
                engine,
                next_sweep: Some(at as i64),
                positions: vec![pos("/var/log/mail.log", at), pos("/var/log/b.log", at + 1)],
            };
            let tx = s.conn.transaction().unwrap();
            save_checkpoint(&tx, &cp, 5).unwrap();
            tx.commit().unwrap();
            let mut got = s.load_checkpoint().unwrap().unwrap();
            got.positions.sort_by(|a, b| b.path.cmp(&a.path));
            assert_eq!(got, cp);
        }
    }
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;
    use crate::serve::{ContainmentConfig, Live, Mode};
    use detect::{Alert, Detector, Entity};

    fn shared(path: &Path, containment: ContainmentConfig) -> Arc<Shared> {
        let (engine_tx, _) = tokio::sync::mpsc::channel(1);
        let (store_tx, _) = std::sync::mpsc::sync_channel(1);
        Arc::new(Shared {
            metrics: Default::default(),
            contained: arc_swap::ArcSwap::from_pointee(Set::default()),
            live: arc_swap::ArcSwap::from_pointee(Live {
                mode: Mode::Enforce,
                containment,
                token: String::new(),
            }),
            engine_tx,
            store_tx,
            store_path: path.to_path_buf(),
            started: std::time::Instant::now(),
        })
    }

    fn alert(det: Detector, kind: EntityKind, id: &str, score: f64) -> Alert {
        Alert {
            ts: maillog::Ts::from_secs(1_795_000_000),
            detector: det,
            entity: Entity::new(kind, id),
            score,
            summary: format!("{det} on {id}"),
            evidence: serde_json::json!({"n": 1}),
        }
    }

    fn commit(s: &mut Store, sh: &Shared, alerts: Vec<Alert>) -> bool {
        s.apply(&mut vec![Cmd::Commit { alerts, pos: None }], sh)
            .unwrap()
    }

    fn act(s: &mut Store, sh: &Shared, incident: i64, action: Action) -> Result<i64, String> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        s.apply(
            &mut vec![Cmd::Act {
                incident,
                action,
                secs: None,
                by: "op".into(),
                note: "n".into(),
                reply: tx,
            }],
            sh,
        )
        .unwrap();
        rx.try_recv().unwrap()
    }

    #[test]
    fn policy_merging_rearm_expiry_and_retention() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let policy = ContainmentConfig {
            detectors: vec!["auth-hijack".into()],
            min_score: 0.9,
            ..ContainmentConfig::default()
        };
        let sh = shared(&p, policy);
        let mut s = Store::open(&p).unwrap();
        // Below the score, or another detector: an open incident, no containment.
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(Detector::AuthHijack, EntityKind::Account, "a@x", 0.5)]
        ));
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::HeloAnomaly,
                EntityKind::Client,
                "192.0.2.1",
                0.99
            )]
        ));
        // Contained; later alerts merge into the same incident.
        assert!(commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "a@x",
                0.95
            )]
        ));
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "A@X",
                0.97
            )]
        ));
        let c = reader(&p).unwrap();
        let list = list_incidents(&c, None, None, 10).unwrap();
        assert_eq!(list.len(), 3, "a@x, A@X (ids are kept as given), 192.0.2.1");
        let ax = list.iter().find(|i| i.entity_id == "a@x").unwrap();
        assert_eq!(
            (ax.state.as_str(), ax.alerts, ax.score),
            ("contained", 2, 0.95)
        );
        let e = s.set.get(EntityKind::Account, "a@x").unwrap();
        assert_eq!(e.until, Some(e.since + 4 * 3600));
        assert_eq!(sh.metrics.containments.get(), 1);
        // Released by hand: no automatic re-containment within `rearm`.
        act(&mut s, &sh, ax.id, Action::Release).unwrap();
        assert!(s.set.get(EntityKind::Account, "a@x").is_none());
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "a@x",
                0.99
            )]
        ));
        let list = list_incidents(&c, Some("open"), Some("a@x"), 10).unwrap();
        assert_eq!(list.len(), 2, "a new incident opened (and A@X's)");
        // Releasing what is not contained is refused; dismissing works.
        let new = list.iter().find(|i| i.entity_id == "a@x").unwrap().id;
        assert!(act(&mut s, &sh, new, Action::Release).is_err());
        act(&mut s, &sh, new, Action::Dismiss).unwrap();
        assert!(act(&mut s, &sh, 999, Action::Contain).is_err());
        // Expiry: make the containment of another entity end in the past.
        let (tx, _rx) = tokio::sync::oneshot::channel();
        s.apply(
            &mut vec![Cmd::ContainEntity {
                kind: EntityKind::Client,
                id: "192.0.2.9".into(),
                secs: Some(60),
                by: "op".into(),
                note: "".into(),
                reply: tx,
            }],
            &sh,
        )
        .unwrap();
        s.conn
            .execute("UPDATE containment SET until = 1", [])
            .unwrap();
        s.set = s.load_containment().unwrap();
        assert!(s.apply(&mut vec![Cmd::Expire], &sh).unwrap());
        assert!(s.set.is_empty());
        let tl = get_incident(
            &c,
            list_incidents(&c, None, Some("192.0.2.9"), 1).unwrap()[0].id,
        )
        .unwrap()
        .unwrap()
        .2;
        assert_eq!(
            tl.last().map(|e| (e.action.as_str(), e.by.as_str())),
            Some(("released", "expiry"))
        );
        // Retention: closed incidents older than the limit go, with their alerts.
        s.conn
            .execute(
                "UPDATE incidents SET updated_at = 0 WHERE state IN ('released','dismissed')",
                [],
            )
            .unwrap();
        s.apply(&mut vec![Cmd::Retention(86_400)], &sh).unwrap();
        let left: Vec<String> = list_incidents(&c, None, None, 10)
            .unwrap()
            .into_iter()
            .map(|i| i.state)
            .collect();
        assert_eq!(left, ["open", "open"]);
        let orphans: i64 = c
            .query_row(
                "SELECT count(*) FROM alerts WHERE incident_id NOT IN (SELECT id FROM incidents)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }
}
