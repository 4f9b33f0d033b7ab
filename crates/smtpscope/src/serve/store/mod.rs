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

mod baselines;
mod checkpoint;
mod incidents;
mod queries;
mod schema;
mod sink;

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use detect::incident::{self, Actor, State};
use detect::EntityKind;
use rusqlite::{params, Connection};
use tracing::{error, info};

use super::contain::Set;
use super::held::{Op, Outcome, Source};
use super::{now_secs, Shared};

pub use checkpoint::{Checkpoint, FilePos};
pub use queries::{
    account_alerts, counts, get_incident, held_ids, list_incidents, Detail, Event, HeldId,
    Incident, StoredAlert,
};
pub use schema::{connect, reader};
pub use sink::{load_sink, Hold, SinkAlert, SinkCommit, SinkReply, SinkRows, SINK_IDS};

/// Alerts kept per incident as evidence (the count goes on).
pub const MAX_ALERTS_PER_INCIDENT: i64 = incident::MAX_ALERTS_PER_INCIDENT as i64;
/// Most commands written in one transaction.
const MAX_BATCH: usize = 1024;

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
    /// A queue id Postfix held for an incident's containment.
    Held {
        /// Incident.
        incident: i64,
        /// Queue id (checked by `held::valid_queue_id`).
        qid: String,
        /// Where it was learnt.
        source: Source,
    },
    /// A hold-queue action was carried out (or, in observe mode, only shown): its timeline
    /// entry, and the queue ids' new state when it succeeded.
    HeldDone {
        /// Incident.
        incident: i64,
        /// What.
        op: Op,
        /// The queue ids it was run for.
        ids: Vec<String>,
        /// The command line as shown.
        command: String,
        /// What it did; None when it was not run (observe mode).
        outcome: Option<Outcome>,
        /// Who.
        by: String,
        /// Why.
        note: String,
        /// Answer (the incident id).
        reply: Reply,
    },
    /// One step of the cluster sink (its alerts, the correlator's state), answered once
    /// committed.
    Sink {
        /// What to write.
        commit: SinkCommit,
        /// Answer.
        reply: SinkReply,
    },
    /// Flush and stop.
    Shutdown,
}

/// The writer's connection and its copy of the containment set.
pub struct Store {
    conn: Connection,
    set: Set,
}

/// An entity kind as stored.
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
            // `apply` publishes a changed containment set itself, before it answers.
            if let Err(e) = self.apply(&mut batch, shared) {
                shared.metrics.store_errors.inc();
                error!("store write failed: {e:#}");
                // Reload the truth from disk.
                if let Ok(s) = self.load_containment() {
                    self.set = s;
                }
                shared.contained.store(Arc::new(self.set.clone()));
            }
            if stop {
                let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                info!("store closed");
                return;
            }
        }
    }

    /// Apply a batch in one transaction; true when the containment set changed. A changed set
    /// is published to the policy server before any command's reply is sent, so that an
    /// operator's "contain" has taken effect when the API answers.
    fn apply(&mut self, batch: &mut Vec<Cmd>, shared: &Shared) -> Result<bool> {
        let now = now_secs();
        let live = shared.live.load();
        let mut changed = false;
        let mut replies: Vec<(Reply, Result<i64, String>)> = Vec::new();
        let mut sink_replies: Vec<(SinkReply, Vec<bool>)> = Vec::new();
        let tx = self.conn.transaction()?;
        let mut set = std::mem::take(&mut self.set);
        let res: Result<()> = (|| {
            for cmd in batch.drain(..) {
                match cmd {
                    Cmd::Commit { alerts, pos } => {
                        for a in &alerts {
                            changed |= incidents::on_alert(
                                &tx,
                                &mut set,
                                a,
                                now,
                                &live.containment,
                                shared,
                            )?;
                        }
                        if let Some(p) = pos {
                            checkpoint::save_position(&tx, &p, now)?;
                        }
                    }
                    Cmd::Baselines(v) => baselines::save_baselines(&tx, v, now)?,
                    Cmd::Checkpoint(c) => checkpoint::save_checkpoint(&tx, &c, now)?,
                    Cmd::Expire => {
                        for (k, id) in set.expired(now) {
                            if let Some(e) = set.remove(k, &id) {
                                incidents::release(
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
                        let r = incidents::act(
                            &tx,
                            &mut set,
                            incident,
                            action,
                            secs,
                            &by,
                            &note,
                            now,
                            live.containment.action,
                            live.mode,
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
                        let r = incidents::contain_entity(
                            &tx,
                            &mut set,
                            kind,
                            &id,
                            secs,
                            &by,
                            &note,
                            now,
                            live.containment.action,
                            live.mode,
                        );
                        if r.is_ok() {
                            changed = true;
                            shared.metrics.containments.inc();
                        }
                        replies.push((reply, r.map_err(|e| e.to_string())));
                    }
                    Cmd::Held {
                        incident,
                        qid,
                        source,
                    } => {
                        if incidents::add_held(&tx, incident, &qid, source, now)? {
                            shared.metrics.held_recorded.inc();
                        } else {
                            shared.metrics.held_dropped.inc();
                        }
                    }
                    Cmd::HeldDone {
                        incident,
                        op,
                        ids,
                        command,
                        outcome,
                        by,
                        note,
                        reply,
                    } => {
                        incidents::held_done(
                            &tx,
                            incident,
                            op,
                            &ids,
                            &command,
                            outcome.as_ref(),
                            &by,
                            &note,
                            now,
                        )?;
                        replies.push((reply, Ok(incident)));
                    }
                    Cmd::Sink { commit, reply } => {
                        let (ch, stored) =
                            sink::commit(&tx, &mut set, &commit, now, &live.containment, shared)?;
                        changed |= ch;
                        sink_replies.push((reply, stored));
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
                if changed {
                    shared.contained.store(Arc::new(self.set.clone()));
                }
                for (r, v) in replies {
                    let _ = r.send(v);
                }
                for (r, v) in sink_replies {
                    let _ = r.send(Ok(v));
                }
                Ok(changed)
            }
            Err(e) => {
                drop(tx);
                for (r, _) in replies {
                    let _ = r.send(Err(format!("store error: {e}")));
                }
                for (r, _) in sink_replies {
                    let _ = r.send(Err(format!("store error: {e}")));
                }
                Err(e)
            }
        }
    }
}

/// A `Shared` for the store's tests (its channels lead nowhere).
#[cfg(test)]
pub(crate) fn test_shared(path: &Path, containment: super::ContainmentConfig) -> Arc<Shared> {
    let (engine_tx, _) = tokio::sync::mpsc::channel(1);
    let (store_tx, _) = std::sync::mpsc::sync_channel(1);
    Arc::new(Shared {
        metrics: Default::default(),
        contained: arc_swap::ArcSwap::from_pointee(Set::default()),
        live: arc_swap::ArcSwap::from_pointee(super::Live {
            mode: super::Mode::Enforce,
            containment,
            token: String::new(),
        }),
        engine_tx,
        policy_inbox: crate::serve::policy::Inbox::new(1),
        store_tx,
        store_path: path.to_path_buf(),
        started: std::time::Instant::now(),
        seen: Default::default(),
        geo: detect::GeoRef::Builtin,
    })
}
