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
/// (a million datagrams are hours of a busy agent's output): the pair is resynchronised
/// and counted as a restart.
pub const MAX_PLAUSIBLE_GAP: u32 = 1_000_000;
/// A sequence number at or below this after a higher one means the agent started over
/// (agents number datagrams from 1), even when its uptime did not go backwards.
pub const RESTART_SEQUENCE_MAX: u32 = 16;
/// How far (ms) the uptime of a late, reordered datagram may lie behind the newest one;
/// an uptime further back means the agent restarted.
pub const LATE_WINDOW_MS: u32 = 60_000;
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
    /// The agent restarted (or jumped implausibly far): counting starts again.
    Restart,
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
    /// Agent restarts (and implausible jumps) seen.
    pub restarts: u64,
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
}

/// Accepts datagrams from configured agents and follows their sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    cfg: CollectorConfig,
    sources: HashMap<(IpAddr, u32), SeqState>,
    rejected: HashMap<Option<IpAddr>, u64>,
    stats: CollectorStats,
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
        let now = SeqState {
            sequence: dg.sequence_number,
            uptime: dg.uptime,
        };
        let Some(prev) = self.sources.get_mut(&key) else {
            if self.sources.len() >= self.cfg.max_sources {
                return SequenceEvent::Untracked;
            }
            self.sources.insert(key, now);
            self.stats.sources += 1;
            return SequenceEvent::First;
        };
        let ev = classify(*prev, now);
        match ev {
            SequenceEvent::InOrder => {}
            SequenceEvent::Gap(n) => self.stats.lost += u64::from(n),
            SequenceEvent::Restart => self.stats.restarts += 1,
            SequenceEvent::Late => {
                self.stats.late += 1;
                self.stats.lost = self.stats.lost.saturating_sub(1);
                return ev; // keep the newest state
            }
            SequenceEvent::First | SequenceEvent::Untracked => {}
        }
        *prev = now;
        ev
    }
}

/// The sequence rules, apart for testing.
fn classify(prev: SeqState, now: SeqState) -> SequenceEvent {
    let d = now.sequence.wrapping_sub(prev.sequence);
    if d == 1 {
        // Also across a uptime wrap (49.7 days) or a 32-bit sequence wrap.
        return SequenceEvent::InOrder;
    }
    let uptime_back = prev.uptime.saturating_sub(now.uptime) > LATE_WINDOW_MS;
    if d == 0 || d > u32::MAX / 2 {
        // Not ahead: a restart if the uptime fell back or numbering started over.
        if uptime_back || now.sequence <= RESTART_SEQUENCE_MAX {
            return SequenceEvent::Restart;
        }
        return SequenceEvent::Late;
    }
    if uptime_back || d > MAX_PLAUSIBLE_GAP {
        return SequenceEvent::Restart;
    }
    SequenceEvent::Gap(d - 1)
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
        let s = |sequence, uptime| SeqState { sequence, uptime };
        assert_eq!(classify(s(10, 100), s(11, 200)), SequenceEvent::InOrder);
        assert_eq!(classify(s(10, 100), s(15, 200)), SequenceEvent::Gap(4));
        assert_eq!(classify(s(1000, 100), s(999, 90)), SequenceEvent::Late);
        assert_eq!(classify(s(1000, 100), s(1000, 100)), SequenceEvent::Late);
        assert_eq!(classify(s(1000, 100_000), s(990, 10)), SequenceEvent::Restart);
        assert_eq!(classify(s(500, 90_000), s(1, 50)), SequenceEvent::Restart);
        // Restarted with a new sequence that happens to be ahead: the uptime says restart.
        assert_eq!(classify(s(10, 90_000), s(30, 50)), SequenceEvent::Restart);
        assert_eq!(
            classify(s(10, 100), s(5_000_000, 200)),
            SequenceEvent::Restart
        );
        assert_eq!(
            classify(s(u32::MAX, 100), s(0, 200)),
            SequenceEvent::InOrder
        );
        assert_eq!(
            classify(s(7, u32::MAX - 5), s(8, 3)),
            SequenceEvent::InOrder
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
        let st = c.stats();
        assert_eq!(
            (st.datagrams, st.accepted, st.rejected_agent, st.malformed),
            (9, 7, 1, 1)
        );
        assert_eq!((st.lost, st.late, st.restarts, st.sources), (2, 1, 1, 2));
        assert_eq!(c.rejected_agents(), vec![(Some(other), 1)]);
    }
}
