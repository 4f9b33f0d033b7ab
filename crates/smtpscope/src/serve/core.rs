//! The engine thread: one `detect::Engine` behind the [`Driver`] `analyze` uses, fed from every
//! source through one bounded channel, with the same parser.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use detect::snapshot::SnapshotError;
use maillog::{LineParser, TimeContext, Ts};
use tracing::{debug, error, info, warn};

use super::held::{valid_queue_id, Held, Source, Tracker, MAX_PENDING};
use super::metrics::SourceKind;
use super::sinks::Sinks;
use super::store::{Checkpoint, Cmd, FilePos};
use super::Shared;
use crate::pipeline::Driver;

/// Source id of policy requests.
pub const POLICY_SRC: u32 = 0;
/// Source id of the syslog receiver.
pub const SYSLOG_SRC: u32 = 1;
/// Source id of the first followed file (then one per file).
pub const FIRST_FILE_SRC: u32 = 2;

/// A message to the engine thread.
#[derive(Debug)]
pub enum Msg {
    /// One syslog message.
    Line {
        /// Source id.
        src: u32,
        /// The text.
        line: String,
    },
    /// Lines of a followed file, and the file position after them.
    Lines {
        /// Source id.
        src: u32,
        /// Complete lines.
        lines: Vec<String>,
        /// Position to save once they are processed.
        pos: Option<FilePos>,
        /// Lines read again after a restart from the last checkpoint: they were already fed
        /// (and their alerts committed) before the service stopped, so they rebuild state but
        /// their alerts are not raised again, and their position is not saved (it is behind the
        /// saved one).
        replay: bool,
    },
    /// Policy requests are waiting in [`Shared::policy_inbox`](super::Shared) (sent when the
    /// first of a batch arrives; the ticks take what is left, too).
    Policy,
    /// Alerts raised outside the engine (the sFlow analysis): committed like the engine's.
    Alerts(Vec<detect::Alert>),
    /// Once a second: the policy clock moves on, periodic baseline save and checkpoint.
    Tick,
    /// Drain, save, stop; then signal.
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// The driver and one parser per source.
pub struct Core {
    driver: Driver,
    parsers: Vec<LineParser>,
    tz: jiff::tz::TimeZone,
    /// Year of year-less stamps given by the operator (`--year`, `[input] year`); without it the
    /// current year, and a date that would lie in the future is last year's
    /// (`maillog::time::FUTURE_TOLERANCE_SECS`).
    year: Option<i64>,
    /// Per followed file, the position after the last line fed to the engine (what a
    /// checkpoint saves with the engine's state).
    fed: BTreeMap<u32, FilePos>,
    /// Follows the mail log's `hold:` lines to the queue ids they held.
    holds: Tracker,
    /// Held messages seen since the last step, with where they were learnt.
    held: Vec<(Held, Source)>,
    /// The policy requests taken from the inbox (kept for its memory).
    policy: super::policy::Batch,
}

impl Core {
    /// An engine with parsers for the fixed sources and `files` followed files.
    pub fn new(engine: detect::Engine, tz: jiff::tz::TimeZone, files: usize) -> Core {
        let mut c = Core {
            driver: Driver::new(engine),
            parsers: Vec::new(),
            tz,
            year: None,
            fed: BTreeMap::new(),
            holds: Tracker::default(),
            held: Vec::new(),
            policy: Default::default(),
        };
        c.ensure(FIRST_FILE_SRC as usize + files);
        c
    }

    fn ensure(&mut self, n: usize) {
        while self.parsers.len() < n {
            let ctx = self.time_context();
            self.parsers.push(LineParser::new(ctx));
        }
    }

    /// A fresh year/zone context for a new source.
    fn time_context(&self) -> TimeContext {
        match self.year {
            Some(y) => TimeContext::new(y, self.tz.clone()),
            None => {
                let mut c = TimeContext::new(jiff::Zoned::now().year() as i64, self.tz.clone());
                c.set_reference(Ts::from_secs(jiff::Timestamp::now().as_second()));
                c
            }
        }
    }

    /// Take year-less stamps to be of this year (the operator's `--year`): every source starts
    /// again from it, and dates in the future are no longer moved back.
    pub fn set_year(&mut self, year: i64) {
        self.year = Some(year);
        let n = self.parsers.len();
        self.parsers.clear();
        self.ensure(n);
    }

    /// Restore saved account baselines.
    pub fn restore(&mut self, state: detect::State) {
        self.driver.engine_mut().restore_state(state);
    }

    /// Restore the engine's state from a checkpoint; on error (another format version, a
    /// corrupt snapshot) the engine is left fresh.
    pub fn restore_checkpoint(&mut self, cp: &Checkpoint) -> Result<(), SnapshotError> {
        self.driver.engine_mut().restore(&cp.engine)?;
        self.driver.set_next_sweep(cp.next_sweep.map(Ts));
        Ok(())
    }

    /// The position the engine has been fed to in the file of source `src` (at start: where
    /// its follower starts).
    pub fn set_fed(&mut self, src: u32, pos: FilePos) {
        self.fed.insert(src, pos);
    }

    /// Take a checkpoint: the engine's state and the positions of exactly the lines fed to it,
    /// taken here, between two messages, so they correspond. Only the serializing pauses the
    /// engine; the compression and the write are the [`Compressor`]'s (`None`: done here, as at
    /// shutdown). A checkpoint due while the last one is still being compressed is skipped (the
    /// next one is a minute away, and the last one still holds).
    fn checkpoint(&self, shared: &Shared, compressor: Option<&Compressor>) {
        if compressor.is_some_and(Compressor::busy) {
            debug!("the last checkpoint is still being written; this one is skipped");
            return;
        }
        let started = std::time::Instant::now();
        let raw = match self.driver.engine().snapshot_raw() {
            Ok(b) => b,
            Err(e) => {
                warn!("cannot take a checkpoint: {e}");
                return;
            }
        };
        let pending = Pending {
            raw,
            next_sweep: self.driver.next_sweep().map(|t| t.0),
            positions: self.fed.values().cloned().collect(),
        };
        let paused = started.elapsed();
        shared
            .metrics
            .checkpoint_pause_us
            .set(paused.as_micros() as u64);
        debug!(
            bytes = pending.raw.len(),
            ms = paused.as_millis() as u64,
            "checkpoint serialized"
        );
        match compressor {
            Some(c) => c.send(pending),
            None => pending.write(shared),
        }
    }
    /// The driver (tests).
    #[cfg(test)]
    pub fn driver(&mut self) -> &mut Driver {
        &mut self.driver
    }

    /// Feed one log line of source `src`; false when it had no recognizable header.
    pub fn feed_line(&mut self, src: u32, line: &str) -> bool {
        self.ensure(src as usize + 1);
        let parser = &mut self.parsers[src as usize];
        if self.year.is_none() {
            // "Now" moves on while we run: a line is in the future only against the clock.
            let now = Ts::from_secs(jiff::Timestamp::now().as_second());
            parser.time_context_mut().set_reference(now);
        }
        let p = parser.parse(line);
        self.driver.feed(&p);
        if let Some(h) = self.holds.observe(&p) {
            self.held.push((h, Source::Log));
        }
        p.header.is_some()
    }

    /// Feed one policy request, as its text (the attribute lines).
    #[cfg(test)]
    pub fn feed_policy(&mut self, ts: Ts, raw: &str) {
        if let Ok(req) = super::policy::Request::parse(raw) {
            self.feed_request(ts, &req);
        }
    }

    /// Feed one policy request.
    pub fn feed_request(&mut self, ts: Ts, req: &super::policy::Request<'_>) {
        self.driver.feed_policy(ts, &req.event());
        // A request that already has its queue file (a second recipient, a later stage):
        // if it was answered HOLD, this is a held message (decided in `record_held`).
        if let Some(q) = req.get("queue_id").filter(|q| valid_queue_id(q)) {
            if self.held.len() < MAX_PENDING {
                self.held.push((
                    Held {
                        qid: q.to_string(),
                        account: req.get("sasl_username").map(str::to_string),
                        client: req.get("client_address").map(str::to_string),
                        sender: req.get("sender").map(str::to_string),
                    },
                    Source::Policy,
                ));
            }
        }
    }

    /// Feed the policy requests waiting in the inbox, in arrival order.
    pub fn feed_policy_inbox(&mut self, shared: &Shared) {
        let mut b = std::mem::take(&mut self.policy);
        shared.policy_inbox.take(&mut b);
        for (ts, req) in b.iter() {
            self.feed_request(ts, &req);
        }
        self.policy = b;
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<detect::Alert> {
        self.driver.take_alerts()
    }

    /// Hand the held messages seen since the last call to the store, each under the incident
    /// whose containment held it: the containment of its account, client address or sender (a
    /// log line may come after the containment ended, so expired entries count). A policy
    /// request counts only when its answer was HOLD: enforce mode, an active HOLD containment.
    fn record_held(&mut self, shared: &Shared) {
        let m = &shared.metrics;
        let dropped = std::mem::take(&mut self.holds.dropped);
        m.held_dropped.add(dropped);
        if self.held.is_empty() {
            return;
        }
        let set = shared.contained.load();
        let enforce = shared.live.load().mode == super::Mode::Enforce;
        let now = super::now_secs();
        for (h, src) in self.held.drain(..) {
            let (a, c, s) = (
                h.account.as_deref(),
                h.client.as_deref(),
                h.sender.as_deref(),
            );
            let entry = match src {
                Source::Policy => set
                    .lookup(now, a, c, s)
                    .filter(|e| enforce && e.action == super::PolicyAction::Hold),
                Source::Log => set.lookup(now, a, c, s).or_else(|| {
                    [
                        (detect::EntityKind::Account, a),
                        (detect::EntityKind::Client, c),
                        (detect::EntityKind::Sender, s),
                    ]
                    .into_iter()
                    .find_map(|(k, id)| set.get(k, id?))
                }),
            };
            let Some(e) = entry else {
                // A policy request not held is no news; a held line without an incident is.
                if src == Source::Log {
                    m.held_dropped.inc();
                }
                continue;
            };
            let cmd = Cmd::Held {
                incident: e.incident,
                qid: h.qid,
                source: src,
            };
            if shared.store_tx.send(cmd).is_err() {
                warn!("store is gone; held queue id not recorded");
            }
        }
    }

    /// Hand the records completed since the last call, and the entities of `alerts`, to the
    /// overview's collector ([`Shared::seen`]), as `pipeline::analyze_seeing` does for the
    /// report: the alerts first, so their entities' records are kept past the cap.
    fn note_seen(&mut self, shared: &Shared, alerts: &[detect::Alert]) {
        let records = self.driver.engine_mut().take_records();
        if records.is_empty() && alerts.is_empty() {
            return;
        }
        let engine = self.driver.engine();
        // A panic while holding it (caught in `run`) leaves rows that are still whole.
        let mut seen = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        for a in alerts {
            seen.watch(a);
        }
        for r in &records {
            if let (_, Some(e)) = engine.classify(r) {
                seen.record(r, &e);
            }
        }
        let m = &shared.metrics;
        m.figure_records.set(seen.len() as u64);
        m.figure_dropped.set(seen.dropped);
        m.figure_evicted.set(seen.evicted);
    }

    fn save_baselines(&self, shared: &Shared) {
        let st = self.driver.engine().snapshot_state();
        match serde_json::to_value(&st) {
            Ok(v) => {
                if shared.store_tx.send(Cmd::Baselines(v)).is_err() {
                    warn!("store is gone; baselines not saved");
                }
            }
            Err(e) => warn!("cannot serialize baselines: {e}"),
        }
    }

    /// The thread's loop.
    pub fn run(
        mut self,
        mut rx: tokio::sync::mpsc::Receiver<Msg>,
        shared: &Arc<Shared>,
        sinks: Sinks,
        every: Every,
    ) {
        let mut ticks: i64 = 0;
        // The completed records go to the overview's collector (`note_seen`), as `analyze`'s
        // go to the report's.
        self.driver.engine_mut().keep_records(true);
        let compressor = match Compressor::spawn(shared.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!("cannot start the checkpoint thread, checkpoints pause the engine: {e}");
                None
            }
        };
        while let Some(msg) = rx.blocking_recv() {
            shared
                .metrics
                .queue_depth
                .store(rx.len() as u64, Ordering::Relaxed);
            if let Msg::Shutdown(done) = msg {
                self.feed_policy_inbox(shared);
                let alerts = self.take_alerts();
                shared.metrics.engine.copy_from(self.driver.engine());
                self.commit(shared, &sinks, alerts, None);
                self.save_baselines(shared);
                // The one in hand first, then the last one, here: nothing is left behind.
                if let Some(c) = compressor {
                    c.finish();
                }
                self.checkpoint(shared, None);
                info!("engine stopped");
                let _ = done.send(());
                return;
            }
            // A bug on one strange event must not stop detection for everything else.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.step(msg, shared, &sinks, &mut ticks, every, compressor.as_ref())
            }));
            if r.is_err() {
                shared.metrics.engine_panics.inc();
                error!("the engine panicked on an event; it was skipped");
            }
        }
    }

    fn step(
        &mut self,
        msg: Msg,
        shared: &Shared,
        sinks: &Sinks,
        ticks: &mut i64,
        every: Every,
        compressor: Option<&Compressor>,
    ) {
        let m = &shared.metrics;
        let mut pos = None;
        let mut outside = Vec::new();
        match msg {
            Msg::Line { src, line } => {
                let k = kind(src);
                m.lines[k].inc();
                if !self.feed_line(src, &line) {
                    m.parse_failures[k].inc();
                }
            }
            Msg::Lines {
                src,
                lines,
                pos: p,
                replay,
            } => {
                let k = kind(src);
                // Replayed lines were counted before the stop.
                if !replay {
                    m.lines[k].add(lines.len() as u64);
                }
                for l in &lines {
                    if !self.feed_line(src, l) && !replay {
                        m.parse_failures[k].inc();
                    }
                }
                if let Some(p) = &p {
                    self.fed.insert(src, p.clone());
                }
                if replay {
                    m.replayed_lines.add(lines.len() as u64);
                    let again = self.take_alerts();
                    m.replayed_alerts.add(again.len() as u64);
                    // Not raised again, but their entities are still the flagged ones.
                    self.note_seen(shared, &again);
                } else {
                    pos = p;
                }
            }
            Msg::Policy => self.feed_policy_inbox(shared),
            Msg::Alerts(a) => outside = a,
            Msg::Tick => {
                // Requests whose wake-up found the queue full.
                self.feed_policy_inbox(shared);
                *ticks += 1;
                // Only the policy clock moves: messages close by log time (the driver's idle
                // policy), exactly as in `analyze`.
                self.driver.tick(super::now_ts());
                if *ticks % every.baselines == 0 {
                    self.save_baselines(shared);
                }
                if *ticks % every.checkpoint == 0 {
                    self.checkpoint(shared, compressor);
                }
            }
            Msg::Shutdown(_) => {}
        }
        m.engine.copy_from(self.driver.engine());
        self.record_held(shared);
        let mut alerts = outside;
        alerts.extend(self.take_alerts());
        self.note_seen(shared, &alerts);
        if !alerts.is_empty() || pos.is_some() {
            self.commit(shared, sinks, alerts, pos);
        }
    }

    fn commit(
        &self,
        shared: &Shared,
        sinks: &Sinks,
        alerts: Vec<detect::Alert>,
        pos: Option<FilePos>,
    ) {
        for a in &alerts {
            shared.metrics.alert(a.detector);
            sinks.send(a);
        }
        if alerts.is_empty() && pos.is_none() {
            return;
        }
        if shared.store_tx.send(Cmd::Commit { alerts, pos }).is_err() {
            warn!("store is gone; alerts not stored");
        }
    }
}

/// A checkpoint serialized on the engine thread, not yet compressed nor written.
pub struct Pending {
    raw: detect::snapshot::Raw,
    next_sweep: Option<i64>,
    positions: Vec<FilePos>,
}

impl Pending {
    /// Compress, and hand to the store (which writes it with its positions in one transaction).
    fn write(self, shared: &Shared) {
        let engine = match self.raw.compress() {
            Ok(b) => b,
            Err(e) => {
                warn!("cannot compress a checkpoint: {e}");
                return;
            }
        };
        shared.metrics.checkpoint_bytes.set(engine.len() as u64);
        let cp = Checkpoint {
            engine,
            next_sweep: self.next_sweep,
            positions: self.positions,
        };
        if shared.store_tx.send(Cmd::Checkpoint(cp)).is_err() {
            warn!("store is gone; checkpoint not saved");
            return;
        }
        shared.metrics.checkpoints.inc();
    }
}

/// The thread that compresses checkpoints and hands them to the store, so the engine thread
/// pauses only to serialize its state (docs/PERFORMANCE.md, "Checkpoints"). One at a time.
pub struct Compressor {
    tx: Option<std::sync::mpsc::SyncSender<Pending>>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compressor {
    /// Start the thread.
    pub fn spawn(shared: Arc<Shared>) -> std::io::Result<Compressor> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Pending>(1);
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = busy.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while let Ok(p) = rx.recv() {
                    let started = std::time::Instant::now();
                    p.write(&shared);
                    debug!(
                        ms = started.elapsed().as_millis() as u64,
                        "checkpoint compressed"
                    );
                    b.store(false, Ordering::Release);
                }
            })?;
        Ok(Compressor {
            tx: Some(tx),
            busy,
            thread: Some(thread),
        })
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    fn send(&self, p: Pending) {
        self.busy.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            if tx.send(p).is_err() {
                self.busy.store(false, Ordering::Release);
                warn!("checkpoint thread is gone; checkpoint not saved");
            }
        }
    }

    /// Let the checkpoint in hand reach the store, and stop.
    fn finish(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Periods of the engine thread's periodic work, in ticks (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Every {
    /// Save account baselines.
    pub baselines: i64,
    /// Write a checkpoint.
    pub checkpoint: i64,
}

fn kind(src: u32) -> usize {
    match src {
        POLICY_SRC => SourceKind::Policy as usize,
        SYSLOG_SRC => SourceKind::Syslog as usize,
        _ => SourceKind::Follow as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::Metrics;
    use super::*;
    use crate::input::Source;
    use crate::pipeline::{self, TimeOpts};

    /// Without `--year`, a year-less date more than a day ahead of the clock is last year's
    /// (a December backlog read in January); with it, the operator's year holds.
    #[test]
    fn year_less_dates_in_the_future_are_last_years() {
        let line = "Dec 31 23:59:59 mx1 postfix/qmgr[9]: A1B2C3: removed";
        let now = jiff::Timestamp::now();
        let this_year = now.to_zoned(jiff::tz::TimeZone::UTC).year() as i64;
        let future = maillog::time::days_from_civil(this_year, 12, 31) * 86_400
            > now.as_second() + maillog::time::FUTURE_TOLERANCE_SECS;
        let mut core = Core::new(
            detect::Engine::new(detect::Config::default()),
            jiff::tz::TimeZone::UTC,
            1,
        );
        assert!(core.feed_line(FIRST_FILE_SRC, line));
        let year = core.parsers[FIRST_FILE_SRC as usize].time_context().year();
        assert_eq!(year, if future { this_year - 1 } else { this_year });
        let mut core = Core::new(
            detect::Engine::new(detect::Config::default()),
            jiff::tz::TimeZone::UTC,
            1,
        );
        core.set_year(2030);
        assert!(core.feed_line(FIRST_FILE_SRC, line));
        assert_eq!(
            core.parsers[FIRST_FILE_SRC as usize].time_context().year(),
            2030
        );
    }

    /// One log through `analyze`'s pipeline and through the service's engine core: the same
    /// alerts (issue: one code path).
    fn same_alerts(rel: &str, year: i64, cfg: detect::Config) -> usize {
        let path = testdata::mail().join(rel).display().to_string();
        let tz = jiff::tz::TimeZone::UTC;
        let t = TimeOpts {
            year: Some(year),
            tz: Some(tz.clone()),
        };
        let src = Source::File(path.clone().into());
        let mut batch = Driver::new(detect::Engine::new(cfg.clone()));
        let (_, a) = pipeline::analyze(&mut batch, &[src], &t, false, 1).unwrap();

        let mut core = Core::new(detect::Engine::new(cfg), tz.clone(), 1);
        core.set_year(year);
        let text = std::fs::read(&path).unwrap();
        let mut b = Vec::new();
        for line in text.split(|c| *c == b'\n') {
            if line.is_empty() {
                continue;
            }
            core.feed_line(FIRST_FILE_SRC, &String::from_utf8_lossy(line));
            b.extend(core.take_alerts());
        }
        core.driver().finish();
        b.extend(core.take_alerts());
        assert_eq!(a, b, "{rel}");
        a.len()
    }

    /// A value of `/metrics` (the first sample line starting with `series `).
    fn sample(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} not in\n{text}"))
            .parse()
            .unwrap()
    }

    /// The engine's own counters (HELO lending, claims, evictions at the caps, failed logins
    /// for unknown names) reach `/metrics`, with HELP text, and move as the engine counts.
    #[test]
    fn the_engines_counters_reach_metrics() {
        let mut cfg = detect::Config::default();
        cfg.network.own_networks = vec!["192.0.2.0/24".parse().unwrap()];
        cfg.limits.max_entities = 4;
        let tz = jiff::tz::TimeZone::UTC;
        let mut core = Core::new(detect::Engine::new(cfg), tz.clone(), 1);
        core.parsers[FIRST_FILE_SRC as usize] = LineParser::new(TimeContext::new(2026, tz));
        let m = Metrics::default();
        m.engine.copy_from(core.driver().engine());
        let before = m.render(0, 0.0);
        for name in [
            "smtpscope_policy_helo_lent_total",
            "smtpscope_policy_helo_dropped_total",
            "smtpscope_policy_claims_total",
            "smtpscope_engine_evicted_total",
            "smtpscope_engine_packed_entities",
            "smtpscope_engine_packing_dictionary_bytes",
            "smtpscope_hijack_unknown_account_failures_total",
            "smtpscope_engine_events_total",
        ] {
            assert!(
                before.contains(&format!("# HELP {name} ")),
                "{name}\n{before}"
            );
        }
        assert_eq!(sample(&before, "smtpscope_policy_helo_lent_total"), 0);
        let t0: i64 = "2026-11-24T10:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        for i in 0..20i64 {
            let (ip, user, q) = (
                format!("192.0.2.{}", 10 + i),
                format!("user{i}@isp.example"),
                format!("{:X}A", 0x1000 + i),
            );
            let at = t0 + 30 * i;
            core.feed_policy(
                Ts::from_secs(at),
                &format!(
                    "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={ip}\n\
                     helo_name=pc{i}.home.example\nsasl_username={user}\nsender={user}\n\
                     recipient=friend{i}@example.org\ninstance=1.{i}\n"
                ),
            );
            let hms = |s: i64| format!("Nov 24 10:{:02}:{:02}", s / 60, s % 60);
            for l in [
                format!("{} mx postfix/smtpd[7]: {q}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}", hms(30 * i)),
                format!("{} mx postfix/qmgr[9]: {q}: from=<{user}>, size=900, nrcpt=1 (queue active)", hms(30 * i)),
                format!("{} mx postfix/smtp[8]: {q}: to=<friend{i}@example.org>, relay=mx.example.org[198.51.100.1]:25, delay=1, dsn=2.0.0, status=sent (250 ok)", hms(30 * i + 1)),
                format!("{} mx postfix/qmgr[9]: {q}: removed", hms(30 * i + 1)),
                format!("{} mx dovecot: auth: passwd-file(nobody{i}@isp.example,203.0.113.9): unknown user", hms(30 * i + 2)),
            ] {
                assert!(core.feed_line(FIRST_FILE_SRC, &l), "{l}");
            }
        }
        assert_eq!(
            sample(
                &before,
                "smtpscope_engine_packed_entities{detector=\"auth-hijack\"}"
            ),
            0
        );
        // Five hours on, the driver's sweep packs the accounts idle since (new ones are packed
        // once idle four hours, detect::cold::SPARE_IDLE_PERIODS).
        let later = "Nov 24 15:30:00 mx postfix/qmgr[9]: FFFFA: removed";
        assert!(core.feed_line(FIRST_FILE_SRC, later));
        m.engine.copy_from(core.driver().engine());
        let after = m.render(0, 0.0);
        assert!(
            sample(
                &after,
                "smtpscope_engine_packed_entities{detector=\"auth-hijack\"}"
            ) > 0,
            "{after}"
        );
        assert_eq!(
            sample(&after, "smtpscope_policy_helo_lent_total"),
            20,
            "{after}"
        );
        assert_eq!(
            sample(&after, "smtpscope_policy_claims_total{outcome=\"claimed\"}"),
            20
        );
        assert!(sample(&after, "smtpscope_policy_claims_total{outcome=\"matched\"}") > 0);
        assert!(
            sample(
                &after,
                "smtpscope_engine_evicted_total{state=\"hijack_accounts\"}"
            ) > 0,
            "{after}"
        );
        assert!(sample(&after, "smtpscope_engine_events_total") >= 100);
        assert!(sample(&after, "smtpscope_engine_records_total") >= 20);
    }

    #[test]
    fn serve_core_and_analyze_raise_the_same_alerts() {
        // Real exim brute-force log: 3 auth-bruteforce alerts with the defaults, one per attack
        // (the network 46.148.40.0/24 once for its three days, 141.98.10.159, then the network
        // 141.98.10.0/24 when its second address starts guessing).
        let n = same_alerts(
            "exim/artik292/exim_mainlog",
            2023,
            detect::Config::default(),
        );
        assert_eq!(n, 3);
        // Real Postfix log with a lowered threshold, for many more alerts.
        let mut cfg = detect::Config::default();
        cfg.bruteforce.max_failures_per_ip = 3;
        let n = same_alerts("postfix/pflgviewer/mail.log", 2014, cfg);
        assert!(n > 10, "{n}");
    }
}
