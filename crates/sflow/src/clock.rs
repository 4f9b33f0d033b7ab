//! Event time of sFlow datagrams from the agents' own clocks.
//!
//! Every sFlow v5 datagram carries the agent's uptime in milliseconds. A live collector can
//! stamp a datagram with its arrival time (the wall clock) or derive the time from that
//! uptime: [`AgentClock`] does the latter. A datagram's time is the time of the agent's
//! previous datagram plus the uptime that passed between the two, the first datagram of an
//! agent being stamped with the event clock's "now". So a capture replayed faster than real
//! time (over UDP, e.g. `tcpreplay --topspeed`) keeps its own timing: three days of datagrams
//! sent in a minute are still three days apart, which is what the port-25 analysis needs (it
//! judges a host only a day and a half after it was first seen).
//!
//! The rules (docs/DETECTION.md, "Live event time"):
//!
//! * **Anchor.** The first datagram of an (agent, sub-agent) is stamped with the event clock's
//!   now: the configured start time for the very first datagram (if any; else its arrival
//!   time), later the time given to the most recent datagram of any agent plus the wall time
//!   since it arrived. In real time that is the arrival time; in a fast replay it is where
//!   the replay has got to.
//! * **Forward.** Later datagrams add the uptime since the agent's previous one, modulo 2^32
//!   (the uptime wraps after 49.7 days).
//! * **Late.** A datagram whose uptime lies up to [`LATE_WINDOW_MS`] behind the agent's
//!   newest is late (reordered on the way): stamped that much earlier, nothing changes.
//! * **Restart, or a jump not believed.** The uptime further back (or the collector saw a
//!   restart), or more than [`MAX_STEP_MS`] ahead of the agent's previous datagram (agents
//!   send counter samples every few seconds; a bigger step is a forged or broken datagram, or a
//!   gap in a replayed capture): the agent is anchored again at the event clock's now.
//!
//! **Trust.** Nothing here authenticates the agent: whoever can send datagrams with an
//! accepted agent's source address can move that agent's clock up to [`MAX_STEP_MS`] per
//! datagram, and so make hosts look old enough to be judged. The same sender can forge the
//! samples themselves, so the agent clock adds little to what such a sender can already do,
//! but it is opt-in: the default of `serve` is the arrival time, which no sender controls.
//! Use the agent clock for replays and for agents on a management network you trust.

use std::collections::HashMap;
use std::net::IpAddr;

/// How far (ms) the uptime of a late, reordered datagram may lie behind the agent's newest
/// one; further back means the agent restarted (the collector's rule).
pub const LATE_WINDOW_MS: u32 = crate::collector::LATE_WINDOW_MS;
/// Largest uptime step (ms) between two datagrams of one agent that is believed: 10 minutes.
/// Agents export counter samples every 20–30 s and flow samples far more often.
pub const MAX_STEP_MS: u32 = 600_000;
/// Default cap on the (agent, sub-agent) pairs with an anchor of their own; datagrams of
/// further pairs are stamped with the event clock's now.
pub const DEFAULT_MAX_AGENTS: usize = 65_536;

/// What one agent's clock was at its newest datagram.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Event time given to it (µs since the epoch).
    at_us: i64,
    /// Its uptime (ms).
    uptime: u32,
}

/// Counters of the agent clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClockStats {
    /// Agents anchored for the first time.
    pub anchored: u64,
    /// Anchored again: a restart, an uptime far back, or a step over [`MAX_STEP_MS`].
    pub reanchored: u64,
    /// Datagrams stamped late (uptime up to [`LATE_WINDOW_MS`] back).
    pub late: u64,
    /// Datagrams of agents beyond the cap (stamped with the event clock's now).
    pub untracked: u64,
}

/// Event time from the agents' uptimes (see the module documentation).
#[derive(Debug, Clone)]
pub struct AgentClock {
    start_us: Option<i64>,
    max_agents: usize,
    agents: HashMap<(IpAddr, u32), Anchor>,
    /// Event time and arrival time of the most recent datagram.
    latest: Option<(i64, i64)>,
    stats: ClockStats,
}

impl AgentClock {
    /// A clock whose first datagram is stamped `start_us` (µs since the epoch; `None`: its
    /// arrival time).
    pub fn new(start_us: Option<i64>) -> AgentClock {
        AgentClock {
            start_us,
            max_agents: DEFAULT_MAX_AGENTS,
            agents: HashMap::new(),
            latest: None,
            stats: ClockStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ClockStats {
        self.stats
    }

    /// The event clock's now at `arrival_us`: see "Anchor" in the module documentation.
    fn now(&self, arrival_us: i64) -> i64 {
        match self.latest {
            None => self.start_us.unwrap_or(arrival_us),
            Some((at, arrived)) => at.saturating_add(arrival_us.saturating_sub(arrived).max(0)),
        }
    }

    /// The event time (µs) of a datagram of `agent`/`sub_agent` with `uptime_ms` that arrived
    /// at `arrival_us`; `restart` when the collector saw the agent restart.
    pub fn stamp(
        &mut self,
        arrival_us: i64,
        agent: IpAddr,
        sub_agent: u32,
        uptime_ms: u32,
        restart: bool,
    ) -> i64 {
        let now = self.now(arrival_us);
        let n = self.agents.len();
        let at = match self.agents.get_mut(&(agent, sub_agent)) {
            None if n >= self.max_agents => {
                self.stats.untracked += 1;
                now
            }
            None => {
                self.stats.anchored += 1;
                self.agents.insert(
                    (agent, sub_agent),
                    Anchor {
                        at_us: now,
                        uptime: uptime_ms,
                    },
                );
                now
            }
            Some(a) => {
                let fwd = uptime_ms.wrapping_sub(a.uptime);
                let back = a.uptime.wrapping_sub(uptime_ms);
                if !restart && fwd <= MAX_STEP_MS {
                    a.at_us = a.at_us.saturating_add(i64::from(fwd) * 1000);
                    a.uptime = uptime_ms;
                    a.at_us
                } else if !restart && back <= LATE_WINDOW_MS {
                    self.stats.late += 1;
                    a.at_us.saturating_sub(i64::from(back) * 1000)
                } else {
                    self.stats.reanchored += 1;
                    *a = Anchor {
                        at_us: now,
                        uptime: uptime_ms,
                    };
                    now
                }
            }
        };
        self.latest = Some((at, arrival_us));
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
    const T0: i64 = 1_772_409_600_000_000; // 2026-03-02T00:00:00Z in µs
    const S: i64 = 1_000_000;

    #[test]
    fn replay_keeps_the_agents_timing() {
        // Three days of datagrams arriving within three seconds.
        let mut c = AgentClock::new(Some(T0));
        let up0 = 5_000_000u32;
        assert_eq!(c.stamp(100, A, 0, up0, false), T0);
        let day = 86_400_000u32;
        let mut t = 0;
        for k in 1..=3 * 24 * 12 {
            // A datagram every five minutes of uptime.
            t = c.stamp(100 + k, A, 0, up0 + k as u32 * 300_000, false);
        }
        assert_eq!(t, T0 + 3 * i64::from(day) * 1000);
        // Another agent starts where the replay has got to, plus the wall time since.
        assert_eq!(c.stamp(100 + 3 * 24 * 12 + 5, B, 0, 77, false), t + 5);
        assert_eq!(c.stats().anchored, 2);
    }

    #[test]
    fn real_time_follows_arrival() {
        // No start given: the first datagram is stamped with its arrival.
        let mut c = AgentClock::new(None);
        assert_eq!(c.stamp(T0, A, 0, 1_000, false), T0);
        assert_eq!(c.stamp(T0 + 2 * S, A, 0, 3_000, false), T0 + 2 * S);
        // A second agent appearing a minute later: anchored at the arrival.
        assert_eq!(c.stamp(T0 + 62 * S, B, 0, 999_999, false), T0 + 62 * S);
        // Sub-agents have clocks of their own.
        assert_eq!(c.stamp(T0 + 63 * S, A, 1, 42, false), T0 + 63 * S);
    }

    #[test]
    fn wrap_late_restart_and_jumps() {
        let mut c = AgentClock::new(Some(T0));
        let near_wrap = u32::MAX - 999;
        assert_eq!(c.stamp(0, A, 0, near_wrap, false), T0);
        // The uptime wraps after 49.7 days: 2 s later it reads 1,000.
        assert_eq!(c.stamp(1, A, 0, 1_000, false), T0 + 2 * S);
        // Late by 1.5 s: stamped so, the agent's newest stays.
        assert_eq!(c.stamp(2, A, 0, u32::MAX - 499, false), T0 + S / 2);
        assert_eq!(c.stamp(3, A, 0, 2_000, false), T0 + 3 * S);
        assert_eq!(c.stats().late, 1);
        // An uptime two minutes back: a restart; anchored again at the event clock's now
        // (the previous datagram's time plus the wall time since).
        assert_eq!(
            c.stamp(13, A, 0, 2_000u32.wrapping_sub(120_000), false),
            T0 + 3 * S + 10
        );
        // A forged step of a day is not believed either.
        let up = 2_000u32.wrapping_sub(120_000);
        assert_eq!(
            c.stamp(20, A, 0, up.wrapping_add(86_400_000), false),
            T0 + 3 * S + 17
        );
        // Nor a restart the collector saw, though the uptime went on.
        let t = c.stamp(30, A, 0, up.wrapping_add(86_400_500), true);
        assert_eq!(t, T0 + 3 * S + 27);
        assert_eq!(c.stats().reanchored, 3);
    }

    #[test]
    fn agents_beyond_the_cap_get_the_clock_now() {
        let mut c = AgentClock::new(Some(T0));
        c.max_agents = 1;
        c.stamp(0, A, 0, 10_000, false);
        assert_eq!(c.stamp(0, A, 0, 70_000, false), T0 + 60 * S);
        assert_eq!(c.stamp(4, B, 0, 1, false), T0 + 60 * S + 4);
        assert_eq!(c.stats().untracked, 1);
    }
}
