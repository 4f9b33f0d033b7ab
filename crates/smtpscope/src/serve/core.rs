//! The engine thread: one `detect::Engine` behind the [`Driver`] `analyze` uses, fed from every
//! source through one bounded channel, with the same parser.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use maillog::{LineParser, TimeContext, Ts};
use tracing::{error, info, warn};

use super::metrics::SourceKind;
use super::sinks::Sinks;
use super::store::{Cmd, FilePos};
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
    },
    /// A policy request (raw attribute lines), stamped at arrival.
    Policy {
        /// Arrival time.
        ts: Ts,
        /// Attribute lines.
        raw: String,
    },
    /// Alerts raised outside the engine (the sFlow analysis): committed like the engine's.
    Alerts(Vec<detect::Alert>),
    /// Once a second: the policy clock moves on, periodic baseline save.
    Tick,
    /// Drain, save, stop; then signal.
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// The driver and one parser per source.
pub struct Core {
    driver: Driver,
    parsers: Vec<LineParser>,
    tz: jiff::tz::TimeZone,
}

impl Core {
    /// An engine with parsers for the fixed sources and `files` followed files.
    pub fn new(engine: detect::Engine, tz: jiff::tz::TimeZone, files: usize) -> Core {
        let mut c = Core {
            driver: Driver::new(engine),
            parsers: Vec::new(),
            tz,
        };
        c.ensure(FIRST_FILE_SRC as usize + files);
        c
    }

    fn ensure(&mut self, n: usize) {
        let year = jiff::Zoned::now().year() as i64;
        while self.parsers.len() < n {
            self.parsers
                .push(LineParser::new(TimeContext::new(year, self.tz.clone())));
        }
    }

    /// Restore saved account baselines.
    pub fn restore(&mut self, state: detect::State) {
        self.driver.engine_mut().restore_state(state);
    }

    /// The driver (tests).
    #[cfg(test)]
    pub fn driver(&mut self) -> &mut Driver {
        &mut self.driver
    }

    /// Feed one log line of source `src`; false when it had no recognizable header.
    pub fn feed_line(&mut self, src: u32, line: &str) -> bool {
        self.ensure(src as usize + 1);
        let p = self.parsers[src as usize].parse(line);
        self.driver.feed(&p);
        p.header.is_some()
    }

    /// Feed one policy request.
    pub fn feed_policy(&mut self, ts: Ts, raw: &str) {
        if let Ok(req) = super::policy::Request::parse(raw) {
            self.driver.feed_policy(ts, &req.event());
        }
    }

    /// Alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<detect::Alert> {
        self.driver.take_alerts()
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
        baseline_secs: i64,
    ) {
        let mut ticks: i64 = 0;
        while let Some(msg) = rx.blocking_recv() {
            shared
                .metrics
                .queue_depth
                .store(rx.len() as u64, Ordering::Relaxed);
            if let Msg::Shutdown(done) = msg {
                let alerts = self.take_alerts();
                self.commit(shared, &sinks, alerts, None);
                self.save_baselines(shared);
                info!("engine stopped");
                let _ = done.send(());
                return;
            }
            // A bug on one strange event must not stop detection for everything else.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.step(msg, shared, &sinks, &mut ticks, baseline_secs)
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
        baseline_secs: i64,
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
            Msg::Lines { src, lines, pos: p } => {
                let k = kind(src);
                m.lines[k].add(lines.len() as u64);
                for l in &lines {
                    if !self.feed_line(src, l) {
                        m.parse_failures[k].inc();
                    }
                }
                pos = p;
            }
            Msg::Policy { ts, raw } => self.feed_policy(ts, &raw),
            Msg::Alerts(a) => outside = a,
            Msg::Tick => {
                *ticks += 1;
                // Only the policy clock moves: messages close by log time (the driver's idle
                // policy), exactly as in `analyze`.
                self.driver.tick(super::now_ts());
                if *ticks % baseline_secs == 0 {
                    self.save_baselines(shared);
                }
            }
            Msg::Shutdown(_) => {}
        }
        let mut alerts = outside;
        alerts.extend(self.take_alerts());
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

fn kind(src: u32) -> usize {
    match src {
        POLICY_SRC => SourceKind::Policy as usize,
        SYSLOG_SRC => SourceKind::Syslog as usize,
        _ => SourceKind::Follow as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Source;
    use crate::pipeline::{self, TimeOpts};

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
        core.parsers[FIRST_FILE_SRC as usize] = LineParser::new(TimeContext::new(year, tz));
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
