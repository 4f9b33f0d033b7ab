//! `smtpscope serve`: the real-time service.
//!
//! ```text
//!  follow (threads) ─┐                           ┌─> store thread (SQLite: incidents, containment,
//!  syslog UDP/TCP ───┼─> bounded channel ─> engine thread        positions, baselines) ─┐
//!  policy server ────┤   (try_send: never waits)
//!  sFlow UDP (alerts)┘    │                                    │
//!        ^                                          └─> sinks (JSONL, webhook)           │
//!        └──────────── containment snapshot (ArcSwap, lock-free) <──────────────────────┘
//! ```
//! The engine is the one `analyze` uses, fed by the same parser and [`crate::pipeline::Driver`]:
//! one code path, one idle policy by log time. It runs on one thread and only ever sees event time. The policy server
//! answers from the containment snapshot alone, so a slow store or a busy engine never delays
//! Postfix: when the engine's queue is full the request is not analysed (counted as fail-open)
//! but still answered.
//!
//! Every `checkpoint_interval` and at shutdown the engine thread takes a checkpoint between two
//! messages: the engine's whole detection state (`detect::Engine::snapshot`) and the position
//! of every followed file after the last line it fed, written by the store in one transaction.
//! A restart restores both; the lines fed after the checkpoint (up to the position saved with
//! the last alerts) are read again as *replay*: they rebuild the state, their alerts are not
//! raised twice. Syslog and policy requests have no position: what arrived after the last
//! checkpoint is not in the restored state.

pub mod contain;
pub mod core;
pub mod follow;
pub mod held;
pub mod http;
pub mod metrics;
pub mod peers;
pub mod policy;
pub mod sflow;
pub mod sinks;
pub mod slots;
pub mod store;
pub mod syslog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::config::FileConfig;
use detect::config::Duration;

/// Default of `[serve] checkpoint_interval`: a minute. After `kill -9` at most a minute of log
/// is read again (a few seconds of work), and a checkpoint of a 20,000-user ISP's state (8.5
/// MiB, about 1 s of CPU, measured in docs/PERFORMANCE.md) every minute costs the engine thread
/// under 2% of its time. Our own idea.
pub const DEFAULT_CHECKPOINT_SECS: i64 = 60;

/// Longest `[serve] checkpoint_interval` accepted: a day. Past it a crash would re-read more
/// log than the detectors' longest window (24 h) holds, so a longer interval only loses.
pub const MAX_CHECKPOINT_SECS: i64 = 86_400;

/// Observe (log what would be done) or enforce (answer Postfix with the action).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answer `DUNNO` always; log and count what would have been done.
    #[default]
    Observe,
    /// Answer contained accounts and clients with the configured action.
    Enforce,
}

/// What the policy server answers for a contained entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyAction {
    /// Accept the mail into Postfix's hold queue for review: nothing is lost if we were wrong.
    #[default]
    #[serde(rename = "HOLD")]
    Hold,
    /// Temporary refusal (the client retries later), only if the mail would otherwise be accepted.
    #[serde(rename = "DEFER_IF_PERMIT")]
    DeferIfPermit,
    /// Permanent refusal; the text is shown by the user's mail program.
    #[serde(rename = "REJECT")]
    Reject,
}

impl PolicyAction {
    /// The word in Postfix's access(5) syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Hold => "HOLD",
            PolicyAction::DeferIfPermit => "DEFER_IF_PERMIT",
            PolicyAction::Reject => "REJECT",
        }
    }
}

/// Where the event time of an sFlow datagram comes from (docs/DETECTION.md, "Live event
/// time").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SflowClock {
    /// The wall clock when the datagram arrives: no sender can move it.
    #[default]
    Arrival,
    /// The agent's uptime (`sflow::clock`): keeps a replayed capture's timing; trusts the
    /// agents.
    Agent,
}

/// Where a new log file is first read from (a file already in the store resumes where it was).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowStart {
    /// Only lines written from now on (like `tail -F`).
    #[default]
    End,
    /// The whole file.
    Start,
}

/// `[serve.containment]`: which alerts contain their entity automatically, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainmentConfig {
    /// Detectors whose alerts contain automatically (names as in the alerts).
    pub detectors: Vec<String>,
    /// Lowest score that contains.
    pub min_score: f64,
    /// How long an automatic containment lasts; "0s" = until released by hand.
    pub duration: Duration,
    /// After a release or dismissal by hand, no automatic containment of the same entity for
    /// this long (the operator decided; new alerts still open incidents).
    pub rearm: Duration,
    /// Answer for a contained entity.
    pub action: PolicyAction,
    /// Text sent with DEFER_IF_PERMIT / REJECT (shown by the user's mail program) or HOLD (logged).
    pub text: String,
    /// The command that runs Postfix's `postsuper` for the hold-queue actions of an incident
    /// ("release held mail": `-H -`, "delete held spam": `-d - hold`, queue ids on standard
    /// input), without a shell: sudo, a local helper, or postsuper itself with `-c DIR`.
    pub postsuper_command: Vec<String>,
}

/// `[serve.containment] postsuper_command` by default: postsuper through sudo, which must not
/// ask for a password (`-n`); docs/OPERATIONS.md gives the sudoers line.
pub const DEFAULT_POSTSUPER: [&str; 3] = ["sudo", "-n", "/usr/sbin/postsuper"];

/// Most words in `postsuper_command` (a program, sudo's options, `-c DIR`: a handful).
pub const MAX_COMMAND_WORDS: usize = 16;

impl Default for ContainmentConfig {
    fn default() -> Self {
        ContainmentConfig {
            detectors: vec!["auth-hijack".into()],
            min_score: 0.9,
            duration: Duration(4 * 3600),
            rearm: Duration(86_400),
            action: PolicyAction::Hold,
            text: "Your account is blocked for suspected abuse; please contact the abuse desk"
                .into(),
            postsuper_command: DEFAULT_POSTSUPER.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl ContainmentConfig {
    /// The incident lifecycle's policy (`detect::incident`); names that are no detector match
    /// nothing.
    pub fn policy(&self) -> detect::incident::Policy {
        detect::incident::Policy {
            detectors: self
                .detectors
                .iter()
                .filter_map(|d| detect::Detector::ALL.iter().find(|x| x.as_str() == d))
                .copied()
                .collect(),
            min_score: self.min_score,
            duration: (self.duration.0 > 0).then_some(self.duration.0),
            rearm: self.rearm.0,
        }
    }
}

/// `[serve.limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeLimits {
    /// Events waiting for the engine; a full queue makes the policy server fail open.
    pub queue: usize,
    /// Policy (and syslog TCP) connections open at once, per listener; when all are taken, the
    /// connection that waited longest for input is closed to make room.
    pub connections: usize,
    /// A policy connection idle this long between requests is closed (Postfix's own
    /// `smtpd_policy_service_max_idle` is 300s, so keep this above it).
    pub policy_idle: Duration,
    /// A started policy request or syslog TCP frame must be complete within this time (slow
    /// clients are dropped).
    pub request_timeout: Duration,
    /// A syslog TCP connection without a frame for this long is closed (rsyslog reconnects).
    pub syslog_idle: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            queue: 65_536,
            connections: 1000,
            policy_idle: Duration(330),
            request_timeout: Duration(10),
            syslog_idle: Duration(3600),
        }
    }
}

/// `[serve]` table of smtpscope.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// observe or enforce.
    pub mode: Mode,
    /// Policy server listen addresses: "127.0.0.1:10040", "unix:/run/smtpscope/policy.sock".
    pub policy: Vec<String>,
    /// Syslog listen addresses (UDP and TCP on each).
    pub syslog: Vec<String>,
    /// Networks syslog is accepted from (UDP datagrams and TCP connections); others are
    /// counted and dropped.
    pub syslog_peers: Vec<peers::PeerNet>,
    /// Networks policy requests are accepted from over TCP; others are counted and refused.
    pub policy_peers: Vec<peers::PeerNet>,
    /// Permissions of a policy unix socket.
    pub policy_socket_mode: policy::SocketMode,
    /// Group of a policy unix socket (default: `postfix` when that group exists).
    pub policy_socket_group: Option<String>,
    /// Log files to follow.
    pub follow: Vec<PathBuf>,
    /// sFlow collector listen addresses (UDP), e.g. "0.0.0.0:6343".
    pub sflow: Vec<String>,
    /// sFlow agents accepted (empty: all); datagrams from others are counted and dropped.
    pub sflow_agents: Vec<std::net::IpAddr>,
    /// Destination ports counted as SMTP in sFlow samples (empty: 25).
    pub sflow_smtp_ports: Vec<u16>,
    /// Event time of sFlow datagrams: the arrival time, or the agents' uptime.
    pub sflow_clock: SflowClock,
    /// With `sflow_clock = "agent"`: event time of the first datagram received (RFC 3339),
    /// e.g. the first timestamp of a capture replayed; default its arrival time.
    pub sflow_clock_start: Option<String>,
    /// Where a newly seen file is first read from.
    pub follow_start: FollowStart,
    /// SQLite store.
    pub store: PathBuf,
    /// HTTP API, dashboard and /metrics; "" turns it off.
    pub http: String,
    /// Token required by the HTTP API for anything that changes state ("" = read-only API).
    pub token: String,
    /// CSV of operator geo overrides (cidr,country,asn,label).
    pub geo_override: Option<PathBuf>,
    /// Alerts as JSON Lines to this file (rotated by size).
    pub alerts_jsonl: Option<PathBuf>,
    /// Rotate the alerts file at this size (MiB).
    pub alerts_max_mib: u64,
    /// Rotated alert files kept.
    pub alerts_keep: u32,
    /// POST each alert as JSON to this http:// URL.
    pub webhook: Option<String>,
    /// Incidents closed (released, dismissed) longer ago than this are deleted.
    pub retention: Duration,
    /// Save account baselines this often.
    pub baseline_interval: Duration,
    /// Write a checkpoint of the engine's detection state, with the followed-file positions,
    /// this often (and at shutdown). After `kill -9` the lines since the last checkpoint are
    /// read again; a shorter interval re-reads less and costs a snapshot more often (see
    /// docs/PERFORMANCE.md for its size and time).
    pub checkpoint_interval: Duration,
    /// Zone of zone-less stamps in followed logs and syslog (default: the system's).
    pub tz: Option<String>,
    /// Containment policy.
    pub containment: ContainmentConfig,
    /// Limits.
    pub limits: ServeLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            mode: Mode::Observe,
            policy: Vec::new(),
            syslog: Vec::new(),
            syslog_peers: peers::loopback(),
            policy_peers: peers::loopback(),
            policy_socket_mode: policy::SocketMode::default(),
            policy_socket_group: None,
            follow: Vec::new(),
            sflow: Vec::new(),
            sflow_agents: Vec::new(),
            sflow_smtp_ports: Vec::new(),
            sflow_clock: SflowClock::Arrival,
            sflow_clock_start: None,
            follow_start: FollowStart::End,
            store: PathBuf::from("smtpscope.db"),
            http: "127.0.0.1:8025".into(),
            token: String::new(),
            geo_override: None,
            alerts_jsonl: None,
            alerts_max_mib: 100,
            alerts_keep: 5,
            webhook: None,
            retention: Duration(90 * 86_400),
            baseline_interval: Duration(60),
            checkpoint_interval: Duration(DEFAULT_CHECKPOINT_SECS),
            tz: None,
            containment: ContainmentConfig::default(),
            limits: ServeLimits::default(),
        }
    }
}

/// Command-line arguments of `serve`; each flag sets the `[serve]` key of the same name.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (smtpscope.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Policy server address (host:port or unix:/path); repeatable.
    #[arg(long)]
    pub policy: Vec<String>,
    /// Syslog address, UDP and TCP (host:port); repeatable.
    #[arg(long)]
    pub syslog: Vec<String>,
    /// Log file to follow; repeatable.
    #[arg(long)]
    pub follow: Vec<PathBuf>,
    /// sFlow collector address, UDP (host:port); repeatable.
    #[arg(long, value_name = "ADDR")]
    pub sflow: Vec<String>,
    /// SQLite store file.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// HTTP address ("" for none).
    #[arg(long)]
    pub http: Option<String>,
    /// Geo override CSV.
    #[arg(long)]
    pub geo_override: Option<PathBuf>,
    /// observe or enforce.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Alerts JSONL file.
    #[arg(long)]
    pub alerts_jsonl: Option<PathBuf>,
    /// Webhook URL.
    #[arg(long)]
    pub webhook: Option<String>,
    /// API token (prefer the config file or the SMTPSCOPE_TOKEN environment variable).
    #[arg(long)]
    pub token: Option<String>,
    /// Year of year-less syslog stamps (`[input] year`; default: the current year, and a date
    /// more than a day in the future is last year's).
    #[arg(long)]
    pub year: Option<i64>,
    /// Zone of zone-less stamps, e.g. Europe/Berlin or UTC (`[serve] tz`; default: the system's).
    #[arg(long)]
    pub tz: Option<String>,
    /// Join the cluster on this NATS server (`[cluster] servers`); repeatable.
    #[arg(long, value_name = "URL")]
    pub cluster: Vec<String>,
    /// Role in the cluster (`[cluster] role`).
    #[arg(long, value_enum)]
    pub role: Option<crate::cluster::config::Role>,
}

impl ServeArgs {
    /// Load the file (if any) and lay the flags over it.
    pub fn settings(&self) -> Result<FileConfig> {
        let mut f = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        self.apply(&mut f.serve);
        if let Some(y) = self.year {
            f.input.year = Some(y);
        }
        if let Some(tz) = &self.tz {
            f.serve.tz = Some(tz.clone());
        }
        if !self.cluster.is_empty() {
            f.cluster.servers = self.cluster.clone();
        }
        if let Some(r) = self.role {
            f.cluster.role = r;
        }
        // The flags are checked like the file's keys.
        f.validate()
            .map_err(|e| anyhow::anyhow!("invalid option:\n{e}"))?;
        Ok(f)
    }

    fn apply(&self, s: &mut ServeConfig) {
        if !self.policy.is_empty() {
            s.policy = self.policy.clone();
        }
        if !self.syslog.is_empty() {
            s.syslog = self.syslog.clone();
        }
        if !self.follow.is_empty() {
            s.follow = self.follow.clone();
        }
        if !self.sflow.is_empty() {
            s.sflow = self.sflow.clone();
        }
        if let Some(v) = &self.store {
            s.store = v.clone();
        }
        if let Some(v) = &self.http {
            s.http = v.clone();
        }
        if let Some(v) = &self.geo_override {
            s.geo_override = Some(v.clone());
        }
        if let Some(v) = self.mode {
            s.mode = v;
        }
        if let Some(v) = &self.alerts_jsonl {
            s.alerts_jsonl = Some(v.clone());
        }
        if let Some(v) = &self.webhook {
            s.webhook = Some(v.clone());
        }
        if let Some(v) = &self.token {
            s.token = v.clone();
        } else if let Ok(v) = std::env::var("SMTPSCOPE_TOKEN") {
            if !v.is_empty() {
                s.token = v;
            }
        }
    }
}

/// What may change on SIGHUP without a restart.
#[derive(Debug, Clone)]
pub struct Live {
    /// Mode.
    pub mode: Mode,
    /// Containment policy.
    pub containment: ContainmentConfig,
    /// API token.
    pub token: String,
}

/// State shared by every task.
pub struct Shared {
    /// Counters.
    pub metrics: metrics::Metrics,
    /// Containment snapshot the policy server reads.
    pub contained: ArcSwap<contain::Set>,
    /// Reloadable settings.
    pub live: ArcSwap<Live>,
    /// To the engine.
    pub engine_tx: tokio::sync::mpsc::Sender<core::Msg>,
    /// Policy requests waiting for the engine (woken by [`core::Msg::Policy`]).
    pub policy_inbox: policy::Inbox,
    /// To the store.
    pub store_tx: std::sync::mpsc::SyncSender<store::Cmd>,
    /// Store path (the HTTP API opens read connections).
    pub store_path: PathBuf,
    /// Start time (wall clock).
    pub started: std::time::Instant,
    /// The records seen, for the overview's figures ([`crate::seen::Bounds::SERVE`]): written
    /// by the engine thread after each event, copied out in one pass by the dashboard.
    pub seen: std::sync::Mutex<crate::seen::Seen>,
    /// The engine's geo database (countries and networks of the figures).
    pub geo: detect::GeoRef,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMTPSCOPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Current wall-clock time as event time.
pub fn now_ts() -> maillog::Ts {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    maillog::Ts(d.as_micros() as i64)
}

/// Wall clock, whole seconds.
pub fn now_secs() -> i64 {
    now_ts().secs()
}

fn time_zone(tz: &Option<String>) -> Result<jiff::tz::TimeZone> {
    Ok(match tz {
        None => jiff::tz::TimeZone::system(),
        Some(n) => crate::config::time_zone(n)?,
    })
}

/// The geo database: `[geo]` of the file, with `--geo-override` / `[serve] geo_override` as its
/// overrides when given.
fn geo_ref(file: &FileConfig) -> Result<detect::GeoRef> {
    let mut f = file.clone();
    if let Some(p) = &file.serve.geo_override {
        f.geo.overrides = Some(p.clone());
    }
    f.geo_db()
        .with_context(|| "cannot load the geo database or overrides".to_string())
}

/// Run the service until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> Result<()> {
    init_logging();
    let file = args.settings()?;
    let cluster = file.cluster.clone();
    let s = file.serve.clone();
    // A worker of a cluster reads nothing itself.
    if !cluster.enabled()
        && s.policy.is_empty()
        && s.syslog.is_empty()
        && s.follow.is_empty()
        && s.sflow.is_empty()
    {
        bail!("nothing to do: give at least one of --policy, --syslog, --follow, --sflow (or [serve] policy/syslog/follow/sflow)");
    }
    let tz = time_zone(&s.tz.clone().or_else(|| file.input.tz.clone()))?;
    let open_files = slots::raise_open_files_limit();
    info!(?open_files, "open files limit");
    let geo = geo_ref(&file)?;
    // Decoded while the service starts, not at the first event.
    geo.decode_in_background();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("smtpscope")
        .build()?;
    let node = if cluster.enabled() {
        Some(rt.block_on(crate::cluster::nats::Node::connect(&cluster))?)
    } else {
        None
    };

    // Store first: it restores containment and positions.
    let st = store::Store::open(&s.store)
        .with_context(|| format!("cannot open store {}", s.store.display()))?;
    let contained = st.load_containment()?;
    let baselines = st.load_baselines()?;
    let saved_positions = st.load_positions()?;
    let checkpoint = st.load_checkpoint()?;
    let (engine_tx, engine_rx) = tokio::sync::mpsc::channel(s.limits.queue.max(16));
    let (store_tx, store_rx) = std::sync::mpsc::sync_channel(4096);
    let shared = Arc::new(Shared {
        metrics: metrics::Metrics::default(),
        contained: ArcSwap::from_pointee(contained),
        live: ArcSwap::from_pointee(Live {
            mode: s.mode,
            containment: s.containment.clone(),
            token: s.token.clone(),
        }),
        engine_tx,
        policy_inbox: policy::Inbox::new(s.limits.queue.max(16)),
        store_tx,
        store_path: s.store.clone(),
        started: std::time::Instant::now(),
        seen: std::sync::Mutex::new(crate::seen::Seen::bounded(crate::seen::Bounds::SERVE)),
        geo: geo.clone(),
    });
    info!(
        mode = ?s.mode,
        contained = shared.contained.load().len(),
        store = %s.store.display(),
        "smtpscope serve starting"
    );
    let store_thread = {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || st.run(store_rx, &sh))?
    };
    let sinks = rt.block_on(async { sinks::start(&s, shared.clone()) })?;
    let resumes;
    let engine_thread = if let Some(node) = &node {
        // A cluster node: the engine channel goes to the bus (an edge publishes what it
        // reads); detection runs on the partitions this node owns as a worker.
        use crate::cluster::nats;
        resumes = resume_points(&s.follow, None, &saved_positions);
        let _ = (&checkpoint, &baselines);
        rt.spawn(nats::edge(
            node.clone(),
            engine_rx,
            tz.clone(),
            file.input.year,
            shared.clone(),
        ));
        if cluster.role.is_worker() {
            let cfg = file.detect_config();
            let geo = geo.clone();
            let make: nats::EngineFactory =
                Arc::new(move || detect::Engine::with_geo(cfg.clone(), geo.clone()));
            let n = node.clone();
            rt.spawn(async move {
                if let Err(e) = nats::worker(n, make).await {
                    error!("worker stopped: {e:#}");
                }
            });
        }
        if cluster.sink {
            let (n, sh) = (node.clone(), shared.clone());
            let cfg = file.detect_config();
            rt.spawn(async move {
                if let Err(e) = nats::sink(n, sh, sinks, cfg).await {
                    error!("alert sink stopped: {e:#}");
                }
            });
            let (n, sh) = (node.clone(), shared.clone());
            rt.spawn(async move {
                if let Err(e) = nats::publish_containment(n, sh).await {
                    error!("containment publisher stopped: {e:#}");
                }
            });
        } else if cluster.role.is_edge() {
            let (n, sh) = (node.clone(), shared.clone());
            rt.spawn(async move {
                if let Err(e) = nats::watch_containment(n, sh).await {
                    error!("containment watch stopped: {e:#}");
                }
            });
        }
        None
    } else {
        let sh = shared.clone();
        let mut engine = detect::Engine::with_geo(file.detect_config(), shared.geo.clone());
        if s.syslog.is_empty() && s.follow.is_empty() {
            // No log can reach this engine (sources change on restart): the policy requests'
            // HELOs would wait for a log's messages in vain.
            engine.policy_only();
        }
        let mut core = core::Core::new(engine, tz.clone(), s.follow.len());
        if let Some(y) = file.input.year {
            core.set_year(y);
        }
        let restored = match &checkpoint {
            Some(cp) => match core.restore_checkpoint(cp) {
                Ok(()) => {
                    info!(
                        bytes = cp.engine.len(),
                        "detection state restored from the last checkpoint"
                    );
                    true
                }
                Err(e) => {
                    warn!("the last checkpoint is not used, detection starts fresh: {e}");
                    false
                }
            },
            None => false,
        };
        if !restored {
            if let Some(b) = baselines {
                core.restore(b);
            }
        }
        resumes = resume_points(
            &s.follow,
            restored.then_some(()).and(checkpoint.as_ref()),
            &saved_positions,
        );
        for (i, r) in resumes.iter().enumerate() {
            if let Some(p) = &r.saved {
                core.set_fed(core::FIRST_FILE_SRC + i as u32, p.clone());
            }
        }
        let every = core::Every {
            baselines: s.baseline_interval.0.max(1),
            checkpoint: s.checkpoint_interval.0.max(1),
        };
        Some(
            std::thread::Builder::new()
                .name("engine".into())
                .spawn(move || core.run(engine_rx, &sh, sinks, every))?,
        )
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let result: Result<()> = rt.block_on(async {
        let mut tasks = Vec::new();
        for a in &s.policy {
            tasks.push(policy::listen(a, shared.clone(), &s, stop_rx.clone()).await?);
        }
        for a in &s.syslog {
            tasks.extend(syslog::listen(a, shared.clone(), &s, stop_rx.clone()).await?);
        }
        for a in &s.sflow {
            tasks.push(sflow::listen(a, sflow::config(&s), shared.clone(), stop_rx.clone()).await?);
        }
        if !s.http.is_empty() {
            tasks.push(http::listen(&s.http, shared.clone(), stop_rx.clone()).await?);
        }
        let mut followers = Vec::new();
        for (i, (p, r)) in s.follow.iter().zip(&resumes).enumerate() {
            followers.push(follow::spawn(
                p.clone(),
                core::FIRST_FILE_SRC + i as u32,
                r.clone(),
                s.follow_start,
                shared.clone(),
                stop_rx.clone(),
            )?);
        }
        tasks.push(tokio::spawn(housekeeping(
            shared.clone(),
            s.retention.0,
            stop_rx.clone(),
        )));
        info!("ready");
        signals(&args, shared.clone()).await?;
        info!("shutting down");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = tokio::time::timeout(StdDuration::from_secs(5), t).await;
        }
        for f in followers {
            let _ = tokio::task::spawn_blocking(move || f.join()).await;
        }
        Ok(())
    });
    // Engine: drain what is queued, save baselines, then the store closes.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let _ = rt.block_on(shared.engine_tx.send(core::Msg::Shutdown(done_tx)));
    let _ = done_rx.recv_timeout(StdDuration::from_secs(30));
    if engine_thread.is_some_and(|t| t.join().is_err()) {
        error!("engine thread panicked");
    }
    let _ = shared.store_tx.send(store::Cmd::Shutdown);
    if store_thread.join().is_err() {
        error!("store thread panicked");
    }
    rt.shutdown_timeout(StdDuration::from_secs(2));
    info!("stopped");
    result
}

/// Where each followed file resumes. With a restored checkpoint: from the checkpoint's position
/// (the engine's state is that of the lines before it), replaying up to the last saved position
/// (the lines the engine had been fed before it stopped, whose alerts are committed). Without
/// one (first start, or a checkpoint refused): from the last saved position, with a fresh engine.
/// When any file replays, they share a [`follow::ReplayGate`]: every replay before new lines.
fn resume_points(
    follow: &[PathBuf],
    checkpoint: Option<&store::Checkpoint>,
    saved: &std::collections::HashMap<String, store::FilePos>,
) -> Vec<follow::Resume> {
    let mut points: Vec<follow::Resume> = follow
        .iter()
        .map(|p| {
            let key = p.display().to_string();
            let last = saved.get(&key).cloned();
            let at_checkpoint =
                checkpoint.and_then(|c| c.positions.iter().find(|x| x.path == key).cloned());
            match at_checkpoint {
                Some(c) => follow::Resume {
                    saved: Some(c),
                    replay_until: last,
                    gate: None,
                },
                None => follow::Resume {
                    saved: last,
                    replay_until: None,
                    gate: None,
                },
            }
        })
        .collect();
    // Every file's replay before any file's new lines.
    if points.iter().any(follow::Resume::replays) {
        let gate = follow::ReplayGate::new(points.len());
        for r in &mut points {
            r.gate = Some(gate.clone());
        }
    }
    points
}

/// Wait for SIGTERM/SIGINT; reload on SIGHUP.
async fn signals(args: &ServeArgs, shared: Arc<Shared>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                match args.settings() {
                    Ok(f) => {
                        let s = f.serve;
                        shared.live.store(Arc::new(Live {
                            mode: s.mode,
                            containment: s.containment.clone(),
                            token: s.token.clone(),
                        }));
                        shared.metrics.reloads.inc();
                        info!(mode = ?s.mode, "configuration reloaded (listeners, files and detector settings change on restart)");
                    }
                    Err(e) => warn!("reload failed, keeping the old configuration: {e:#}"),
                }
            }
        }
    }
}

/// Ticks: engine idle flush and baselines, containment expiry, retention.
async fn housekeeping(
    shared: Arc<Shared>,
    retention: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut iv = tokio::time::interval(StdDuration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        let _ = shared.engine_tx.try_send(core::Msg::Tick);
        let _ = shared.store_tx.try_send(store::Cmd::Expire);
        if n % 3600 == 1 {
            let _ = shared.store_tx.try_send(store::Cmd::Retention(retention));
        }
    }
}
