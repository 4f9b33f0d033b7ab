//! smtpscope as a cluster on NATS JetStream (issue 13): edges publish their MTAs' events,
//! partitioned by entity key; workers run the one engine per partition; alerts and the
//! containment list are shared through the bus. docs/ARCHITECTURE.md ("Cluster") has the map.
//!
//! This module holds what does no I/O, so that it is tested alone and shared by the NATS
//! runtime ([`nats`]) and the in-process reference [`replay`]:
//! - [`config`]: the `[cluster]` table;
//! - [`contain`]: the containment list's two paths to the edges (sink and edge sides);
//! - [`wire`]: the event schema;
//! - [`route`]: the entity key and partition of every event (the edge's side);
//! - [`merge`]: the per-partition merge of several edges by event time (the worker's side);
//! - [`Partition`]: one partition's engine behind the [`Driver`] `analyze` uses, with the
//!   dedupe of event ids and its snapshot.

pub mod config;
pub mod contain;
pub mod merge;
pub mod nats;
pub mod route;
pub mod sink;
pub mod wire;

use std::collections::BTreeMap;

use anyhow::Result;
use maillog::{LineParser, TimeContext, Ts};
use serde::{Deserialize, Serialize};

use crate::input::Source;
use crate::pipeline::{Driver, TimeOpts};

/// An edge's numbering of what it publishes: event ids and the event-time `order`.
///
/// Sequence numbers count per partition (1, 2, 3, … on each), so a worker knows when one of an
/// edge's events is missing (still on its way after a retried publish) and waits for it
/// ([`Partition::in_sequence`]) instead of going on without it.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// Edge name.
    pub edge: String,
    /// This run's id (start time, Unix ms).
    pub run: u64,
    seqs: Vec<u64>,
    order: i64,
}

impl Stamp {
    /// A numbering for edge `edge` in run `run` over `partitions` partitions.
    pub fn new(edge: &str, run: u64, partitions: u32) -> Stamp {
        Stamp {
            edge: edge.to_string(),
            run,
            seqs: vec![0; partitions.max(1) as usize],
            order: i64::MIN,
        }
    }

    /// The edge's event time so far.
    pub fn order(&self) -> i64 {
        self.order
    }

    /// The next event of this edge on partition `part`. Lines move the event time; policy
    /// requests (policy clock) do not.
    pub fn event<'a>(
        &mut self,
        part: u32,
        kind: wire::Kind,
        ts: i64,
        text: &'a str,
    ) -> wire::Event<'a> {
        let i = (part as usize).min(self.seqs.len() - 1);
        self.seqs[i] += 1;
        if kind == wire::Kind::Line {
            self.order = self.order.max(ts);
        }
        wire::Event {
            v: wire::SCHEMA_VERSION,
            edge: self.edge.clone().into(),
            run: self.run,
            seq: self.seqs[i],
            order: self.order,
            kind,
            ts,
            text: text.into(),
        }
    }

    /// A mark (or idle mark) for partition `part`: the edge's event time, and as `seq` the last
    /// one it published there.
    pub fn mark(&self, part: u32, kind: wire::Kind) -> wire::Event<'static> {
        let i = (part as usize).min(self.seqs.len() - 1);
        wire::Event {
            v: wire::SCHEMA_VERSION,
            edge: self.edge.clone().into(),
            run: self.run,
            seq: self.seqs[i],
            order: self.order,
            kind,
            ts: self.order,
            text: "".into(),
        }
    }
}

/// What a partition did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Fed to the engine.
    Fed,
    /// An id not above the last one processed from its edge: already in the state.
    Duplicate,
    /// A mark: nothing to feed.
    Mark,
}

/// What a partition's snapshot holds beside the engine's own snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SnapshotHead {
    /// Format of this snapshot.
    version: u32,
    /// Partition number.
    partition: u32,
    /// The driver's next idle sweep (µs).
    next_sweep: Option<i64>,
    /// Per edge, the last event id processed.
    last: BTreeMap<String, (u64, u64)>,
    /// Events fed since the partition began.
    fed: u64,
}

/// Version of a partition snapshot's head.
const SNAPSHOT_VERSION: u32 = 1;

/// One partition's detection: the engine behind the [`Driver`], fed decoded wire events in
/// merge order.
#[derive(Debug)]
pub struct Partition {
    /// Partition number.
    pub number: u32,
    driver: Driver,
    parser: LineParser,
    last: BTreeMap<String, (u64, u64)>,
    fed: u64,
}

impl Partition {
    /// Partition `number` with a fresh engine.
    pub fn new(number: u32, engine: detect::Engine) -> Partition {
        Partition {
            number,
            driver: Driver::new(engine),
            // The edge resolved every line's time; the year here only shapes the parse.
            parser: LineParser::new(TimeContext::utc(1970)),
            last: BTreeMap::new(),
            fed: 0,
        }
    }

    /// Per edge, the id (run, seq) of the last event processed.
    pub fn last_ids(&self) -> impl Iterator<Item = (&String, &(u64, u64))> {
        self.last.iter()
    }

    /// Events fed.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// The engine.
    pub fn engine(&self) -> &detect::Engine {
        self.driver.engine()
    }

    /// May the event with this key be processed now: it is the next of its edge's run on this
    /// partition (or one already processed, which [`Partition::apply`] drops)? An edge's first
    /// run here, or a new run, starts at 1.
    pub fn in_sequence(&self, k: &merge::Key) -> bool {
        match self.last.get(&k.edge) {
            None => k.seq == 1,
            Some(&(run, seq)) if k.run == run => k.seq <= seq + 1,
            Some(&(run, _)) if k.run > run => k.seq == 1,
            Some(_) => true,
        }
    }

    /// Feed one event (in merge order).
    pub fn apply(&mut self, ev: &wire::Event<'_>) -> Applied {
        if matches!(ev.kind, wire::Kind::Mark | wire::Kind::Idle) {
            return Applied::Mark;
        }
        if let Some(last) = self.last.get(ev.edge.as_ref()) {
            if ev.id() <= *last {
                return Applied::Duplicate;
            }
        }
        self.last.insert(ev.edge.to_string(), ev.id());
        self.fed += 1;
        match ev.kind {
            wire::Kind::Line => self.feed_line(ev.ts, &ev.text),
            wire::Kind::Policy => {
                if let Ok(req) = crate::serve::policy::Request::parse(&ev.text) {
                    self.driver.feed_policy(Ts(ev.ts), &req.event());
                }
            }
            wire::Kind::Mark | wire::Kind::Idle => {}
        }
        Applied::Fed
    }

    /// Feed one log line at the event time its edge resolved (µs), parsed again here as a
    /// worker parses it; no event id, so no dedupe (`analyze --partitions`, where every line
    /// comes once).
    pub fn feed_line(&mut self, ts: i64, text: &str) {
        let mut p = self.parser.parse(text);
        if let Some(h) = p.header.as_mut() {
            h.ts = Ts(ts);
        }
        self.driver.feed(&p);
    }

    /// End of batch input: close every message in flight (a live cluster never does).
    pub fn finish(&mut self) {
        self.driver.finish();
    }

    /// Alerts raised since the last call, less the engine's `campaign` alerts: a partition
    /// sees only its own accounts, so its campaigns are partial; campaigns are correlated over
    /// the alert stream instead ([`Campaigns`], the sink's and [`replay`]'s). The engine keeps
    /// its own correlation for the `campaign-ips` signal of `auth-hijack`.
    pub fn take_alerts(&mut self) -> Vec<detect::Alert> {
        without_campaigns(self.driver.take_alerts())
    }

    /// The partition's whole state: a JSON head line (dedupe table, idle sweep) then the
    /// engine's compressed snapshot. Take the alerts first.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let head = SnapshotHead {
            version: SNAPSHOT_VERSION,
            partition: self.number,
            next_sweep: self.driver.next_sweep().map(|t| t.0),
            last: self.last.clone(),
            fed: self.fed,
        };
        let mut out = serde_json::to_vec(&head)?;
        out.push(b'\n');
        out.extend(self.driver.engine().snapshot()?);
        Ok(out)
    }

    /// Restore a [`Partition::snapshot`] (before feeding). On error the partition is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let nl = memchr::memchr(b'\n', bytes)
            .ok_or_else(|| anyhow::anyhow!("partition snapshot without a head"))?;
        let head: SnapshotHead = serde_json::from_slice(&bytes[..nl])?;
        anyhow::ensure!(
            head.version == SNAPSHOT_VERSION,
            "partition snapshot version {} (this build reads {SNAPSHOT_VERSION})",
            head.version
        );
        anyhow::ensure!(
            head.partition == self.number,
            "snapshot of partition {} offered to partition {}",
            head.partition,
            self.number
        );
        self.driver.engine_mut().restore(&bytes[nl + 1..])?;
        self.driver.set_next_sweep(head.next_sweep.map(Ts));
        self.last = head.last;
        self.fed = head.fed;
        Ok(())
    }
}

/// A partition's alerts less its engine's `campaign` alerts (an `auth-bruteforce` wave, whose
/// entity is a campaign too, stays).
fn without_campaigns(mut v: Vec<detect::Alert>) -> Vec<detect::Alert> {
    v.retain(|a| a.detector != detect::Detector::Campaign);
    v
}

/// The cluster's result computed in one process: every edge's logs routed as its edge would
/// route them, each partition's events merged by `(order, edge, run, seq)` and fed to its own
/// [`Partition`]. What a cluster with these edges and partitions must raise, whatever its
/// workers, timing and failures (tests/e2e/cluster.sh compares the two); how far it is from one
/// engine over everything (`analyze`) is the price of partitioning (docs/SCALE.md).
///
/// Holds every event in memory: for tests and measurements, not for production volumes.
pub fn replay(
    edges: &[(String, Vec<Source>)],
    t: &TimeOpts,
    partitions: u32,
    mut engine: impl FnMut() -> detect::Engine,
) -> Result<Vec<detect::Alert>> {
    type Owned = (merge::Key, wire::Kind, i64, String);
    let mut parts: Vec<Vec<Owned>> = (0..partitions.max(1)).map(|_| Vec::new()).collect();
    for (name, srcs) in edges {
        let mut router = route::Router::new(partitions);
        let mut stamp = Stamp::new(name, 0, partitions);
        let mut out = Vec::new();
        crate::pipeline::run(srcs, t, false, |p, line| {
            let Some(h) = &p.header else { return };
            router.route(p, h.ts.0, line, &mut out);
            for r in out.drain(..) {
                let e = stamp.event(r.partition, wire::Kind::Line, r.ts, "");
                let key = merge::Key {
                    order: e.order,
                    edge: name.clone(),
                    run: e.run,
                    seq: e.seq,
                };
                parts[r.partition as usize].push((key, e.kind, e.ts, r.text));
            }
        })?;
    }
    let mut alerts = Vec::new();
    let mut cfg = None;
    for (n, mut evs) in parts.into_iter().enumerate() {
        evs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut p = Partition::new(n as u32, engine());
        cfg.get_or_insert_with(|| p.engine().config().clone());
        for (k, kind, ts, text) in &evs {
            let e = wire::Event {
                v: wire::SCHEMA_VERSION,
                edge: k.edge.as_str().into(),
                run: k.run,
                seq: k.seq,
                order: k.order,
                kind: *kind,
                ts: *ts,
                text: text.as_str().into(),
            };
            p.apply(&e);
            alerts.extend(p.take_alerts());
        }
    }
    if let Some(cfg) = cfg {
        let campaigns = Campaigns::over(&cfg, &alerts);
        alerts.extend(campaigns);
    }
    Ok(alerts)
}

/// Campaign correlation over the alert stream (issue 13): what the sink computes from the
/// partitions' `auth-hijack` alerts, as it arrives, with [`detect::campaign::Correlator`].
pub struct Campaigns {
    cfg: detect::Config,
    correlator: detect::campaign::Correlator,
}

impl Campaigns {
    /// Holding each `auth-hijack` alert `hold_secs` (the sink's `campaign_hold`).
    pub fn new(cfg: detect::Config, hold_secs: u64) -> Campaigns {
        let correlator = detect::campaign::Correlator::new(&cfg, hold_secs.saturating_mul(1000));
        Campaigns { cfg, correlator }
    }

    /// The campaign alerts of a whole alert stream, correlated in `(ts, account)` order: what
    /// a sink raises when no alert reached it more than its hold after one later in that order.
    pub fn over(cfg: &detect::Config, alerts: &[detect::Alert]) -> Vec<detect::Alert> {
        let mut hijacks: Vec<&detect::Alert> = alerts
            .iter()
            .filter(|a| a.detector == detect::Detector::AuthHijack)
            .collect();
        // Stable: one account's alerts at one time keep their partition's order.
        hijacks.sort_by(|a, b| (a.ts, &a.entity.id).cmp(&(b.ts, &b.entity.id)));
        // Nothing is released before the flush: all of it in order.
        let mut c = detect::campaign::Correlator::new(cfg, u64::MAX);
        let mut out = Vec::new();
        for a in hijacks {
            c.push(cfg, a, 0, &mut out);
        }
        c.flush(cfg, &mut out);
        out
    }

    /// An alert from the stream arrived at `now_ms` (a monotonic clock); campaign alerts due
    /// go into `out`.
    pub fn push(
        &mut self,
        a: &detect::Alert,
        now_ms: u64,
        out: &mut Vec<detect::Alert>,
    ) -> detect::campaign::Arrival {
        self.correlator.push(&self.cfg, a, now_ms, out)
    }

    /// The clock moved to `now_ms`: campaign alerts due go into `out`.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<detect::Alert>) {
        self.correlator.release(&self.cfg, now_ms, out);
    }

    /// `auth-hijack` alerts held now.
    pub fn held(&self) -> usize {
        self.correlator.held()
    }

    /// `auth-hijack` alerts offered since this correlation began or was restored: the last one
    /// pushed is number `arrivals()`.
    pub fn arrivals(&self) -> u64 {
        self.correlator.arrivals()
    }

    /// The arrival numbers of the `auth-hijack` alerts held now.
    pub fn held_arrivals(&self) -> impl Iterator<Item = u64> + '_ {
        self.correlator.held_arrivals()
    }

    /// What has been correlated ([`detect::campaign::Correlator::snapshot`]).
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(self.correlator.snapshot()?)
    }

    /// The correlation a [`Campaigns::snapshot`] saved, holding nothing, each alert held
    /// `hold_secs` from now on.
    pub fn restore(cfg: detect::Config, hold_secs: u64, bytes: &[u8]) -> Result<Campaigns> {
        let correlator =
            detect::campaign::Correlator::restore(hold_secs.saturating_mul(1000), bytes)?;
        Ok(Campaigns { cfg, correlator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> detect::Config {
        let mut c = detect::Config::default();
        // Lowered, for many alerts on the corpus log (as serve::core's test does).
        c.bruteforce.max_failures_per_ip = 3;
        c
    }

    #[test]
    fn one_partition_one_edge_is_analyze_without_the_end_of_input() {
        // The corpus day through `replay` with one partition and one edge is exactly the
        // engine over the log (less what `analyze` closes at the end of input).
        let path = testdata::mail().join("postfix/pflgviewer/mail.log");
        let t = TimeOpts {
            year: Some(2014),
            tz: Some(jiff::tz::TimeZone::UTC),
        };
        let srcs = vec![Source::File(path)];
        let got = replay(&[("e0".into(), srcs.clone())], &t, 1, || {
            detect::Engine::new(cfg())
        })
        .unwrap();
        let mut d = Driver::new(detect::Engine::new(cfg()));
        let mut want = Vec::new();
        crate::pipeline::run(&srcs, &t, false, |p, _| {
            d.feed(p);
            want.extend(d.take_alerts());
        })
        .unwrap();
        let j = |v: &[detect::Alert]| serde_json::to_string(v).unwrap();
        assert!(want.len() > 10, "{}", want.len());
        assert_eq!(j(&got), j(&want));
    }

    #[test]
    fn duplicates_are_dropped_and_snapshots_restore_the_dedupe() {
        let mut p = Partition::new(3, detect::Engine::new(cfg()));
        let mut s = Stamp::new("e0", 7, 8);
        let line = "Nov 20 10:00:00 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]";
        let e1 = s.event(3, wire::Kind::Line, 1_000_000, line);
        let e2 = s.event(3, wire::Kind::Line, 2_000_000, line);
        let key = |e: &wire::Event<'_>| merge::Key {
            order: e.order,
            edge: e.edge.to_string(),
            run: e.run,
            seq: e.seq,
        };
        assert!(p.in_sequence(&key(&e1)));
        assert!(!p.in_sequence(&key(&e2)), "e1 is missing");
        assert_eq!(p.apply(&e1), Applied::Fed);
        assert_eq!(p.apply(&e1), Applied::Duplicate);
        let snap = p.snapshot().unwrap();
        let mut q = Partition::new(3, detect::Engine::new(cfg()));
        q.restore(&snap).unwrap();
        assert_eq!(q.apply(&e1), Applied::Duplicate);
        assert_eq!(q.apply(&e2), Applied::Fed);
        assert_eq!(q.fed(), 2);
        let mut other = Partition::new(4, detect::Engine::new(cfg()));
        assert!(other.restore(&snap).is_err(), "another partition's state");
        assert!(other.restore(b"garbage").is_err());
    }

    /// A partition's `auth-hijack` alert on `account` at `secs`, from bots `ips` (10.0.0.x).
    fn hijack(secs: i64, account: &str, ips: &[u8]) -> detect::Alert {
        detect::Alert {
            ts: Ts::from_secs(1_700_000_000 + secs),
            detector: detect::Detector::AuthHijack,
            entity: detect::Entity::new(detect::EntityKind::Account, account),
            score: 0.9,
            summary: "hijacked".into(),
            evidence: serde_json::json!({
                "window_ips": ips.iter().map(|i| format!("10.0.0.{i}")).collect::<Vec<_>>(),
            }),
        }
    }

    #[test]
    fn the_sink_correlates_what_replay_does_and_partitions_campaigns_are_dropped() {
        let cfg = cfg();
        // Two partitions' alerts: b shares bots with a, c with b; d is of a's domain.
        let p0 = vec![
            hijack(0, "a@x.example", &[1, 2, 3]),
            hijack(300, "c@z.example", &[4, 5]),
        ];
        let p1 = vec![
            hijack(60, "b@y.example", &[1, 2, 4, 5]),
            hijack(400, "d@x.example", &[9]),
        ];
        let mut all = p0.clone();
        all.extend(p1.clone());
        let want = Campaigns::over(&cfg, &all);
        assert_eq!(want.len(), 3, "{want:#?}");
        assert_eq!(want[2].evidence["accounts_total"], 4);
        // The sink: partition 1's alerts reach it 20 s after partition 0's, within the hold.
        let hold = 30;
        let mut sink = Campaigns::new(cfg.clone(), hold);
        let mut got = Vec::new();
        let arrivals = [
            (0, &p0[0]),
            (300_000, &p0[1]),
            (320_000, &p1[0]),
            (420_000, &p1[1]),
        ];
        for (at, a) in arrivals {
            assert_eq!(sink.push(a, at, &mut got), detect::campaign::Arrival::Held);
            sink.tick(at + 10_000, &mut got);
        }
        sink.tick(420_000 + hold * 1000, &mut got);
        assert_eq!(sink.held(), 0);
        let j = |v: &[detect::Alert]| serde_json::to_string(v).unwrap();
        assert_eq!(j(&got), j(&want));
        // A partition's own campaign alert never leaves it.
        let kept = without_campaigns(vec![want[0].clone(), p0[0].clone()]);
        assert_eq!(j(&kept), j(&p0[..1]));
    }
}
