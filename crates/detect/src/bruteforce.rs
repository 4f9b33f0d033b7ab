//! `auth-bruteforce`: password guessing against SMTP AUTH, IMAP and POP3 — how accounts get
//! stolen before they are abused.
//!
//! Three shapes: many failures from one IP (classic guessing, fail2ban's territory); failures
//! against one account from many IPs (distributed guessing that stays under per-IP limits); and
//! the one that matters most to an abuse desk, a successful login after failures (a password was
//! probably guessed).

use std::net::IpAddr;

use maillog::{Service, Ts};
use serde_json::json;

use crate::alert::{round3, Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::config::Config;
use crate::distinct::Distinct;
use crate::window::Counter;

/// A continuing attack from one IP, network or against one account is reported again after
/// this long (a slow attack runs for days; one alert an hour would drown the report).
const REALERT_SECS: i64 = 86_400;

/// Sample users / IPs kept per entity.
const SAMPLES: usize = 10;

#[derive(Debug, Default)]
struct IpState {
    failures: Counter,
    users: Distinct,
    sample_users: Vec<String>,
    services: Vec<Service>,
    first: Option<Ts>,
    alerted: Option<(Ts, u64)>,
}

#[derive(Debug, Default)]
struct AccountState {
    failures: Counter,
    ips: Distinct,
    sample_ips: Vec<String>,
    first: Option<Ts>,
    alerted: Option<Ts>,
    success_alerted: Option<Ts>,
}

#[derive(Debug, Default)]
struct NetState {
    failures: Counter,
    ips: Distinct,
    sample_ips: Vec<String>,
    first: Option<Ts>,
    alerted: Option<Ts>,
}

#[derive(Debug, Default)]
struct Wave {
    failures: Counter,
    ips: Distinct,
    top: Vec<(IpAddr, u64)>,
    first: Option<Ts>,
    alerted: Option<Ts>,
}

/// The detector.
#[derive(Debug)]
pub struct Bruteforce {
    ips: BoundedMap<IpAddr, IpState>,
    nets: BoundedMap<u64, NetState>,
    accounts: BoundedMap<String, AccountState>,
    wave: Wave,
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, as text.
fn net_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

impl Bruteforce {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        Bruteforce {
            ips: BoundedMap::new(cfg.limits.max_entities),
            nets: BoundedMap::new(cfg.limits.max_entities),
            accounts: BoundedMap::new(cfg.limits.max_entities),
            wave: Wave::default(),
        }
    }

    /// A failed login.
    pub fn failure(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: Option<IpAddr>,
        user: Option<&str>,
        service: Service,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        if !c.enabled {
            return;
        }
        let w = c.window.0;
        if let Some(ip) = ip {
            let st = self.ips.get_or_insert_with(&ip, ts, IpState::default);
            st.failures.add(ts, 1, w);
            st.first.get_or_insert(ts);
            if !st.services.contains(&service) {
                st.services.push(service);
            }
            if let Some(u) = user {
                let h = u.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                });
                if !st.users.contains(h) && st.sample_users.len() < SAMPLES {
                    st.sample_users.push(u.chars().take(128).collect());
                }
                st.users.insert(h);
            }
            let n = st.failures.get();
            let due = match st.alerted {
                None => true,
                Some((t, at)) => n >= at * 4 || t.plus_secs(REALERT_SECS) < ts,
            };
            if n > c.max_failures_per_ip && due {
                st.alerted = Some((ts, n));
                let users = st.users.count();
                out.push(Alert {
                    ts,
                    detector: Detector::AuthBruteforce,
                    entity: Entity::new(EntityKind::Client, ip.to_string()),
                    score: round3(
                        (0.6 + 0.1 * ((n as f64) / (c.max_failures_per_ip.max(1) as f64)).log2())
                            .clamp(0.6, 0.95),
                    ),
                    summary: format!(
                        "{n} failed logins within {} against {users} accounts",
                        c.window.to_string_h()
                    ),
                    evidence: json!({
                        "failures": n,
                        "threshold": c.max_failures_per_ip,
                        "accounts_tried": users,
                        "sample_accounts": st.sample_users,
                        "services": st.services,
                        "first": st.first.map(|t| t.rfc3339()),
                        "last": ts.rfc3339(),
                    }),
                });
            }
        }
        if let Some(ip) = ip {
            self.network(cfg, ts, ip, out);
            self.wave(cfg, ts, ip, out);
        }
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            let st = self
                .accounts
                .get_or_insert_with(&u.to_string(), ts, AccountState::default);
            st.failures.add(ts, 1, w);
            st.first.get_or_insert(ts);
            if let Some(ip) = ip {
                let h = crate::distinct::mix(match ip {
                    IpAddr::V4(a) => u32::from(a) as u64,
                    IpAddr::V6(a) => u128::from(a) as u64 ^ (u128::from(a) >> 64) as u64,
                });
                if !st.ips.contains(h) && st.sample_ips.len() < SAMPLES {
                    st.sample_ips.push(ip.to_string());
                }
                st.ips.insert(h);
            }
            let ips = st.ips.count();
            if ips > c.max_ips_per_account
                && st.alerted.is_none_or(|t| t.plus_secs(REALERT_SECS) < ts)
            {
                st.alerted = Some(ts);
                out.push(Alert {
                    ts,
                    detector: Detector::AuthBruteforce,
                    entity: Entity::new(EntityKind::Account, u),
                    score: 0.7,
                    summary: format!(
                        "failed logins from {ips} IPs within {} ({} failures): distributed password guessing",
                        c.window.to_string_h(),
                        st.failures.get()
                    ),
                    evidence: json!({
                        "failures": st.failures.get(),
                        "source_ips": ips,
                        "sample_ips": st.sample_ips,
                        "first": st.first.map(|t| t.rfc3339()),
                        "last": ts.rfc3339(),
                    }),
                });
            }
        }
    }

    /// Guessing spread over one network: each address stays under the per-IP limit, the /24
    /// (/48) does not.
    fn network(&mut self, cfg: &Config, ts: Ts, ip: IpAddr, out: &mut Vec<Alert>) {
        let c = &cfg.bruteforce;
        let w = c.window.0;
        let key = geo::prefix_key(ip);
        let st = self.nets.get_or_insert_with(&key, ts, NetState::default);
        st.failures.add(ts, 1, w);
        st.first.get_or_insert(ts);
        let h = crate::distinct::mix(match ip {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => u128::from(a) as u64 ^ (u128::from(a) >> 64) as u64,
        });
        if !st.ips.contains(h) && st.sample_ips.len() < SAMPLES {
            st.sample_ips.push(ip.to_string());
        }
        st.ips.insert(h);
        let n = st.failures.get();
        let ips = st.ips.count();
        if n > c.max_failures_per_network
            && ips >= 2
            && st.alerted.is_none_or(|t| t.plus_secs(REALERT_SECS) < ts)
        {
            st.alerted = Some(ts);
            out.push(Alert {
                ts,
                detector: Detector::AuthBruteforce,
                entity: Entity::new(EntityKind::Client, net_name(ip)),
                score: 0.75,
                summary: format!(
                    "{n} failed logins within {} from {ips} addresses of one network",
                    c.window.to_string_h()
                ),
                evidence: json!({
                    "failures": n,
                    "threshold": c.max_failures_per_network,
                    "addresses": ips,
                    "sample_addresses": st.sample_ips,
                    "first": st.first.map(|t| t.rfc3339()),
                    "last": ts.rfc3339(),
                }),
            });
        }
    }

    /// A wave of guessing against the server from many networks (a botnet), each address
    /// under every per-IP limit. Reported once per window as a `campaign`.
    fn wave(&mut self, cfg: &Config, ts: Ts, ip: IpAddr, out: &mut Vec<Alert>) {
        let c = &cfg.bruteforce;
        let w = c.window.0;
        let wv = &mut self.wave;
        wv.failures.add(ts, 1, w);
        if wv.first.is_none_or(|f| f.plus_secs(w) < ts) {
            wv.first = Some(ts);
            wv.ips = Distinct::default();
            wv.top.clear();
        }
        wv.ips.insert(crate::distinct::mix(match ip {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => u128::from(a) as u64 ^ (u128::from(a) >> 64) as u64,
        }));
        if let Some(e) = wv.top.iter_mut().find(|(x, _)| *x == ip) {
            e.1 += 1;
        } else if wv.top.len() < 64 {
            wv.top.push((ip, 1));
        }
        let n = wv.failures.get();
        let ips = wv.ips.count();
        if n > c.max_failures_total
            && ips >= c.min_wave_ips
            && wv.alerted.is_none_or(|t| t.plus_secs(w) < ts)
        {
            wv.alerted = Some(ts);
            let mut top = wv.top.clone();
            top.sort_by_key(|x| std::cmp::Reverse(x.1));
            top.truncate(10);
            let id = format!("guessing-{}", ts.rfc3339().replace([':', '-'], ""));
            out.push(Alert {
                ts,
                detector: Detector::AuthBruteforce,
                entity: Entity::new(EntityKind::Campaign, id),
                score: 0.8,
                summary: format!(
                    "{n} failed logins within {} from {ips} addresses: distributed password guessing against the server",
                    c.window.to_string_h()
                ),
                evidence: json!({
                    "failures": n,
                    "threshold": c.max_failures_total,
                    "addresses": ips,
                    "top_addresses": top.iter().map(|(i, k)| json!({"ip": i.to_string(), "failures": k})).collect::<Vec<_>>(),
                    "first": wv.first.map(|t| t.rfc3339()),
                    "last": ts.rfc3339(),
                }),
            });
        }
    }

    /// A successful login (Dovecot login, SMTP AUTH submission).
    pub fn success(
        &mut self,
        cfg: &Config,
        ts: Ts,
        ip: Option<IpAddr>,
        user: &str,
        service: Service,
        out: &mut Vec<Alert>,
    ) {
        let c = &cfg.bruteforce;
        if !c.enabled {
            return;
        }
        let w = c.window.0;
        let acct_fail = self.accounts.get_mut(&user.to_string()).map(|s| {
            s.failures.expire(ts, w);
            s.failures.get()
        });
        let ip_fail = ip.and_then(|ip| self.ips.get_mut(&ip)).map(|s| {
            s.failures.expire(ts, w);
            s.failures.get()
        });
        let acct_fail = acct_fail.unwrap_or(0);
        let ip_fail = ip_fail.unwrap_or(0);
        if acct_fail < c.success_after_failures
            && ip_fail < c.success_after_failures.saturating_mul(4)
        {
            return;
        }
        // One report per account per window; the account state exists when acct_fail > 0.
        let st = self
            .accounts
            .get_or_insert_with(&user.to_string(), ts, AccountState::default);
        if st.success_alerted.is_some_and(|t| t.plus_secs(w) >= ts) {
            return;
        }
        st.success_alerted = Some(ts);
        out.push(Alert {
            ts,
            detector: Detector::AuthBruteforce,
            entity: Entity::new(EntityKind::Account, user),
            score: 0.9,
            summary: format!(
                "successful {} login from {} after {acct_fail} failed logins to the account and {ip_fail} from that IP within {}: password probably guessed",
                match service {
                    Service::Smtp => "SMTP AUTH",
                    Service::Imap => "IMAP",
                    Service::Pop3 => "POP3",
                    Service::Other => "",
                },
                ip.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
                c.window.to_string_h()
            ),
            evidence: json!({
                "success_ip": ip.map(|i| i.to_string()),
                "service": service,
                "account_failures": acct_fail,
                "ip_failures": ip_fail,
                "sample_failure_ips": st.sample_ips,
            }),
        });
    }
}
