//! A simulated internet exchange point seen through sFlow (issue 15, Build 1).
//!
//! Populations of sending hosts (big providers, ISP and business MTAs, list servers, email
//! service providers, home-run servers; bots, snowshoe /24s, open relays, low-volume bots)
//! send SMTP sessions to the MX hosts of a destination universe. Every session becomes
//! packets in both directions, and every packet is sampled with probability 1/N by the agent
//! it crosses (a geometric skip counter per sender and direction, which is exactly a
//! Bernoulli(1/N) draw per packet). Sampled packets become flow samples with raw
//! Ethernet/IPv4/TCP headers, packed with periodic counter samples into sFlow v5 datagrams of
//! several agents, some of which are lost (sequence gaps), and written to a pcap.
//!
//! Outputs ([`run`]): `exchange.pcap`, `sflow-truth.jsonl` (one line per sender: address,
//! class, good/bad, true packets, sampled packets), `verdicts.jsonl` (log verdicts for a share
//! of the bad senders plus a few wrong ones, in the `alerts.jsonl` shape that
//! `smtpscope sflow analyze --labels` reads) and `exchange-summary.json` (the parameters drawn
//! for the seed). Every range is documented in docs/SIMULATION.md, "Exchange point (sFlow)".
//! The same parameters give the same bytes.

pub mod eval;
pub mod wire;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::rng::{hash, Rng};
use wire::{CounterSampleOut, FlowSampleOut, PcapWriter, SampleOut, SampledPacket};

/// 2026-03-02 00:00 UTC, a Monday: the default first day.
pub const DEFAULT_START: i64 = 1_772_409_600;
/// Default sampling rate (1 in N), the exchange point.
pub const DEFAULT_SAMPLING: u32 = 2000;
/// Agents (switches) exporting sFlow at the exchange.
pub const AGENTS: u8 = 4;
/// Member ports per agent (each sender's /24 sits behind one).
pub const PORTS_PER_AGENT: u64 = 8;
/// Counter samples: one per agent interface every this many seconds (agents default to 20–30
/// s; 60 keeps three days of capture small).
pub const COUNTER_INTERVAL_SECS: i64 = 60;
/// Flow samples per datagram before the agent sends it.
pub const SAMPLES_PER_DATAGRAM: usize = 8;
/// Longest an agent holds a sample before sending its datagram (µs).
pub const MAX_HOLD_US: i64 = 1_000_000;
/// Maximum segment size of a data packet (Ethernet, IPv4, TCP timestamps).
pub const MSS: u64 = 1448;
/// Time between consecutive packets of one session (µs): our own model.
pub const PACKET_GAP_US: i64 = 40_000;
/// Distinct destination domains in the tail of the destination universe.
pub const TAIL_DOMAINS: u64 = 200_000;
/// The large mailbox providers' share weights (percent of recipients of ordinary mail), our
/// own model of a freemail-heavy recipient mix.
pub const BIG_RECEIVER_WEIGHTS: [u32; 8] = [30, 20, 10, 8, 6, 5, 4, 3];

/// The class of a sending host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SenderClass {
    /// A large mailbox provider's outbound MTA: all day, to thousands of destinations.
    BigProvider,
    /// An ISP's outbound MTA for its customers: all day, diurnal.
    IspMta,
    /// A small business's own mail server: office hours, few destinations.
    BusinessMta,
    /// A mailing list server: a daily burst.
    ListServer,
    /// An email service provider (bulk sender for customers): all day, bursty.
    Esp,
    /// A home-run mail server: all day, a few messages.
    HomeServer,
    /// A spam bot on a residential line: campaigns of hours or short bursts.
    Bot,
    /// One address of a snowshoe /24: many addresses, each sending a little.
    Snowshoe,
    /// An open relay: a legitimate server abused for spam runs.
    OpenRelay,
    /// A bot sending a few messages an hour: nearly invisible at 1:2000.
    LowVolumeBot,
}

impl SenderClass {
    /// Every class, in report order.
    pub const ALL: [SenderClass; 10] = [
        SenderClass::BigProvider,
        SenderClass::IspMta,
        SenderClass::BusinessMta,
        SenderClass::ListServer,
        SenderClass::Esp,
        SenderClass::HomeServer,
        SenderClass::Bot,
        SenderClass::Snowshoe,
        SenderClass::OpenRelay,
        SenderClass::LowVolumeBot,
    ];

    /// Whether the class sends spam.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            SenderClass::Bot
                | SenderClass::Snowshoe
                | SenderClass::OpenRelay
                | SenderClass::LowVolumeBot
        )
    }

    /// Kebab-case name (as in the truth file).
    pub fn as_str(self) -> &'static str {
        match self {
            SenderClass::BigProvider => "big-provider",
            SenderClass::IspMta => "isp-mta",
            SenderClass::BusinessMta => "business-mta",
            SenderClass::ListServer => "list-server",
            SenderClass::Esp => "esp",
            SenderClass::HomeServer => "home-server",
            SenderClass::Bot => "bot",
            SenderClass::Snowshoe => "snowshoe",
            SenderClass::OpenRelay => "open-relay",
            SenderClass::LowVolumeBot => "low-volume-bot",
        }
    }
}

/// What the user asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeConfig {
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Days simulated.
    pub days: u32,
    /// Sampling rate N (1 in N packets).
    pub sampling: u32,
    /// First second (Unix time, UTC).
    pub start: i64,
    /// Multiplier of every population's size (1.0 ≈ 4,600 senders).
    pub scale: f64,
    /// Share of the bad senders given a log verdict.
    pub verdict_share: f64,
    /// Wrong verdicts (good senders with at least 5 samples marked bad), as a share of the
    /// right ones.
    pub noisy_share: f64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            seed: 1,
            days: 3,
            sampling: DEFAULT_SAMPLING,
            start: DEFAULT_START,
            scale: 1.0,
            verdict_share: 0.3,
            noisy_share: 0.1,
        }
    }
}

/// A documented range a per-seed parameter is drawn from (uniform, or log-uniform when
/// `log`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Range {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Draw log-uniformly.
    pub log: bool,
}

const fn lin(lo: f64, hi: f64) -> Range {
    Range { lo, hi, log: false }
}

const fn logr(lo: f64, hi: f64) -> Range {
    Range { lo, hi, log: true }
}

impl Range {
    fn draw(&self, r: &mut Rng) -> f64 {
        let u = r.f64();
        if self.log {
            (self.lo.ln() + u * (self.hi.ln() - self.lo.ln())).exp()
        } else {
            self.lo + u * (self.hi - self.lo)
        }
    }
}

/// How a class's senders are active over time.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Pattern {
    /// All day; hourly rate × (1 + amplitude·cos(2π(h − 14)/24)) in the sender's local time.
    AllDay {
        /// Diurnal amplitude range.
        amplitude: Range,
    },
    /// Office hours on weekdays (local time), a residual share of the rate outside them.
    Office {
        /// Share of the office-hours rate sent outside office hours (notifications, backups).
        residual: Range,
    },
    /// One burst a day at a fixed local hour, on top of a trickle.
    DailyBurst {
        /// Burst length in hours.
        hours: Range,
        /// Trickle rate outside the burst, messages an hour.
        trickle: Range,
    },
    /// Campaigns: a few runs of hours, or many short bursts spread across blocks.
    Campaigns {
        /// Runs over the whole simulation.
        runs: Range,
        /// Hours per run.
        hours: Range,
        /// Share of senders bursting instead: many runs of minutes.
        burst_share: f64,
    },
    /// A legitimate all-day server with spam runs on top (open relays).
    ServerWithRuns {
        /// Rate of the legitimate traffic, messages an hour.
        base: Range,
        /// Spam runs over the whole simulation.
        runs: Range,
        /// Hours per run.
        hours: Range,
    },
}

/// Where a class's mail goes.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Dests {
    /// Big receivers with a share, else the popular tail (Zipf-like over all domains).
    Popular {
        /// Share of recipients at the big mailbox providers.
        big_share: Range,
    },
    /// A fixed set of partner domains and the big receivers.
    Partners {
        /// Partner domains per sender.
        partners: Range,
        /// Share of recipients at the big mailbox providers.
        big_share: Range,
    },
    /// Harvested lists: uniform over all domains; a share of senders aims at one or two big
    /// receivers only.
    Harvested {
        /// Share of recipients at the big mailbox providers.
        big_share: Range,
        /// Share of senders that target only 1–2 big receivers.
        few_share: f64,
    },
}

/// How a class's addresses sit in the address space.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Space {
    /// Provider ranges: this many senders per /24.
    Provider(u8),
    /// Business ranges shared with other business customers' servers.
    Business,
    /// Residential ranges shared with home servers and bots.
    Residential,
    /// Hosting /24s taken whole by one snowshoe operation, this many addresses per /24.
    Snowshoe(u8, u8),
}

/// The documented ranges of one class (docs/SIMULATION.md, "Exchange point (sFlow)").
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClassSpec {
    /// The class.
    pub class: SenderClass,
    /// Senders at scale 1.
    pub count: u32,
    /// Messages an hour while active (per sender, log-uniform around the seed's median).
    pub rate: Range,
    /// Activity over time.
    pub pattern: Pattern,
    /// Destinations.
    pub dests: Dests,
    /// Median message size in kB (log-normal per message, σ 0.8).
    pub size_kb: Range,
    /// Share of connections that end without a message (refused, blocklisted, greylisted).
    pub failed: Range,
    /// Where the addresses are.
    pub space: Space,
}

/// The default populations. Counts add to about the 4,367 sending addresses.
pub fn class_specs() -> Vec<ClassSpec> {
    use SenderClass::*;
    vec![
        ClassSpec {
            class: BigProvider,
            count: 40,
            rate: logr(300.0, 3000.0),
            pattern: Pattern::AllDay {
                amplitude: lin(0.3, 0.6),
            },
            dests: Dests::Popular {
                big_share: lin(0.3, 0.5),
            },
            size_kb: lin(15.0, 60.0),
            failed: lin(0.01, 0.05),
            space: Space::Provider(10),
        },
        ClassSpec {
            class: IspMta,
            count: 80,
            rate: logr(30.0, 600.0),
            pattern: Pattern::AllDay {
                amplitude: lin(0.5, 0.85),
            },
            dests: Dests::Popular {
                big_share: lin(0.4, 0.7),
            },
            size_kb: lin(20.0, 80.0),
            failed: lin(0.02, 0.08),
            space: Space::Provider(3),
        },
        ClassSpec {
            class: BusinessMta,
            count: 2600,
            rate: logr(2.0, 60.0),
            pattern: Pattern::Office {
                residual: lin(0.0, 0.08),
            },
            dests: Dests::Partners {
                partners: logr(3.0, 40.0),
                big_share: lin(0.3, 0.7),
            },
            size_kb: lin(30.0, 120.0),
            failed: lin(0.01, 0.05),
            space: Space::Business,
        },
        ClassSpec {
            class: ListServer,
            count: 30,
            rate: logr(2000.0, 20000.0),
            pattern: Pattern::DailyBurst {
                hours: lin(1.0, 3.0),
                trickle: logr(1.0, 10.0),
            },
            // A list's subscribers are the same every day: each burst goes to the same
            // domains (drawn by popularity once per list), not to a fresh sample of the world.
            dests: Dests::Partners {
                partners: logr(300.0, 3000.0),
                big_share: lin(0.3, 0.6),
            },
            size_kb: lin(8.0, 40.0),
            failed: lin(0.02, 0.15),
            space: Space::Provider(2),
        },
        ClassSpec {
            class: Esp,
            count: 60,
            rate: logr(200.0, 2000.0),
            pattern: Pattern::AllDay {
                amplitude: lin(0.3, 0.7),
            },
            dests: Dests::Popular {
                big_share: lin(0.3, 0.6),
            },
            size_kb: lin(10.0, 50.0),
            failed: lin(0.01, 0.07),
            space: Space::Provider(12),
        },
        ClassSpec {
            class: HomeServer,
            count: 400,
            rate: logr(0.05, 3.0),
            pattern: Pattern::AllDay {
                amplitude: lin(0.3, 0.9),
            },
            dests: Dests::Partners {
                partners: logr(5.0, 50.0),
                big_share: lin(0.4, 0.7),
            },
            size_kb: lin(10.0, 60.0),
            failed: lin(0.01, 0.05),
            space: Space::Residential,
        },
        ClassSpec {
            class: Bot,
            count: 650,
            rate: logr(300.0, 3000.0),
            pattern: Pattern::Campaigns {
                runs: lin(1.0, 4.0),
                hours: lin(1.0, 3.0),
                burst_share: 0.3,
            },
            dests: Dests::Harvested {
                big_share: lin(0.3, 0.5),
                few_share: 0.2,
            },
            size_kb: lin(2.0, 15.0),
            failed: lin(0.2, 0.6),
            space: Space::Residential,
        },
        ClassSpec {
            class: Snowshoe,
            count: 12,
            rate: logr(5.0, 50.0),
            pattern: Pattern::Campaigns {
                runs: lin(3.0, 6.0),
                hours: lin(4.0, 12.0),
                burst_share: 0.0,
            },
            dests: Dests::Harvested {
                big_share: lin(0.3, 0.5),
                few_share: 0.0,
            },
            size_kb: lin(5.0, 20.0),
            failed: lin(0.1, 0.4),
            space: Space::Snowshoe(16, 64),
        },
        ClassSpec {
            class: OpenRelay,
            count: 25,
            rate: logr(100.0, 1500.0),
            pattern: Pattern::ServerWithRuns {
                base: logr(1.0, 20.0),
                runs: lin(2.0, 6.0),
                hours: lin(2.0, 12.0),
            },
            dests: Dests::Harvested {
                big_share: lin(0.3, 0.5),
                few_share: 0.0,
            },
            size_kb: lin(3.0, 20.0),
            failed: lin(0.1, 0.4),
            space: Space::Business,
        },
        ClassSpec {
            class: LowVolumeBot,
            count: 300,
            rate: logr(5.0, 60.0),
            pattern: Pattern::Campaigns {
                runs: lin(1.0, 4.0),
                hours: lin(1.0, 3.0),
                burst_share: 0.3,
            },
            dests: Dests::Harvested {
                big_share: lin(0.3, 0.5),
                few_share: 0.2,
            },
            size_kb: lin(2.0, 15.0),
            failed: lin(0.2, 0.6),
            space: Space::Residential,
        },
    ]
}

/// Per-seed parameters of one class (drawn from its [`ClassSpec`]).
#[derive(Debug, Clone, Serialize)]
pub struct ClassDraw {
    /// The class.
    pub class: SenderClass,
    /// Senders (scaled; snowshoe: /24s).
    pub count: u32,
    /// Median messages an hour of the class this seed (senders vary log-uniformly ×/÷ 3).
    pub rate_median: f64,
    /// Median message size, kB.
    pub size_kb: f64,
    /// Share of failed connections.
    pub failed: f64,
}

/// Per-seed parameters of the exchange.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeSummary {
    /// What was asked.
    pub config: ExchangeConfig,
    /// Datagram loss rate drawn for the seed.
    pub loss: f64,
    /// Background (non-SMTP) flow samples per agent per second.
    pub background_per_sec: f64,
    /// Per class.
    pub classes: Vec<ClassDraw>,
    /// Senders.
    pub senders: usize,
    /// Datagrams written.
    pub datagrams: u64,
    /// Datagrams lost (not written; their sequence numbers are skipped).
    pub lost_datagrams: u64,
    /// Flow samples written.
    pub flow_samples: u64,
    /// Counter samples written.
    pub counter_samples: u64,
}

/// One sender's ground truth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TruthLine {
    /// Address.
    pub ip: Ipv4Addr,
    /// Class.
    pub class: SenderClass,
    /// Spam source.
    pub bad: bool,
    /// SMTP connections opened.
    pub sessions: u64,
    /// Messages delivered.
    pub messages: u64,
    /// True packets sender → port 25.
    pub packets: u64,
    /// Of those, flow samples written to the capture (lost datagrams excluded).
    pub sampled: u64,
    /// Flow samples of the replies (port 25 → sender) written to the capture.
    pub sampled_replies: u64,
}

/// A sender and its drawn behaviour.
#[derive(Debug, Clone)]
struct Sender {
    ip: Ipv4Addr,
    class: SenderClass,
    /// Active intervals: (start, end, messages an hour).
    intervals: Vec<(i64, i64, f64)>,
    dests: DestDraw,
    size_kb: f64,
    failed: f64,
}

#[derive(Debug, Clone)]
enum DestDraw {
    Popular {
        big_share: f64,
    },
    Partners {
        partners: Vec<u64>,
        big_share: f64,
    },
    Harvested {
        big_share: f64,
        only: Option<[u8; 2]>,
    },
}

/// The big receivers' MX /24s: provider p has `2 + hash % 11` networks of 4 MX hosts.
fn big_receiver_ip(seed: u64, provider: u8, r: &mut Rng) -> Ipv4Addr {
    let nets = 2 + hash(&[seed, 0xb16, u64::from(provider)]) % 11;
    let net = r.below(nets) as u8;
    Ipv4Addr::new(64, 16 + provider, net, 1 + r.below(4) as u8)
}

fn pick_big(r: &mut Rng) -> u8 {
    let total: u32 = BIG_RECEIVER_WEIGHTS.iter().sum();
    let mut x = r.below(u64::from(total)) as u32;
    for (i, w) in BIG_RECEIVER_WEIGHTS.iter().enumerate() {
        if x < *w {
            return i as u8;
        }
        x -= w;
    }
    0
}

/// The MX address of tail domain `d` (fixed for the seed; outside every sender range).
fn tail_ip(seed: u64, d: u64) -> Ipv4Addr {
    let h = hash(&[seed, 0x7a11, d]);
    let first = 100 + (h % 100) as u8; // 100..199
    Ipv4Addr::new(
        first,
        (h >> 8) as u8,
        (h >> 16) as u8,
        1 + ((h >> 24) % 250) as u8,
    )
}

/// A popular tail domain: log-uniform rank (density ∝ 1/rank, Zipf with exponent 1).
fn popular_domain(r: &mut Rng) -> u64 {
    let x = (TAIL_DOMAINS as f64).powf(r.f64());
    (x as u64).saturating_sub(1).min(TAIL_DOMAINS - 1)
}

impl DestDraw {
    fn pick(&self, seed: u64, r: &mut Rng) -> Ipv4Addr {
        match self {
            DestDraw::Popular { big_share } => {
                if r.chance(*big_share) {
                    big_receiver_ip(seed, pick_big(r), r)
                } else {
                    tail_ip(seed, popular_domain(r))
                }
            }
            DestDraw::Partners {
                partners,
                big_share,
            } => {
                if partners.is_empty() || r.chance(*big_share) {
                    big_receiver_ip(seed, pick_big(r), r)
                } else {
                    tail_ip(seed, partners[r.below(partners.len() as u64) as usize])
                }
            }
            DestDraw::Harvested { big_share, only } => match only {
                Some(p) => big_receiver_ip(seed, p[r.below(2) as usize], r),
                None => {
                    if r.chance(*big_share) {
                        big_receiver_ip(seed, pick_big(r), r)
                    } else {
                        tail_ip(seed, r.below(TAIL_DOMAINS))
                    }
                }
            },
        }
    }
}

/// Address allocator: each space hands out /24s in its own first octet.
struct Space24 {
    next: [u32; 4],
}

impl Space24 {
    const FIRST: [u8; 4] = [74, 62, 91, 185];

    fn net(&mut self, space: usize) -> (u8, u8, u8) {
        let n = self.next[space];
        self.next[space] += 1;
        (Self::FIRST[space], (n >> 8) as u8, n as u8)
    }
}

/// Builds the populations of one seed.
fn populations(cfg: &ExchangeConfig, draws: &mut Vec<ClassDraw>) -> Vec<Sender> {
    let seed = cfg.seed;
    let end = cfg.start + i64::from(cfg.days) * 86_400;
    let mut alloc = Space24 { next: [0; 4] };
    let mut senders = Vec::new();
    // Business and residential /24s are shared between classes: build slot lists first.
    let mut business: Vec<(usize, SenderClass)> = Vec::new();
    let mut residential: Vec<(usize, SenderClass)> = Vec::new();
    let specs = class_specs();
    let mut class_rng = Rng::keyed(&[seed, 0xc1a55]);
    let mut per_class: Vec<(ClassSpec, ClassDraw)> = Vec::new();
    for spec in &specs {
        let count = ((f64::from(spec.count) * cfg.scale).round() as u32).max(1);
        let d = ClassDraw {
            class: spec.class,
            count,
            rate_median: spec.rate.draw(&mut class_rng),
            size_kb: spec.size_kb.draw(&mut class_rng),
            failed: spec.failed.draw(&mut class_rng),
        };
        per_class.push((*spec, d));
    }
    for (ci, (spec, d)) in per_class.iter().enumerate() {
        match spec.space {
            Space::Business => business.extend((0..d.count).map(|_| (ci, spec.class))),
            Space::Residential => residential.extend((0..d.count).map(|_| (ci, spec.class))),
            _ => {}
        }
    }
    let mut ips: Vec<Vec<Ipv4Addr>> = vec![Vec::new(); per_class.len()];
    let mut space_rng = Rng::keyed(&[seed, 0x5ace]);
    // Shuffle shared spaces so classes mix inside /24s.
    for list in [&mut business, &mut residential] {
        for i in (1..list.len()).rev() {
            let j = space_rng.below(i as u64 + 1) as usize;
            list.swap(i, j);
        }
    }
    for (space, list, per_net) in [(1usize, &business, (1u64, 8u64)), (2, &residential, (1, 4))] {
        let mut i = 0;
        while i < list.len() {
            let (a, b, c) = alloc.net(space);
            let k = space_rng.range(per_net.0, per_net.1 + 1) as usize;
            let mut hosts: Vec<u8> = Vec::new();
            for (n, &(ci, _)) in list[i..list.len().min(i + k)].iter().enumerate() {
                let mut host = 1 + space_rng.below(253) as u8;
                while hosts.contains(&host) {
                    host = 1 + (host % 253);
                }
                hosts.push(host);
                let _ = n;
                ips[ci].push(Ipv4Addr::new(a, b, c, host));
            }
            i += k;
        }
    }
    for (ci, (spec, d)) in per_class.iter().enumerate() {
        match spec.space {
            Space::Provider(per) => {
                let mut left = d.count;
                while left > 0 {
                    let (a, b, c) = alloc.net(0);
                    for h in 0..u32::from(per).min(left) {
                        ips[ci].push(Ipv4Addr::new(a, b, c, 10 + h as u8));
                    }
                    left = left.saturating_sub(u32::from(per));
                }
            }
            Space::Snowshoe(lo, hi) => {
                for _ in 0..d.count {
                    let (a, b, c) = alloc.net(3);
                    let n = space_rng.range(u64::from(lo), u64::from(hi) + 1) as u8;
                    let first = 1 + space_rng.below(u64::from(254 - n)) as u8;
                    for h in 0..n {
                        ips[ci].push(Ipv4Addr::new(a, b, c, first + h));
                    }
                }
            }
            _ => {}
        }
    }
    for (ci, (spec, d)) in per_class.iter().enumerate() {
        // Snowshoe: one operation per /24 shares its campaign schedule.
        let mut net_sched: BTreeMap<[u8; 3], Vec<(i64, i64)>> = BTreeMap::new();
        for (k, ip) in ips[ci].iter().enumerate() {
            let mut r = Rng::keyed(&[seed, 0x5e4d, ci as u64, k as u64]);
            // Senders vary ×/÷ 3 around the class median.
            let rate = d.rate_median * (3f64.ln() * (2.0 * r.f64() - 1.0)).exp();
            let tz = 3600 * r.below(3) as i64; // UTC, UTC+1, UTC+2 (a European exchange)
            let intervals = match spec.pattern {
                Pattern::AllDay { amplitude } => {
                    let a = amplitude.draw(&mut r);
                    all_day(cfg.start, end, tz, rate, a)
                }
                Pattern::Office { residual } => {
                    let res = residual.draw(&mut r);
                    let open = 7 + r.below(3) as i64;
                    let close = 16 + r.below(4) as i64;
                    office(cfg.start, end, tz, rate, res, open, close)
                }
                Pattern::DailyBurst { hours, trickle } => {
                    let hour = r.below(24) as i64;
                    let len = (hours.draw(&mut r) * 3600.0) as i64;
                    let t = trickle.draw(&mut r);
                    let mut v = all_day(cfg.start, end, tz, t, 0.3);
                    let mut day = cfg.start;
                    while day < end {
                        let s = day + hour * 3600 - tz;
                        v.push((s, s + len, rate * 3600.0 / len as f64));
                        day += 86_400;
                    }
                    v
                }
                Pattern::Campaigns {
                    runs,
                    hours,
                    burst_share,
                } => {
                    if spec.class == SenderClass::Snowshoe {
                        let key = [ip.octets()[0], ip.octets()[1], ip.octets()[2]];
                        let sched = net_sched
                            .entry(key)
                            .or_insert_with(|| campaigns(&mut r, cfg.start, end, runs, hours));
                        sched.iter().map(|&(s, e)| (s, e, rate)).collect()
                    } else if r.chance(burst_share) {
                        // Many short bursts (10–40 min) spread over the run.
                        let n = r.range(4, 13);
                        (0..n)
                            .map(|_| {
                                let s = cfg.start + r.below((end - cfg.start) as u64) as i64;
                                let len = 600 + r.below(1800) as i64;
                                (s, (s + len).min(end), rate)
                            })
                            .collect()
                    } else {
                        campaigns(&mut r, cfg.start, end, runs, hours)
                            .into_iter()
                            .map(|(s, e)| (s, e, rate))
                            .collect()
                    }
                }
                Pattern::ServerWithRuns { base, runs, hours } => {
                    let b = base.draw(&mut r);
                    let mut v = all_day(cfg.start, end, tz, b, 0.5);
                    v.extend(
                        campaigns(&mut r, cfg.start, end, runs, hours)
                            .into_iter()
                            .map(|(s, e)| (s, e, rate)),
                    );
                    v
                }
            };
            let dests = match spec.dests {
                Dests::Popular { big_share } => DestDraw::Popular {
                    big_share: big_share.draw(&mut r),
                },
                Dests::Partners {
                    partners,
                    big_share,
                } => {
                    let n = partners.draw(&mut r).round() as usize;
                    DestDraw::Partners {
                        partners: (0..n).map(|_| popular_domain(&mut r)).collect(),
                        big_share: big_share.draw(&mut r),
                    }
                }
                Dests::Harvested {
                    big_share,
                    few_share,
                } => {
                    let only = r
                        .chance(few_share)
                        .then(|| [pick_big(&mut r), pick_big(&mut r)]);
                    DestDraw::Harvested {
                        big_share: big_share.draw(&mut r),
                        only,
                    }
                }
            };
            senders.push(Sender {
                ip: *ip,
                class: spec.class,
                intervals,
                dests,
                size_kb: d.size_kb,
                failed: d.failed,
            });
        }
    }
    draws.extend(per_class.into_iter().map(|(_, d)| d));
    senders
}

fn campaigns(r: &mut Rng, start: i64, end: i64, runs: Range, hours: Range) -> Vec<(i64, i64)> {
    let n = runs.draw(r).round().max(1.0) as u64;
    (0..n)
        .map(|_| {
            let s = start + r.below((end - start) as u64) as i64;
            let len = (hours.draw(r) * 3600.0) as i64;
            (s, (s + len).min(end))
        })
        .collect()
}

/// Hour by hour, diurnal around a 14:00 local peak.
fn all_day(start: i64, end: i64, tz: i64, rate: f64, amplitude: f64) -> Vec<(i64, i64, f64)> {
    let mut v = Vec::new();
    let mut t = start;
    while t < end {
        let local_h = ((t + tz).rem_euclid(86_400) / 3600) as f64;
        let f = 1.0 + amplitude * (std::f64::consts::TAU * (local_h - 14.0) / 24.0).cos();
        v.push((t, t + 3600, rate * f.max(0.0)));
        t += 3600;
    }
    v
}

/// Office hours on weekdays (local time), a residual rate otherwise.
fn office(
    start: i64,
    end: i64,
    tz: i64,
    rate: f64,
    residual: f64,
    open: i64,
    close: i64,
) -> Vec<(i64, i64, f64)> {
    let mut v = Vec::new();
    let mut t = start;
    while t < end {
        let local = t + tz;
        // 1970-01-01 was a Thursday: Monday is 0.
        let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7) < 5;
        let h = local.rem_euclid(86_400) / 3600;
        let lunch = if h == 12 { 0.5 } else { 1.0 };
        let r = if weekday && h >= open && h < close {
            rate * lunch
        } else {
            rate * residual
        };
        if r > 0.0 {
            v.push((t, t + 3600, r));
        }
        t += 3600;
    }
    v
}

/// One recorded sample before packing.
#[derive(Debug, Clone, Copy)]
struct Rec {
    ts_us: i64,
    agent: u8,
    if_index: u32,
    /// Packets since the previous sample of this stream (the pool increment).
    gap: u32,
    packet: SampledPacket,
    /// Index of the sender, for the truth tally (`u32::MAX` for background).
    sender: u32,
    reply: bool,
}

fn agent_of(seed: u64, a: u8, b: u8, c: u8) -> (u8, u32) {
    let h = hash(&[seed, 0xa6e, u64::from(a), u64::from(b), u64::from(c)]);
    (
        (h % u64::from(AGENTS)) as u8,
        1 + ((h >> 8) % PORTS_PER_AGENT) as u32,
    )
}

fn agent_ip(a: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + a)
}

/// Packets until the next sampled one: geometric with success probability `p`.
fn skip(r: &mut Rng, p: f64) -> u64 {
    let u = 1.0 - r.f64(); // (0, 1]
    (u.ln() / (1.0 - p).ln()).floor().min(1e15) as u64
}

/// One sender's traffic: sessions → packets → samples.
fn simulate_sender(
    seed: u64,
    idx: u32,
    s: &Sender,
    sampling: u32,
    out: &mut Vec<Rec>,
) -> (u64, u64, u64) {
    let p = 1.0 / f64::from(sampling.max(1));
    let mut r = Rng::keyed(&[seed, 0x5e55, u64::from(idx)]);
    let mut cskip = skip(&mut r, p);
    let mut rskip = skip(&mut r, p);
    let o = s.ip.octets();
    let (agent, if_index) = agent_of(seed, o[0], o[1], o[2]);
    let (mut sessions, mut messages, mut packets) = (0u64, 0u64, 0u64);
    for &(a, b, rate) in &s.intervals {
        let n = r.poisson(rate * (b - a) as f64 / 3600.0);
        for _ in 0..n {
            sessions += 1;
            let t0 = (a * 1_000_000) + r.below(((b - a) * 1_000_000) as u64) as i64;
            // Session shape: refused (SYN and a retransmission, an RST back), rejected after
            // the greeting, or a delivered message of 1–3 recipients.
            let (cpk, rpk, kind) = if r.chance(s.failed) {
                if r.chance(0.5) {
                    (2u64, 1u64, Shape::Refused)
                } else {
                    (5, 5, Shape::Rejected)
                }
            } else {
                messages += 1;
                let rcpt = 1 + r.below(3);
                let bytes = (r.lognormal(s.size_kb * 1000.0, 0.8)).clamp(500.0, 2e7) as u64;
                let seg = bytes.div_ceil(MSS);
                (
                    9 + rcpt + seg,
                    7 + rcpt + seg.div_ceil(2),
                    Shape::Delivered { seg },
                )
            };
            packets += cpk;
            let mut dst: Option<Ipv4Addr> = None;
            let sport = 1024 + r.below(64_000) as u16;
            // Client → server packets.
            let mut pos = 0u64;
            loop {
                if cskip >= cpk - pos {
                    cskip -= cpk - pos;
                    break;
                }
                pos += cskip;
                let d = *dst.get_or_insert_with(|| s.dests.pick(seed, &mut r));
                let (flags, len) = client_packet(kind, pos, cpk);
                out.push(Rec {
                    ts_us: t0 + pos as i64 * PACKET_GAP_US,
                    agent,
                    if_index,
                    gap: cskip.saturating_add(1).min(u64::from(u32::MAX)) as u32,
                    packet: SampledPacket {
                        src: s.ip,
                        dst: d,
                        sport,
                        dport: 25,
                        flags,
                        ip_len: len,
                        proto: 6,
                    },
                    sender: idx,
                    reply: false,
                });
                pos += 1;
                cskip = skip(&mut r, p);
            }
            // Server → client packets, sampled where the destination's network connects.
            let mut pos = 0u64;
            loop {
                if rskip >= rpk - pos {
                    rskip -= rpk - pos;
                    break;
                }
                pos += rskip;
                let d = *dst.get_or_insert_with(|| s.dests.pick(seed, &mut r));
                let dd = d.octets();
                let (ragent, rif) = agent_of(seed, dd[0], dd[1], dd[2]);
                let (flags, len) = reply_packet(kind, pos);
                out.push(Rec {
                    ts_us: t0 + pos as i64 * PACKET_GAP_US + PACKET_GAP_US / 2,
                    agent: ragent,
                    if_index: rif,
                    gap: rskip.saturating_add(1).min(u64::from(u32::MAX)) as u32,
                    packet: SampledPacket {
                        src: d,
                        dst: s.ip,
                        sport: 25,
                        dport: sport,
                        flags,
                        ip_len: len,
                        proto: 6,
                    },
                    sender: idx,
                    reply: true,
                });
                pos += 1;
                rskip = skip(&mut r, p);
            }
        }
    }
    (sessions, messages, packets)
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Refused,
    Rejected,
    Delivered { seg: u64 },
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;
const RST_ACK: u8 = 0x14;
const SYN_ACK: u8 = 0x12;

/// Flags and IP length of the client's packet `i` of `n`.
fn client_packet(kind: Shape, i: u64, n: u64) -> (u8, u16) {
    match kind {
        Shape::Refused => (SYN, 60),
        Shape::Rejected => match i {
            0 => (SYN, 60),
            1 => (ACK, 52),
            4 => (FIN_ACK, 52),
            _ => (PSH_ACK, 80),
        },
        Shape::Delivered { seg } => {
            // SYN, ACK, EHLO, MAIL, RCPT…, DATA, segments, ".", QUIT, FIN (n = 9 + rcpt + seg).
            let data_start = n - 3 - seg;
            match i {
                0 => (SYN, 60),
                1 => (ACK, 52),
                _ if i == n - 1 => (FIN_ACK, 52),
                _ if i >= data_start && i < n - 3 => (ACK, 1500),
                _ => (PSH_ACK, 90),
            }
        }
    }
}

/// Flags and IP length of the server's reply packet `i`.
fn reply_packet(kind: Shape, i: u64) -> (u8, u16) {
    match (kind, i) {
        (Shape::Refused, _) => (RST_ACK, 40),
        (_, 0) => (SYN_ACK, 60),
        (Shape::Delivered { .. }, i) if i % 3 == 2 => (ACK, 52),
        _ => (PSH_ACK, 110),
    }
}

/// The verdicts a log analysis would give: a share of the bad senders, and wrong verdicts on
/// good senders with at least 5 samples.
fn verdicts(cfg: &ExchangeConfig, truth: &[TruthLine]) -> Vec<Ipv4Addr> {
    let mut r = Rng::keyed(&[cfg.seed, 0x7e4d]);
    let mut out: Vec<Ipv4Addr> = truth
        .iter()
        .filter(|t| t.bad && r.chance(cfg.verdict_share))
        .map(|t| t.ip)
        .collect();
    let good: Vec<Ipv4Addr> = truth
        .iter()
        .filter(|t| !t.bad && t.sampled >= 5)
        .map(|t| t.ip)
        .collect();
    let noisy = ((out.len() as f64) * cfg.noisy_share).round() as usize;
    if !good.is_empty() {
        for _ in 0..noisy.min(good.len()) {
            let ip = good[r.below(good.len() as u64) as usize];
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

/// Runs the simulation into `out` (created).
pub fn run(cfg: &ExchangeConfig, out: &Path) -> std::io::Result<ExchangeSummary> {
    std::fs::create_dir_all(out)?;
    let mut draws = Vec::new();
    let senders = populations(cfg, &mut draws);
    let mut recs: Vec<Rec> = Vec::new();
    let mut tally: Vec<TruthLine> = Vec::with_capacity(senders.len());
    for (i, s) in senders.iter().enumerate() {
        let (sessions, messages, packets) =
            simulate_sender(cfg.seed, i as u32, s, cfg.sampling, &mut recs);
        tally.push(TruthLine {
            ip: s.ip,
            class: s.class,
            bad: s.class.is_bad(),
            sessions,
            messages,
            packets,
            sampled: 0,
            sampled_replies: 0,
        });
    }
    let mut r = Rng::keyed(&[cfg.seed, 0x105e]);
    let loss = r.f64() * 0.01;
    let background_per_sec = 0.02 + r.f64() * 0.08;
    let end = cfg.start + i64::from(cfg.days) * 86_400;
    background(cfg, &senders, background_per_sec, end, &mut r, &mut recs);
    recs.sort_by_key(|x| (x.ts_us, x.agent, x.sender, x.reply));

    let file = std::fs::File::create(out.join("exchange.pcap"))?;
    let mut pcap = PcapWriter::new(
        std::io::BufWriter::with_capacity(1 << 20, file),
        Ipv4Addr::new(192, 0, 2, 100),
    )?;
    let mut packer = Packer::new(cfg, loss);
    let mut next_counter = cfg.start * 1_000_000;
    for rec in &recs {
        while next_counter <= rec.ts_us {
            packer.counters(next_counter, &mut pcap)?;
            next_counter += COUNTER_INTERVAL_SECS * 1_000_000;
        }
        packer.push(rec, &mut pcap, &mut tally)?;
    }
    packer.flush_all(i64::MAX, &mut pcap, &mut tally)?;
    pcap.finish()?;

    let mut tf = std::io::BufWriter::new(std::fs::File::create(out.join("sflow-truth.jsonl"))?);
    for t in &tally {
        serde_json::to_writer(&mut tf, t)?;
        tf.write_all(b"\n")?;
    }
    tf.flush()?;
    let mut vf = std::io::BufWriter::new(std::fs::File::create(out.join("verdicts.jsonl"))?);
    for ip in verdicts(cfg, &tally) {
        writeln!(
            vf,
            "{{\"detector\":\"log-verdict\",\"entity\":{{\"kind\":\"client\",\"id\":\"{ip}\"}}}}"
        )?;
    }
    vf.flush()?;
    let summary = ExchangeSummary {
        config: cfg.clone(),
        loss,
        background_per_sec,
        classes: draws,
        senders: senders.len(),
        datagrams: packer.written,
        lost_datagrams: packer.lost,
        flow_samples: packer.flow_samples,
        counter_samples: packer.counter_samples,
    };
    std::fs::write(
        out.join("exchange-summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    Ok(summary)
}

/// Background flow samples of other traffic (web, DNS) crossing the exchange, some from the
/// senders' own addresses. Drawn at the sample level: they are never scored, only filtered.
fn background(
    cfg: &ExchangeConfig,
    senders: &[Sender],
    per_sec: f64,
    end: i64,
    r: &mut Rng,
    out: &mut Vec<Rec>,
) {
    for agent in 0..AGENTS {
        let n = r.poisson(per_sec * (end - cfg.start) as f64);
        for _ in 0..n {
            let ts_us =
                cfg.start * 1_000_000 + r.below(((end - cfg.start) * 1_000_000) as u64) as i64;
            let src = if !senders.is_empty() && r.chance(0.3) {
                senders[r.below(senders.len() as u64) as usize].ip
            } else {
                tail_ip(cfg.seed, r.below(TAIL_DOMAINS))
            };
            let (dport, proto) = *r
                .pick(&[(443u16, 6u8), (80, 6), (53, 17), (993, 6)])
                .unwrap_or(&(443, 6));
            out.push(Rec {
                ts_us,
                agent,
                if_index: 1 + r.below(PORTS_PER_AGENT) as u32,
                gap: cfg.sampling,
                packet: SampledPacket {
                    src,
                    dst: tail_ip(cfg.seed, r.below(TAIL_DOMAINS)),
                    sport: 1024 + r.below(64_000) as u16,
                    dport,
                    flags: ACK,
                    ip_len: 40 + r.below(1460) as u16,
                    proto,
                },
                sender: u32::MAX,
                reply: false,
            });
        }
    }
}

/// Packs samples into per-agent datagrams and writes them in time order.
struct Packer {
    seed: u64,
    start_us: i64,
    sampling: u32,
    loss: f64,
    rng: Rng,
    pending: Vec<Vec<(SampleOut, u32, bool)>>,
    first_us: Vec<i64>,
    dg_seq: Vec<u32>,
    flow_seq: BTreeMap<(u8, u32), u32>,
    counter_seq: BTreeMap<(u8, u32), u32>,
    pool: BTreeMap<(u8, u32), u64>,
    octets: BTreeMap<(u8, u32), u64>,
    last_us: i64,
    written: u64,
    lost: u64,
    flow_samples: u64,
    counter_samples: u64,
}

impl Packer {
    fn new(cfg: &ExchangeConfig, loss: f64) -> Packer {
        let n = usize::from(AGENTS);
        Packer {
            seed: cfg.seed,
            start_us: cfg.start * 1_000_000,
            sampling: cfg.sampling,
            loss,
            rng: Rng::keyed(&[cfg.seed, 0x1055]),
            pending: vec![Vec::new(); n],
            first_us: vec![0; n],
            dg_seq: vec![0; n],
            flow_seq: BTreeMap::new(),
            counter_seq: BTreeMap::new(),
            pool: BTreeMap::new(),
            octets: BTreeMap::new(),
            last_us: 0,
            written: 0,
            lost: 0,
            flow_samples: 0,
            counter_samples: 0,
        }
    }

    fn push<W: Write>(
        &mut self,
        rec: &Rec,
        pcap: &mut PcapWriter<W>,
        tally: &mut [TruthLine],
    ) -> std::io::Result<()> {
        self.flush_all(rec.ts_us, pcap, tally)?;
        let key = (rec.agent, rec.if_index);
        let seq = self.flow_seq.entry(key).or_insert(0);
        *seq = seq.wrapping_add(1);
        let pool = self.pool.entry(key).or_insert(0);
        *pool += u64::from(rec.gap);
        *self.octets.entry(key).or_insert(0) += u64::from(rec.gap) * u64::from(rec.packet.ip_len);
        let s = SampleOut::Flow(FlowSampleOut {
            sequence: *seq,
            if_index: rec.if_index,
            rate: self.sampling,
            pool: *pool as u32,
            packet: rec.packet,
        });
        let a = usize::from(rec.agent);
        if self.pending[a].is_empty() {
            self.first_us[a] = rec.ts_us;
        }
        self.pending[a].push((s, rec.sender, rec.reply));
        if self.pending[a].len() >= SAMPLES_PER_DATAGRAM {
            self.flush(a, rec.ts_us, pcap, tally)?;
        }
        Ok(())
    }

    /// One counter sample per known interface of every agent.
    fn counters<W: Write>(&mut self, now_us: i64, pcap: &mut PcapWriter<W>) -> std::io::Result<()> {
        let keys: Vec<(u8, u32)> = self.pool.keys().copied().collect();
        let mut by_agent: Vec<Vec<SampleOut>> = vec![Vec::new(); usize::from(AGENTS)];
        for key in keys {
            let seq = self.counter_seq.entry(key).or_insert(0);
            *seq = seq.wrapping_add(1);
            by_agent[usize::from(key.0)].push(SampleOut::Counter(CounterSampleOut {
                sequence: *seq,
                if_index: key.1,
                in_octets: self.octets.get(&key).copied().unwrap_or(0),
                in_pkts: self.pool.get(&key).copied().unwrap_or(0) as u32,
            }));
        }
        for (a, samples) in by_agent.into_iter().enumerate() {
            for chunk in samples.chunks(SAMPLES_PER_DATAGRAM) {
                if self.emit(a, now_us, chunk, pcap)? {
                    self.counter_samples += chunk.len() as u64;
                }
            }
        }
        Ok(())
    }

    /// Sends every agent's datagram whose first sample is older than [`MAX_HOLD_US`].
    fn flush_all<W: Write>(
        &mut self,
        now_us: i64,
        pcap: &mut PcapWriter<W>,
        tally: &mut [TruthLine],
    ) -> std::io::Result<()> {
        for a in 0..usize::from(AGENTS) {
            if !self.pending[a].is_empty()
                && (now_us == i64::MAX || now_us - self.first_us[a] > MAX_HOLD_US)
            {
                let at = if now_us == i64::MAX {
                    self.first_us[a] + MAX_HOLD_US
                } else {
                    now_us
                };
                self.flush(a, at, pcap, tally)?;
            }
        }
        Ok(())
    }

    fn flush<W: Write>(
        &mut self,
        a: usize,
        now_us: i64,
        pcap: &mut PcapWriter<W>,
        tally: &mut [TruthLine],
    ) -> std::io::Result<()> {
        let items = std::mem::take(&mut self.pending[a]);
        let samples: Vec<SampleOut> = items.iter().map(|x| x.0).collect();
        if self.emit(a, now_us, &samples, pcap)? {
            self.flow_samples += samples.len() as u64;
            for (s, sender, reply) in &items {
                let (SampleOut::Flow(f), Some(t)) = (s, tally.get_mut(*sender as usize)) else {
                    continue;
                };
                if *reply {
                    t.sampled_replies += 1;
                } else if f.packet.dport == 25 {
                    t.sampled += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes one datagram unless it is lost; true when written.
    fn emit<W: Write>(
        &mut self,
        a: usize,
        now_us: i64,
        samples: &[SampleOut],
        pcap: &mut PcapWriter<W>,
    ) -> std::io::Result<bool> {
        self.dg_seq[a] = self.dg_seq[a].wrapping_add(1);
        // The capture is in arrival order.
        let now_us = now_us.max(self.last_us);
        self.last_us = now_us;
        if self.rng.chance(self.loss) {
            self.lost += 1;
            return Ok(false);
        }
        // Agents booted an hour (plus a per-agent offset) before the capture began.
        let boot = 3_600_000 + (hash(&[self.seed, a as u64]) % 86_400_000) as i64;
        let uptime = ((now_us - self.start_us) / 1000 + boot) as u32;
        let dg = wire::datagram(agent_ip(a as u8), self.dg_seq[a], uptime, samples);
        pcap.write(now_us, agent_ip(a as u8), &dg)?;
        self.written += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
