//! smtpscope: find the accounts and customers whose mail is abused to send spam.
//!
//! A thin binary over the library crates: it turns command-line arguments and the config file
//! into settings (here, in one place), does the I/O (files, stdin, stdout), and runs the engine.

use smtpscope::{abuse, config, ecs, html, input, pipeline, report, seen, serve, sflow_cmd, sim};

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::FileConfig;
use crate::input::Source;
use crate::pipeline::TimeOpts;

/// mimalloc instead of glibc's allocator: records are made on the engine thread and freed on
/// the detectors' thread (`analyze --threads 2` and up), which glibc serves through its arena
/// locks and slow paths (a fifth of the engine thread's samples in `_int_malloc` and friends);
/// measured on the 1.8 GB benchmark log, one thread 41.3 -> 29.1 s and two 23.8 -> 18.0 s, peak
/// RSS +58 MiB (docs/PERFORMANCE.md, "The allocator").
///
/// Called through [`Mimalloc`], not the `mimalloc` crate's wrapper, which asks for every block
/// with `mi_malloc_aligned`.
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// mimalloc as the global allocator, asking for a plain block (`mi_malloc`) wherever a plain
/// block is aligned enough, which is nearly every Rust allocation. `mi_malloc_aligned` (what
/// the `mimalloc` crate calls for every block) takes its fast path only when a small block of
/// the size is free at hand; otherwise, for blocks over 1 KiB and whenever a size's page has
/// run out of free blocks, it over-allocates by the alignment and goes the slow way: about 65
/// instructions an allocation where `mi_malloc` takes about 45, and 300 for a tenth of them
/// (callgrind on the benchmark log, docs/PERFORMANCE.md, "Steps of 2026-12-07, afternoon").
struct Mimalloc;

/// The alignment every mimalloc block has, whatever its size: block sizes are multiples of a
/// word, and a page's blocks start 16-byte aligned (mimalloc's `MI_PAGE_MIN_START_BLOCK_ALIGN`).
/// Larger alignments go to mimalloc's aligned allocation.
const PLAIN_BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free`, `mi_realloc*`); a
// plain block is asked for only when the layout's alignment is at most PLAIN_BLOCK_ALIGN, which
// every mimalloc block has; a failed allocation returns null, as GlobalAlloc requires.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: plain C allocation calls with the layout's size (and alignment).
        unsafe {
            if layout.align() <= PLAIN_BLOCK_ALIGN {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= PLAIN_BLOCK_ALIGN {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment (a plain block has PLAIN_BLOCK_ALIGN).
        unsafe {
            if layout.align() <= PLAIN_BLOCK_ALIGN {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Turn transparent huge pages off for this process and every thread it starts
/// (`prctl(PR_SET_THP_DISABLE)`; Linux only, a no-op where the kernel lacks it). mimalloc
/// advises the kernel to back its arenas with 2 MiB pages (`madvise(MADV_HUGEPAGE)`, honoured
/// in the kernel's `madvise` and `always` THP modes); the kernel then zeroes a whole 2 MiB page
/// at the first touch of each, again after mimalloc returns part of one (its purge), and for
/// each new thread's heap. Measured on the 2-core VM against the build before, alternating
/// (docs/PERFORMANCE.md, "Transparent huge pages off"): `analyze` of the 1.8 GB benchmark log
/// 0.4-0.9 s of system time on one thread instead of 1.6-2.3 s, 1.5-14% faster on one thread
/// and 9-21% on two, 20-48 MiB less peak RSS; the policy server 4-25% more requests per second;
/// and after 500 policy connections opened at once (a thread each) a new client waited at
/// most 0.4-16 ms instead of 14-742 ms, the server holding 80-90 MiB instead of 282-306.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets the process's THP flag;
    // an error (a kernel before 3.15) leaves the process as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[derive(Parser, Debug)]
#[command(name = "smtpscope", version, about = "Find the users whose mail is abused to send spam, from MTA logs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutFormat {
    /// Human report.
    Text,
    /// One JSON alert per line.
    Jsonl,
    /// One JSON incident per line (alerts merged per entity, the containment policy applied).
    Incidents,
    /// Elastic Common Schema: every alert, then every incident, one JSON document per line.
    Ecs,
    /// One self-contained HTML page (inline CSS and SVG, no script): summary, IIJ's five
    /// figures, one section per incident.
    Html,
}

#[derive(clap::Args, Debug, Clone)]
struct TimeArgs {
    /// Year of year-less syslog stamps (default: from each file's modification time).
    #[arg(long)]
    year: Option<i64>,
    /// Zone of zone-less stamps, e.g. Europe/Berlin or UTC (default: the system's).
    #[arg(long)]
    tz: Option<String>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
enum Cmd {
    /// Analyze mail logs (Postfix, Exim, Dovecot, Sendmail; plain, .gz, .zst, .bz2; stdin when none).
    Analyze {
        /// Log files, in any order (they are read oldest first); `-` or none for stdin.
        files: Vec<PathBuf>,
        /// Output format (default: text on a terminal, jsonl otherwise).
        #[arg(long, value_enum)]
        format: Option<OutFormat>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Configuration file (smtpscope.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        time: TimeArgs,
        /// Print parse statistics (JSON) to stderr at the end.
        #[arg(long)]
        stats: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Threads (default: all cores): with two or more the detectors get one of their own
        /// beside the engine's, and parsers get the rest; results are the same for any number.
        #[arg(long)]
        threads: Option<usize>,
        /// The detectors on a thread of their own: auto (with 2 or more threads), on, off. The
        /// results are the same; only the speed differs.
        #[arg(long, value_enum, default_value = "auto")]
        detector_thread: pipeline::DetectorThread,
        /// Split the engine into this many partitions by entity, as a cluster of this many
        /// partitions does, run on `--threads` worker threads beside those that read, parse
        /// and route: the alerts are the cluster's (state that spans entities is seen per
        /// partition) and the same for any number of threads. Not with `--state`, `--format
        /// html` or `--detector-thread on` (each partition's detectors run on its worker).
        #[arg(long, value_name = "P")]
        partitions: Option<u32>,
        /// Keep account baselines in this file: loaded before, saved after the run.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Geo overrides: CSV of `cidr,country,asn,label` (own customers, NAT gateways, ...).
        #[arg(long)]
        geo_override: Option<PathBuf>,
        /// Also write abuse reports into this directory: per incident and attacking source, XARF
        /// JSON (login attacks, spam) and an ARF mail (spam). Needs `[abuse]` in the config.
        #[arg(long, value_name = "DIR")]
        abuse_reports: Option<PathBuf>,
    },
    /// Print normalized events (or message records) as JSON Lines.
    Parse {
        /// Log files; `-` or none for stdin.
        files: Vec<PathBuf>,
        /// Print message records instead of events.
        #[arg(long)]
        records: bool,
        /// Print only the recognition statistics, one JSON object.
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        time: TimeArgs,
    },
    /// Write a simulated ISP's mail log with ground-truth labels of the abuse hidden in it.
    Simulate(sim::SimulateArgs),
    /// Score alerts against a simulation's labels: recall, precision, false positives, time to detect.
    Evaluate(sim::EvaluateArgs),
    /// Simulate a small ISP, analyze it and score the result: the first thing to run.
    Demo(sim::DemoArgs),
    /// Write a simulated exchange point's sFlow capture with the truth about every sender.
    SimulateSflow(sim::SimulateSflowArgs),
    /// Score `sflow analyze` alerts against a `simulate-sflow` truth file.
    EvaluateSflow(sim::EvaluateSflowArgs),
    /// Decode sFlow v5 (pcap, pcapng, UDP) and analyse port-25 activity.
    Sflow(sflow_cmd::SflowArgs),
    /// Run in real time: follow logs, receive syslog, answer Postfix policy requests, keep state.
    Serve(serve::ServeArgs),
    /// The alerts a cluster with these edges and partitions must raise, computed in one process
    /// (every edge's log routed and merged as the cluster does): the reference of
    /// tests/e2e/cluster.sh and docs/SCALE.md. Holds every event in memory.
    #[command(hide = true)]
    ClusterReplay {
        /// An edge and its log: NAME=FILE (repeatable; a name may repeat for several files).
        #[arg(long = "edge", value_name = "NAME=FILE", required = true)]
        edges: Vec<String>,
        /// Partitions (default: `[cluster] partitions`).
        #[arg(long)]
        partitions: Option<u32>,
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        time: TimeArgs,
    },
    /// Write the man pages (smtpscope.1 and one per subcommand), generated from this command
    /// line's definition, into DIR (for packagers).
    #[command(hide = true)]
    Man {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Print the completion script for a shell (for packagers).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the configuration file format.
    Config {
        /// Print the fully commented default configuration.
        #[arg(long)]
        default: bool,
        /// Check a configuration file and print it with every default filled in.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

fn time_opts(t: &TimeArgs, file: &FileConfig) -> Result<TimeOpts> {
    let tzname = t.tz.clone().or_else(|| file.input.tz.clone());
    let tz = tzname.as_deref().map(config::time_zone).transpose()?;
    Ok(TimeOpts {
        year: t.year.or(file.input.year),
        tz,
    })
}

fn sources(files: &[PathBuf]) -> Result<Vec<Source>> {
    if files.is_empty() {
        return Ok(vec![Source::Stdin]);
    }
    let mut v = Vec::new();
    for f in files {
        let s = Source::from_arg(f);
        if let Source::File(p) = &s {
            let md = std::fs::metadata(p).with_context(|| {
                format!(
                    "cannot read {} (give existing log files, or `-` for standard input)",
                    p.display()
                )
            })?;
            if md.is_dir() {
                bail!(
                    "{} is a directory: give the log files in it, e.g. {}/mail.log*",
                    p.display(),
                    p.display()
                );
            }
        }
        v.push(s);
    }
    Ok(v)
}

fn out_writer(output: &Option<PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| {
                format!(
                    "cannot create {} (check that its directory exists and is writable)",
                    p.display()
                )
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn stats_json(run: &pipeline::RunStats) -> serde_json::Value {
    let p = &run.parse;
    let mut by_format = serde_json::Map::new();
    let mut fm: Vec<_> = p.by_format.iter().collect();
    fm.sort_by_key(|(f, _)| **f);
    for (f, c) in fm {
        by_format.insert(
            f.as_str().into(),
            serde_json::json!({"lines": c.lines, "recognized": c.recognized}),
        );
    }
    let mut progs: Vec<_> = p.by_program.iter().collect();
    progs.sort_by(|a, b| b.1.lines.cmp(&a.1.lines).then(a.0.cmp(b.0)));
    let by_program: serde_json::Map<String, serde_json::Value> = progs
        .into_iter()
        .map(|(k, c)| {
            (
                k.clone(),
                serde_json::json!({"lines": c.lines, "recognized": c.recognized}),
            )
        })
        .collect();
    let mail = p.mail_counts();
    serde_json::json!({
        "lines": p.lines,
        "recognized": p.recognized,
        "unrecognized": p.unrecognized(),
        "no_header": p.no_header,
        "invalid_utf8": p.invalid_utf8,
        "mail_lines": mail.lines,
        "mail_recognized": mail.recognized,
        "by_format": by_format,
        "by_program": by_program,
        "unrecognized_shapes": p.top_shapes(50),
        "unrecognized_shapes_dropped": p.shapes_dropped,
        "inputs": run.inputs,
        "bytes": run.bytes(),
        "seconds": run.secs,
    })
}

#[allow(clippy::too_many_arguments)] // one per command-line option of `analyze`
fn analyze(
    files: Vec<PathBuf>,
    format: Option<OutFormat>,
    output: Option<PathBuf>,
    config: Option<PathBuf>,
    time: TimeArgs,
    stats: bool,
    quiet: bool,
    threads: Option<usize>,
    detector_thread: pipeline::DetectorThread,
    partitions: Option<u32>,
    state: Option<PathBuf>,
    geo_override: Option<PathBuf>,
    abuse_reports: Option<PathBuf>,
) -> Result<()> {
    let mut file = match &config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    // Checked before the work, so a missing key costs no analysis.
    let reporter = abuse_reports
        .as_ref()
        .map(|_| file.abuse.complete())
        .transpose()?;
    if let Some(p) = partitions {
        let most = smtpscope::cluster::config::MAX_PARTITIONS;
        if !(1..=most).contains(&p) {
            bail!("--partitions {p}: expected 1..={most}");
        }
        if detector_thread == pipeline::DetectorThread::On {
            bail!("--partitions runs each partition's detectors on its worker: leave out --detector-thread on (or --partitions)");
        }
        if state.is_some() {
            bail!("--partitions does not keep baselines: leave out --state (or --partitions)");
        }
        if format == Some(OutFormat::Html) {
            bail!("--partitions does not make the HTML report: choose another --format (or leave out --partitions)");
        }
    }
    if geo_override.is_some() {
        file.geo.overrides = geo_override;
    }
    let t = time_opts(&time, &file)?;
    let srcs = pipeline::order_sources(sources(&files)?, &t);
    let format = format.unwrap_or(if output.is_none() && std::io::stdout().is_terminal() {
        OutFormat::Text
    } else {
        OutFormat::Jsonl
    });
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let geo = file.geo_db()?;
    if threads > 1 {
        // The first chunks are read and parsed while the built-in table is decoded; with one
        // thread the first look-up decodes it.
        geo.decode_in_background();
    }
    let outputs = Outputs {
        format,
        abuse_reports: &abuse_reports,
        reporter: &reporter,
        quiet,
    };
    if let Some(p) = partitions {
        let out = out_writer(&output)?;
        let progress = !quiet && std::io::stderr().is_terminal();
        return analyze_partitioned(
            &file, &geo, &srcs, &t, p, threads, progress, stats, out, &outputs,
        );
    }
    let mut engine = detect::Engine::with_geo(file.detect_config(), geo.clone());
    // What was saved before: the new snapshot is merged into it, so a baseline evicted from
    // memory during this run is kept, never deleted.
    let mut saved = detect::State::default();
    if let Some(p) = state.as_ref().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read state {}", p.display()))?;
        let st: detect::State = serde_json::from_str(&text)
            .with_context(|| {
                format!(
                    "{} is not a smtpscope state file (give the file an earlier --state run wrote, or a new path to start one)",
                    p.display()
                )
            })?;
        saved = st.clone();
        engine.restore_state(st);
    }
    let out = out_writer(&output)?;
    let progress = !quiet && std::io::stderr().is_terminal();
    let mut driver = pipeline::Driver::new(engine);
    driver.set_detector_thread(detector_thread);
    let mut seen = seen::Seen::new();
    let (run, alerts) = if format == OutFormat::Html {
        pipeline::analyze_seeing(&mut driver, &srcs, &t, progress, threads, &mut seen)?
    } else {
        pipeline::analyze(&mut driver, &srcs, &t, progress, threads)?
    };
    let engine = driver.engine();
    if let Some(p) = &state {
        // Write beside and rename, so a crash never leaves half a state file.
        let tmp = p.with_extension("tmp");
        saved.merge(engine.snapshot_state());
        std::fs::write(&tmp, serde_json::to_vec(&saved)?)
            .with_context(|| format!("cannot write state {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("cannot write state {}", p.display()))?;
    }
    let done = Analyzed {
        run: &run,
        engine: engine.stats(),
        alerts: &alerts,
        seen: Some(&seen),
    };
    write_analysis(&file, &geo, out, &done, &outputs)?;
    if stats {
        let mut j = stats_json(&run);
        j["engine"] = serde_json::to_value(engine.stats())?;
        j["correlator"] = serde_json::to_value(engine.correlator_stats())?;
        let (accounts, bytes) = engine.hijack_memory();
        let hs = engine.hijack_stats();
        j["hijack_state"] = serde_json::json!({"accounts": accounts, "approx_bytes": bytes,
            "bytes_per_account": bytes.checked_div(accounts).unwrap_or(0),
            "evicted": hs.evicted, "evicted_established": hs.evicted_established,
            "failures_unknown_account": hs.failures_unknown_account,
            "population_accounts": hs.population_accounts});
        eprintln!("{}", serde_json::to_string(&j)?);
    }
    // The detection state (every entity's windows, a few hundred MB on a large log) goes back
    // to the OS when the process exits: freeing it piece by piece first cost 4 % of a run's CPU
    // (docs/PERFORMANCE.md). `analyze` ends here, so nothing is lost by not dropping it.
    std::mem::forget(driver);
    Ok(())
}

/// What an analysis gives the output stage: what was read, the engine's counters, the alerts
/// and (for the HTML report) what it saw.
struct Analyzed<'a> {
    run: &'a pipeline::RunStats,
    engine: &'a detect::engine::EngineStats,
    alerts: &'a [detect::Alert],
    seen: Option<&'a seen::Seen>,
}

/// What `analyze` writes besides its statistics: the format, the abuse reports' directory and
/// their sender, and whether to stay quiet.
struct Outputs<'a> {
    format: OutFormat,
    abuse_reports: &'a Option<PathBuf>,
    reporter: &'a Option<abuse::Us>,
    quiet: bool,
}

/// `analyze --partitions P`: the engine split by entity across threads
/// (`smtpscope::partitioned`), then the same output as one engine's; `--stats` adds each
/// partition's events and correlator counters.
#[allow(clippy::too_many_arguments)] // the inputs and options of `analyze`
fn analyze_partitioned(
    file: &FileConfig,
    geo: &detect::GeoRef,
    srcs: &[input::Source],
    t: &pipeline::TimeOpts,
    partitions: u32,
    threads: usize,
    progress: bool,
    stats: bool,
    out: Box<dyn Write>,
    outputs: &Outputs<'_>,
) -> Result<()> {
    let cfg = file.detect_config();
    let outcome = smtpscope::partitioned::analyze(srcs, t, progress, partitions, threads, || {
        detect::Engine::with_geo(cfg.clone(), geo.clone())
    })?;
    let engine_stats = outcome.engine_stats();
    let done = Analyzed {
        run: &outcome.run,
        engine: &engine_stats,
        alerts: &outcome.alerts,
        seen: None,
    };
    write_analysis(file, geo, out, &done, outputs)?;
    if stats {
        let mut j = stats_json(&outcome.run);
        j["engine"] = serde_json::to_value(&engine_stats)?;
        j["partitions"] = serde_json::json!(partitions);
        // How evenly the entities spread: each partition's events.
        let events: Vec<u64> = outcome
            .partitions
            .iter()
            .map(|p| p.engine().stats().events)
            .collect();
        j["partition_events"] = serde_json::to_value(events)?;
        let correlators: Vec<_> = outcome
            .partitions
            .iter()
            .map(|p| p.engine().correlator_stats())
            .collect();
        j["correlator"] = serde_json::to_value(correlators)?;
        eprintln!("{}", serde_json::to_string(&j)?);
    }
    // As with one engine: the partitions' state goes back to the OS at exit.
    std::mem::forget(outcome);
    Ok(())
}

/// The analysis's incidents, abuse reports and output in its format.
fn write_analysis(
    file: &FileConfig,
    geo: &detect::GeoRef,
    mut out: Box<dyn Write>,
    a: &Analyzed<'_>,
    o: &Outputs<'_>,
) -> Result<()> {
    let incidents = pipeline::incidents(a.alerts, file.serve.containment.policy());
    if let (Some(dir), Some(us)) = (o.abuse_reports, o.reporter) {
        let files = abuse::write_dir(dir, us, incidents.list())?;
        if !o.quiet {
            eprintln!("{} abuse report files in {}", files.len(), dir.display());
        }
    }
    match o.format {
        OutFormat::Incidents => {
            for i in incidents.list() {
                serde_json::to_writer(&mut out, i)?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Jsonl => {
            for alert in a.alerts {
                serde_json::to_writer(&mut out, alert)?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Ecs => {
            let docs = a.alerts.iter().map(|a| ecs::alert(a, geo));
            for d in docs.chain(incidents.list().iter().map(|i| ecs::incident(i, geo))) {
                serde_json::to_writer(&mut out, &d)?;
                out.write_all(b"\n")?;
            }
        }
        OutFormat::Html => {
            let Some(seen) = a.seen else {
                bail!("the HTML report needs what the run saw");
            };
            let input = html::report::Input {
                run: a.run,
                engine: a.engine,
                alerts: a.alerts,
                incidents: incidents.list(),
                seen,
                geo,
            };
            out.write_all(html::report::document(&input).into_string().as_bytes())?;
        }
        OutFormat::Text => {
            out.write_all(report::summary(a.run, a.engine, a.alerts).as_bytes())?;
            out.write_all(report::incidents(incidents.list()).as_bytes())?;
            out.write_all(report::entities(a.alerts).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn parse_cmd(files: Vec<PathBuf>, records: bool, stats: bool, time: TimeArgs) -> Result<()> {
    let t = time_opts(&time, &FileConfig::default())?;
    let srcs = pipeline::order_sources(sources(&files)?, &t);
    let mut out = out_writer(&None)?;
    let mut engine = detect::Engine::new(detect::Config::default());
    engine.keep_records(records);
    let mut err: Option<std::io::Error> = None;
    let run = pipeline::run(&srcs, &t, false, |p, line| {
        if stats || err.is_some() {
            return;
        }
        if records {
            pipeline::feed(&mut engine, p);
            for r in engine.take_records() {
                if let Err(e) = serde_json::to_writer(&mut out, &r)
                    .map_err(std::io::Error::other)
                    .and_then(|_| out.write_all(b"\n"))
                {
                    err = Some(e);
                }
            }
            return;
        }
        let h = p.header.as_ref();
        let j = serde_json::json!({
            "ts": h.map(|h| h.ts.rfc3339()),
            "host": h.map(|h| h.host),
            "program": h.map(|h| h.program),
            "pid": h.and_then(|h| h.pid),
            "format": p.format,
            "event": p.event,
            "line": if p.event.is_none() { Some(line) } else { None },
        });
        if let Err(e) = serde_json::to_writer(&mut out, &j)
            .map_err(std::io::Error::other)
            .and_then(|_| out.write_all(b"\n"))
        {
            err = Some(e);
        }
    })?;
    if let Some(e) = err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(());
    }
    if records && !stats {
        engine.finish();
        for r in engine.take_records() {
            serde_json::to_writer(&mut out, &r)?;
            out.write_all(b"\n")?;
        }
    }
    if stats {
        serde_json::to_writer(&mut out, &stats_json(&run))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn main() {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Analyze {
            files,
            format,
            output,
            config,
            time,
            stats,
            quiet,
            threads,
            detector_thread,
            partitions,
            state,
            geo_override,
            abuse_reports,
        } => analyze(
            files,
            format,
            output,
            config,
            time,
            stats,
            quiet,
            threads,
            detector_thread,
            partitions,
            state,
            geo_override,
            abuse_reports,
        ),
        Cmd::Parse {
            files,
            records,
            stats,
            time,
        } => parse_cmd(files, records, stats, time),
        Cmd::Serve(args) => serve::run(args),
        Cmd::ClusterReplay {
            edges,
            partitions,
            config,
            time,
        } => cluster_replay(edges, partitions, config, time),
        Cmd::Sflow(a) => sflow_cmd::run(a),
        Cmd::Simulate(a) => sim::simulate_cmd(a),
        Cmd::SimulateSflow(a) => sim::simulate_sflow_cmd(a),
        Cmd::EvaluateSflow(a) => sim::evaluate_sflow_cmd(a),
        Cmd::Evaluate(a) => sim::evaluate_cmd(a),
        Cmd::Demo(a) => sim::demo_cmd(a),
        Cmd::Man { dir } => man_pages(&dir),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "smtpscope",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Config { default, check } => match (default, check) {
            (_, Some(p)) => FileConfig::load(&p).and_then(|c| {
                println!("{}", toml::to_string(&c)?);
                Ok(())
            }),
            _ => {
                print!("{}", config::DEFAULT_TOML);
                Ok(())
            }
        },
    };
    if let Err(e) = r {
        // Broken pipe (e.g. `| head`) is not an error.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("smtpscope: error: {e:#}");
        std::process::exit(1);
    }
}

/// `smtpscope cluster-replay`: the cluster's alerts computed in one process, as JSON Lines.
fn cluster_replay(
    edges: Vec<String>,
    partitions: Option<u32>,
    config: Option<PathBuf>,
    time: TimeArgs,
) -> Result<()> {
    let file = match &config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let t = time_opts(&time, &file)?;
    let mut by_edge: Vec<(String, Vec<Source>)> = Vec::new();
    for e in &edges {
        let Some((name, path)) = e.split_once('=') else {
            bail!("--edge {e:?}: expected NAME=FILE");
        };
        let src = Source::File(PathBuf::from(path));
        match by_edge.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(src),
            None => by_edge.push((name.to_string(), vec![src])),
        }
    }
    let partitions = partitions.unwrap_or(file.cluster.partition_count());
    if !(1..=smtpscope::cluster::config::MAX_PARTITIONS).contains(&partitions) {
        bail!(
            "--partitions {partitions}: expected 1..={}",
            smtpscope::cluster::config::MAX_PARTITIONS
        );
    }
    let geo = file.geo_db()?;
    let cfg = file.detect_config();
    let alerts = smtpscope::cluster::replay(&by_edge, &t, partitions, || {
        detect::Engine::with_geo(cfg.clone(), geo.clone())
    })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for a in &alerts {
        serde_json::to_writer(&mut out, a)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The man pages of the command and its visible subcommands, from the clap definition.
fn man_pages(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {} (check the path and its rights)",
            dir.display()
        )
    })?;
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    Ok(())
}

/// Whether the error comes from writing to a reader that went away (`smtpscope analyze | head`),
/// directly or wrapped by the JSON writer or a context.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    let json_pipe = |j: &serde_json::Error| j.io_error_kind() == Some(BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == BrokenPipe
                // A JSON writer's error carried in an `io::Error::other`.
                || io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<serde_json::Error>())
                    .is_some_and(json_pipe)
        }) || c.downcast_ref::<serde_json::Error>().is_some_and(json_pipe)
    })
}

#[cfg(test)]
mod allocator_tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    /// Every block the allocator hands out has the layout's alignment, plain and aligned,
    /// small and large, fresh, zeroed and reallocated (contents kept), and goes back to it.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let mut checked = 0;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 24, 100, 1000, 1025, 5000, 70_000] {
                let size = size.next_multiple_of(align);
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is written within its size and freed
                // once with the layout it has.
                unsafe {
                    let p = GLOBAL.alloc(layout);
                    assert!(!p.is_null());
                    assert!(
                        (p as usize).is_multiple_of(align),
                        "size {size} align {align}"
                    );
                    for i in 0..size {
                        *p.add(i) = i as u8;
                    }
                    let q = GLOBAL.realloc(p, layout, size * 3);
                    assert!(
                        (q as usize).is_multiple_of(align),
                        "realloc, size {size} align {align}"
                    );
                    for i in 0..size {
                        assert_eq!(*q.add(i), i as u8);
                    }
                    GLOBAL.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = GLOBAL.alloc_zeroed(layout);
                    assert!(
                        (z as usize).is_multiple_of(align),
                        "zeroed, size {size} align {align}"
                    );
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    GLOBAL.dealloc(z, layout);
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 72);
        // Many blocks held at once, so that sizes' pages fill and new ones are taken.
        for (size, align) in [(24usize, 8usize), (8, 8), (40, 4), (48, 16)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes, each block freed once with its layout.
            let held: Vec<*mut u8> = (0..20_000)
                .map(|_| unsafe { GLOBAL.alloc(layout) })
                .collect();
            assert!(held
                .iter()
                .all(|p| !p.is_null() && (*p as usize).is_multiple_of(align)));
            for p in held {
                unsafe { GLOBAL.dealloc(p, layout) };
            }
        }
    }
}
