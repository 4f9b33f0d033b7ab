//! Connection slots of a listener (policy server, syslog TCP), taken after `accept`.
//!
//! A slot taken before `accept` lets anyone who opens `connections` idle connections hold the
//! listener shut: new Postfix processes then wait, give up and fall back to DUNNO, and nothing
//! shows it. Here every accepted peer gets a slot at once; when all are taken, the connection
//! that has waited longest for input is told to close — idle ones (between requests or frames)
//! before those stuck in the middle of one — so a new client is always answered. Postfix and
//! rsyslog simply reconnect when a connection of theirs is closed. Evictions are counted by the
//! caller; the open connections are a gauge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// What a connection is doing, for the choice of whom to evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Activity {
    /// Waiting for the next request or frame: closing it loses nothing.
    Idle,
    /// Inside a request or frame (or answering it).
    Busy,
}

/// A connection's activity and since when, in one word that its connection writes without
/// the table's lock (a policy connection sets it once per request, and the table's lock, taken
/// by every connection of the listener, was contended on two cores); eviction reads it under
/// the lock. The activity is the lowest bit, above it the nanoseconds since the listener's
/// [`Slots::epoch`]. A cache line of its own: each connection writes only its own.
#[repr(align(64))]
struct SlotState(AtomicU64);

impl SlotState {
    fn new(activity: Activity, since_ns: u64) -> SlotState {
        SlotState(AtomicU64::new(Self::pack(activity, since_ns)))
    }

    fn pack(activity: Activity, since_ns: u64) -> u64 {
        // 2^63 ns is 292 years after the listener started.
        (since_ns.min(u64::MAX >> 1) << 1) | activity as u64
    }

    fn set(&self, activity: Activity, since_ns: u64) {
        self.0
            .store(Self::pack(activity, since_ns), Ordering::Relaxed);
    }

    /// The activity and since when (ns after the epoch): the order of eviction, first the
    /// smallest.
    fn get(&self) -> (Activity, u64) {
        let v = self.0.load(Ordering::Relaxed);
        let activity = if v & 1 == 0 {
            Activity::Idle
        } else {
            Activity::Busy
        };
        (activity, v >> 1)
    }
}

struct Entry {
    state: Arc<SlotState>,
    kick: Arc<Notify>,
    /// Closes the connection from outside, for one served by a thread of its own (blocked in
    /// a read that no notification reaches).
    closer: Option<Closer>,
}

impl Entry {
    /// Tell the connection to close: its task's [`Slot::evicted`] completes, a thread's
    /// socket is shut down (its blocked read returns end of input).
    fn close(&self) {
        self.kick.notify_one();
        if let Some(close) = &self.closer {
            close();
        }
    }
}

/// Closes a connection from another thread: its blocked read then returns end of input.
pub type Closer = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Table {
    next: u64,
    entries: BTreeMap<u64, Entry>,
}

/// The slots of one listener.
pub struct Slots {
    cap: usize,
    /// Start of the clock of [`SlotState`].
    epoch: Instant,
    table: Mutex<Table>,
    open: Arc<AtomicU64>,
}

/// How a connection got its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot was free.
    Free,
    /// Another connection was told to close to make room.
    Evicted(Activity),
}

/// A connection's slot; dropping it frees the slot.
pub struct Slot {
    id: u64,
    slots: Arc<Slots>,
    state: Arc<SlotState>,
    kick: Arc<Notify>,
}

impl Slots {
    /// `cap` slots (at least one); `open` is the gauge of open connections (shared by the
    /// listeners of one kind).
    pub fn new(cap: usize, open: Arc<AtomicU64>) -> Arc<Slots> {
        Arc::new(Slots {
            cap: cap.max(1),
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
            open,
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a newly accepted connection, evicting the connection that has waited
    /// longest for input when all are taken (idle ones first).
    pub fn admit(self: &Arc<Self>) -> (Slot, Admission) {
        self.admit_with(None)
    }

    /// [`Slots::admit`] for a connection served by a thread of its own: when it is evicted,
    /// `closer` closes it.
    pub fn admit_closing(self: &Arc<Self>, closer: Closer) -> (Slot, Admission) {
        self.admit_with(Some(closer))
    }

    fn admit_with(self: &Arc<Self>, closer: Option<Closer>) -> (Slot, Admission) {
        let now = Instant::now();
        let mut t = self.table();
        let mut how = Admission::Free;
        if t.entries.len() >= self.cap {
            let victim = t
                .entries
                .iter()
                .min_by_key(|(id, e)| (e.state.get(), **id))
                .map(|(id, _)| *id);
            if let Some(e) = victim.and_then(|id| t.entries.remove(&id)) {
                e.close();
                self.open.fetch_sub(1, Ordering::Relaxed);
                how = Admission::Evicted(e.state.get().0);
            }
        }
        let id = t.next;
        t.next += 1;
        let kick = Arc::new(Notify::new());
        let state = Arc::new(SlotState::new(Activity::Idle, self.since_epoch(now)));
        t.entries.insert(
            id,
            Entry {
                state: state.clone(),
                kick: kick.clone(),
                closer,
            },
        );
        self.open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            id,
            slots: self.clone(),
            state,
            kick,
        };
        (slot, how)
    }

    /// Close the connections that at `now` have been idle longer than `idle`, or inside one
    /// request or frame longer than `busy` (since it began); they give up their slots. Returns
    /// how many, and tells `count` how many before closing any (so a client that sees its
    /// connection closed by a timeout finds it already counted). For connections served by
    /// threads of their own, which block in their reads and so keep no deadline themselves
    /// (see `policy::reap`).
    pub fn close_overdue(
        &self,
        now: Instant,
        idle: Duration,
        busy: Duration,
        count: impl FnOnce(usize),
    ) -> usize {
        let now_ns = self.since_epoch(now);
        let limit = |a: Activity| match a {
            Activity::Idle => idle,
            Activity::Busy => busy,
        };
        self.close_where(
            |(a, since)| {
                now_ns.saturating_sub(since)
                    > u64::try_from(limit(a).as_nanos()).unwrap_or(u64::MAX)
            },
            count,
        )
    }

    /// Close every connection (the service stops).
    pub fn close_all(&self) -> usize {
        self.close_where(|_| true, |_| {})
    }

    /// Close the connections whose activity and since-when (ns after the epoch) match, having
    /// told `count` how many first.
    fn close_where(
        &self,
        overdue: impl Fn((Activity, u64)) -> bool,
        count: impl FnOnce(usize),
    ) -> usize {
        let mut t = self.table();
        // Chosen once: a connection's state may change meanwhile (its thread sets it without
        // the table's lock), and the ones counted are the ones closed.
        let chosen: Vec<u64> = t
            .entries
            .iter()
            .filter(|(_, e)| overdue(e.state.get()))
            .map(|(id, _)| *id)
            .collect();
        count(chosen.len());
        for id in &chosen {
            if let Some(e) = t.entries.remove(id) {
                e.close();
            }
        }
        self.open.fetch_sub(chosen.len() as u64, Ordering::Relaxed);
        chosen.len()
    }

    /// Nanoseconds from the epoch to `t`.
    fn since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Connections holding a slot.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().entries.len()
    }
}

impl Slot {
    fn set(&self, activity: Activity, at: Instant) {
        self.state.set(activity, self.slots.since_epoch(at));
    }

    /// The connection waits for the next request or frame.
    pub fn idle(&self) {
        self.idle_since(Instant::now());
    }

    /// The connection has waited for the next request or frame since `at` (a time its caller
    /// has just read, for one clock read less per request).
    pub fn idle_since(&self, at: Instant) {
        self.set(Activity::Idle, at);
    }

    /// The connection has started a request or frame.
    pub fn busy(&self) {
        self.set(Activity::Busy, Instant::now());
    }

    /// Completes when the connection was evicted to make room: close it.
    pub async fn evicted(&self) {
        self.kick.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.slots.table().entries.remove(&self.id).is_some() {
            self.slots.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Raise the soft limit of open files to the hard limit: `connections` slots per listener
/// need more descriptors than the usual soft limit of 1024. Returns the limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass by valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim = want;
        }
    }
    // rlim_t is u64 on Linux, other widths elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn full_listener_evicts_oldest_idle_before_busy() {
        let open = Arc::new(AtomicU64::new(0));
        let s = Slots::new(3, open.clone());
        let (a, how) = s.admit();
        assert_eq!(how, Admission::Free);
        tokio::time::advance(Duration::from_secs(1)).await;
        let (b, _) = s.admit();
        tokio::time::advance(Duration::from_secs(1)).await;
        let (c, _) = s.admit();
        assert_eq!(open.load(Ordering::Relaxed), 3);
        // a is stuck in a request; b and c are idle, b the longer.
        a.busy();
        tokio::time::advance(Duration::from_secs(1)).await;
        c.idle();
        let (d, how) = s.admit();
        assert_eq!(how, Admission::Evicted(Activity::Idle));
        tokio::time::timeout(Duration::from_millis(1), b.evicted())
            .await
            .expect("b is told to close");
        assert_eq!((s.len(), open.load(Ordering::Relaxed)), (3, 3));
        drop(b);
        assert_eq!((s.len(), open.load(Ordering::Relaxed)), (3, 3));
        // c (idle) goes before d (idle, admitted later).
        let (e, how) = s.admit();
        assert_eq!(how, Admission::Evicted(Activity::Idle));
        tokio::time::timeout(Duration::from_millis(1), c.evicted())
            .await
            .expect("c is told to close");
        // All busy: the one stuck longest (a) goes.
        tokio::time::advance(Duration::from_secs(1)).await;
        d.busy();
        e.busy();
        let (_f, how) = s.admit();
        assert_eq!(how, Admission::Evicted(Activity::Busy));
        tokio::time::timeout(Duration::from_millis(1), a.evicted())
            .await
            .expect("a, the oldest busy one, is told to close");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), d.evicted())
                .await
                .is_err(),
            "d stays"
        );
        drop((a, c, d, e));
        assert_eq!(s.len(), open.load(Ordering::Relaxed) as usize);
    }

    /// The connections closed for a timeout are counted before any of them is closed: a client
    /// that sees its connection end finds the timeout already in the metrics.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn timeouts_are_counted_before_the_connections_close() {
        let s = Slots::new(10, Arc::new(AtomicU64::new(0)));
        let closed = Arc::new(AtomicU64::new(0));
        let closing = |closed: &Arc<AtomicU64>| -> Closer {
            let closed = closed.clone();
            Box::new(move || {
                closed.fetch_add(1, Ordering::SeqCst);
            })
        };
        let (a, _) = s.admit_closing(closing(&closed));
        let (b, _) = s.admit_closing(closing(&closed));
        tokio::time::advance(Duration::from_secs(31)).await;
        let (c, _) = s.admit_closing(closing(&closed));
        let mut counted = None;
        let n = s.close_overdue(
            Instant::now(),
            Duration::from_secs(30),
            Duration::from_secs(10),
            |n| counted = Some((n, closed.load(Ordering::SeqCst))),
        );
        assert_eq!(n, 2, "a and b were idle 31 s");
        assert_eq!(counted, Some((2, 0)), "counted, and none closed yet");
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        drop((a, b, c));
    }

    /// Connections idle or inside a request past their limits are closed and give up their
    /// slots; the others stay, until all are closed at the stop.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn overdue_connections_are_closed() {
        let open = Arc::new(AtomicU64::new(0));
        let s = Slots::new(10, open.clone());
        let (idle, busy) = (Duration::from_secs(30), Duration::from_secs(10));
        let (a, _) = s.admit();
        let (b, _) = s.admit();
        let (c, _) = s.admit();
        b.busy();
        tokio::time::advance(Duration::from_secs(11)).await;
        c.busy();
        // b has been inside its request for 11 s; a idle for 11 s, c just began one.
        assert_eq!(s.close_overdue(Instant::now(), idle, busy, |_| {}), 1);
        tokio::time::timeout(Duration::from_millis(1), b.evicted())
            .await
            .expect("b is told to close");
        assert_eq!((s.len(), open.load(Ordering::Relaxed)), (2, 2));
        tokio::time::advance(Duration::from_secs(20)).await;
        a.idle();
        // c is 20 s into its request, a idle since just now: both closed once past a limit.
        assert_eq!(s.close_overdue(Instant::now(), idle, busy, |_| {}), 1);
        assert!(tokio::time::timeout(Duration::from_millis(1), a.evicted())
            .await
            .is_err());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(s.close_overdue(Instant::now(), idle, busy, |_| {}), 1);
        assert_eq!((s.len(), open.load(Ordering::Relaxed)), (0, 0));
        // At the stop every one goes, overdue or not.
        let (d, _) = s.admit();
        let (_e, _) = s.admit();
        assert_eq!(s.close_all(), 2);
        tokio::time::timeout(Duration::from_millis(1), d.evicted())
            .await
            .expect("d is told to close");
        drop((a, b, c, d));
        assert_eq!((s.len(), open.load(Ordering::Relaxed)), (0, 0));
    }
}
