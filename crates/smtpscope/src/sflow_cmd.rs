//! `smtpscope sflow`: decode sFlow v5 and analyse port-25 activity.
//!
//! * `sflow decode FILE…` prints one JSON object per datagram (`--count` only counts).
//! * `sflow analyze FILE…` runs the port-25 activity analysis over captures.
//! * `sflow --listen ADDR` receives sFlow over UDP and runs the same analysis live.
//!
//! The analysis itself is `sflow::activity` (pure); the collector bookkeeping (agent
//! filter, loss, restarts) is `sflow::Collector`. [`SflowSource`] joins the two behind one
//! `feed_datagram(now, bytes) -> Vec<Alert>` call, which is also what `serve` uses.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use detect::{Alert, Detector, Entity, EntityKind};
use maillog::Ts;
use sflow::activity::{self, Activity, ActivityConfig, HostSummary, LabelTable, Prefix, Verdict};
use sflow::clock::AgentClock;
use sflow::{Collector, CollectorConfig};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// How often the listener wakes up to check the deadline and the stop flag.
const LISTEN_POLL: Duration = Duration::from_millis(200);
/// Rows of the per-IP table printed in the text report (the `--table` file has all).
const TEXT_TABLE_ROWS: usize = 40;
/// Width of the text bar chart.
const BAR_WIDTH: usize = 40;

/// `sflow` arguments.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SflowArgs {
    /// What to do with files.
    #[command(subcommand)]
    pub cmd: Option<SflowCmd>,
    /// Receive sFlow datagrams on this UDP address (e.g. 0.0.0.0:6343) and analyse them live;
    /// the report is written when stopped (SIGINT/SIGTERM or --duration).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// With --listen: stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub opts: AnalyzeOpts,
}

/// `sflow` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SflowCmd {
    /// Print one JSON object per sFlow datagram of pcap/pcapng captures (or raw datagram files).
    Decode {
        /// Captures (pcap, pcapng) or files holding one raw datagram.
        files: Vec<PathBuf>,
        /// UDP destination port of sFlow in the captures.
        #[arg(long, default_value_t = sflow::SFLOW_PORT)]
        port: u16,
        /// Print only counts (datagrams, samples, errors) as one JSON object.
        #[arg(long)]
        count: bool,
    },
    /// Analyse port-25 activity in captures: per-IP table, alerts, label table.
    Analyze {
        /// Captures (pcap, pcapng).
        files: Vec<PathBuf>,
        #[command(flatten)]
        opts: Box<AnalyzeOpts>,
    },
}

/// Output format of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human report.
    Text,
    /// One JSON alert per line.
    Jsonl,
    /// One self-contained HTML page: Clayton's figure (share of bad hosts by hours active,
    /// needs --labels) and the alerts.
    Html,
}

/// Options of the analysis (`analyze` and `--listen`).
#[derive(clap::Args, Debug, Clone)]
pub struct AnalyzeOpts {
    /// Accept datagrams only from this agent (repeat; none accepts all). Others are counted and dropped.
    #[arg(long = "agent", value_name = "IP")]
    pub agents: Vec<IpAddr>,
    /// Destination port counted as SMTP (repeat; default 25).
    #[arg(long = "smtp-port", value_name = "PORT")]
    pub smtp_ports: Vec<u16>,
    /// Known mail server prefix (own MTAs, large providers' outbound MTAs): labelled, never flagged (repeat).
    #[arg(long = "known-server", value_name = "PREFIX")]
    pub known_servers: Vec<Prefix>,
    /// File of known server prefixes, one per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub known_servers_file: Option<PathBuf>,
    /// Verdicts from the log detectors: alerts.jsonl of `smtpscope analyze` or a simulator's
    /// labels.jsonl; entities of kind client label their IP as bad.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Use --labels only to annotate: learn nothing from them (no size term, no labelled
    /// networks; docs/DETECTION.md, "Learning from labels").
    #[arg(long)]
    pub no_learn: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the alerts as JSON Lines to this file.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Write the per-IP table (tab-separated, every host) to this file.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Write an SVG plot of the share of bad hosts per hours-active bucket (needs --labels).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the collector and analysis counters as one JSON object to this file.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// UDP destination port of sFlow in captures.
    #[arg(long, default_value_t = sflow::SFLOW_PORT)]
    pub port: u16,
    /// Cap on tracked source IPs.
    #[arg(long, default_value_t = activity::DEFAULT_MAX_HOSTS)]
    pub max_hosts: usize,
    /// Minimum SMTP samples before a host gets a verdict.
    #[arg(long, default_value_t = activity::DEFAULT_MIN_SAMPLES)]
    pub min_samples: u64,
    /// Evidence (log10 likelihood ratio, spam source against server) needed to flag a host.
    #[arg(long, default_value_t = activity::DEFAULT_MIN_EVIDENCE)]
    pub min_evidence: f64,
    /// Hours a host must have been seen for before it is judged while input continues (at
    /// the end of input every host is judged).
    #[arg(long, default_value_t = activity::DEFAULT_JUDGE_AFTER_SECS / 3600)]
    pub judge_after_hours: i64,
}

/// Settings of an sFlow source: collector and analysis.
#[derive(Debug, Clone, Default)]
pub struct SflowConfig {
    /// Agent filter and loss tracking.
    pub collector: CollectorConfig,
    /// Port-25 analysis.
    pub activity: ActivityConfig,
    /// Where a datagram's event time comes from.
    pub clock: ClockMode,
}

/// Where the event time of a datagram comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// The time given with the datagram: capture time (files) or arrival time (live).
    #[default]
    Arrival,
    /// The agent's uptime ([`sflow::clock::AgentClock`]): the first datagram is stamped
    /// `start` (or its arrival time), later ones keep the agents' own timing.
    Agent {
        /// Event time of the first datagram.
        start: Option<Ts>,
    },
}

impl AnalyzeOpts {
    /// Validated settings.
    pub fn config(&self) -> Result<SflowConfig> {
        let mut known = self.known_servers.clone();
        if let Some(p) = &self.known_servers_file {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            for (i, line) in text.lines().enumerate() {
                let l = line.split('#').next().unwrap_or("").trim();
                if !l.is_empty() {
                    known.push(
                        l.parse()
                            .with_context(|| format!("{}:{}", p.display(), i + 1))?,
                    );
                }
            }
        }
        if !self.min_evidence.is_finite() {
            bail!("--min-evidence must be a finite number");
        }
        if !(0..=24 * 366).contains(&self.judge_after_hours) {
            bail!("--judge-after-hours is between 0 and 8784");
        }
        Ok(SflowConfig {
            collector: CollectorConfig {
                agents: self.agents.clone(),
                ..CollectorConfig::default()
            },
            activity: ActivityConfig {
                smtp_ports: if self.smtp_ports.is_empty() {
                    activity::DEFAULT_SMTP_PORTS.to_vec()
                } else {
                    self.smtp_ports.clone()
                },
                known_servers: known,
                max_hosts: self.max_hosts,
                min_samples: self.min_samples,
                min_evidence: self.min_evidence,
                judge_after_secs: self.judge_after_hours * 3600,
                learn: !self.no_learn,
                ..ActivityConfig::default()
            },
            clock: ClockMode::Arrival,
        })
    }
}

/// An sFlow source: collector + port-25 analysis, fed one UDP payload at a time.
///
/// For `serve`: build it with [`SflowSource::new`], call [`SflowSource::feed_datagram`]
/// with the arrival time and the payload of every datagram received (it returns the alerts
/// that became due: hosts newly flagged, checked each time event time enters a new hour),
/// and [`SflowSource::finish`] on shutdown. [`SflowSource::stats_json`] gives counters
/// for metrics. No I/O, no clock: the caller owns the socket and the time.
#[derive(Debug, Clone)]
pub struct SflowSource {
    collector: Collector,
    activity: Activity,
    clock: Option<AgentClock>,
    hour: Option<i64>,
}

impl SflowSource {
    /// A source with these settings.
    pub fn new(cfg: SflowConfig) -> SflowSource {
        SflowSource {
            collector: Collector::new(cfg.collector),
            activity: Activity::new(cfg.activity),
            clock: match cfg.clock {
                ClockMode::Arrival => None,
                ClockMode::Agent { start } => Some(AgentClock::new(start.map(|t| t.0))),
            },
            hour: None,
        }
    }

    /// Attaches "bad" labels (IPs flagged by the log detectors).
    pub fn label(&mut self, bad: impl IntoIterator<Item = IpAddr>) {
        self.activity.label(bad);
    }

    /// Feeds one datagram received (or captured) at `now`; returns alerts that became due.
    /// Rejected datagrams (unconfigured agent, malformed) are only counted (with the agent
    /// clock they do not move time either).
    pub fn feed_datagram(&mut self, now: Ts, bytes: &[u8]) -> Vec<Alert> {
        let mut secs = now.secs();
        match self.collector.feed(bytes) {
            Ok((dg, ev)) => {
                if let Some(c) = &mut self.clock {
                    let agent = dg
                        .agent
                        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                    let restart = ev == sflow::SequenceEvent::Restart;
                    secs = Ts(c.stamp(now.0, agent, dg.sub_agent_id, dg.uptime, restart)).secs();
                }
                for o in dg.flow_observations() {
                    self.activity.observe(secs, &o);
                }
            }
            Err(_) if self.clock.is_some() => return Vec::new(),
            Err(_) => {}
        }
        let hour = secs.div_euclid(3600);
        match self.hour {
            Some(h) if hour > h => {
                self.hour = Some(hour);
                self.due_alerts(secs)
            }
            None => {
                self.hour = Some(hour);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Alerts for every flagged host not alerted yet: call at the end of input.
    pub fn finish(&mut self) -> Vec<Alert> {
        self.due_alerts(i64::MAX)
    }

    fn due_alerts(&mut self, now: i64) -> Vec<Alert> {
        let labelled = self.activity.labelled();
        self.activity
            .take_new_suspicious(now)
            .iter()
            .map(|s| host_alert(s, labelled))
            .collect()
    }

    /// The analysis (per-IP summaries, label table).
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// The collector counters and the analysis counters as one JSON object.
    pub fn stats_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "collector": self.collector.stats(),
            "rejected_agents": self.collector.rejected_agents().iter()
                .map(|(a, n)| serde_json::json!({"agent": a, "datagrams": n}))
                .collect::<Vec<_>>(),
            "activity": self.activity.stats(),
        });
        if let Some(c) = &self.clock {
            v["clock"] = serde_json::json!(c.stats());
        }
        v
    }
}

/// The alert for one flagged host. `ts` is the host's last SMTP sample.
pub fn host_alert(s: &HostSummary, labelled: bool) -> Alert {
    // Without labels the evidence says nothing about them (`bad` is left out of the JSON).
    let mut s = s.clone();
    if !labelled {
        s.bad = None;
    }
    let evidence = serde_json::to_value(&s).unwrap_or(serde_json::Value::Null);
    Alert {
        ts: Ts::from_secs(s.last),
        detector: Detector::SflowActivity,
        entity: Entity::new(EntityKind::Client, s.ip.to_string()),
        score: (s.score * 1000.0).round() / 1000.0,
        summary: format!(
            "evidence {:.1} (sessions {:+.1}: {} SYNs in {} samples, share {:.2}-{:.2}; destinations {:+.1}: {} rare of {} sessions, {} repeated; daily {:+.1}: {} hours of the day on two days; spread {:+.1}: {:.2} of even sending; days {:+.1}: {} days; size {:+.1}: {} full-sized of {} samples); {} networks, {} hours in {} four-hour blocks, ~{} packets",
            s.evidence, s.syn_evidence, s.syn_samples, s.samples, s.syn_share_low, s.syn_share_high,
            s.dest_evidence, s.rare_sessions, s.sessions, s.rare_repeats,
            s.daily_evidence, s.daily_hours, s.spread_evidence, s.spread, s.days_evidence, s.days, s.size_evidence, s.full_samples, s.samples, s.dst_nets, s.hours, s.blocks, s.est_packets
        ),
        evidence,
    }
}

/// Run.
pub fn run(args: SflowArgs) -> Result<()> {
    match (args.cmd, args.listen) {
        (Some(SflowCmd::Decode { files, port, count }), _) => decode_cmd(&files, port, count),
        (Some(SflowCmd::Analyze { files, opts }), _) => analyze_files(&files, &opts),
        (None, Some(addr)) => listen(addr, args.duration, &args.opts),
        (None, None) => bail!("give a subcommand (decode, analyze) or --listen ADDR"),
    }
}

/// The datagrams of one file: (capture time, UDP payload). A file that is not a capture
/// but starts like an sFlow v5 datagram is one datagram stamped with its modification time.
fn with_datagrams(
    path: &Path,
    port: u16,
    mut f: impl FnMut(Ts, &[u8]) -> Result<()>,
) -> Result<()> {
    let buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match sflow::Capture::new(&buf) {
        Ok(cap) => {
            for frame in cap {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        // A capture cut short (the capturing process was killed) still
                        // gives everything before the damage.
                        eprintln!(
                            "smtpscope sflow: {}: {e}; reading stops here",
                            path.display()
                        );
                        break;
                    }
                };
                if let Some(u) = frame.udp_payload_to(port) {
                    let ts = Ts((frame.timestamp_ns / 1000).min(i64::MAX as u64) as i64);
                    f(ts, u.payload)?;
                }
            }
            Ok(())
        }
        Err(_) if buf.starts_with(&sflow::SFLOW_VERSION.to_be_bytes()) => {
            let mtime = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            f(system_ts(mtime), &buf)
        }
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

fn system_ts(t: SystemTime) -> Ts {
    let us = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    Ts(us.min(i64::MAX as u128) as i64)
}

/// One line of `sflow decode`: capture time, the datagram's fields, and the error that
/// stopped decoding (if any).
#[derive(serde::Serialize)]
struct DecodedOut<'a> {
    ts: String,
    #[serde(flatten)]
    datagram: Option<&'a sflow::Datagram<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a sflow::Error>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

fn decode_cmd(files: &[PathBuf], port: u16, count: bool) -> Result<()> {
    if files.is_empty() {
        bail!("give at least one capture file");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut datagrams, mut flows, mut counters, mut other, mut errors) = (0u64, 0, 0, 0, 0);
    for path in files {
        with_datagrams(path, port, |ts, payload| {
            let d = sflow::decode(payload);
            datagrams += 1;
            errors += u64::from(d.error.is_some());
            if let Some(dg) = &d.datagram {
                for s in &dg.samples {
                    match s {
                        sflow::Sample::Flow(_) => flows += 1,
                        sflow::Sample::Counter(_) => counters += 1,
                        _ => other += 1,
                    }
                }
            }
            if count {
                return Ok(());
            }
            let v = DecodedOut {
                ts: ts.rfc3339(),
                datagram: d.datagram.as_ref(),
                error_message: d.error.as_ref().map(|e| e.to_string()),
                error: d.error.as_ref(),
            };
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
            Ok(())
        })?;
    }
    if count {
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"datagrams": datagrams, "flow_samples": flows,
                "counter_samples": counters, "other_samples": other, "errors": errors}),
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The bad IPs of a labels file: every line whose `entity.kind` is `client` and whose
/// `entity.id` is an IP (alerts.jsonl and the simulator's labels.jsonl both qualify).
pub fn read_labels(path: &Path) -> Result<Vec<IpAddr>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let e = &v["entity"];
        if e["kind"] == "client" {
            if let Some(ip) = e["id"].as_str().and_then(|s| s.parse().ok()) {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

fn new_source(opts: &AnalyzeOpts) -> Result<SflowSource> {
    let mut src = SflowSource::new(opts.config()?);
    if let Some(p) = &opts.labels {
        src.label(read_labels(p)?);
    }
    Ok(src)
}

/// Writes alerts as they come (JSONL) to the --jsonl file and, in jsonl format, to the report.
struct AlertSink {
    file: Option<std::io::BufWriter<std::fs::File>>,
    alerts: Vec<Alert>,
}

impl AlertSink {
    fn new(opts: &AnalyzeOpts) -> Result<AlertSink> {
        let file = match &opts.jsonl {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        Ok(AlertSink {
            file,
            alerts: Vec::new(),
        })
    }

    fn push(&mut self, alerts: Vec<Alert>) -> Result<()> {
        if let Some(f) = &mut self.file {
            for a in &alerts {
                serde_json::to_writer(&mut *f, a)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
        }
        self.alerts.extend(alerts);
        Ok(())
    }
}

fn analyze_files(files: &[PathBuf], opts: &AnalyzeOpts) -> Result<()> {
    if files.is_empty() {
        bail!("give at least one capture file");
    }
    let mut src = new_source(opts)?;
    let mut sink = AlertSink::new(opts)?;
    for path in files {
        with_datagrams(path, opts.port, |ts, payload| {
            sink.push(src.feed_datagram(ts, payload))
        })?;
    }
    sink.push(src.finish())?;
    report(&src, &sink.alerts, opts)
}

fn listen(addr: SocketAddr, duration: Option<f64>, opts: &AnalyzeOpts) -> Result<()> {
    let mut src = new_source(opts)?;
    let mut sink = AlertSink::new(opts)?;
    let sock = std::net::UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
    sock.set_read_timeout(Some(LISTEN_POLL))?;
    eprintln!("smtpscope sflow: listening on {}", sock.local_addr()?);
    let stop = stop_flag();
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        match sock.recv_from(&mut buf) {
            Ok((n, _peer)) => {
                let alerts = src.feed_datagram(system_ts(SystemTime::now()), &buf[..n]);
                sink.push(alerts)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    sink.push(src.finish())?;
    report(&src, &sink.alerts, opts)
}

/// A flag set on SIGINT or SIGTERM (a small tokio runtime on its own thread waits for them).
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        f.store(true, Ordering::Relaxed);
    });
    flag
}

fn report(src: &SflowSource, alerts: &[Alert], opts: &AnalyzeOpts) -> Result<()> {
    let hosts = src.activity().summaries();
    let table = src.activity().label_table();
    if let Some(p) = &opts.table {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        write_table(&mut f, &hosts, usize::MAX)?;
        f.flush()?;
    }
    if let Some(p) = &opts.stats {
        std::fs::write(p, serde_json::to_string(&src.stats_json())? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &opts.plot {
        let Some(t) = &table else {
            bail!("--plot needs --labels");
        };
        std::fs::write(p, svg_plot(t)).with_context(|| format!("writing {}", p.display()))?;
    }
    let mut out: Box<dyn Write> = match &opts.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match opts.format {
        Format::Jsonl => {
            for a in alerts {
                serde_json::to_writer(&mut out, a)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Text => text_report(&mut out, src, &hosts, alerts, table.as_ref())?,
        Format::Html => out.write_all(
            crate::html::sflow::page(table.as_ref(), alerts, &hosts)
                .into_string()
                .as_bytes(),
        )?,
    }
    out.flush()?;
    Ok(())
}

const TABLE_HEADER: &str = "ip\tsamples\test_packets\test_bytes\tsyn_samples\test_syns\tdst_ips\tdst_nets\thours\tblocks\thours_per_block\tfill\tdest_variation\tfirst\tlast\tknown\tbad\tverdict\tscore\treply_samples\treset_replies\tsyn_share_low\tsyn_share_high\tsessions\trare_sessions\trare_repeats\tdaily_hours\tsyn_evidence\tdest_evidence\tdaily_evidence\tspread\tspread_evidence\tdays\tdays_evidence\tevidence\tnet_addresses\tnet_evidence\tfull_samples\tsize_evidence\tnet_labelled";

fn write_table(out: &mut dyn Write, hosts: &[HostSummary], rows: usize) -> Result<()> {
    writeln!(out, "{TABLE_HEADER}")?;
    for s in hosts.iter().take(rows) {
        let bad = match s.bad {
            Some(true) => "bad",
            Some(false) => "-",
            None => "",
        };
        let sat = if s.dests_saturated { "+" } else { "" };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}{sat}\t{}{sat}\t{}\t{}\t{:.2}\t{:.3}\t{:.3}\t{}\t{}\t{}\t{bad}\t{}\t{:.3}\t{}\t{}\t{:.3}\t{:.3}\t{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.3}\t{:.2}\t{}\t{:.2}\t{:.2}\t{}\t{:.2}\t{}\t{:.2}\t{}",
            s.ip,
            s.samples,
            s.est_packets,
            s.est_bytes,
            s.syn_samples,
            s.est_syns,
            s.dst_ips,
            s.dst_nets,
            s.hours,
            s.blocks,
            s.hours_per_block,
            s.fill,
            s.dest_variation,
            Ts::from_secs(s.first).rfc3339(),
            Ts::from_secs(s.last).rfc3339(),
            if s.known { "known" } else { "" },
            s.verdict,
            s.score,
            s.reply_samples,
            s.reset_replies,
            s.syn_share_low,
            s.syn_share_high,
            s.sessions,
            s.rare_sessions,
            s.rare_repeats,
            s.daily_hours,
            s.syn_evidence,
            s.dest_evidence,
            s.daily_evidence,
            s.spread,
            s.spread_evidence,
            s.days,
            s.days_evidence,
            s.evidence,
            s.net_addresses,
            s.net_evidence,
            s.full_samples,
            s.size_evidence,
            s.net_labelled
        )?;
    }
    Ok(())
}

fn text_report(
    out: &mut dyn Write,
    src: &SflowSource,
    hosts: &[HostSummary],
    alerts: &[Alert],
    table: Option<&LabelTable>,
) -> Result<()> {
    let st = src.stats_json();
    let c = &st["collector"];
    let a = src.activity().stats();
    writeln!(
        out,
        "sFlow: {} datagrams, {} accepted ({} partial), {} from unconfigured agents, {} malformed; {} lost by sequence, {} late, {} agent restarts, {} sources ({} sequence streams)",
        c["datagrams"], c["accepted"], c["partial"], c["rejected_agent"], c["malformed"],
        c["lost"], c["late"], c["restarts"], c["sources"], c["streams"]
    )?;
    writeln!(
        out,
        "Samples: {} flow, {} counter; {} observations, {} TCP to SMTP ports {:?}; {} hosts ({} known servers), {} samples untracked (host cap)",
        c["flow_samples"], c["counter_samples"], a.observations, a.smtp_samples,
        src.activity().config().smtp_ports, a.hosts, a.known_hosts, a.untracked_samples
    )?;
    let mut verdicts = std::collections::BTreeMap::<Verdict, u64>::new();
    for h in hosts {
        *verdicts.entry(h.verdict).or_default() += 1;
    }
    let v: Vec<String> = verdicts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(out, "Verdicts: {}", v.join(", "))?;
    writeln!(out, "\nAlerts ({}):", alerts.len())?;
    for al in alerts {
        writeln!(
            out,
            "  {} {:.2} {}: {}",
            al.ts.rfc3339(),
            al.score,
            al.entity.id,
            al.summary
        )?;
    }
    writeln!(
        out,
        "\nHosts ({} of {}, most samples first):",
        hosts.len().min(TEXT_TABLE_ROWS),
        hosts.len()
    )?;
    write_table(out, hosts, TEXT_TABLE_ROWS)?;
    write_learned(out, src.activity().learned().as_ref())?;
    if let Some(t) = table {
        writeln!(
            out,
            "\nLabels: {} hosts with enough samples, {} bad; flagged {}, of which bad {}; {} bad IPs never seen on port 25",
            t.hosts, t.bad, t.flagged, t.flagged_bad, t.bad_unseen
        )?;
        for (title, rows) in [
            ("hours active H", &t.by_hours),
            (
                "fill (active hours / observed hours of active blocks)",
                &t.by_fill,
            ),
            ("destination variation", &t.by_dest_variation),
        ] {
            writeln!(out, "\nShare of bad hosts by {title}:")?;
            for r in rows {
                let bar = "#".repeat((r.bad_share * BAR_WIDTH as f64).round() as usize);
                writeln!(
                    out,
                    "  {:>10} {:>6} hosts {:>6} bad {:>5.1}% |{bar}",
                    r.bucket,
                    r.hosts,
                    r.bad,
                    r.bad_share * 100.0
                )?;
            }
        }
        writeln!(
            out,
            "\nClayton's figure: days on which an address was active in at least {} of the 6 four-hour blocks ({} addresses), share of bad ones by hours active that day:",
            activity::CLAYTON_MIN_BLOCKS,
            t.five_of_six_hosts
        )?;
        for r in &t.five_of_six {
            let bar = "#".repeat((r.bad_share * BAR_WIDTH as f64).round() as usize);
            writeln!(
                out,
                "  {:>10} {:>6} days  {:>6} bad {:>5.1}% |{bar}",
                format!("{} h", r.bucket),
                r.hosts,
                r.bad,
                r.bad_share * 100.0
            )?;
        }
    }
    Ok(())
}

/// The report's line on what the size term learned ([`sflow::learn`]): from the labels, or
/// without them from the traffic's own confident detections.
fn write_learned(out: &mut dyn Write, learned: Option<&sflow::learn::Learned>) -> Result<()> {
    let Some(l) = learned else {
        writeln!(out, "\nLearned: nothing (--no-learn)")?;
        return Ok(());
    };
    let share = |f: Option<sflow::learn::BetaBinomial>| {
        f.map_or("-".to_string(), |f| {
            format!("{:.2} (α+β {:.0})", f.mean(), f.alpha + f.beta)
        })
    };
    match l.spam_from {
        sflow::learn::SpamReference::Labels => writeln!(
            out,
            "\nLearned from the labels: {} labelled hosts with enough samples, {} of them left out as probable wrong verdicts, {} unlabelled server references; share of full-sized samples: spam sources {}, servers {}; {} labelled networks (labelled share at large {:.3})",
            l.labelled, l.noisy, l.servers, share(l.spam_size), share(l.server_size),
            l.labelled_networks, l.labelled_share
        )?,
        sflow::learn::SpamReference::Traffic => writeln!(
            out,
            "\nLearned from the traffic ({} labelled hosts, {} of them left out as probable wrong verdicts: too few labels to learn from): {} spam references (confident detections and kept labels), {} server references; share of full-sized samples: spam sources {}, servers {}",
            l.labelled, l.noisy, l.spam_references, l.servers, share(l.spam_size), share(l.server_size)
        )?,
    }
    Ok(())
}

/// Hand-written SVG bar charts: the share of bad hosts per hours-active bucket, and
/// Clayton's figure (days active in at least 5 of the 6 four-hour blocks, by hours active).
fn svg_plot(t: &LabelTable) -> String {
    let (w, h) = (640.0, 360.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        2.0 * h
    );
    svg_bars(
        &mut s,
        0.0,
        "Share of bad hosts by hours active (port-25 sFlow samples)",
        &t.by_hours,
        "hours active H",
        "hosts",
    );
    svg_bars(
        &mut s,
        h,
        &format!(
            "Clayton: days active in at least {} of 6 four-hour blocks, share bad",
            activity::CLAYTON_MIN_BLOCKS
        ),
        &t.five_of_six,
        "hours active that day",
        "days",
    );
    s += "</svg>\n";
    s
}

/// One 640 × 360 bar chart of `rows`' bad shares at height `y0`.
fn svg_bars(
    s: &mut String,
    y0: f64,
    title: &str,
    rows: &[activity::BucketRow],
    x_label: &str,
    unit: &str,
) {
    let (w, h, left, bottom, top) = (640.0, 360.0, 60.0, 60.0, 40.0);
    let n = rows.len().max(1) as f64;
    let bw = (w - left - 20.0) / n;
    let ph = h - bottom - top;
    let top = y0 + top;
    *s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n",
        w / 2.0,
        y0 + 20.0
    );
    for pct in [0, 25, 50, 75, 100] {
        let y = top + ph * (1.0 - f64::from(pct) / 100.0);
        *s += &format!(
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{pct}%</text>\n",
            w - 20.0,
            left - 6.0,
            y + 4.0
        );
    }
    // Narrow bars get smaller labels.
    let fs = if bw < 40.0 { " font-size=\"9\"" } else { "" };
    for (i, r) in rows.iter().enumerate() {
        let x = left + bw * i as f64 + bw * 0.1;
        let bh = ph * r.bad_share;
        let cx = x + bw * 0.4;
        *s += &format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#c0392b\"><title>{} hours: {} of {} {unit} bad</title></rect>\n\
             <text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\"{fs}>{}</text><text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\"{fs}>n={}</text>\n",
            top + ph - bh,
            bw * 0.8,
            r.bucket,
            r.bad,
            r.hosts,
            y0 + h - bottom + 16.0,
            r.bucket,
            y0 + h - bottom + 32.0,
            r.hosts
        );
    }
    *s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>\n",
        w / 2.0,
        y0 + h - 8.0
    );
}
