//! The cluster sink's durable state (issue 13): what it needs to go on after its own restart
//! as if it had not stopped.
//!
//! - `sink_alerts`: the message id of every alert the sink stored (the last
//!   [`SINK_IDS`] of them kept), so that an alert delivered again after a restart is stored
//!   once; and, for the `auth-hijack` alerts the campaign correlator holds, the alert itself
//!   (cleared once correlated), so that a held alert, already acknowledged, is not lost.
//! - `sink_correlator`: the correlator's snapshot (what it has correlated).
//!
//! One step of the sink (an alert received, the campaign alerts it released, the correlator's
//! new state) is one transaction ([`SinkCommit`]); the sink acknowledges the alert only once
//! that transaction is committed.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};

use super::super::contain::Set;
use super::super::{ContainmentConfig, Shared};
use super::incidents;

/// How many alert message ids the sink remembers, in its store and in memory: an alert
/// delivered again whose id is among them is stored once. Alerts are rare (a day of the test
/// has 45), and an alert is delivered again only until its acknowledgement reached the server
/// (seconds, or the consumer's acknowledgement wait after a sink's restart).
pub const SINK_IDS: usize = 100_000;

/// Whether the campaign correlator holds an alert the sink stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// An `auth-hijack` alert the correlator holds (not yet correlated): kept whole until it is.
    Held,
    /// Any other alert, or one already correlated.
    Done,
}

/// An alert the sink stores, under its message id.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkAlert {
    /// The message id (`Nats-Msg-Id`) of an alert of the stream; for a campaign alert the sink
    /// raised, its own deterministic id.
    pub id: String,
    /// The alert.
    pub alert: detect::Alert,
    /// Held by the correlator?
    pub hold: Hold,
}

/// One step of the sink, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkCommit {
    /// Alerts to store (with their incidents, as any alert).
    pub alerts: Vec<SinkAlert>,
    /// Ids of held alerts (stored before) the correlator has correlated since.
    pub correlated: Vec<String>,
    /// The correlator's snapshot after this step, when it changed.
    pub correlator: Option<Vec<u8>>,
}

impl SinkCommit {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.correlated.is_empty() && self.correlator.is_none()
    }
}

/// The answer to a [`SinkCommit`]: per alert, in order, true when stored, false when its id
/// was stored before (not stored again).
pub type SinkReply = tokio::sync::oneshot::Sender<Result<Vec<bool>, String>>;

/// What the store holds of the sink's state, read when the sink starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkRows {
    /// The message ids of the last [`SINK_IDS`] alerts stored, oldest first.
    pub ids: Vec<String>,
    /// The correlator's last snapshot.
    pub correlator: Option<Vec<u8>>,
    /// The alerts the correlator held, in the order they were stored, with their ids.
    pub held: Vec<(String, detect::Alert)>,
}

/// Read the sink's state: at most [`SINK_IDS`] ids, the correlator's snapshot and the held
/// alerts (those that arrived within `campaign_hold` before the sink stopped).
pub fn load_sink(conn: &Connection) -> Result<SinkRows> {
    let mut st = conn.prepare(
        "SELECT msg_id FROM (SELECT seq, msg_id FROM sink_alerts ORDER BY seq DESC LIMIT ?1)
         ORDER BY seq",
    )?;
    let ids = st
        .query_map([SINK_IDS as i64], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let correlator = conn
        .query_row("SELECT state FROM sink_correlator WHERE id = 1", [], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()?;
    let mut st =
        conn.prepare("SELECT msg_id, held FROM sink_alerts WHERE held IS NOT NULL ORDER BY seq")?;
    let mut held = Vec::new();
    for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, json) = row?;
        match crate::cluster::wire::decode_alert(json.as_bytes()) {
            Some(a) => held.push((id, a)),
            None => anyhow::bail!("held alert {id} in the store is not an alert"),
        }
    }
    Ok(SinkRows {
        ids,
        correlator,
        held,
    })
}

/// Write one step of the sink; per alert, whether it was stored (false: its id was stored
/// before). The flag is true when the containment set changed.
pub(super) fn commit(
    tx: &Connection,
    set: &mut Set,
    c: &SinkCommit,
    now: i64,
    policy: &ContainmentConfig,
    shared: &Shared,
) -> Result<(bool, Vec<bool>)> {
    let mut changed = false;
    let mut stored = Vec::with_capacity(c.alerts.len());
    for a in &c.alerts {
        let held = match a.hold {
            Hold::Held => Some(serde_json::to_string(&a.alert)?),
            Hold::Done => None,
        };
        let n = tx.execute(
            "INSERT INTO sink_alerts(msg_id, detector, ts, held, at) VALUES(?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(msg_id) DO NOTHING",
            params![
                a.id,
                a.alert.detector.as_str(),
                a.alert.ts.rfc3339(),
                held,
                now
            ],
        )?;
        if n == 1 {
            changed |= incidents::on_alert(tx, set, &a.alert, now, policy, shared)?;
        }
        stored.push(n == 1);
    }
    for id in &c.correlated {
        tx.execute(
            "UPDATE sink_alerts SET held = NULL WHERE msg_id = ?1",
            params![id],
        )?;
    }
    if let Some(state) = &c.correlator {
        tx.execute(
            "INSERT INTO sink_correlator(id, state, updated_at) VALUES(1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET state = ?1, updated_at = ?2",
            params![state, now],
        )?;
    }
    // The ids beyond the last SINK_IDS go (a held alert stays until it is correlated).
    tx.execute(
        "DELETE FROM sink_alerts WHERE held IS NULL
         AND seq <= (SELECT max(seq) FROM sink_alerts) - ?1",
        [SINK_IDS as i64],
    )?;
    Ok((changed, stored))
}

#[cfg(test)]
mod tests {
    use super::super::{reader, test_shared, Cmd, Store};
    use super::*;
    use crate::cluster::sink::{Offer, Rebuilt, Sink};
    use detect::{Alert, Detector, Entity, EntityKind};
    use maillog::Ts;
    use std::path::Path;

    /// `[cluster] campaign_hold` of these tests.
    const HOLD_SECS: u64 = 30;

    fn cfg() -> detect::Config {
        detect::Config::default()
    }

    /// A partition's `auth-hijack` alert on `account` at `secs`, from bots `ips` (10.0.0.x).
    fn hijack(secs: i64, account: &str, ips: &[u8]) -> Alert {
        Alert {
            ts: Ts::from_secs(1_700_000_000 + secs),
            detector: Detector::AuthHijack,
            entity: Entity::new(EntityKind::Account, account),
            score: 0.9,
            summary: format!("{account} hijacked"),
            evidence: serde_json::json!({
                "window_ips": ips.iter().map(|i| format!("10.0.0.{i}")).collect::<Vec<_>>(),
            }),
        }
    }

    fn helo(secs: i64) -> Alert {
        Alert {
            ts: Ts::from_secs(1_700_000_000 + secs),
            detector: Detector::HeloAnomaly,
            entity: Entity::new(EntityKind::Client, "192.0.2.7"),
            score: 0.7,
            summary: "odd HELO".into(),
            evidence: serde_json::json!({"helo": "x"}),
        }
    }

    /// Write a step as the NATS sink does (one transaction, answered once committed).
    fn write(st: &mut Store, sh: &Shared, c: &SinkCommit) -> Vec<bool> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        st.apply(
            &mut vec![Cmd::Sink {
                commit: c.clone(),
                reply: tx,
            }],
            sh,
        )
        .unwrap();
        rx.try_recv().unwrap().unwrap()
    }

    /// The sink as its store left it.
    fn restart(p: &Path, now_ms: u64) -> (Sink, Rebuilt) {
        let rows = load_sink(&reader(p).unwrap()).unwrap();
        Sink::rebuild(cfg(), HOLD_SECS, rows, now_ms).unwrap()
    }

    /// Every alert the store holds as evidence, in order, as JSON.
    fn stored_alerts(st: &Store) -> Vec<String> {
        let mut q = st
            .conn
            .prepare("SELECT json FROM alerts ORDER BY id")
            .unwrap();
        q.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn an_alert_delivered_again_after_a_restart_is_stored_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let sh = test_shared(&p, ContainmentConfig::default());
        let mut st = Store::open(&p).unwrap();
        let id = "0-e0-1-5-0";
        let mut sink = Sink::new(cfg(), HOLD_SECS);
        let Offer::Store(c) = sink.offer(id, helo(0), 0).unwrap() else {
            panic!("a new alert is stored");
        };
        assert_eq!(write(&mut st, &sh, &c), [true]);
        sink.stored(&c);
        assert_eq!(sink.offer(id, helo(0), 10).unwrap(), Offer::Duplicate);
        // Restarted: the id is read back from the store.
        let (mut sink, rebuilt) = restart(&p, 0);
        assert_eq!(rebuilt, Rebuilt::Fresh, "nothing correlated yet");
        assert_eq!(sink.offer(id, helo(0), 0).unwrap(), Offer::Duplicate);
        assert_eq!(stored_alerts(&st).len(), 1);
        // A sink without its memory of ids: the store refuses the id itself.
        let mut amnesic = Sink::new(cfg(), HOLD_SECS);
        let Offer::Store(c) = amnesic.offer(id, helo(0), 0).unwrap() else {
            panic!("it does not know the id");
        };
        assert_eq!(write(&mut st, &sh, &c), [false]);
        assert_eq!(stored_alerts(&st).len(), 1);
    }

    /// A step of the sink's life.
    #[derive(Clone)]
    enum Ev {
        /// An alert of the stream with its message id, arriving at (ms).
        Offer(&'static str, Alert, u64),
        /// The campaign timer at (ms).
        Tick(u64),
    }

    /// How the sink starts again at a restart.
    #[derive(Clone, Copy, PartialEq)]
    enum Restart {
        /// From its store.
        Rebuilt,
        /// Empty (what the sink did before issue 13's fix).
        Empty,
    }

    /// Run `evs` through a sink over a fresh store, restarting it before step `at` (the alert
    /// offered last before it is delivered again right after the restart: its
    /// acknowledgement was lost). The alerts the store holds, sorted.
    fn run(evs: &[Ev], restart_at: Option<(usize, Restart)>) -> Vec<String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let sh = test_shared(&p, ContainmentConfig::default());
        let mut st = Store::open(&p).unwrap();
        let mut sink = Sink::new(cfg(), HOLD_SECS);
        let mut last: Option<(&'static str, Alert)> = None;
        let mut now = 0;
        let step = |sink: &mut Sink, st: &mut Store, c: Option<SinkCommit>| {
            if let Some(c) = c {
                write(st, &sh, &c);
                sink.stored(&c);
            }
        };
        for (i, ev) in evs.iter().enumerate() {
            if let Some((_, how)) = restart_at.filter(|(k, _)| *k == i) {
                sink = match how {
                    Restart::Rebuilt => restart(&p, now).0,
                    Restart::Empty => Sink::new(cfg(), HOLD_SECS),
                };
                if let Some((id, a)) = last.clone() {
                    match sink.offer(id, a, now).unwrap() {
                        Offer::Store(c) => {
                            assert!(how == Restart::Empty, "{id} stored twice");
                            step(&mut sink, &mut st, Some(c));
                        }
                        o => assert_eq!(o, Offer::Duplicate),
                    }
                }
                let c = sink.tick(now).unwrap();
                step(&mut sink, &mut st, c);
            }
            match ev {
                Ev::Offer(id, a, at) => {
                    now = *at;
                    let Offer::Store(c) = sink.offer(id, a.clone(), *at).unwrap() else {
                        panic!("{id} is new");
                    };
                    step(&mut sink, &mut st, Some(c));
                    last = Some((id, a.clone()));
                }
                Ev::Tick(at) => {
                    now = *at;
                    let c = sink.tick(*at).unwrap();
                    step(&mut sink, &mut st, c);
                }
            }
        }
        let c = sink.tick(now + HOLD_SECS * 1000).unwrap();
        step(&mut sink, &mut st, c);
        assert_eq!(sink.held(), 0);
        let held: i64 = st
            .conn
            .query_row(
                "SELECT count(*) FROM sink_alerts WHERE held IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(held, 0, "every held alert correlated");
        // In their order of storage, but a restart may delay a campaign alert past the next
        // alert's arrival (its hijack alerts are held again from the restart).
        let mut v = stored_alerts(&st);
        v.sort();
        v
    }

    #[test]
    fn a_restarted_sink_joins_accounts_flagged_before_and_after_it_into_one_campaign() {
        let s = 1000;
        // Three accounts of one domain ten minutes apart (within `domain_window`), from other
        // bots each, arriving a minute after one another with a helo alert between them.
        let evs = vec![
            Ev::Offer("0-e0-1-10-0", hijack(0, "a@x.example", &[1, 2]), 0),
            Ev::Tick(10 * s),
            Ev::Tick(31 * s),
            Ev::Offer("1-e0-1-11-0", helo(300), 40 * s),
            Ev::Offer("1-e0-1-20-0", hijack(600, "b@x.example", &[7, 8]), 60 * s),
            Ev::Tick(70 * s),
            Ev::Tick(91 * s),
            Ev::Offer("0-e0-1-30-0", hijack(1200, "c@x.example", &[9]), 120 * s),
            Ev::Tick(151 * s),
        ];
        let want = run(&evs, None);
        let campaigns: Vec<serde_json::Value> = want
            .iter()
            .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap())
            .filter(|v| v["detector"] == "campaign")
            .collect();
        assert_eq!(campaigns.len(), 2, "{want:#?}");
        assert_eq!(campaigns[0]["entity"], campaigns[1]["entity"]);
        assert_eq!(campaigns[0]["evidence"]["accounts_total"], 2);
        assert_eq!(campaigns[1]["evidence"]["accounts_total"], 3);
        assert_eq!(want.len(), 6);
        for k in 1..evs.len() {
            let got = run(&evs, Some((k, Restart::Rebuilt)));
            assert_eq!(got, want, "restarted before step {k}");
        }
        // Restarting empty (no rebuild), the accounts before and after are not joined.
        let lost = run(&evs, Some((5, Restart::Empty)));
        assert_ne!(lost, want);
    }

    #[test]
    fn the_rebuild_reads_at_most_sink_ids_ids_and_the_held_alerts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let sh = test_shared(&p, ContainmentConfig::default());
        let mut st = Store::open(&p).unwrap();
        let mut sink = Sink::new(cfg(), HOLD_SECS);
        let Offer::Store(c) = sink
            .offer("h", hijack(0, "a@x.example", &[1, 2]), 0)
            .unwrap()
        else {
            panic!("new");
        };
        assert_eq!(c.alerts[0].hold, Hold::Held);
        write(&mut st, &sh, &c);
        // SINK_IDS + 10 older ids after it (without their incidents: only the ids matter).
        st.conn
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                 INSERT INTO sink_alerts(msg_id, detector, ts, held, at)
                 SELECT 'old-' || i, 'helo-anomaly', '2023-11-14T22:13:20Z', NULL, 0 FROM n",
                [SINK_IDS as i64 + 10],
            )
            .unwrap();
        let rows = load_sink(&reader(&p).unwrap()).unwrap();
        assert_eq!(rows.ids.len(), SINK_IDS);
        assert_eq!(rows.ids[0], "old-11");
        assert_eq!(rows.held.len(), 1);
        assert_eq!(rows.held[0].0, "h");
        assert_eq!(rows.correlator, None, "nothing correlated yet");
        // The next step forgets the ids beyond SINK_IDS; the held alert stays.
        let Offer::Store(c) = sink.offer("n", helo(1), 1).unwrap() else {
            panic!("new");
        };
        write(&mut st, &sh, &c);
        let n: i64 = st
            .conn
            .query_row("SELECT count(*) FROM sink_alerts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, SINK_IDS + 1);
        let (sink, _) = restart(&p, 0);
        assert_eq!(sink.held(), 1, "the held alert offered again");
    }
}
