//! sFlow receiver: one UDP socket per address, one [`SflowSource`] (collector + port-25
//! analysis) per socket. Datagrams are stamped with the wall clock on arrival, or with
//! `sflow_clock = "agent"` with the agent's own clock (`sflow::clock`: a replayed capture
//! keeps its timing); the alerts the analysis raises go to the engine thread as
//! [`Msg::Alerts`] and from there take the path of every other alert (metrics, sinks, store:
//! incidents and containment).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::core::Msg;
use super::SflowClock;
use super::{now_ts, ServeConfig, Shared};
use crate::sflow_cmd::{ClockMode, SflowConfig, SflowSource};

/// Largest datagram read (sFlow agents keep datagrams under the path MTU; 64 KiB is the UDP
/// maximum).
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// How often the collector and analysis counters are copied into the metrics.
pub const STATS_INTERVAL: StdDuration = StdDuration::from_secs(1);

/// Settings of the sFlow sources from `[serve]`.
pub fn config(s: &ServeConfig) -> SflowConfig {
    let mut c = SflowConfig::default();
    c.collector.agents = s.sflow_agents.clone();
    if !s.sflow_smtp_ports.is_empty() {
        c.activity.smtp_ports = s.sflow_smtp_ports.clone();
    }
    if s.sflow_clock == SflowClock::Agent {
        // Checked when the configuration was loaded.
        let start = s
            .sflow_clock_start
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| maillog::Ts(t.as_microsecond()));
        c.clock = ClockMode::Agent { start };
    }
    c
}

/// Counter values of one source already added to the metrics.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    accepted: u64,
    rejected: u64,
    flow_samples: u64,
    smtp_samples: u64,
    lost: u64,
}

impl Seen {
    fn of(src: &SflowSource) -> Seen {
        let v = src.stats_json();
        let c = &v["collector"];
        let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
        Seen {
            accepted: n(&c["accepted"]),
            rejected: n(&c["rejected_agent"]) + n(&c["malformed"]),
            flow_samples: n(&c["flow_samples"]),
            smtp_samples: src.activity().stats().smtp_samples,
            lost: n(&c["lost"]),
        }
    }
}

/// Add what changed since `last` to the metrics.
fn sync(shared: &Shared, src: &SflowSource, last: &mut Seen) {
    let now = Seen::of(src);
    let m = &shared.metrics;
    m.sflow_accepted
        .add(now.accepted.saturating_sub(last.accepted));
    m.sflow_rejected
        .add(now.rejected.saturating_sub(last.rejected));
    m.sflow_flow_samples
        .add(now.flow_samples.saturating_sub(last.flow_samples));
    m.sflow_smtp_samples
        .add(now.smtp_samples.saturating_sub(last.smtp_samples));
    m.sflow_lost.add(now.lost.saturating_sub(last.lost));
    *last = now;
}

/// Hand alerts to the engine thread without waiting; a full queue drops them (counted).
fn hand_over(shared: &Shared, alerts: Vec<detect::Alert>) {
    if alerts.is_empty() {
        return;
    }
    let n = alerts.len() as u64;
    if shared.engine_tx.try_send(Msg::Alerts(alerts)).is_err() {
        shared.metrics.sflow_alerts_dropped.add(n);
        warn!(alerts = n, "engine queue full: sFlow alerts dropped");
    }
}

/// Bind UDP on `addr`; returns the receiving task.
pub async fn listen(
    addr: &str,
    cfg: SflowConfig,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let udp = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen on sFlow UDP {addr}"))?;
    info!(udp = %udp.local_addr()?, "sFlow receiver listening");
    Ok(tokio::spawn(async move {
        let mut src = SflowSource::new(cfg);
        let mut seen = Seen::default();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut iv = tokio::time::interval(STATS_INTERVAL);
        loop {
            let got = tokio::select! {
                r = udp.recv_from(&mut buf) => r,
                _ = iv.tick() => {
                    sync(&shared, &src, &mut seen);
                    continue;
                }
                _ = stop.changed() => break,
            };
            let Ok((n, _)) = got else { continue };
            shared.metrics.sflow_datagrams.inc();
            let alerts = src.feed_datagram(now_ts(), &buf[..n]);
            hand_over(&shared, alerts);
        }
        // Hosts flagged since the last hour boundary are reported now rather than lost.
        let alerts = src.finish();
        hand_over(&shared, alerts);
        sync(&shared, &src, &mut seen);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_serve_keys() {
        let mut s = ServeConfig::default();
        let c = config(&s);
        assert!(c.collector.agents.is_empty());
        assert_eq!(c.activity.smtp_ports, vec![25]);
        s.sflow_agents = vec!["192.0.2.1".parse().unwrap()];
        s.sflow_smtp_ports = vec![25, 587];
        let c = config(&s);
        assert_eq!(c.collector.agents, s.sflow_agents);
        assert_eq!(c.activity.smtp_ports, vec![25, 587]);
        assert_eq!(c.clock, ClockMode::Arrival);
        s.sflow_clock = SflowClock::Agent;
        assert_eq!(config(&s).clock, ClockMode::Agent { start: None });
        s.sflow_clock_start = Some("2026-03-02T00:00:02.511012Z".into());
        assert_eq!(
            config(&s).clock,
            ClockMode::Agent {
                start: Some(maillog::Ts(1_772_409_602_511_012))
            }
        );
    }
}
