//! The NATS JetStream runtime of the cluster roles: the edge's publisher, the workers'
//! partition loops, the alert sink and the containment bucket. What it moves is defined in
//! [`super::wire`]; what it computes is [`super::Partition`]'s, the same as
//! [`super::replay`]'s.
//!
//! Names, with `P` = `[cluster] prefix`:
//! - stream `P_EVENTS`, subjects `P.events.<partition>`, work-queue retention (an event
//!   acknowledged by its worker is gone), file storage, `replicas` copies;
//! - stream `P_ALERTS`, subjects `P.alerts.<partition>`, 2-minute duplicate window (an alert
//!   raised again after a redelivery carries the same message id and is dropped);
//! - durable pull consumer `P-p<partition>` per partition; `P-sink-<name>` per sink;
//! - object store `P-state`, object `partition-<n>`: a partition's snapshot;
//! - key-value bucket `P-contain`, key `<kind>.<hex of the lower-cased id>`: a containment
//!   ([`super::contain::Stored`]) as JSON; key `stamp.<sink>`: the stamp of the sink's set the
//!   bucket holds;
//! - plain subject `P.contain.now`: a sink's whole containment set ([`super::contain::Now`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, Context, Result};
use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use super::config::ClusterConfig;
use super::merge::{Key, Merge};
use super::route::Router;
use super::sink::{Offer, Rebuilt, Sink};
use super::wire::{self, Kind};
use super::{Partition, Stamp};
use crate::serve::contain::Set;
use crate::serve::core::Msg;
use crate::serve::store::SinkCommit;
use crate::serve::Shared;

/// How long the server waits for a worker's acknowledgement before it delivers an event again
/// (to the partition's next owner when the worker died), beyond two `snapshot_interval`s: a
/// worker acknowledges after its next snapshot, and signals progress for events its merge holds
/// every [`PROGRESS_SECS`].
const ACK_WAIT_BASE_SECS: u64 = 30;
/// How often a worker tells the server it still works on the events its merge holds.
const PROGRESS_SECS: u64 = 10;
/// Events a partition's consumer hands out before their acknowledgement: the merge must be
/// able to hold one edge's events while it waits for another's, or it would wait forever.
const MAX_ACK_PENDING: i64 = 1_000_000;
/// How long each pull request of a partition's or the sink's consumer stays open. With
/// [`PULL_HEARTBEAT`], how soon a pull that stopped delivering is noticed and made again:
/// async-nats reports a missed heartbeat after two, so within about 4 s instead of the
/// client's default 30 s (15 s heartbeats), which `bench/cluster/throughput.sh` showed as
/// a partition stalled for about 30 s (SCALE.md).
const PULL_EXPIRES: StdDuration = StdDuration::from_secs(10);
/// The server's idle heartbeat on an open pull request (see [`PULL_EXPIRES`]).
const PULL_HEARTBEAT: StdDuration = StdDuration::from_secs(2);
/// How often an edge checks that its watch of the containment bucket is not behind.
const WATCH_CHECK_SECS: u64 = 3;
/// JetStream's window for dropping a message id published twice.
const DUPLICATE_WINDOW_SECS: u64 = 120;
/// An edge that read no line for this long says it is idle (workers stop waiting for its
/// event time until its next event). Long enough that a busy edge (a publish being retried, a
/// reader starved of CPU) is not taken for an idle one: that would let the workers run ahead of
/// its events, out of event-time order.
const IDLE_AFTER_SECS: u64 = 5;
/// Published events an edge waits for acknowledgements of at once.
const PUBLISH_WINDOW: usize = 512;

/// A connected node.
#[derive(Clone)]
pub struct Node {
    /// Settings.
    pub cfg: Arc<ClusterConfig>,
    /// This node's name.
    pub name: String,
    js: jetstream::Context,
}

fn subject_events(prefix: &str, p: u32) -> String {
    format!("{prefix}.events.{p}")
}

impl Node {
    /// Connect and make sure the streams and buckets exist.
    pub async fn connect(cfg: &ClusterConfig) -> Result<Node> {
        let name = cfg.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "smtpscope".into())
        });
        let mut o = async_nats::ConnectOptions::new()
            .name(format!("smtpscope-{name}"))
            .retry_on_initial_connect();
        if let Some(c) = &cfg.credentials {
            o = o
                .credentials_file(c)
                .await
                .with_context(|| format!("cannot read NATS credentials {}", c.display()))?;
        }
        if let Some(ca) = &cfg.tls_ca {
            o = o.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(c), Some(k)) = (&cfg.tls_cert, &cfg.tls_key) {
            o = o.add_client_certificate(c.clone(), k.clone());
        }
        let client = o
            .connect(cfg.servers.clone())
            .await
            .with_context(|| format!("cannot connect to NATS {:?}", cfg.servers))?;
        let js = jetstream::new(client);
        // The servers may still be electing their leaders (or one of them is down): keep
        // trying for a while.
        let mut tries = 0;
        loop {
            match Self::layout(&js, cfg).await {
                Ok(()) => break,
                Err(e) if tries < 30 => {
                    tries += 1;
                    warn!("cluster streams not ready, retrying: {e:#}");
                    tokio::time::sleep(StdDuration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
        info!(servers = ?cfg.servers, node = %name, role = ?cfg.role, "joined the cluster");
        Ok(Node {
            cfg: Arc::new(cfg.clone()),
            name,
            js,
        })
    }

    /// The streams and buckets, created when missing.
    async fn layout(js: &jetstream::Context, cfg: &ClusterConfig) -> Result<()> {
        let p = &cfg.prefix;
        let replicas = cfg.replicas as usize;
        js.get_or_create_stream(stream::Config {
            name: format!("{p}_EVENTS"),
            subjects: vec![format!("{p}.events.*")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: StdDuration::from_secs(DUPLICATE_WINDOW_SECS),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot create stream {p}_EVENTS: {e}"))?;
        js.get_or_create_stream(stream::Config {
            name: format!("{p}_ALERTS"),
            subjects: vec![format!("{p}.alerts.*")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_age: StdDuration::from_secs(30 * 86_400),
            duplicate_window: StdDuration::from_secs(DUPLICATE_WINDOW_SECS),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot create stream {p}_ALERTS: {e}"))?;
        // The key-value bucket's stream as the client's `create_key_value` lays it out; made
        // here because that call first asks for the account's limits in a form nats-server 2.9
        // (Debian 12's) does not answer.
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{p}-contain"),
            subjects: vec![format!("$KV.{p}-contain.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot create bucket {p}-contain: {e}"))?;
        // Rebalancing: who is alive, who holds which partition (keys lapse after max_age; no
        // direct gets, so that a compare-and-set is decided by the leader).
        for (bucket, ttl) in [("workers", MEMBER_TTL_SECS), ("leases", LEASE_TTL_SECS)] {
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{p}-{bucket}"),
                subjects: vec![format!("$KV.{p}-{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: StdDuration::from_secs(ttl),
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: false,
                discard: stream::DiscardPolicy::New,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("cannot create bucket {p}-{bucket}: {e}"))?;
        }
        // The object store's stream as the client's `create_object_store` lays it out, but
        // without direct gets: a direct get may be answered by any replica, also one that has
        // not yet applied the last snapshot (just after a server was lost), and a partition
        // restored from an older snapshot than the one its acknowledgements went with has lost
        // the events in between. Without it, every read of a snapshot goes to the leader.
        let state = stream::Config {
            name: format!("OBJ_{p}-state"),
            subjects: vec![format!("$O.{p}-state.C.>"), format!("$O.{p}-state.M.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: false,
            ..Default::default()
        };
        match js.get_stream(&state.name).await {
            Ok(s) => {
                let info = s.cached_info();
                if info.config.allow_direct {
                    let mut c = info.config.clone();
                    c.allow_direct = false;
                    js.update_stream(c)
                        .await
                        .map_err(|e| anyhow!("cannot update object store {p}-state: {e}"))?;
                }
            }
            Err(_) => {
                js.get_or_create_stream(state)
                    .await
                    .map_err(|e| anyhow!("cannot create object store {p}-state: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_s() -> i64 {
    (now_ms() / 1000) as i64
}

/// Publish until the server has it (the same message id every time, so a retry after a lost
/// acknowledgement is dropped by the duplicate window): an edge never skips an event, it waits.
async fn publish_sure(js: &jetstream::Context, subject: String, id: String, payload: Vec<u8>) {
    let mut backoff = StdDuration::from_millis(50);
    loop {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", id.as_str());
        let r = match js
            .publish_with_headers(subject.clone(), h, payload.clone().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match r {
            Ok(()) => return,
            Err(e) => {
                warn!(%subject, "publish failed, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(StdDuration::from_secs(2));
            }
        }
    }
}

/// The policy requests waiting in the inbox, as events of their partitions.
fn take_policy(
    shared: &Shared,
    inbox: &mut crate::serve::policy::Batch,
    router: &Router,
    stamp: &mut Stamp,
    prefix: &str,
    batch: &mut Vec<(String, String, Vec<u8>)>,
) {
    shared.policy_inbox.take(inbox);
    let mut raw = String::new();
    for (ts, req) in inbox.iter() {
        raw.clear();
        req.write_to(&mut raw);
        let part = router.policy_of(req.get("sasl_username"), req.get("client_address"));
        let e = stamp.event(part, Kind::Policy, ts.0, &raw);
        batch.push((
            subject_events(prefix, part),
            format!("{}-{}-{}-{}", e.edge, e.run, part, e.seq),
            e.encode(),
        ));
    }
}

/// The edge: takes what the followers, the syslog receiver and the policy server hand to the
/// engine channel, routes it, publishes it, in batches of at most [`PUBLISH_WINDOW`] events,
/// each acknowledged by the server before the next batch (and before a mark) goes; a failed
/// publish is retried with its message id until it lands ([`flush`]).
pub async fn edge(
    node: Node,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    tz: jiff::tz::TimeZone,
    year: Option<i64>,
    shared: Arc<Shared>,
) {
    let cfg = node.cfg.clone();
    let parts = cfg.partition_count();
    let mut router = Router::new(parts);
    let mut stamp = Stamp::new(&node.name, now_ms(), parts);
    let mut parsers: HashMap<u32, maillog::LineParser> = HashMap::new();
    let mut routed = Vec::new();
    let mut batch: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut idle_marked = false;
    let mut inbox = crate::serve::policy::Batch::default();
    let mut last_line = std::time::Instant::now();
    let mut last_tick = std::time::Instant::now();
    let new_parser = |year: Option<i64>| {
        let y = year.unwrap_or_else(|| jiff::Zoned::now().year() as i64);
        maillog::LineParser::new(maillog::TimeContext::new(y, tz.clone()))
    };
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::time::sleep(StdDuration::from_secs(1)) => Some(Msg::Tick),
        };
        let Some(msg) = msg else { return };
        match msg {
            Msg::Line { src, line } => {
                let p = parsers.entry(src).or_insert_with(|| new_parser(year));
                let parsed = p.parse(&line);
                if let Some(h) = &parsed.header {
                    router.route(&parsed, h.ts.0, &line, &mut routed);
                }
                last_line = std::time::Instant::now();
            }
            Msg::Lines { src, lines, .. } => {
                let p = parsers.entry(src).or_insert_with(|| new_parser(year));
                for line in &lines {
                    let parsed = p.parse(line);
                    if let Some(h) = &parsed.header {
                        router.route(&parsed, h.ts.0, line, &mut routed);
                    }
                }
                shared.metrics.lines[2].add(lines.len() as u64);
                last_line = std::time::Instant::now();
            }
            Msg::Policy => take_policy(
                &shared,
                &mut inbox,
                &router,
                &mut stamp,
                &cfg.prefix,
                &mut batch,
            ),
            Msg::Tick if last_tick.elapsed() < StdDuration::from_millis(900) => {}
            Msg::Tick => {
                last_tick = std::time::Instant::now();
                // Requests whose wake-up found the queue full.
                take_policy(
                    &shared,
                    &mut inbox,
                    &router,
                    &mut stamp,
                    &cfg.prefix,
                    &mut batch,
                );
                // Once a second: every partition learns this edge's event time; idle after
                // IDLE_AFTER_SECS without a line. The events before a mark are stored first (flushed and
                // acknowledged): a mark must never overtake an event it vouches for.
                flush(&node, &mut batch).await;
                // Idle means nothing to read, not "nothing read lately": an edge that was stuck
                // publishing (a server down) has lines waiting and is not idle.
                let idle =
                    last_line.elapsed() >= StdDuration::from_secs(IDLE_AFTER_SECS) && rx.is_empty();
                if !idle || !idle_marked {
                    let kind = if idle { Kind::Idle } else { Kind::Mark };
                    for part in 0..parts {
                        let e = stamp.mark(part, kind);
                        let subject = subject_events(&cfg.prefix, part);
                        // Marks are not events: one lost changes nothing but a wait.
                        let _ = node.js.publish(subject, e.encode().into()).await;
                    }
                    idle_marked = idle;
                }
            }
            Msg::Alerts(_) => {}
            Msg::Shutdown(done) => {
                take_policy(
                    &shared,
                    &mut inbox,
                    &router,
                    &mut stamp,
                    &cfg.prefix,
                    &mut batch,
                );
                flush(&node, &mut batch).await;
                let _ = done.send(());
                return;
            }
        }
        if !routed.is_empty() {
            last_line = std::time::Instant::now();
        }
        for r in routed.drain(..) {
            let e = stamp.event(r.partition, Kind::Line, r.ts, &r.text);
            batch.push((
                subject_events(&cfg.prefix, r.partition),
                format!("{}-{}-{}-{}", e.edge, e.run, r.partition, e.seq),
                e.encode(),
            ));
            idle_marked = false;
            if batch.len() >= PUBLISH_WINDOW {
                flush(&node, &mut batch).await;
                last_line = std::time::Instant::now();
            }
        }
        if rx.is_empty() && !batch.is_empty() {
            flush(&node, &mut batch).await;
            // However long the publish took, the edge was busy, not idle.
            last_line = std::time::Instant::now();
        }
    }
}

/// Publish a batch and wait until the server has all of it. Every acknowledgement is awaited
/// at once: the client's timeout runs from when a future is awaited, so awaiting them one after
/// the other made a batch whose acknowledgements the servers lost in a fail-over cost one
/// timeout (5 s) per event, up to [`PUBLISH_WINDOW`] × 5 s, while the edge sent no mark and
/// the workers, after `edge_timeout`, went on without it (the failure run's alerts at other
/// times). What was not acknowledged is published again, with the same message ids (the
/// server drops what it already has), until it is; the order of arrival does not matter, as
/// the workers follow each edge's sequence numbers.
async fn flush(node: &Node, batch: &mut Vec<(String, String, Vec<u8>)>) {
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    let mut backoff = StdDuration::from_millis(50);
    while !pending.is_empty() {
        let mut sent = Vec::with_capacity(pending.len());
        for &i in &pending {
            let (subject, id, payload) = &batch[i];
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", id.as_str());
            sent.push(
                node.js
                    .publish_with_headers(subject.clone(), h, payload.clone().into())
                    .await,
            );
        }
        let results = futures_util::future::join_all(sent.into_iter().map(|r| async move {
            match r {
                Ok(f) => f.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }))
        .await;
        let mut failed = Vec::new();
        let mut last_err = String::new();
        for (&i, r) in pending.iter().zip(results) {
            if let Err(e) = r {
                failed.push(i);
                last_err = e;
            }
        }
        if !failed.is_empty() {
            warn!(
                events = failed.len(),
                "publish not acknowledged, retrying: {last_err}"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(StdDuration::from_secs(2));
        }
        pending = failed;
    }
    batch.clear();
}

/// Makes a fresh engine with this node's settings and geo data.
pub type EngineFactory = Arc<dyn Fn() -> detect::Engine + Send + Sync>;

/// A worker: one loop per owned partition; a loop that fails (the bus went away, a snapshot
/// could not be stored) starts again from the partition's stored state.
pub async fn worker(node: Node, make: EngineFactory) -> Result<()> {
    if node.cfg.rebalance {
        return rebalancing_worker(node, make).await;
    }
    let owned = node.cfg.owned();
    info!(partitions = owned.len(), "worker starting");
    let mut tasks = Vec::new();
    for p in owned {
        let n = node.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match partition_loop(&n, p, Partition::new(p, make()), None).await {
                    Ok(()) => return,
                    Err(e) => {
                        warn!(partition = p, "partition loop failed, restarting: {e:#}");
                        tokio::time::sleep(StdDuration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// How often a worker with `rebalance` says it is alive (a key in `<prefix>-workers`).
const BEAT_SECS: u64 = 2;
/// A worker not heard of for this long is no longer a member (the bucket's `max_age`).
const MEMBER_TTL_SECS: u64 = 10;
/// A partition's lease lapses this long after its owner's last renewal (the bucket's
/// `max_age`); the owner renews it every [`LEASE_RENEW_SECS`] and before each snapshot.
const LEASE_TTL_SECS: u64 = 15;
/// How often an owner renews its leases.
const LEASE_RENEW_SECS: u64 = 3;

/// A partition's lease, held by this worker.
struct Lease {
    kv: kv::Store,
    key: String,
    value: bytes::Bytes,
    revision: u64,
}

impl Lease {
    /// Renew (compare-and-set on the revision): fails when another worker has it.
    async fn renew(&mut self) -> Result<()> {
        self.revision = self
            .kv
            .update(&self.key, self.value.clone(), self.revision)
            .await
            .map_err(|e| anyhow!("lease {} lost: {e}", self.key))?;
        Ok(())
    }
}

/// What a partition loop of a rebalancing worker is told and holds.
struct Control {
    /// Becomes true when the partition is assigned to another worker: hand it over.
    stop: tokio::sync::watch::Receiver<bool>,
    lease: Lease,
}

/// A worker with `rebalance`: says it is alive, computes from the live members which
/// partitions are its own ([`super::config::owner`]), runs those, and hands over a partition
/// assigned elsewhere (last snapshot stored, events acknowledged, held events given back, lease
/// released).
async fn rebalancing_worker(node: Node, make: EngineFactory) -> Result<()> {
    let prefix = node.cfg.prefix.clone();
    let members = node
        .js
        .get_key_value(format!("{prefix}-workers"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let leases = node
        .js
        .get_key_value(format!("{prefix}-leases"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let member_stream = node
        .js
        .get_stream(format!("KV_{prefix}-workers"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let member_prefix = format!("$KV.{prefix}-workers.");
    let member_subjects = format!("{member_prefix}>");
    let parts = node.cfg.partition_count();
    let mut running: HashMap<
        u32,
        (
            tokio::sync::watch::Sender<bool>,
            tokio::task::JoinHandle<()>,
        ),
    > = HashMap::new();
    let mut last_beat: Option<std::time::Instant> = None;
    let mut iv = tokio::time::interval(StdDuration::from_secs(1));
    info!(partitions = parts, "rebalancing worker starting");
    loop {
        iv.tick().await;
        if last_beat.is_none_or(|t| t.elapsed() >= StdDuration::from_secs(BEAT_SECS)) {
            match members.put(&node.name, now_ms().to_string().into()).await {
                Ok(_) => last_beat = Some(std::time::Instant::now()),
                Err(e) => warn!("cannot say this worker is alive: {e}"),
            }
        }
        // The members are the bucket's subjects (a stream info request answered by its
        // leader; the client's `keys()` makes a consumer, which timed out after a server loss).
        let live: Vec<String> = match member_stream.info_with_subjects(&member_subjects).await {
            Ok(k) => match k
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(v) => v
                    .into_iter()
                    .filter_map(|(s, _)| s.strip_prefix(&member_prefix).map(str::to_string))
                    .collect(),
                Err(e) => {
                    warn!("cannot list the workers: {e}");
                    continue;
                }
            },
            Err(e) => {
                warn!("cannot list the workers: {e}");
                continue;
            }
        };
        if !live.contains(&node.name) {
            continue;
        }
        running.retain(|_, (_, h)| !h.is_finished());
        for p in 0..parts {
            let mine = super::config::owner(p, &live) == Some(node.name.as_str());
            match (mine, running.get(&p)) {
                (true, None) => {
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    let (n, make, leases) = (node.clone(), make.clone(), leases.clone());
                    let h = tokio::spawn(async move { own(n, p, make, leases, rx).await });
                    running.insert(p, (tx, h));
                }
                (false, Some((tx, _))) if !*tx.borrow() => {
                    info!(
                        partition = p,
                        "partition assigned to another worker: handing it over"
                    );
                    let _ = tx.send(true);
                }
                _ => {}
            }
        }
    }
}

/// Run partition `p` for as long as it is this worker's: take its lease (wait for the last
/// owner to release it or for it to lapse), then the partition loop from its stored state.
async fn own(
    node: Node,
    p: u32,
    make: EngineFactory,
    leases: kv::Store,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let key = format!("p{p}");
    let value = bytes::Bytes::from(node.name.clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let revision = match leases.create(&key, value.clone()).await {
            Ok(r) => Some(r),
            // Held: by this worker before a restart (take it back), or by another.
            Err(_) => match leases.entry(key.clone()).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put && e.value == value => {
                    leases.update(&key, value.clone(), e.revision).await.ok()
                }
                _ => None,
            },
        };
        let Some(revision) = revision else {
            tokio::time::sleep(StdDuration::from_secs(1)).await;
            continue;
        };
        info!(partition = p, "partition lease taken");
        let ctl = Control {
            stop: stop.clone(),
            lease: Lease {
                kv: leases.clone(),
                key: key.clone(),
                value: value.clone(),
                revision,
            },
        };
        match partition_loop(&node, p, Partition::new(p, make()), Some(ctl)).await {
            Ok(()) => {
                if let Err(e) = leases.delete(&key).await {
                    warn!(partition = p, "lease not released (it lapses): {e}");
                }
                info!(partition = p, "partition handed over");
                return;
            }
            Err(e) => {
                warn!(partition = p, "partition loop failed, restarting: {e:#}");
                tokio::time::sleep(StdDuration::from_secs(1)).await;
            }
        }
    }
}

async fn partition_loop(
    node: &Node,
    p: u32,
    mut part: Partition,
    mut ctl: Option<Control>,
) -> Result<()> {
    let cfg = &node.cfg;
    let prefix = &cfg.prefix;
    let store = node
        .js
        .get_object_store(format!("{prefix}-state"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let obj = format!("partition-{p}");
    // Only "no such object" means a partition never stored (so nothing of it was ever
    // acknowledged: the server delivers all its events again). Any other failure (a server
    // down, a leader being elected) is retried: going on with a fresh engine would lose the
    // state of every acknowledged event.
    match store.get(&obj).await {
        Ok(mut o) => {
            let mut buf = Vec::new();
            o.read_to_end(&mut buf).await?;
            part.restore(&buf)
                .with_context(|| format!("partition {p}: stored state refused"))?;
            info!(partition = p, fed = part.fed(), "partition state restored");
        }
        Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
            info!(partition = p, "no stored state: the partition starts empty");
        }
        Err(e) => return Err(anyhow!("partition {p}: cannot read its stored state: {e}")),
    }
    let stream = node
        .js
        .get_stream(format!("{prefix}_EVENTS"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let name = format!("{prefix}-p{p}");
    let every = StdDuration::from_secs(cfg.snapshot_interval.0.clamp(1, 60) as u64);
    let ack_wait = StdDuration::from_secs(ACK_WAIT_BASE_SECS) + every * 2;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subject_events(prefix, p),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut msgs = pull(&consumer).await.map_err(|e| anyhow!("{e}"))?;
    // A missing event is waited for until the server must have delivered it again.
    let gap = (ack_wait.as_secs() + ACK_WAIT_BASE_SECS) as i64;
    let mut merge: Merge<jetstream::Message> =
        Merge::new(&cfg.edges, cfg.edge_timeout.0, gap, now_s());
    for (edge, (run, seq)) in part.last_ids() {
        merge.base(edge, *run, *seq, now_s());
    }
    let mut unacked: Vec<jetstream::Message> = Vec::new();
    let mut last_snapshot = std::time::Instant::now();
    let mut last_progress = std::time::Instant::now();
    let mut tick = tokio::time::interval(StdDuration::from_millis(250));
    let mut last_renew = std::time::Instant::now();
    loop {
        if let Some(c) = ctl.as_mut() {
            if *c.stop.borrow() {
                // Hand over: what is processed is stored and acknowledged, what the merge holds
                // goes back to the server at once (for the next owner).
                if !unacked.is_empty() {
                    c.lease.renew().await?;
                    let snap = part.snapshot()?;
                    store
                        .put(obj.as_str(), &mut &snap[..])
                        .await
                        .map_err(|e| anyhow!("state not stored at hand-over: {e}"))?;
                    for m in unacked.drain(..) {
                        let _ = m.ack().await;
                    }
                }
                for m in merge.items() {
                    let _ = m.ack_with(jetstream::AckKind::Nak(None)).await;
                }
                return Ok(());
            }
            if last_renew.elapsed() >= StdDuration::from_secs(LEASE_RENEW_SECS) {
                c.lease.renew().await?;
                last_renew = std::time::Instant::now();
            }
        }
        let stop_changed = async {
            match ctl.as_mut() {
                Some(c) => {
                    if c.stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stop_changed => { continue; }
            m = msgs.next() => {
                // A missed heartbeat or a timed-out pull while a server is down, or the pull
                // ended: pull again from the same durable consumer, keeping what this loop
                // holds (the merge, the processed events waiting for their snapshot).
                let m = match m {
                    Some(Ok(m)) => m,
                    other => {
                        if let Some(Err(e)) = other {
                            warn!(partition = p, "pull interrupted, pulling again: {e}");
                        }
                        msgs = loop {
                            match pull(&consumer).await {
                                Ok(s) => break s,
                                Err(e) => {
                                    warn!(partition = p, "cannot pull, retrying: {e}");
                                    tokio::time::sleep(StdDuration::from_secs(1)).await;
                                }
                            }
                        };
                        continue;
                    }
                };
                if tracing::enabled!(tracing::Level::DEBUG) {
                    if let (Ok(e), Ok(i)) = (wire::Event::decode(&m.payload), m.info()) {
                        debug!(partition = p, edge = %e.edge, seq = e.seq, kind = ?e.kind, stream_seq = i.stream_sequence, delivered = i.delivered, "received");
                    }
                }
                match wire::Event::decode(&m.payload) {
                    Ok(e) if matches!(e.kind, Kind::Mark | Kind::Idle) => {
                        merge.mark(&e.edge, e.run, e.seq, e.order, e.kind == Kind::Idle, now_s());
                        let _ = m.ack().await;
                    }
                    Ok(e) => {
                        let key = Key { order: e.order, edge: e.edge.to_string(), run: e.run, seq: e.seq };
                        merge.push(key, m, now_s());
                    }
                    Err(err) => {
                        warn!(partition = p, "event refused: {err}");
                        let _ = m.ack().await;
                    }
                }
            }
            _ = tick.tick() => {}
        }
        let now = now_s();
        while let Some((k, m)) = merge.pop(now, |k| part.in_sequence(k)) {
            if !part.in_sequence(&k) {
                // The gap timeout: an earlier event of this edge never came.
                warn!(partition = p, edge = %k.edge, run = k.run, seq = k.seq,
                    last = ?part.last_ids().find(|(e, _)| **e == k.edge).map(|(_, id)| *id),
                    "going on without missing events of this edge");
            }
            let e = wire::Event::decode(&m.payload).map_err(|e| anyhow!("{e}"))?;
            let applied = part.apply(&e);
            debug!(partition = p, edge = %e.edge, seq = e.seq, order = e.order, ?applied, "event");
            let alerts = part.take_alerts();
            for (i, a) in alerts.iter().enumerate() {
                let id = format!("{p}-{}-{}-{}-{i}", e.edge, e.run, e.seq);
                let payload = serde_json::to_vec(a)?;
                publish_sure(&node.js, format!("{prefix}.alerts.{p}"), id, payload).await;
            }
            unacked.push(m);
        }
        if last_progress.elapsed() >= StdDuration::from_secs(PROGRESS_SECS) {
            for m in merge.items() {
                let _ = m.ack_with(jetstream::AckKind::Progress).await;
            }
            last_progress = std::time::Instant::now();
        }
        if !unacked.is_empty() && last_snapshot.elapsed() >= every {
            // Only the lease's holder stores and acknowledges.
            if let Some(c) = ctl.as_mut() {
                c.lease.renew().await?;
                last_renew = std::time::Instant::now();
            }
            let snap = part.snapshot()?;
            last_snapshot = std::time::Instant::now();
            // Not stored (a server down, a leader being elected): the events stay
            // unacknowledged, and the next interval tries again.
            match store.put(obj.as_str(), &mut &snap[..]).await {
                Ok(_) => {
                    for m in unacked.drain(..) {
                        let _ = m.ack().await;
                    }
                }
                Err(e) => warn!(partition = p, "state not stored, retrying: {e}"),
            }
        }
    }
}

/// The messages of a pull consumer, its pull requests open [`PULL_EXPIRES`] with heartbeats
/// every [`PULL_HEARTBEAT`].
async fn pull(
    consumer: &consumer::PullConsumer,
) -> Result<consumer::pull::Stream, consumer::StreamError> {
    consumer
        .stream()
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
}

/// The sink: every alert of the cluster into this node's store (incidents, containment) and
/// sinks (JSONL, webhook). It correlates campaigns over the partitions' `auth-hijack` alerts
/// ([`super::Campaigns`], `detect`'s config `cfg`, each alert held `[cluster] campaign_hold`)
/// and delivers their `campaign` alerts the same way. Its state ([`super::sink::Sink`]) is
/// rebuilt from the store at start, and again after a failed write: an alert is acknowledged
/// only once the store has committed it, with the correlator's state of that step.
pub async fn sink(
    node: Node,
    shared: Arc<Shared>,
    sinks: crate::serve::sinks::Sinks,
    cfg: detect::Config,
) -> Result<()> {
    let hold = node.cfg.campaign_hold.0.max(0) as u64;
    let clock = std::time::Instant::now();
    let mut state: Option<Sink> = None;
    loop {
        let sink = match state.as_mut() {
            Some(s) => s,
            None => match rebuild(&shared, &cfg, hold, clock).await {
                Ok(s) => state.insert(s),
                Err(e) => {
                    warn!("alert sink state not read from the store, retrying: {e:#}");
                    tokio::time::sleep(StdDuration::from_secs(1)).await;
                    continue;
                }
            },
        };
        match sink_once(&node, &shared, &sinks, sink, clock).await {
            Ok(()) => {}
            Err(SinkError::Bus(e)) => warn!("alert sink interrupted, resuming: {e:#}"),
            Err(SinkError::Store(e)) => {
                warn!("alert sink: store write failed, rebuilding its state from the store: {e:#}");
                state = None;
            }
        }
        tokio::time::sleep(StdDuration::from_secs(1)).await;
    }
}

/// The sink's state as its store has it ([`Sink::rebuild`]).
async fn rebuild(
    shared: &Arc<Shared>,
    cfg: &detect::Config,
    hold: u64,
    clock: std::time::Instant,
) -> Result<Sink> {
    let path = shared.store_path.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let conn = crate::serve::store::reader(&path)?;
        crate::serve::store::load_sink(&conn)
    })
    .await??;
    let (ids, held) = (rows.ids.len(), rows.held.len());
    let (s, rebuilt) = Sink::rebuild(cfg.clone(), hold, rows, clock.elapsed().as_millis() as u64)?;
    match &rebuilt {
        Rebuilt::Refused(e) => {
            warn!("campaign correlator state refused, correlation starts empty: {e}")
        }
        Rebuilt::Restored | Rebuilt::Fresh => {}
    }
    info!(ids, held, correlator = ?rebuilt, "alert sink state rebuilt from the store");
    Ok(s)
}

/// How often the sink releases the `auth-hijack` alerts whose `campaign_hold` ended when no
/// alert arrives.
const CAMPAIGN_TICK_MS: u64 = 500;

/// Why [`sink_once`] stopped.
enum SinkError {
    /// The bus: pull again, the state is the store's.
    Bus(anyhow::Error),
    /// A step was not committed: the state in memory is ahead of the store's.
    Store(anyhow::Error),
}

/// Write one step of the sink and wait until it is committed; then its stored alerts go to
/// this node's metrics and sinks, and the sink remembers their ids.
async fn commit(
    shared: &Arc<Shared>,
    sinks: &crate::serve::sinks::Sinks,
    sink: &mut Sink,
    c: SinkCommit,
) -> Result<(), SinkError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared
        .store_tx
        .send(crate::serve::store::Cmd::Sink {
            commit: c.clone(),
            reply: tx,
        })
        .map_err(|_| SinkError::Store(anyhow!("the store is closed")))?;
    let stored = rx
        .await
        .map_err(|_| SinkError::Store(anyhow!("the store dropped the write")))?
        .map_err(|e| SinkError::Store(anyhow!("{e}")))?;
    sink.stored(&c);
    for (a, new) in c.alerts.iter().zip(stored) {
        if !new {
            warn!(id = %a.id, "alert already stored (older than the sink's memory of ids): not stored again");
            continue;
        }
        if a.alert.detector == detect::Detector::Campaign {
            info!(campaign = %a.alert.entity.id, summary = %a.alert.summary, "campaign correlated over the alert stream");
        }
        shared.metrics.alert(a.alert.detector);
        sinks.send(&a.alert);
    }
    Ok(())
}

async fn sink_once(
    node: &Node,
    shared: &Arc<Shared>,
    sinks: &crate::serve::sinks::Sinks,
    sink: &mut Sink,
    clock: std::time::Instant,
) -> Result<(), SinkError> {
    let bus = |e: String| SinkError::Bus(anyhow!(e));
    let prefix = &node.cfg.prefix;
    let stream = node
        .js
        .get_stream(format!("{prefix}_ALERTS"))
        .await
        .map_err(|e| bus(e.to_string()))?;
    let name = format!("{prefix}-sink-{}", node.name);
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| bus(e.to_string()))?;
    let mut msgs = pull(&consumer).await.map_err(|e| bus(e.to_string()))?;
    let now_ms = || clock.elapsed().as_millis() as u64;
    let mut tick = tokio::time::interval(StdDuration::from_millis(CAMPAIGN_TICK_MS));
    loop {
        let m = tokio::select! {
            m = msgs.next() => m,
            _ = tick.tick() => {
                let due = sink.tick(now_ms()).map_err(SinkError::Store)?;
                if let Some(c) = due {
                    commit(shared, sinks, sink, c).await?;
                }
                continue;
            }
        };
        let Some(m) = m else { break };
        let m = m.map_err(|e| bus(e.to_string()))?;
        // The message id the worker gave the alert (made of the event that raised it), else
        // its place in the stream.
        let id = match m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            Some(v) => v.to_string(),
            None => match m.info() {
                Ok(i) => format!("seq-{}", i.stream_sequence),
                Err(e) => return Err(bus(format!("an alert without its stream metadata: {e}"))),
            },
        };
        let Some(a) = super::wire::decode_alert(&m.payload) else {
            warn!("alert refused (not the alert JSON)");
            let _ = m.ack().await;
            continue;
        };
        match sink.offer(&id, a, now_ms()).map_err(SinkError::Store)? {
            Offer::Duplicate => debug!(%id, "alert delivered again, already stored"),
            Offer::PartitionCampaign => debug!(%id, "a partition's campaign alert dropped"),
            // Acknowledged once committed: a sink stopped before that gets it again.
            Offer::Store(c) => commit(shared, sinks, sink, c).await?,
        }
        let _ = m.ack().await;
    }
    Ok(())
}

/// The sink's containment decisions to the edges (every change of the store's set: a new
/// containment, a release, an expiry), by both paths of [`super::contain`]: the whole set at
/// once on the plain subject `<prefix>.contain.now`, and key by key into the bucket (retried
/// until stored; the stamp key last).
pub async fn publish_containment(node: Node, shared: Arc<Shared>) -> Result<()> {
    use super::contain::{self, Now};
    let client = node.js.client();
    let subject = format!("{}.contain.now", node.cfg.prefix);
    // What the bucket has stored of this sink (the stamp), written by the bucket task.
    let stored_stamp = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (want_tx, want_rx) = tokio::sync::watch::channel((0u64, HashMap::new()));
    tokio::spawn(sync_bucket(node.clone(), want_rx, stored_stamp.clone()));
    // The snapshot last published (compared by pointer: the store replaces it on every change).
    let mut seen: Option<Arc<Set>> = None;
    let mut stamp = 0u64;
    let mut msg = Vec::new();
    let mut changed_at = std::time::Instant::now();
    let mut sent_at = std::time::Instant::now();
    let mut too_big = false;
    let mut iv = tokio::time::interval(StdDuration::from_millis(50));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let cur = shared.contained.load_full();
        let fresh = !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &cur));
        if fresh {
            seen = Some(cur.clone());
            stamp = contain::next_stamp(stamp, now_ms());
            let now = Now {
                v: 1,
                node: node.name.clone(),
                stamp,
                entries: cur.iter().cloned().collect(),
            };
            msg = serde_json::to_vec(&now)?;
            too_big = msg.len() > contain::MAX_NOW_BYTES;
            if too_big {
                warn!(
                    bytes = msg.len(),
                    "containment set too large for the fast path: the bucket alone carries it"
                );
            }
            let _ = want_tx.send((stamp, contain::desired(&cur, &node.name)));
            changed_at = std::time::Instant::now();
        }
        // Once at the change, again every REPEAT_FAST_MS for REPEAT_FAST_FOR_MS (an edge may be
        // reconnecting), then every second until the bucket has stored this stamp.
        let since = changed_at.elapsed().as_millis() as u64;
        let due = fresh
            || (since <= contain::REPEAT_FAST_FOR_MS
                && sent_at.elapsed().as_millis() as u64 >= contain::REPEAT_FAST_MS)
            || (stored_stamp.load(std::sync::atomic::Ordering::Relaxed) < stamp
                && sent_at.elapsed() >= StdDuration::from_secs(1));
        if due && !too_big {
            sent_at = std::time::Instant::now();
            if let Err(e) = client.publish(subject.clone(), msg.clone().into()).await {
                debug!("containment not sent on the fast path: {e}");
            }
        }
    }
}

/// The bucket task of [`publish_containment`]: makes this sink's keys what the latest set
/// wants; a failed write is tried again (every 200 ms) until it is stored, and the stamp key
/// goes last, once every key of that set is stored.
async fn sync_bucket(
    node: Node,
    mut want_rx: tokio::sync::watch::Receiver<(u64, HashMap<String, super::contain::Stored>)>,
    stored_stamp: Arc<std::sync::atomic::AtomicU64>,
) {
    use super::contain::{self, Op, Stored};
    let bucket = format!("{}-contain", node.cfg.prefix);
    let stamp_key = contain::stamp_key(&node.name);
    let mut kv: Option<kv::Store> = None;
    // What the bucket holds of this sink; None until read (after a restart it may hold
    // containments released meanwhile: they are deleted).
    let mut stored: Option<HashMap<String, Stored>> = None;
    let mut kv_stamp = 0u64;
    let mut failing = false;
    // Since when writes fail (logged once per streak, and when they succeed again).
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        if failing {
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        } else if want_rx.changed().await.is_err() {
            return;
        }
        failing = true;
        let (stamp, want) = want_rx.borrow_and_update().clone();
        let store = match &kv {
            Some(s) => s.clone(),
            None => match node.js.get_key_value(&bucket).await {
                Ok(s) => {
                    kv = Some(s.clone());
                    s
                }
                Err(e) => {
                    debug!("containment bucket not reachable: {e}");
                    continue;
                }
            },
        };
        if stored.is_none() {
            match read_own(&store, &node.name).await {
                Ok(m) => stored = Some(m),
                Err(e) => {
                    debug!("containment bucket not read: {e:#}");
                    continue;
                }
            }
        }
        let Some(have) = stored.as_mut() else {
            continue;
        };
        let mut ok = true;
        for op in contain::ops(&want, have) {
            let r = match &op {
                Op::Put(k, v) => match serde_json::to_vec(v) {
                    Ok(b) => store
                        .put(k, b.into())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Op::Delete(k) => store.delete(k).await.map_err(|e| e.to_string()),
            };
            match (r, op) {
                (Ok(()), Op::Put(k, v)) => {
                    have.insert(k, v);
                }
                (Ok(()), Op::Delete(k)) => {
                    have.remove(&k);
                }
                (Err(e), _) => {
                    if failing_since.is_none() {
                        warn!("containment not yet stored in the bucket, retrying: {e}");
                    }
                    ok = false;
                    break;
                }
            }
        }
        if ok && kv_stamp < stamp {
            match store.put(&stamp_key, stamp.to_string().into()).await {
                Ok(_) => {
                    kv_stamp = stamp;
                    stored_stamp.store(stamp, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    if failing_since.is_none() {
                        warn!("containment stamp not yet stored in the bucket, retrying: {e}");
                    }
                    ok = false;
                }
            }
        }
        failing = !ok;
        match (ok, failing_since) {
            (false, None) => failing_since = Some(std::time::Instant::now()),
            (true, Some(t)) => {
                info!(
                    after_ms = t.elapsed().as_millis() as u64,
                    "containment stored in the bucket"
                );
                failing_since = None;
            }
            _ => {}
        }
    }
}

/// This sink's keys in the bucket (values without a node, of older versions, count as its own).
async fn read_own(
    store: &kv::Store,
    name: &str,
) -> Result<HashMap<String, super::contain::Stored>> {
    let mut keys = store.keys().await.map_err(|e| anyhow!("{e}"))?;
    let mut m = HashMap::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| anyhow!("{e}"))?;
        if k.starts_with("stamp.") {
            continue;
        }
        let Some(v) = store.get(&k).await.map_err(|e| anyhow!("{e}"))? else {
            continue;
        };
        if let Ok(s) = serde_json::from_slice::<super::contain::Stored>(&v) {
            if s.node.as_deref().is_none_or(|n| n == name) {
                m.insert(k, s);
            }
        }
    }
    Ok(m)
}

/// An edge's view of the containment list ([`super::contain::View`]): the sinks' published
/// sets on the plain subject and the bucket watched; the policy server's snapshot replaced on
/// every change. When the bus is down the last snapshot stays (answers go on from it; nothing
/// new is contained until it is back).
pub async fn watch_containment(node: Node, shared: Arc<Shared>) -> Result<()> {
    let view = Arc::new(std::sync::Mutex::new(super::contain::View::default()));
    let apply = {
        let (view, shared) = (view.clone(), shared.clone());
        move |f: &dyn Fn(&mut super::contain::View) -> bool| {
            let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
            if f(&mut v) {
                shared.contained.store(Arc::new(v.set()));
            }
        }
    };
    let client = node.js.client();
    let subject = format!("{}.contain.now", node.cfg.prefix);
    let fast = {
        let apply = apply.clone();
        async move {
            loop {
                match client.subscribe(subject.clone()).await {
                    Ok(mut sub) => {
                        while let Some(m) = sub.next().await {
                            apply(&|v| v.now(&m.payload));
                        }
                    }
                    Err(e) => warn!("containment subject not subscribed, retrying: {e}"),
                }
                tokio::time::sleep(StdDuration::from_secs(1)).await;
            }
        }
    };
    tokio::spawn(fast);
    // The bucket: all keys at first, then from the revision after the last one seen (after a
    // server loss the watch resumes where it stopped, nothing replayed and nothing missed: the
    // bucket keeps each key's last operation).
    let mut next_rev = 0u64;
    let stream_name = format!("KV_{}-contain", node.cfg.prefix);
    loop {
        let r: Result<()> = async {
            let kv = node
                .js
                .get_key_value(format!("{}-contain", node.cfg.prefix))
                .await
                .map_err(|e| anyhow!("{e}"))?;
            let mut w = if next_rev == 0 {
                kv.watch_with_history(">").await
            } else {
                kv.watch_all_from_revision(next_rev).await
            }
            .map_err(|e| anyhow!("{e}"))?;
            // A watch whose consumer is gone is noticed by the client only after two missed
            // heartbeats (10 s), and one that stalls otherwise never: every few seconds the
            // bucket's last revision is compared with what the watch delivered, and a watch
            // behind on two checks in a row is resumed.
            let mut check = tokio::time::interval(StdDuration::from_secs(WATCH_CHECK_SECS));
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut behind = false;
            loop {
                tokio::select! {
                    e = w.next() => {
                        let Some(e) = e else { return Ok(()) };
                        let e = e.map_err(|e| anyhow!("{e}"))?;
                        next_rev = next_rev.max(e.revision + 1);
                        match e.operation {
                            kv::Operation::Put => apply(&|v| v.kv_put(&e.key, &e.value)),
                            kv::Operation::Delete | kv::Operation::Purge => {
                                apply(&|v| v.kv_delete(&e.key))
                            }
                        }
                    }
                    _ = check.tick() => {
                        let Ok(st) = node.js.get_stream(&stream_name).await else {
                            continue;
                        };
                        let last = st.cached_info().state.last_sequence;
                        if last >= next_rev.max(1) {
                            if behind {
                                return Err(anyhow!(
                                    "the watch is behind the bucket (revision {last}, delivered up to {})",
                                    next_rev.saturating_sub(1)
                                ));
                            }
                            behind = true;
                        } else {
                            behind = false;
                        }
                    }
                }
            }
        }
        .await;
        if let Err(e) = r {
            warn!("containment watch interrupted, resuming: {e:#}");
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}
