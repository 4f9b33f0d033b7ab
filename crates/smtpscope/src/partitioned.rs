//! `analyze --partitions P`: the engine split by entity across threads (issue 12, item 3).
//!
//! The log is routed on the calling thread exactly as a cluster edge routes it
//! ([`cluster::route::Router`]: the SASL account, else the client's network, else the sender
//! decides a line's partition, and a delivery line follows its queue id); each partition is a
//! [`cluster::Partition`], the engine behind the same [`crate::pipeline::Driver`] a cluster
//! worker runs, fed its lines in routing order. From [`PARSE_APART_MIN_THREADS`] workers on,
//! a reader and parser threads ([`parser_threads`]) read and parse the input for the routing
//! thread, which takes the parsed lines in input order (`run_threads`). Partitions are dealt to `threads` worker
//! threads (in contiguous ranges of partition numbers), so a partition's engine sees the same
//! lines in the same order whatever the thread count, and the alerts are put in one order at
//! the end (event time, then partition, then the order its engine raised them); campaigns are
//! correlated over all partitions' `auth-hijack` alerts as the cluster's sink does
//! ([`cluster::Campaigns::over`]). So the alerts depend on the log and `P`, never on the
//! threads (tests/partitions.rs), and they are the alerts a cluster of `P` partitions raises
//! for this log (`smtpscope cluster-replay`), plus what the end of the input closes.
//!
//! What partitioning costs in detection is what it costs the cluster: state that spans
//! entities is seen per partition (docs/ARCHITECTURE.md, "What partitioning costs"). Without
//! `--partitions`, `analyze` runs one engine and splits its work by function instead.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

use anyhow::{bail, Result};
use detect::engine::EngineStats;
use detect::Alert;

use crate::cluster::{self, Partition};
use crate::input::Source;
use crate::pipeline::{run_threads, RunStats, TimeOpts};

/// Least worker threads with which the calling thread hands its parsing to parser threads and
/// only routes. The calling thread's share of a partitioned run is about 29% of its CPU (3.88
/// of 13.57 CPU-s on the whole benchmark log, `--partitions 64 --threads 2`), so it sets the
/// pace once each of the workers has less, from three workers on (9.69 CPU-s / 3 = 3.2).
/// With two, parsing apart only adds threads: 6.84–7.21 s against 6.44–7.11 s on two cores
/// (docs/PERFORMANCE.md, "The engine split by entity").
pub const PARSE_APART_MIN_THREADS: usize = 3;

/// Least parser threads when parsing apart: `run_threads` parses in parallel only with two or
/// more.
pub const MIN_PARSER_THREADS: usize = 2;

/// Worker threads per parser thread beyond [`MIN_PARSER_THREADS`]: parsing is about a fifth of
/// a partitioned run's CPU (0.45 of 2.48 CPU-s on the benchmark's first quarter, measured with
/// two parser threads), so a parser for every four workers keeps it off the critical path.
pub const WORKERS_PER_PARSER: usize = 4;

/// Parser threads for a partitioned run of `workers` worker threads: `1` (the calling thread
/// parses) below [`PARSE_APART_MIN_THREADS`], else [`MIN_PARSER_THREADS`] or one per
/// [`WORKERS_PER_PARSER`] workers, whichever is more.
pub fn parser_threads(workers: usize) -> usize {
    if workers < PARSE_APART_MIN_THREADS {
        1
    } else {
        (workers / WORKERS_PER_PARSER).max(MIN_PARSER_THREADS)
    }
}

/// Routed lines handed to a worker at once: one channel operation per this many lines, and a
/// batch of about 200-byte lines stays within a few hundred KiB. Our own choice.
pub const BATCH_LINES: usize = 1_024;

/// Bytes of text after which a batch is handed over whatever its lines: a log line may be up
/// to 64 KiB, and [`BATCH_LINES`] of those would hold 64 MiB per batch. Our own choice (about
/// [`BATCH_LINES`] lines of twice the benchmark's average).
pub const BATCH_BYTES: usize = 512 * 1024;

/// Batches a worker may have waiting before the router waits for it: enough to ride out one
/// worker's burst (an idle sweep packing an hour's entities) without holding the log in memory.
/// Our own choice.
pub const QUEUE_BATCHES: usize = 16;

/// Routed lines for one worker: their texts one after another in one string, so that the
/// router copies a line into a batch instead of allocating it (and the worker frees one block
/// per batch, not one per line).
#[derive(Default)]
struct Batch {
    text: String,
    /// Per line: partition, event time (µs), end of its text in `text`.
    lines: Vec<(u32, i64, usize)>,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch {
            text: String::with_capacity(BATCH_LINES * TYPICAL_LINE_BYTES),
            lines: Vec::with_capacity(BATCH_LINES),
        }
    }

    fn push(&mut self, partition: u32, ts: i64, text: &str) {
        self.text.push_str(text);
        self.lines.push((partition, ts, self.text.len()));
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the batch is to be handed over ([`BATCH_LINES`], [`BATCH_BYTES`]).
    fn is_full(&self) -> bool {
        self.lines.len() >= BATCH_LINES || self.text.len() >= BATCH_BYTES
    }

    /// Empty, to be filled again; a text grown past [`BATCH_BYTES`] by long lines is given
    /// back to the allocator, so that recycled batches hold no more than that each.
    fn clear(&mut self) {
        self.text.clear();
        self.text.shrink_to(BATCH_BYTES);
        self.lines.clear();
    }

    /// The lines in order: partition, event time, text.
    fn iter(&self) -> impl Iterator<Item = (u32, i64, &str)> {
        let mut start = 0;
        self.lines.iter().map(move |&(p, ts, end)| {
            let t = &self.text[start..end];
            start = end;
            (p, ts, t)
        })
    }
}

/// A log line's usual length, to size a batch's text (the benchmark log's lines average 202
/// bytes). Only a first allocation: the text grows as needed.
const TYPICAL_LINE_BYTES: usize = 256;

/// An alert with what puts it in its place whatever the thread count: its partition and its
/// number among that partition's alerts.
struct Placed {
    partition: u32,
    n: u64,
    alert: Alert,
}

/// The partitions one thread runs and the alerts they raised.
struct Share {
    /// Partitions `first`, `first + 1`, … in that order.
    parts: Vec<Partition>,
    first: u32,
    raised: Vec<Placed>,
    counts: Vec<u64>,
}

impl Share {
    fn new(range: std::ops::Range<u32>, engine: &mut impl FnMut() -> detect::Engine) -> Share {
        let first = range.start;
        let parts: Vec<Partition> = range.map(|n| Partition::new(n, engine())).collect();
        let counts = vec![0; parts.len()];
        Share {
            parts,
            first,
            raised: Vec::new(),
            counts,
        }
    }

    fn feed(&mut self, partition: u32, ts: i64, text: &str) {
        let i = partition.wrapping_sub(self.first) as usize;
        let Some(p) = self.parts.get_mut(i) else {
            return;
        };
        p.feed_line(ts, text);
        for alert in p.take_alerts() {
            self.counts[i] += 1;
            self.raised.push(Placed {
                partition,
                n: self.counts[i],
                alert,
            });
        }
    }

    /// End of input: every partition closes what it still holds.
    fn finish(&mut self) {
        for (i, p) in self.parts.iter_mut().enumerate() {
            p.finish();
            for alert in p.take_alerts() {
                self.counts[i] += 1;
                self.raised.push(Placed {
                    partition: p.number,
                    n: self.counts[i],
                    alert,
                });
            }
        }
    }

    fn run(mut self, rx: Receiver<Batch>, back: Sender<Batch>) -> Share {
        for mut batch in rx {
            for (partition, ts, text) in batch.iter() {
                self.feed(partition, ts, text);
            }
            batch.clear();
            // The router gone (the run over) needs no more batches.
            let _ = back.send(batch);
        }
        self.finish();
        self
    }
}

/// What a partitioned run gives: what was read, the alerts in their one order, and the
/// partitions' engines (for their statistics).
pub struct Outcome {
    /// What was read.
    pub run: RunStats,
    /// Every alert: each partition's, then the campaigns over them, by event time.
    pub alerts: Vec<Alert>,
    /// The partitions, by number.
    pub partitions: Vec<Partition>,
}

impl Outcome {
    /// The engines' counters added up over the partitions (first and last times: the
    /// earliest and latest).
    pub fn engine_stats(&self) -> EngineStats {
        let mut s = EngineStats::default();
        for p in &self.partitions {
            let e = p.engine().stats();
            s.events += e.events;
            s.records += e.records;
            s.outgoing += e.outgoing;
            s.incoming += e.incoming;
            s.internal += e.internal;
            s.failed_recipients += e.failed_recipients;
            s.delivered_recipients += e.delivered_recipients;
            s.alerts += e.alerts;
            s.first_ts = match (s.first_ts, e.first_ts) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.last_ts = s.last_ts.max(e.last_ts);
        }
        s
    }
}

/// Analyze `srcs` with the engine split into `partitions` partitions by entity, run on
/// `threads` worker threads beside the calling thread (which routes) and the reader and parser
/// threads ([`parser_threads`]); with one thread everything runs on the calling thread. `engine` makes each partition's engine.
pub fn analyze(
    srcs: &[Source],
    t: &TimeOpts,
    progress: bool,
    partitions: u32,
    threads: usize,
    mut engine: impl FnMut() -> detect::Engine,
) -> Result<Outcome> {
    if !(1..=cluster::config::MAX_PARTITIONS).contains(&partitions) {
        bail!(
            "--partitions {partitions}: expected 1..={}",
            cluster::config::MAX_PARTITIONS
        );
    }
    let workers = threads.clamp(1, partitions as usize) as u32;
    let mut router = cluster::route::Router::new(partitions);
    let (run, shares) = if threads <= 1 {
        let mut share = Share::new(0..partitions, &mut engine);
        let run = run_threads(srcs, t, progress, 1, |p, line| {
            let Some(h) = &p.header else { return };
            router.route_each(p, h.ts.0, line, &mut |part, ts, text| {
                share.feed(part, ts, text)
            });
        })?;
        share.finish();
        (run, vec![share])
    } else {
        let shares: Vec<Share> = (0..workers)
            .map(|w| {
                Share::new(
                    first_of(w, workers, partitions)..first_of(w + 1, workers, partitions),
                    &mut engine,
                )
            })
            .collect();
        std::thread::scope(|s| -> Result<(RunStats, Vec<Share>)> {
            let mut txs = Vec::new();
            let mut handles = Vec::new();
            // Batches the workers are done with come back to be filled again.
            let (back_tx, back_rx) = channel::<Batch>();
            for share in shares {
                let (tx, rx) = sync_channel::<Batch>(QUEUE_BATCHES);
                txs.push(tx);
                let back = back_tx.clone();
                handles.push(s.spawn(move || share.run(rx, back)));
            }
            drop(back_tx);
            let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::with_capacity()).collect();
            // A worker gone (it panicked) takes no more: the rest of the input is read but
            // not routed, and the worker's panic is raised at the join.
            let mut worker_gone = false;
            let parsers = parser_threads(workers as usize);
            let run = run_threads(srcs, t, progress, parsers, |p, line| {
                let Some(h) = &p.header else { return };
                if worker_gone {
                    return;
                }
                router.route_each(p, h.ts.0, line, &mut |part, ts, text| {
                    let w = worker_of(part, workers, partitions) as usize;
                    batches[w].push(part, ts, text);
                    if batches[w].is_full() {
                        let next = back_rx
                            .try_recv()
                            .unwrap_or_else(|_| Batch::with_capacity());
                        let full = std::mem::replace(&mut batches[w], next);
                        worker_gone |= txs[w].send(full).is_err();
                    }
                });
            });
            for (w, b) in batches.into_iter().enumerate() {
                if b.len() > 0 {
                    let _ = txs[w].send(b);
                }
            }
            drop(txs);
            let shares = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect();
            Ok((run?, shares))
        })?
    };
    Ok(gather(run, shares))
}

/// The first partition worker `w` of `workers` runs: the partitions are dealt in contiguous
/// ranges, not round robin, because FNV-1a's lowest bits are its least mixed (the lowest is
/// the parity of the key's bytes' lowest bits), and the range of a partition number depends
/// on its highest bits.
fn first_of(w: u32, workers: u32, partitions: u32) -> u32 {
    (u64::from(w) * u64::from(partitions) / u64::from(workers)) as u32
}

/// The worker that runs partition `p` (the one whose range holds it, [`first_of`]).
fn worker_of(p: u32, workers: u32, partitions: u32) -> u32 {
    // The last w with first_of(w) <= p.
    let guess = (u64::from(p) * u64::from(workers) / u64::from(partitions)) as u32;
    let mut w = guess.min(workers - 1);
    while w + 1 < workers && first_of(w + 1, workers, partitions) <= p {
        w += 1;
    }
    while w > 0 && first_of(w, workers, partitions) > p {
        w -= 1;
    }
    w
}

/// The shares' alerts in their one order, the campaigns over them, and the partitions by
/// number.
fn gather(run: RunStats, shares: Vec<Share>) -> Outcome {
    let mut placed: Vec<Placed> = Vec::new();
    let mut partitions: Vec<Partition> = Vec::new();
    for s in shares {
        placed.extend(s.raised);
        partitions.extend(s.parts);
    }
    partitions.sort_by_key(|p| p.number);
    placed.sort_by_key(|p| (p.alert.ts, p.partition, p.n));
    let mut alerts: Vec<Alert> = placed.into_iter().map(|p| p.alert).collect();
    // Every partition's engine has the one configuration; there is at least one partition.
    let campaigns = match partitions.first() {
        Some(p) => cluster::Campaigns::over(p.engine().config(), &alerts),
        None => Vec::new(),
    };
    alerts.extend(campaigns);
    // Stable: at one time a partition's alerts come before the campaigns they make.
    alerts.sort_by_key(|a| a.ts);
    Outcome {
        run,
        alerts,
        partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_one_worker_whose_range_holds_it() {
        for partitions in [1, 2, 3, 7, 16, 64, 1_000] {
            for workers in 1..=partitions.min(9) {
                let mut seen = vec![0u32; partitions as usize];
                for w in 0..workers {
                    let range =
                        first_of(w, workers, partitions)..first_of(w + 1, workers, partitions);
                    assert!(
                        !range.is_empty(),
                        "{partitions}/{workers}: worker {w} has none"
                    );
                    for p in range {
                        seen[p as usize] += 1;
                        assert_eq!(
                            worker_of(p, workers, partitions),
                            w,
                            "{partitions}/{workers}: {p}"
                        );
                    }
                }
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "{partitions}/{workers}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn parsing_moves_off_the_routing_thread_from_three_workers_on() {
        assert_eq!(parser_threads(1), 1);
        assert_eq!(parser_threads(2), 1);
        assert_eq!(parser_threads(3), 2);
        assert_eq!(parser_threads(8), 2);
        assert_eq!(parser_threads(16), 4);
    }

    #[test]
    fn a_batch_gives_its_lines_back_in_order() {
        let mut b = Batch::with_capacity();
        b.push(3, 10, "first line");
        b.push(0, 11, "");
        b.push(3, 12, "third");
        let got: Vec<_> = b.iter().collect();
        assert_eq!(
            got,
            vec![(3, 10, "first line"), (0, 11, ""), (3, 12, "third")]
        );
        b.clear();
        assert_eq!(b.iter().count(), 0);
    }

    #[test]
    fn a_batch_of_long_lines_is_handed_over_by_its_bytes() {
        let mut b = Batch::with_capacity();
        let long = "x".repeat(64 * 1024);
        let mut lines = 0;
        while !b.is_full() {
            b.push(0, 0, &long);
            lines += 1;
        }
        assert_eq!(lines, BATCH_BYTES.div_ceil(long.len()));
        assert!(lines < BATCH_LINES);
        // Recycled, it keeps no more than a batch's bytes.
        b.clear();
        assert!(b.text.capacity() <= BATCH_BYTES, "{}", b.text.capacity());
        for _ in 0..BATCH_LINES {
            b.push(0, 0, "short");
        }
        assert!(b.is_full());
    }
}
