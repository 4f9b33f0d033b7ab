//! The alert sink's logic without I/O (issue 13): which alerts of the stream it stores, the
//! campaigns it correlates over them ([`Campaigns`]), and what it writes to its store at each
//! step ([`SinkCommit`]) so that, started again, it goes on as if it had not stopped:
//!
//! - an alert is acknowledged only once its step is committed; the message ids of the last
//!   [`SINK_IDS`] alerts stored are read back at start, so an alert delivered again (its
//!   acknowledgement lost, or the sink stopped before sending it) is stored once;
//! - the correlator's snapshot is written with every step that correlated something, and the
//!   `auth-hijack` alerts it holds are kept whole in the store until they are correlated; at
//!   start the snapshot is restored and the held alerts are offered again, in the order they
//!   were stored, each held `campaign_hold` again from the restart;
//! - the campaign alerts of a step are stored in the same transaction as the correlator state
//!   that raised them, under a deterministic id ([`campaign_id`]).
//!
//! [`super::nats::sink`] runs it on the stream; the tests drive it with the real store.

use std::collections::{BTreeMap, HashSet, VecDeque};

use anyhow::Result;
use detect::campaign::Arrival;
use tracing::warn;

use super::Campaigns;
use crate::serve::store::{Hold, SinkAlert, SinkCommit, SinkRows, SINK_IDS};

/// What the sink does with an alert of the stream.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Its id was stored before: acknowledge it, store nothing.
    Duplicate,
    /// A partition's own (partial) campaign alert, from a worker of an older version: the
    /// sink's correlation stands for it. Acknowledge it, store nothing.
    PartitionCampaign,
    /// Store this (one transaction), then acknowledge the alert.
    Store(SinkCommit),
}

/// How the correlation was rebuilt at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// Restored from its snapshot.
    Restored,
    /// No snapshot in the store: this sink never correlated anything.
    Fresh,
    /// The snapshot was refused (another snapshot format version, or corrupt): correlation
    /// starts empty, as the engine does with a refused checkpoint.
    Refused(String),
}

/// The id under which a campaign alert the sink raised is stored: the campaign and its size.
/// Deterministic, and unique, since a campaign is alerted again only when it has grown.
pub fn campaign_id(a: &detect::Alert) -> String {
    format!("campaign:{}:{}", a.entity.id, a.evidence["accounts_total"])
}

/// The alert sink's state.
pub struct Sink {
    seen: Seen,
    campaigns: Campaigns,
    /// Arrival number (in the correlator) -> message id of the `auth-hijack` alerts it holds.
    held: BTreeMap<u64, String>,
    /// What the rebuild computed and no commit carried yet.
    pending: SinkCommit,
}

impl Sink {
    /// A sink that never stored anything, holding each `auth-hijack` alert `hold_secs`.
    pub fn new(cfg: detect::Config, hold_secs: u64) -> Sink {
        Sink {
            seen: Seen::default(),
            campaigns: Campaigns::new(cfg, hold_secs),
            held: BTreeMap::new(),
            pending: SinkCommit::default(),
        }
    }

    /// The sink as its store left it ([`crate::serve::store::load_sink`]), at `now_ms` on the
    /// caller's clock: the ids it stored, the correlation restored, and the alerts it held
    /// offered again (held `hold_secs` from now).
    pub fn rebuild(
        cfg: detect::Config,
        hold_secs: u64,
        rows: SinkRows,
        now_ms: u64,
    ) -> Result<(Sink, Rebuilt)> {
        let (campaigns, rebuilt) = match &rows.correlator {
            None => (Campaigns::new(cfg, hold_secs), Rebuilt::Fresh),
            Some(b) => match Campaigns::restore(cfg.clone(), hold_secs, b) {
                Ok(c) => (c, Rebuilt::Restored),
                Err(e) => (
                    Campaigns::new(cfg, hold_secs),
                    Rebuilt::Refused(format!("{e:#}")),
                ),
            },
        };
        let mut s = Sink {
            seen: Seen::default(),
            campaigns,
            held: BTreeMap::new(),
            pending: SinkCommit::default(),
        };
        for id in &rows.ids {
            s.seen.insert(id);
        }
        let mut out = Vec::new();
        let mut c = SinkCommit::default();
        for (id, a) in rows.held {
            match s.campaigns.push(&a, now_ms, &mut out) {
                Arrival::Ignored => c.correlated.push(id),
                Arrival::Held | Arrival::Late => {
                    s.held.insert(s.campaigns.arrivals(), id);
                }
            }
        }
        // A refused snapshot is replaced by the fresh correlation's.
        s.settle(out, &mut c, matches!(rebuilt, Rebuilt::Refused(_)))?;
        s.pending = c;
        Ok((s, rebuilt))
    }

    /// An alert of the stream with message id `id` arrived at `now_ms`.
    pub fn offer(&mut self, id: &str, a: detect::Alert, now_ms: u64) -> Result<Offer> {
        if self.seen.contains(id) {
            return Ok(Offer::Duplicate);
        }
        if a.detector == detect::Detector::Campaign {
            return Ok(Offer::PartitionCampaign);
        }
        let mut c = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        let arrival = self.campaigns.push(&a, now_ms, &mut out);
        let hold = match arrival {
            Arrival::Ignored => Hold::Done,
            Arrival::Held | Arrival::Late => {
                self.held.insert(self.campaigns.arrivals(), id.to_string());
                Hold::Held
            }
        };
        if arrival == Arrival::Late {
            warn!(account = %a.entity.id, ts = %a.ts.rfc3339(), held = self.campaigns.held(),
                "auth-hijack alert later than campaign_hold: campaigns correlated out of event-time order");
        }
        c.alerts.push(SinkAlert {
            id: id.to_string(),
            alert: a,
            hold,
        });
        self.settle(out, &mut c, arrival == Arrival::Late)?;
        Ok(Offer::Store(c))
    }

    /// The clock moved to `now_ms`: what to store, if anything (campaign alerts due).
    pub fn tick(&mut self, now_ms: u64) -> Result<Option<SinkCommit>> {
        let mut c = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        self.campaigns.tick(now_ms, &mut out);
        self.settle(out, &mut c, false)?;
        Ok((!c.is_empty()).then_some(c))
    }

    /// `c` is committed: its ids are stored.
    pub fn stored(&mut self, c: &SinkCommit) {
        for a in &c.alerts {
            self.seen.insert(&a.id);
        }
    }

    /// `auth-hijack` alerts held now.
    pub fn held(&self) -> usize {
        self.campaigns.held()
    }

    /// Into `c`: the held alerts the correlator has correlated, its campaign alerts `out`, and
    /// its snapshot when it changed (something correlated, or `changed`).
    fn settle(&mut self, out: Vec<detect::Alert>, c: &mut SinkCommit, changed: bool) -> Result<()> {
        let still: HashSet<u64> = self.campaigns.held_arrivals().collect();
        let done: Vec<u64> = self
            .held
            .keys()
            .filter(|n| !still.contains(n))
            .copied()
            .collect();
        let moved = changed || !done.is_empty();
        for n in done {
            let Some(id) = self.held.remove(&n) else {
                continue;
            };
            match c.alerts.iter_mut().find(|a| a.id == id) {
                // Held and correlated within this step: stored as done.
                Some(a) => a.hold = Hold::Done,
                None => c.correlated.push(id),
            }
        }
        for a in out {
            c.alerts.push(SinkAlert {
                id: campaign_id(&a),
                alert: a,
                hold: Hold::Done,
            });
        }
        if moved {
            c.correlator = Some(self.campaigns.snapshot()?);
        }
        Ok(())
    }
}

/// Alert message ids the sink has stored, the last [`SINK_IDS`] of them: the server delivers
/// an alert again when the sink's acknowledgement was lost (a server lost, the consumer's
/// leader moving, the sink stopped), and it must not be stored twice.
#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Remember `id` (the oldest is forgotten beyond [`SINK_IDS`]).
    fn insert(&mut self, id: &str) {
        if !self.ids.insert(id.to_string()) {
            return;
        }
        if self.order.len() >= SINK_IDS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_oldest_first() {
        let mut s = Seen::default();
        s.insert("3-e0-1-17-0");
        s.insert("3-e0-1-17-1");
        s.insert("3-e0-1-17-0");
        assert!(s.contains("3-e0-1-17-0"));
        assert_eq!(s.order.len(), 2);
        for i in 0..SINK_IDS - 1 {
            s.insert(&format!("x{i}"));
        }
        assert_eq!(s.ids.len(), SINK_IDS);
        assert!(!s.contains("3-e0-1-17-0"), "the oldest is forgotten");
        assert!(s.contains("3-e0-1-17-1"));
        assert!(s.contains(&format!("x{}", SINK_IDS - 2)));
    }
}
