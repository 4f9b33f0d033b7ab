//! The collector's bookkeeping: which agents are accepted, and datagram loss.
//!
//! [`Collector::feed`] decodes one UDP payload, drops it when its agent is not configured
//! (counting it per agent), and follows the datagram sequence number of every
//! (agent, sub-agent) pair: a gap is counted as lost datagrams; a datagram arriving late
//! gives one back; an agent restart (uptime going backwards, or the sequence number falling
//! back to a small value) starts the count afresh instead of reporting four billion lost
//! datagrams. Pure: the caller owns the socket or the capture.

use crate::decode::decode;
use crate::error::{Context, Error};
use crate::types::{Datagram, Sample};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A forward jump of the sequence number larger than this is not believed to be loss
/// (a million datagrams are hours of a busy agent's output): the datagram starts or
/// resynchronises a stream instead.
pub const MAX_PLAUSIBLE_GAP: u32 = 1_000_000;
/// A sequence number at or below this after a higher one means the agent started over
/// (agents number datagrams from 1), even when its uptime did not go backwards.
pub const RESTART_SEQUENCE_MAX: u32 = 16;
/// How far (ms) the uptime of a late, reordered datagram may lie behind the newest one;
/// an uptime further back means the agent restarted.
pub const LATE_WINDOW_MS: u32 = 60_000;
/// How far (datagrams) behind the newest a late datagram may be.
pub const MAX_LATE: u32 = 4096;
/// An uptime below this (ms) on a datagram that continues no stream means the agent has
/// just (re)started.
pub const RESTART_UPTIME_MS: u32 = 600_000;
/// Independent sequence streams followed per (agent, sub-agent): real agents (e.g. one
/// process per line card) send several interleaved streams under one agent address and
/// sub-agent id (the oxyflow capture in the corpus has such agents).
pub const MAX_STREAMS_PER_SOURCE: usize = 4;
/// Cap on (agent, sub-agent) pairs followed; datagrams of further pairs are accepted
/// but not checked for loss.
pub const DEFAULT_MAX_SOURCES: usize = 65_536;
/// Cap on distinct rejected agents counted one by one (the total is always counted).
pub const MAX_REJECTED_AGENTS: usize = 1024;

/// Collector settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Agents accepted; empty accepts all.
    pub agents: Vec<IpAddr>,
    /// Cap on (agent, sub-agent) pairs followed for loss.
    pub max_sources: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            agents: Vec::new(),
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

/// What the sequence number of one datagram says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceEvent {
    /// First datagram of this (agent, sub-agent).
    First,
    /// The next one.
    InOrder,
    /// This many datagrams were skipped (lost).
    Gap(u32),
    /// Earlier than the last one: late or duplicated (one lost datagram given back).
    Late,
    /// The agent restarted (sequence or uptime started over): counting starts again.
    Restart,
    /// Continues no stream of this (agent, sub-agent) but is not a restart: another
    /// interleaved stream from the same agent and sub-agent id.
    NewStream,
    /// Continues no stream and the stream cap was reached: the least recently used stream
    /// is replaced.
    Resync,
    /// Not followed (the source cap was reached).
    Untracked,
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// Its agent is not configured.
    Agent(Option<IpAddr>),
    /// Not even the datagram header decoded.
    Malformed(Error),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Agent(Some(a)) => write!(f, "agent {a} is not configured"),
            Rejected::Agent(None) => write!(f, "agent address unknown and agents are configured"),
            Rejected::Malformed(e) => write!(f, "malformed datagram: {e}"),
        }
    }
}

impl std::error::Error for Rejected {}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStats {
    /// Datagrams fed.
    pub datagrams: u64,
    /// Accepted (agent configured, header decoded).
    pub accepted: u64,
    /// Dropped because the agent is not configured.
    pub rejected_agent: u64,
    /// Dropped because the header did not decode.
    pub malformed: u64,
    /// Accepted, but decoding stopped early (the samples before the error are kept).
    pub partial: u64,
    /// Datagrams lost according to the sequence numbers.
    pub lost: u64,
    /// Late or duplicated datagrams.
    pub late: u64,
    /// Agent restarts seen.
    pub restarts: u64,
    /// Streams replaced for lack of room.
    pub resyncs: u64,
    /// Sequence streams followed (several per source when an agent interleaves them).
    pub streams: u64,
    /// Flow samples in accepted datagrams.
    pub flow_samples: u64,
    /// Counter samples in accepted datagrams.
    pub counter_samples: u64,
    /// (agent, sub-agent) pairs followed.
    pub sources: u64,
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    sequence: u32,
    uptime: u32,
    /// When this stream last took a datagram (the collector's datagram count).
    used: u64,
}

/// Accepts datagrams from configured agents and follows their sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    cfg: CollectorConfig,
    sources: HashMap<(IpAddr, u32), Vec<SeqState>>,
    rejected: HashMap<Option<IpAddr>, u64>,
    stats: CollectorStats,
    clock: u64,
}

impl Collector {
    /// A collector with these settings.
    pub fn new(cfg: CollectorConfig) -> Collector {
        Collector {
            cfg,
            ..Collector::default()
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &CollectorStats {
        &self.stats
    }

    /// Datagrams dropped per unconfigured agent (at most [`MAX_REJECTED_AGENTS`] agents),
    /// most first.
    pub fn rejected_agents(&self) -> Vec<(Option<IpAddr>, u64)> {
        let mut v: Vec<_> = self.rejected.iter().map(|(a, n)| (*a, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Decodes and checks one datagram. On success returns the datagram (possibly partial:
    /// see [`CollectorStats::partial`]) and what its sequence number said.
    pub fn feed<'a>(&mut self, bytes: &'a [u8]) -> Result<(Datagram<'a>, SequenceEvent), Rejected> {
        self.stats.datagrams += 1;
        let d = decode(bytes);
        let partial = d.error.is_some();
        let Some(dg) = d.datagram else {
            self.stats.malformed += 1;
            // decode() gives an error whenever it gives no datagram.
            return Err(Rejected::Malformed(d.error.unwrap_or(Error::Truncated {
                context: Context::DatagramHeader,
                offset: 0,
                needed: 4,
                available: bytes.len(),
            })));
        };
        if !self.cfg.agents.is_empty() && !dg.agent.is_some_and(|a| self.cfg.agents.contains(&a)) {
            self.stats.rejected_agent += 1;
            let n = self.rejected.len();
            match self.rejected.get_mut(&dg.agent) {
                Some(c) => *c += 1,
                None if n < MAX_REJECTED_AGENTS => {
                    self.rejected.insert(dg.agent, 1);
                }
                None => {}
            }
            return Err(Rejected::Agent(dg.agent));
        }
        self.stats.accepted += 1;
        self.stats.partial += u64::from(partial);
        for s in &dg.samples {
            match s {
                Sample::Flow(_) => self.stats.flow_samples += 1,
                Sample::Counter(_) => self.stats.counter_samples += 1,
                _ => {}
            }
        }
        let ev = self.sequence(&dg);
        Ok((dg, ev))
    }

    fn sequence(&mut self, dg: &Datagram<'_>) -> SequenceEvent {
        let key = (
            dg.agent.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            dg.sub_agent_id,
        );
        self.clock += 1;
        let now = SeqState {
            sequence: dg.sequence_number,
            uptime: dg.uptime,
            used: self.clock,
        };
        let Some(streams) = self.sources.get_mut(&key) else {
            if self.sources.len() >= self.cfg.max_sources {
                return SequenceEvent::Untracked;
            }
            self.sources.insert(key, vec![now]);
            self.stats.sources += 1;
            self.stats.streams += 1;
            return SequenceEvent::First;
        };
        // The stream this datagram continues best: the smallest sequence distance.
        let best = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| classify(*s, now).map(|(ev, dist)| (dist, i, ev)))
            .min_by_key(|(dist, _, _)| *dist);
        if let Some((_, i, ev)) = best {
            match ev {
                SequenceEvent::Gap(n) => self.stats.lost += u64::from(n),
                SequenceEvent::Late => {
                    self.stats.late += 1;
                    self.stats.lost = self.stats.lost.saturating_sub(1);
                    return ev; // the stream keeps its newest state
                }
                _ => {}
            }
            if let Some(s) = streams.get_mut(i) {
                *s = now;
            }
            return ev;
        }
        if now.sequence <= RESTART_SEQUENCE_MAX || now.uptime < RESTART_UPTIME_MS {
            // Numbering or uptime started over: the agent restarted; forget its streams.
            self.stats.streams -= streams.len() as u64;
            streams.clear();
            streams.push(now);
            self.stats.streams += 1;
            self.stats.restarts += 1;
            SequenceEvent::Restart
        } else if streams.len() < MAX_STREAMS_PER_SOURCE {
            streams.push(now);
            self.stats.streams += 1;
            SequenceEvent::NewStream
        } else {
            if let Some(lru) = streams.iter_mut().min_by_key(|s| s.used) {
                *lru = now;
            }
            self.stats.resyncs += 1;
            SequenceEvent::Resync
        }
    }
}

/// Whether `now` continues the stream `prev`, and how far from it: in order, after a gap,
/// or late. `None` when it does not belong to that stream.
fn classify(prev: SeqState, now: SeqState) -> Option<(SequenceEvent, u32)> {
    let d = now.sequence.wrapping_sub(prev.sequence);
    if d == 1 {
        // Also across an uptime wrap (49.7 days) or a 32-bit sequence wrap.
        return Some((SequenceEvent::InOrder, 1));
    }
    if prev.uptime.saturating_sub(now.uptime) > LATE_WINDOW_MS {
        return None;
    }
    if (2..=MAX_PLAUSIBLE_GAP).contains(&d) {
        return Some((SequenceEvent::Gap(d - 1), d));
    }
    let back = prev.sequence.wrapping_sub(now.sequence);
    if back <= MAX_LATE && now.sequence > RESTART_SEQUENCE_MAX {
        return Some((SequenceEvent::Late, back));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(agent: [u8; 4], sub: u32, seq: u32, uptime: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [5u32, 1] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(&agent);
        for w in [sub, seq, uptime, 0] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn sequence_rules() {
        let s = |sequence, uptime| SeqState {
            sequence,
            uptime,
            used: 0,
        };
        let ev = |p, n| classify(p, n).map(|(e, _)| e);
        assert_eq!(ev(s(10, 100), s(11, 200)), Some(SequenceEvent::InOrder));
        assert_eq!(ev(s(10, 100), s(15, 200)), Some(SequenceEvent::Gap(4)));
        assert_eq!(ev(s(1000, 100), s(999, 90)), Some(SequenceEvent::Late));
        assert_eq!(ev(s(1000, 100), s(1000, 100)), Some(SequenceEvent::Late));
        assert_eq!(ev(s(1000, 100_000), s(990, 10)), None);
        assert_eq!(ev(s(10, 90_000), s(30, 50)), None);
        assert_eq!(ev(s(10, 100), s(5_000_000, 200)), None);
        assert_eq!(
            ev(s(u32::MAX, 100), s(0, 200)),
            Some(SequenceEvent::InOrder)
        );
        assert_eq!(
            ev(s(7, u32::MAX - 5), s(8, 3)),
            Some(SequenceEvent::InOrder)
        );
    }

    #[test]
    fn agents_loss_and_restart() {
        let a = IpAddr::from([192, 0, 2, 1]);
        let mut c = Collector::new(CollectorConfig {
            agents: vec![a],
            ..CollectorConfig::default()
        });
        let feed = |c: &mut Collector, b: Vec<u8>| c.feed(&b).map(|(_, e)| e);
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 100, 1000)),
            Ok(SequenceEvent::First)
        );
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 101, 1100)),
            Ok(SequenceEvent::InOrder)
        );
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 105, 1500)),
            Ok(SequenceEvent::Gap(3))
        );
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 103, 1300)),
            Ok(SequenceEvent::Late)
        );
        // Another sub-agent is followed separately.
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 1, 7, 1300)),
            Ok(SequenceEvent::First)
        );
        // Restart: sequence and uptime start over; no loss reported.
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 1, 20)),
            Ok(SequenceEvent::Restart)
        );
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 0, 2, 40)),
            Ok(SequenceEvent::InOrder)
        );
        let other = IpAddr::from([198, 51, 100, 7]);
        assert_eq!(
            feed(&mut c, dgram([198, 51, 100, 7], 0, 1, 1)),
            Err(Rejected::Agent(Some(other)))
        );
        assert!(matches!(
            feed(&mut c, vec![0, 0, 0, 5]),
            Err(Rejected::Malformed(_))
        ));
        // Two interleaved streams under one agent and sub-agent (as in oxyflow).
        for (seq, up) in [
            (5000, 9_000_000),
            (900_000_000, 20_000_000),
            (5001, 9_000_100),
        ] {
            c.feed(&dgram([192, 0, 2, 1], 2, seq, up)).unwrap();
        }
        assert_eq!(
            feed(&mut c, dgram([192, 0, 2, 1], 2, 900_000_002, 20_000_050)),
            Ok(SequenceEvent::Gap(1))
        );
        let st = c.stats();
        assert_eq!((st.streams, st.restarts), (4, 1));
        let st = c.stats();
        assert_eq!(
            (st.datagrams, st.accepted, st.rejected_agent, st.malformed),
            (13, 11, 1, 1)
        );
        assert_eq!((st.lost, st.late, st.restarts, st.sources), (3, 1, 1, 3));
        assert_eq!(c.rejected_agents(), vec![(Some(other), 1)]);
    }
}
