//! The driver: set up the world, draw the populations and the abuse schedule, write the log
//! slice by slice, then the labels, timeline, population profiles and summary.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::addr::{AddressSource, Sampler};
use crate::benign::{self, Populations, Slice};
use crate::incoming::{self, InPops};
use crate::labels::{Entity, TimelineEntry};
use crate::params::IncomingParams;
use crate::params::Params;
use crate::plan::{self, Plan};
use crate::render::{Out, Stream};
use crate::rng::Rng;
use crate::world::{World, BOT_COUNTRIES, TRAVEL_COUNTRIES, VPN_COUNTRIES};
use crate::{LogFormat, SimConfig, SimError, Summary, SLICE_SECS};

const MICRO: i64 = 1_000_000;

/// The incoming-mail populations, their abuse plan and their rendering stream.
struct Incoming {
    pops: InPops,
    plan: Plan,
    stream: Stream,
}

/// What the slices produced.
struct Written {
    lines: u64,
    bytes: u64,
    messages: u64,
}

pub fn run(cfg: &SimConfig, out_dir: &Path, src: &dyn AddressSource) -> Result<Summary, SimError> {
    let w = world(cfg, src)?;
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    let pops = Populations::new(&w, &w.params);
    let mut plan = plan::plan(&w, &w.params, &pops);
    // Incoming mail: its own parameters, plan and rendering stream (see `incoming`).
    let ip = IncomingParams::draw(cfg.seed);
    let mut inc = Incoming {
        pops: InPops::new(&w, &ip),
        plan: incoming::plan(&w, &ip, &pops.port25_addresses(&w)),
        stream: Stream::new(cfg.seed, 0x1c07, 0x900_0000, 7_000_000),
    };
    let filter = (cfg.format == LogFormat::Postfix).then_some(ip.filter);
    let written = write_log(&w, &pops, &mut plan, &mut inc, filter, out_dir)?;
    plan.books.append(&mut inc.plan.books);
    let (labelled_accounts, by_kind, abusive) = write_labels(&mut plan, out_dir)?;
    let mut entries = benign::population(&w, &pops);
    entries.extend(inc.pops.population());
    entries.sort();
    entries.dedup();
    let mut pop_out = String::new();
    for e in &entries {
        pop_out.push_str(&serde_json::to_string(e).unwrap_or_default());
        pop_out.push('\n');
    }
    write_file(&out_dir.join("population.jsonl"), pop_out.as_bytes())?;
    let populations: BTreeMap<String, u64> = pops
        .counts()
        .into_iter()
        .chain(inc.pops.counts())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let summary = Summary {
        seed: cfg.seed,
        format: match cfg.format {
            LogFormat::Postfix => "postfix".into(),
            LogFormat::Exim => "exim".into(),
        },
        days: cfg.days,
        start: maillog::Ts::from_secs(cfg.start.epoch_secs()).rfc3339(),
        users: cfg.users as u64,
        legit_accounts: (cfg.users as u64).saturating_sub(labelled_accounts),
        populations,
        labels: by_kind,
        messages: written.messages,
        abusive_messages: abusive,
        lines: written.lines,
        bytes: written.bytes,
    };
    let js = serde_json::to_string_pretty(&summary).unwrap_or_default();
    write_file(&out_dir.join("summary.json"), js.as_bytes())?;
    Ok(summary)
}

/// How many candidate addresses are tried for the pool of addresses the geo data does not
/// place, and how many are kept.
const UNPLACED_TRIES: u64 = 200_000;
const UNPLACED_POOL: usize = 4096;

fn world<'a>(cfg: &'a SimConfig, src: &dyn AddressSource) -> Result<World<'a>, SimError> {
    if cfg.users == 0 || cfg.days == 0 {
        return Err(SimError::Config("users and days must be at least 1".into()));
    }
    let mut countries: Vec<&str> = vec![cfg.home_country.as_str()];
    countries.extend(
        BOT_COUNTRIES
            .iter()
            .chain(TRAVEL_COUNTRIES)
            .chain(VPN_COUNTRIES),
    );
    let geo = Sampler::new(src, &countries);
    if !geo.has(&cfg.home_country) {
        return Err(SimError::Config(format!(
            "no addresses for home country {}",
            cfg.home_country
        )));
    }
    // Public addresses the source cannot place (a domestic botnet the data does not know).
    let mut r = Rng::keyed(&[cfg.seed, 0x0e0]);
    let mut unplaced = Vec::new();
    for _ in 0..UNPLACED_TRIES {
        if unplaced.len() >= UNPLACED_POOL {
            break;
        }
        let ip = (r.next_u64() & 0xFFFF_FFFF) as u32;
        if crate::addr::usable(ip)
            && ip & 0xFF != 0
            && ip & 0xFF != 255
            && src.placed(ip) == Some(false)
        {
            unplaced.push(std::net::Ipv4Addr::from(ip));
        }
    }
    Ok(World::new(cfg, geo, Params::draw(cfg.seed), unplaced))
}

fn write_log(
    w: &World,
    pops: &Populations,
    plan: &mut Plan,
    inc: &mut Incoming,
    filter: Option<crate::render::SimFilter>,
    out_dir: &Path,
) -> Result<Written, SimError> {
    let cfg = w.cfg;
    let log_path = out_dir.join("mail.log");
    let f = std::fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
    let mut log = BufWriter::with_capacity(1 << 20, f);
    let t0 = cfg.start.epoch_secs();
    let end = t0 + i64::from(cfg.days) * 86_400;
    let mut out = Out::new(cfg.format, &cfg.hostname, cfg.seed, end * MICRO);
    out.filter = filter;
    let mut wr = Written {
        lines: 0,
        bytes: 0,
        messages: 0,
    };
    let mut werr: Option<std::io::Error> = None;
    let mut t = t0;
    while t < end {
        let slice_end = (t + SLICE_SECS).min(end);
        let mut r = Rng::keyed(&[cfg.seed, 0x511ce, t as u64]);
        wr.messages += benign::emit_slice(w, pops, &mut out, Slice::new(t, slice_end), &mut r);
        wr.messages += crate::abuse::emit_slice(plan, w, &mut out, slice_end, &mut r);
        // Incoming mail on its own random streams: the lines above stay the same.
        out.swap_stream(&mut inc.stream);
        let mut ir = Rng::keyed(&[cfg.seed, 0x1c0e5, t as u64]);
        wr.messages +=
            incoming::emit_benign(w, &inc.pops, &mut out, Slice::new(t, slice_end), &mut ir);
        wr.messages += crate::abuse::emit_slice(&mut inc.plan, w, &mut out, slice_end, &mut ir);
        out.swap_stream(&mut inc.stream);
        out.drain_before(slice_end * MICRO, |line| {
            if werr.is_none() {
                if let Err(e) = log
                    .write_all(line.as_bytes())
                    .and_then(|_| log.write_all(b"\n"))
                {
                    werr = Some(e);
                }
            }
            wr.lines += 1;
            wr.bytes += line.len() as u64 + 1;
        });
        if let Some(e) = werr.take() {
            return Err(io(&log_path, e));
        }
        t = slice_end;
    }
    log.flush().map_err(|e| io(&log_path, e))?;
    Ok(wr)
}

/// Write `labels.jsonl` and `timeline.jsonl`; returns (labelled accounts, labels per kind,
/// abusive messages).
fn write_labels(
    plan: &mut Plan,
    out_dir: &Path,
) -> Result<(u64, BTreeMap<String, u64>, u64), SimError> {
    let mut labels_out = String::new();
    let mut timeline_out = String::new();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut abusive = 0u64;
    let mut labelled: HashSet<Entity> = HashSet::new();
    for b in plan.books.iter_mut() {
        if b.first == i64::MAX {
            continue;
        }
        b.times.sort_unstable();
        b.label.start = maillog::Ts(b.first - b.first.rem_euclid(MICRO)).rfc3339();
        b.label.end = maillog::Ts(b.last - b.last.rem_euclid(MICRO)).rfc3339();
        b.label.messages = b.times.len() as u64;
        b.label.source_ips = b.ips.len() as u64;
        b.label.countries = b.countries.len() as u64;
        abusive += b.label.messages;
        *by_kind
            .entry(b.label.kind.as_str().to_string())
            .or_default() += 1;
        labelled.insert(b.label.entity.clone());
        labels_out.push_str(&serde_json::to_string(&b.label).unwrap_or_default());
        labels_out.push('\n');
        let mut prev = 0i64;
        let acc: Vec<i64> = b
            .times
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let s = x.div_euclid(MICRO);
                let v = if i == 0 { s } else { s - prev };
                prev = s;
                v
            })
            .collect();
        let te = TimelineEntry {
            entity: b.label.entity.clone(),
            kind: b.label.kind,
            accepted: acc,
        };
        timeline_out.push_str(&serde_json::to_string(&te).unwrap_or_default());
        timeline_out.push('\n');
    }
    write_file(&out_dir.join("labels.jsonl"), labels_out.as_bytes())?;
    write_file(&out_dir.join("timeline.jsonl"), timeline_out.as_bytes())?;
    let labelled_accounts = labelled.iter().filter(|e| e.kind == "account").count() as u64;
    Ok((labelled_accounts, by_kind, abusive))
}

fn io(p: &Path, e: std::io::Error) -> SimError {
    SimError::Io {
        path: p.display().to_string(),
        source: e,
    }
}

fn write_file(p: &Path, b: &[u8]) -> Result<(), SimError> {
    std::fs::write(p, b).map_err(|e| io(p, e))
}
