//! `simulate`, `evaluate` and `demo`: the measuring stick.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::input::Source;
use crate::pipeline::{self, TimeOpts};

/// Log format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimFormat {
    /// Postfix 3.x through syslog, with Dovecot lines.
    Postfix,
    /// Exim 4.97+ main log.
    Exim,
}

/// `simulate` arguments.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Ordinary user accounts.
    #[arg(long, default_value_t = 20_000)]
    pub users: u32,
    /// Days to simulate.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Random seed (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = SimFormat::Postfix)]
    pub format: SimFormat,
    /// First day, YYYY-MM-DD (midnight UTC).
    #[arg(long, default_value = "2026-11-16")]
    pub start: String,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// `evaluate` arguments.
#[derive(Args, Debug, Clone)]
pub struct EvaluateArgs {
    /// labels.jsonl written by `simulate`.
    #[arg(long)]
    pub labels: PathBuf,
    /// alerts.jsonl written by `analyze --format jsonl`.
    #[arg(long)]
    pub alerts: PathBuf,
    /// timeline.jsonl (default: beside the labels) for "spam leaked". Ignored when `--log` is
    /// given.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// Mail log(s) to take the accept times for "spam leaked" from, for labels without a
    /// timeline.jsonl (e.g. real logs labelled by hand). Repeatable. Takes precedence over
    /// `--timeline` and over a timeline.jsonl beside the labels. An accept is a Postfix
    /// `client=` line (entity: its `sasl_username` account, else the client IP) or an Exim `<=`
    /// line (its `A=` user, else the `H=` IP).
    #[arg(long = "log", value_name = "FILE")]
    pub logs: Vec<PathBuf>,
    /// Year of year-less syslog stamps in `--log` (default: the year of the earliest label start).
    #[arg(long)]
    pub year: Option<i64>,
    /// Zone of zone-less stamps in `--log`, e.g. Europe/Berlin (default: UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// summary.json (default: beside the labels) for the legitimate-account count and days.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// population.jsonl (default: beside the labels, if present): the simulator's profile of
    /// each benign entity, shown with every false positive.
    #[arg(long)]
    pub population: Option<PathBuf>,
    /// Configuration file whose `[serve.containment]` says which detectors contain
    /// automatically (default: the built-in default, auth-hijack at score >= 0.9).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
}

/// Output of `evaluate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    /// Human text.
    Text,
    /// One JSON object.
    Json,
}

/// `demo` arguments.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Ordinary user accounts of the small ISP.
    #[arg(long, default_value_t = 3_000)]
    pub users: u32,
    /// Days.
    #[arg(long, default_value_t = 2)]
    pub days: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the generated files in this directory (default: a temporary one, removed).
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

fn sim_config(
    users: u32,
    days: u32,
    seed: u64,
    format: SimFormat,
    start: &str,
) -> Result<simulate::SimConfig> {
    let start = simulate::Date::parse(start)
        .with_context(|| format!("invalid --start {start:?} (expected YYYY-MM-DD)"))?;
    Ok(simulate::SimConfig {
        users,
        days,
        seed,
        format: match format {
            SimFormat::Postfix => simulate::LogFormat::Postfix,
            SimFormat::Exim => simulate::LogFormat::Exim,
        },
        start,
        ..simulate::SimConfig::default()
    })
}

/// `simulate-sflow` arguments.
#[derive(Args, Debug, Clone)]
pub struct SimulateSflowArgs {
    /// Days to simulate.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Random seed (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sampling rate N: each packet is sampled with probability 1/N.
    #[arg(long, default_value_t = simulate::exchange::DEFAULT_SAMPLING)]
    pub sampling: u32,
    /// Multiplier of every population (1.0: about 4,600 sending addresses).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Share of the bad senders written to verdicts.jsonl.
    #[arg(long, default_value_t = 0.3)]
    pub verdict_share: f64,
    /// Wrong verdicts (good senders marked bad), as a share of the right ones.
    #[arg(long, default_value_t = 0.1)]
    pub noisy_share: f64,
    /// First day, YYYY-MM-DD (midnight UTC).
    #[arg(long, default_value = "2026-03-02")]
    pub start: String,
    /// Output directory (created): exchange.pcap, sflow-truth.jsonl, verdicts.jsonl,
    /// exchange-summary.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// `evaluate-sflow` arguments.
#[derive(Args, Debug, Clone)]
pub struct EvaluateSflowArgs {
    /// sflow-truth.jsonl written by `simulate-sflow`.
    #[arg(long)]
    pub truth: PathBuf,
    /// alerts.jsonl written by `sflow analyze --jsonl`.
    #[arg(long)]
    pub alerts: PathBuf,
    /// Verdicts the analysis was given (`--labels`): their addresses are not scored.
    #[arg(long)]
    pub told: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `smtpscope simulate-sflow`.
pub fn simulate_sflow_cmd(a: SimulateSflowArgs) -> Result<()> {
    let start = simulate::Date::parse(&a.start)
        .with_context(|| format!("invalid --start {:?} (expected YYYY-MM-DD)", a.start))?;
    anyhow::ensure!(a.days >= 1 && a.days <= 31, "--days must be 1..=31");
    anyhow::ensure!(a.sampling >= 1, "--sampling must be at least 1");
    anyhow::ensure!(
        a.scale.is_finite() && a.scale > 0.0 && a.scale <= 20.0,
        "--scale must be in (0, 20]"
    );
    for (name, v) in [
        ("--verdict-share", a.verdict_share),
        ("--noisy-share", a.noisy_share),
    ] {
        anyhow::ensure!((0.0..=1.0).contains(&v), "{name} must be in 0..=1");
    }
    let cfg = simulate::exchange::ExchangeConfig {
        seed: a.seed,
        days: a.days,
        sampling: a.sampling,
        start: start.epoch_secs(),
        scale: a.scale,
        verdict_share: a.verdict_share,
        noisy_share: a.noisy_share,
    };
    let t = std::time::Instant::now();
    let s = simulate::exchange::run(&cfg, &a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "wrote {} senders, {} datagrams ({} lost), {} flow and {} counter samples to {} in {:.1} s",
        s.senders,
        s.datagrams,
        s.lost_datagrams,
        s.flow_samples,
        s.counter_samples,
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `smtpscope evaluate-sflow`.
pub fn evaluate_sflow_cmd(a: EvaluateSflowArgs) -> Result<()> {
    use simulate::exchange::eval;
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let truth = eval::read_truth(&read(&a.truth)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.truth.display()))?;
    let flagged = eval::read_clients(&read(&a.alerts)?, Some("sflow-activity"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.alerts.display()))?;
    let told = match &a.told {
        Some(p) => eval::read_clients(&read(p)?, None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Default::default(),
    };
    let score = eval::score(&truth, &flagged, &told);
    if a.json {
        println!("{}", serde_json::to_string(&score)?);
    } else {
        print!("{score}");
    }
    Ok(())
}

/// `smtpscope simulate`.
pub fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    let cfg = sim_config(a.users, a.days, a.seed, a.format, &a.start)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let t = std::time::Instant::now();
    let s = simulate::run(&cfg, &a.out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} lines ({:.1} MB, {} messages, {} labels) to {} in {:.1} s ({:.0} MB/min)",
        s.lines,
        s.bytes as f64 / 1e6,
        s.messages,
        s.labels.values().sum::<u64>(),
        a.out.display(),
        secs,
        s.bytes as f64 / 1e6 / secs * 60.0
    );
    Ok(())
}

fn beside(labels: &Path, name: &str) -> PathBuf {
    labels.parent().unwrap_or(Path::new(".")).join(name)
}

/// Where `evaluate` takes the accept times for "spam leaked" from.
enum TimelineSource<'a> {
    /// A timeline.jsonl (default: beside the labels; skipped when absent).
    File(Option<&'a Path>),
    /// Mail logs, read with these time options (year `None`: from the labels).
    Logs(&'a [PathBuf], Option<i64>, Option<jiff::tz::TimeZone>),
}

/// The year of the earliest label start (labels are RFC 3339 UTC).
fn labels_year(labels: &[simulate::Label]) -> Option<i64> {
    labels
        .iter()
        .filter_map(|l| l.start.get(..4)?.parse::<i64>().ok())
        .min()
}

/// Accept times per entity read from mail logs, kept only for labelled entities.
fn timeline_from_logs(
    labels: &[simulate::Label],
    logs: &[PathBuf],
    t: &TimeOpts,
) -> Result<simulate::evaluate::Timeline> {
    use maillog::Event;
    use simulate::Entity;
    let wanted: std::collections::HashSet<&Entity> = labels.iter().map(|l| &l.entity).collect();
    let mut accepts: Vec<(Entity, i64)> = Vec::new();
    let srcs: Vec<Source> = logs.iter().cloned().map(Source::File).collect();
    pipeline::run(&srcs, t, false, |p, _| {
        let (Some(h), Some(ev)) = (&p.header, &p.event) else {
            return;
        };
        let e = match ev {
            Event::Client {
                sasl_username: Some(u),
                ..
            } => Entity::account(u),
            Event::Client {
                client,
                sasl_username: None,
                ..
            } => match client.ip {
                Some(ip) => Entity::client(ip),
                None => return,
            },
            Event::Queued {
                auth_user: Some(u), ..
            } => Entity::account(u),
            Event::Queued {
                client: Some(c),
                auth_user: None,
                ..
            } => match c.ip {
                Some(ip) => Entity::client(ip),
                None => return,
            },
            _ => return,
        };
        if wanted.contains(&e) {
            accepts.push((e, h.ts.secs()));
        }
    })?;
    Ok(simulate::evaluate::timeline_from_accepts(labels, accepts))
}

/// Where the evaluation finds its inputs besides labels and alerts.
struct EvalInputs<'a> {
    timeline: TimelineSource<'a>,
    summary: Option<&'a Path>,
    population: Option<&'a Path>,
    containment: crate::serve::ContainmentConfig,
}

fn run_evaluation(
    labels: &Path,
    alerts: &Path,
    inputs: EvalInputs<'_>,
) -> Result<simulate::evaluate::Evaluation> {
    let EvalInputs {
        timeline,
        summary,
        population,
        containment,
    } = inputs;
    let l = simulate::evaluate::load_labels(labels).map_err(|e| anyhow::anyhow!("{e}"))?;
    let a = simulate::evaluate::load_alerts(alerts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tl = match timeline {
        TimelineSource::Logs(logs, year, tz) if !logs.is_empty() => {
            let t = TimeOpts {
                year: year.or_else(|| labels_year(&l)),
                tz: Some(tz.unwrap_or(jiff::tz::TimeZone::UTC)),
            };
            Some(timeline_from_logs(&l, logs, &t)?)
        }
        TimelineSource::Logs(..) => None,
        TimelineSource::File(p) => {
            let tl_path = p
                .map(Path::to_path_buf)
                .unwrap_or_else(|| beside(labels, "timeline.jsonl"));
            if tl_path.exists() {
                Some(
                    simulate::evaluate::load_timeline(&tl_path)
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                )
            } else {
                None
            }
        }
    };
    let sum_path = summary
        .map(Path::to_path_buf)
        .unwrap_or_else(|| beside(labels, "summary.json"));
    let s = simulate::load_summary(&sum_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pop_path = population
        .map(Path::to_path_buf)
        .unwrap_or_else(|| beside(labels, "population.jsonl"));
    let profiles = simulate::load_population(&pop_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let scoring = simulate::evaluate::Scoring {
        legit_accounts: s.legit_accounts,
        days: s.days as f64,
        containing: containment.detectors,
        contain_min_score: containment.min_score,
        profiles,
    };
    Ok(simulate::evaluate::evaluate_with(
        &l,
        &a,
        &scoring,
        tl.as_ref(),
    ))
}

/// `smtpscope evaluate`.
pub fn evaluate_cmd(a: EvaluateArgs) -> Result<()> {
    let tz = a.tz.as_deref().map(crate::config::time_zone).transpose()?;
    let source = if a.logs.is_empty() {
        TimelineSource::File(a.timeline.as_deref())
    } else {
        TimelineSource::Logs(&a.logs, a.year, tz)
    };
    let containment = match &a.config {
        Some(p) => crate::config::FileConfig::load(p)?.serve.containment,
        None => crate::serve::ContainmentConfig::default(),
    };
    let ev = run_evaluation(
        &a.labels,
        &a.alerts,
        EvalInputs {
            timeline: source,
            summary: a.summary.as_deref(),
            population: a.population.as_deref(),
            containment,
        },
    )?;
    match a.format {
        EvalFormat::Text => print!("{}", ev.to_text()),
        EvalFormat::Json => println!("{}", serde_json::to_string_pretty(&ev)?),
    }
    Ok(())
}

/// Analyze `log` with default settings, writing alerts as JSONL to `alerts`; returns the text
/// report.
pub fn analyze_to(log: &Path, alerts_path: &Path, year: i64) -> Result<String> {
    let t = TimeOpts {
        year: Some(year),
        tz: Some(jiff::tz::TimeZone::UTC),
    };
    let mut driver = pipeline::Driver::new(detect::Engine::new(detect::Config::default()));
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (run, alerts) = pipeline::analyze(
        &mut driver,
        &[Source::File(log.to_path_buf())],
        &t,
        false,
        threads,
    )?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(alerts_path)?);
    for a in &alerts {
        serde_json::to_writer(&mut f, a)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    let mut s = crate::report::summary(&run, driver.engine().stats(), &alerts);
    s.push_str(&crate::report::entities(&alerts));
    Ok(s)
}

/// `smtpscope demo`.
pub fn demo_cmd(a: DemoArgs) -> Result<()> {
    let (dir, temp) = match &a.keep {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("smtpscope-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let start = "2026-11-16";
    let cfg = sim_config(a.users, a.days, a.seed, SimFormat::Postfix, start)?;
    eprintln!(
        "simulating a small ISP: {} users, {} days, seed {} -> {}",
        a.users,
        a.days,
        a.seed,
        dir.display()
    );
    let s = simulate::run(&cfg, &dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "{} log lines, {} messages, {} abusive entities hidden in them; analyzing…",
        s.lines,
        s.messages,
        s.labels.values().sum::<u64>()
    );
    let log = dir.join("mail.log");
    let alerts = dir.join("alerts.jsonl");
    let report = analyze_to(&log, &alerts, 2026)?;
    println!("{report}");
    let ev = run_evaluation(
        &dir.join("labels.jsonl"),
        &alerts,
        EvalInputs {
            timeline: TimelineSource::File(None),
            summary: None,
            population: None,
            containment: crate::serve::ContainmentConfig::default(),
        },
    )?;
    println!("\nScores against the simulator's ground truth\n============================================");
    print!("{}", ev.to_text());
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("\nfiles kept in {}", dir.display());
    }
    Ok(())
}
