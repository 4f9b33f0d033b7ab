//! A partition's events from several edges, merged into one order by event time.
//!
//! Each edge publishes in its own log's order; two edges' events reach a partition interleaved
//! by network timing. The engine must not see that timing (it would give different alerts on
//! every run), so a worker processes a partition's events by `(order, edge, run, seq)` (see
//! [`super::wire`]), and only once no edge can still send an event that sorts before: every
//! other edge it waits for has reported an `order` beyond it (by an event or by its
//! once-a-second mark). An edge that says it is idle, or that was silent for `edge_timeout`, is
//! not waited for (its next event ends that). This is the watermark of stream processors
//! (Akidau et al., "The Dataflow Model", VLDB 2015): out-of-order arrival is undone exactly,
//! lateness of a silent source only delays.
//!
//! Pure: the wall clock (for `edge_timeout`) is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// The sort key of an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The edge's event time so far.
    pub order: i64,
    /// Edge name.
    pub edge: String,
    /// Edge run.
    pub run: u64,
    /// Sequence in the run.
    pub seq: u64,
}

#[derive(Debug, Clone, Default)]
struct Edge {
    /// Highest `order` vouched for: every event of the edge up to it is here or processed.
    mark: i64,
    idle: bool,
    /// Wall clock (s) when last heard.
    heard: i64,
    /// The edge's run whose sequence numbers are followed.
    run: u64,
    /// Every event of `run` up to this sequence number is held here or processed.
    done: u64,
    /// Sequence numbers of `run` held, above `done`.
    ahead: std::collections::BTreeSet<u64>,
    /// Watermarks `(seq, order, idle)` that wait for the events before them to arrive (a
    /// redelivered event may come after a later mark of its edge).
    pending: Vec<(u64, i64, bool)>,
}

impl Edge {
    fn fresh(now: i64) -> Edge {
        Edge {
            mark: i64::MIN,
            heard: now,
            ..Edge::default()
        }
    }

    /// Follow run `run` (a newer run starts from nothing).
    fn run(&mut self, run: u64) -> bool {
        if run > self.run {
            self.run = run;
            self.done = 0;
            self.ahead.clear();
            self.pending.clear();
        }
        run == self.run
    }

    fn received(&mut self, seq: u64) {
        if seq > self.done {
            self.ahead.insert(seq);
        }
        while self.ahead.remove(&(self.done + 1)) {
            self.done += 1;
        }
        self.settle();
    }

    fn settle(&mut self) {
        let done = self.done;
        let (ready, wait): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(s, _, _)| *s <= done);
        self.pending = wait;
        for (_, order, idle) in ready {
            self.mark = self.mark.max(order);
            self.idle = idle;
        }
    }

    /// Give up what is missing up to `seq`.
    fn skip_to(&mut self, seq: u64) {
        if seq > self.done {
            self.done = seq;
            let done = self.done;
            self.ahead.retain(|s| *s > done);
            self.received(0);
        }
    }
}

/// The merge buffer of one partition.
#[derive(Debug)]
pub struct Merge<T> {
    heap: BinaryHeap<Reverse<(Key, u64)>>,
    items: HashMap<u64, T>,
    next: u64,
    edges: HashMap<String, Edge>,
    /// Edges waited for even before they were heard from.
    expected: Vec<String>,
    timeout: i64,
    /// How long an event waits for a missing predecessor of its edge.
    gap_timeout: i64,
    started: i64,
    /// Since when (wall s) the first event has been waiting for a missing one of its edge.
    gap_since: Option<i64>,
}

impl<T> Merge<T> {
    /// A merge waiting for `expected` edges (and any other it hears from), giving up on an edge
    /// silent for `timeout` seconds and on a missing event after `gap_timeout` seconds; `now` is
    /// the wall clock (s).
    pub fn new(expected: &[String], timeout: i64, gap_timeout: i64, now: i64) -> Merge<T> {
        Merge {
            heap: BinaryHeap::new(),
            items: HashMap::new(),
            next: 0,
            edges: HashMap::new(),
            expected: expected.to_vec(),
            timeout,
            gap_timeout,
            started: now,
            gap_since: None,
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The events waiting, in no order.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// An edge's watermark (a mark, or an idle mark) at wall time `now`: its event time
    /// `order` after its event `seq` of run `run` on this partition. It takes effect once every
    /// event of the edge up to `seq` is here or processed.
    pub fn mark(&mut self, edge: &str, run: u64, seq: u64, order: i64, idle: bool, now: i64) {
        let e = self
            .edges
            .entry(edge.to_string())
            .or_insert_with(|| Edge::fresh(now));
        e.heard = now;
        if e.run(run) {
            e.pending.push((seq, order, idle));
            e.settle();
        }
    }

    /// Where the partition's state stands for an edge (restored from a snapshot): its events up
    /// to `seq` of run `run` are processed.
    pub fn base(&mut self, edge: &str, run: u64, seq: u64, now: i64) {
        let e = self
            .edges
            .entry(edge.to_string())
            .or_insert_with(|| Edge::fresh(now));
        if e.run(run) {
            e.skip_to(seq);
        }
    }

    /// An event (it also vouches for its edge's event time so far, once the events before it
    /// are here).
    pub fn push(&mut self, key: Key, item: T, now: i64) {
        let e = self
            .edges
            .entry(key.edge.clone())
            .or_insert_with(|| Edge::fresh(now));
        e.heard = now;
        if e.run(key.run) {
            e.pending.push((key.seq, key.order, false));
            e.received(key.seq);
        }
        let n = self.next;
        self.next += 1;
        self.items.insert(n, item);
        self.heap.push(Reverse((key, n)));
    }

    /// May `other` still send something that sorts before `(order, edge)`?
    fn blocks(&self, name: &str, order: i64, edge: &str, now: i64) -> bool {
        if name == edge {
            return false;
        }
        match self.edges.get(name) {
            None => now - self.started < self.timeout,
            Some(e) => {
                if e.idle || now - e.heard >= self.timeout {
                    return false;
                }
                (e.mark, name) <= (order, edge)
            }
        }
    }

    /// The next event that no edge can precede any more and that `in_sequence` accepts (its
    /// edge's earlier events on this partition are processed), if any. An event kept waiting
    /// for a missing one for `timeout` goes on without it.
    pub fn pop(&mut self, now: i64, in_sequence: impl Fn(&Key) -> bool) -> Option<(Key, T)> {
        let Reverse((k, _)) = self.heap.peek()?;
        if !in_sequence(k) {
            let since = *self.gap_since.get_or_insert(now);
            if now - since < self.gap_timeout {
                return None;
            }
        }
        self.gap_since = None;
        let waiting = self
            .expected
            .iter()
            .map(String::as_str)
            .chain(self.edges.keys().map(String::as_str))
            .any(|name| self.blocks(name, k.order, &k.edge, now));
        if waiting {
            return None;
        }
        let Reverse((k, n)) = self.heap.pop()?;
        // Going on past a missing event (the gap timeout) gives up what came before it.
        if let Some(e) = self.edges.get_mut(&k.edge) {
            if k.run == e.run {
                e.skip_to(k.seq);
            }
        }
        let item = self.items.remove(&n)?;
        Some((k, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(order: i64, edge: &str, seq: u64) -> Key {
        Key {
            order,
            edge: edge.into(),
            run: 1,
            seq,
        }
    }

    fn drain(m: &mut Merge<&'static str>, now: i64) -> Vec<&'static str> {
        std::iter::from_fn(|| m.pop(now, |_| true).map(|(_, v)| v)).collect()
    }

    #[test]
    fn two_edges_are_merged_by_event_time_whatever_the_arrival() {
        let edges = vec!["a".to_string(), "b".to_string()];
        // Arrival: all of a's, then b's.
        let mut m = Merge::new(&edges, 10, 10, 0);
        m.push(key(1, "a", 1), "a1", 0);
        m.push(key(3, "a", 2), "a3", 0);
        assert!(drain(&mut m, 0).is_empty(), "b not heard yet: wait");
        m.push(key(2, "b", 1), "b2", 0);
        assert_eq!(drain(&mut m, 0), ["a1", "b2"]);
        m.push(key(3, "b", 2), "b3", 0);
        // a3 sorts before b3 (same time, edge name); b may still send 3s later: a3 waits? No:
        // b is at 3 and "b" > "a", so anything b sends sorts after a3.
        assert_eq!(drain(&mut m, 0), ["a3"]);
        m.mark("a", 1, 2, 5, true, 0);
        assert_eq!(drain(&mut m, 0), ["b3"]);
        assert!(m.is_empty());
    }

    #[test]
    fn a_silent_edge_is_waited_for_until_the_timeout() {
        let edges = vec!["a".to_string(), "b".to_string()];
        let mut m = Merge::new(&edges, 10, 10, 100);
        m.push(key(1, "a", 1), "a1", 100);
        assert!(drain(&mut m, 105).is_empty());
        assert_eq!(drain(&mut m, 110), ["a1"]);
        m.mark("b", 1, 0, 0, false, 111);
        m.push(key(2, "a", 2), "a2", 111);
        assert!(
            drain(&mut m, 112).is_empty(),
            "b is heard again: waited for"
        );
        assert_eq!(drain(&mut m, 121), ["a2"]);
    }

    #[test]
    fn a_mark_waits_for_the_events_it_vouches_for() {
        let edges = vec!["a".to_string(), "b".to_string()];
        let mut m = Merge::new(&edges, 100, 100, 0);
        m.push(key(5, "a", 1), "a5", 0);
        // b's mark after its event 2 arrives before its events 1 and 2 (redelivered later).
        m.mark("b", 1, 2, 9, false, 0);
        assert!(
            drain(&mut m, 0).is_empty(),
            "b's events 1 and 2 may sort before a5"
        );
        m.push(key(3, "b", 2), "b3", 0);
        // (b3 itself waits in the worker for b's event 1: `Partition::in_sequence`.)
        assert!(
            m.pop(0, |k| k.seq == 1 && k.edge == "b").is_none(),
            "a5 waits for b"
        );
        m.push(key(2, "b", 1), "b2", 0);
        assert_eq!(drain(&mut m, 0), ["b2", "b3", "a5"]);
    }

    #[test]
    fn an_event_waits_for_a_missing_predecessor_until_the_timeout() {
        let mut m = Merge::new(&[], 10, 10, 0);
        m.push(key(5, "a", 2), "a2", 0);
        assert!(m.pop(0, |k| k.seq == 1).is_none());
        assert!(m.pop(9, |k| k.seq == 1).is_none());
        assert_eq!(m.pop(10, |k| k.seq == 1).map(|x| x.1), Some("a2"));
    }
}
