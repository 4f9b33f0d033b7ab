//! `campaign`: accounts hijacked by one botnet at once.
//!
//! Botnets reuse bots, and a stolen password list often holds several accounts of one domain.
//! So flagged accounts that share source IPs, or flagged accounts of one domain within a short
//! time, are one incident: the campaign lists its accounts, the IPs they share and when it
//! started. Its IPs are remembered for a while, and an account seen from them is suspicious
//! sooner (the `campaign-ips` signal of `auth-hijack`).

use std::collections::HashMap;
use std::net::IpAddr;

use maillog::Ts;
use serde_json::json;

use crate::alert::{Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::config::Config;

/// Most member accounts listed per campaign.
pub const MAX_MEMBERS: usize = 1000;

#[derive(Debug, Clone)]
struct Group {
    id: String,
    members: Vec<(String, Ts)>,
    shared_ips: u64,
    domains: Vec<String>,
    first: Ts,
    alerted_members: usize,
}

/// The correlator.
#[derive(Debug)]
pub struct Campaigns {
    /// IP -> index of the flagged account that used it most recently.
    ip_owner: BoundedMap<IpAddr, u32>,
    accounts: Vec<String>,
    account_idx: HashMap<String, u32>,
    group_of: HashMap<u32, usize>,
    groups: Vec<Group>,
    by_domain: HashMap<String, Vec<(u32, Ts)>>,
}

fn domain(account: &str) -> Option<&str> {
    account
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

impl Campaigns {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        Campaigns {
            ip_owner: BoundedMap::new(cfg.campaign.max_ips),
            accounts: Vec::new(),
            account_idx: HashMap::new(),
            group_of: HashMap::new(),
            groups: Vec::new(),
            by_domain: HashMap::new(),
        }
    }

    /// Is this IP one a flagged account used recently?
    pub fn is_campaign_ip(&self, ip: IpAddr) -> bool {
        self.ip_owner.get(&ip).is_some()
    }

    fn idx(&mut self, account: &str) -> u32 {
        if let Some(&i) = self.account_idx.get(account) {
            return i;
        }
        let i = self.accounts.len() as u32;
        self.accounts.push(account.to_string());
        self.account_idx.insert(account.to_string(), i);
        i
    }

    fn join(&mut self, a: u32, b: u32, ts: Ts, shared: u64) {
        let ga = self.group_of.get(&a).copied();
        let gb = self.group_of.get(&b).copied();
        let g = match (ga, gb) {
            (Some(x), Some(y)) if x == y => x,
            (Some(x), Some(y)) => {
                // Merge y into x.
                let moved = std::mem::take(&mut self.groups[y].members);
                for (m, _) in &moved {
                    if let Some(&i) = self.account_idx.get(m) {
                        self.group_of.insert(i, x);
                    }
                }
                let first = self.groups[y].first;
                let gx = &mut self.groups[x];
                gx.members.extend(moved);
                gx.members.truncate(MAX_MEMBERS);
                gx.first = gx.first.min(first);
                x
            }
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => {
                let id = format!(
                    "campaign-{}-{}",
                    ts.display_utc().replace([' ', ':'], "").replace('-', ""),
                    self.groups.len() + 1
                );
                self.groups.push(Group {
                    id,
                    members: Vec::new(),
                    shared_ips: 0,
                    domains: Vec::new(),
                    first: ts,
                    alerted_members: 0,
                });
                self.groups.len() - 1
            }
        };
        for i in [a, b] {
            if self.group_of.get(&i) != Some(&g)
                || !self.groups[g]
                    .members
                    .iter()
                    .any(|(m, _)| *m == self.accounts[i as usize])
            {
                self.group_of.insert(i, g);
                let name = self.accounts[i as usize].clone();
                let grp = &mut self.groups[g];
                if !grp.members.iter().any(|(m, _)| *m == name) && grp.members.len() < MAX_MEMBERS {
                    if let Some(d) = domain(&name) {
                        if !grp.domains.iter().any(|x| x == d) && grp.domains.len() < 50 {
                            grp.domains.push(d.to_string());
                        }
                    }
                    grp.members.push((name, ts));
                }
            }
        }
        self.groups[g].shared_ips += shared;
    }

    /// An account was flagged at `ts`, having used `ips`.
    pub fn flagged(
        &mut self,
        cfg: &Config,
        ts: Ts,
        account: &str,
        ips: &[IpAddr],
        out: &mut Vec<Alert>,
    ) {
        if !cfg.campaign.enabled {
            return;
        }
        let me = self.idx(account);
        // Shared IPs with other flagged accounts.
        let mut shared: HashMap<u32, u64> = HashMap::new();
        for ip in ips {
            if let Some(&o) = self.ip_owner.get(ip) {
                if o != me {
                    *shared.entry(o).or_default() += 1;
                }
            }
            self.ip_owner.get_or_insert_with(ip, ts, || me);
        }
        self.ip_owner
            .retain_since(ts.plus_secs(-cfg.campaign.ip_memory.0));
        let mut touched = false;
        for (o, n) in shared {
            if n >= cfg.campaign.min_shared_ips {
                self.join(me, o, ts, n);
                touched = true;
            }
        }
        // Same domain within the window.
        if let Some(d) = domain(account).map(str::to_string) {
            let w = cfg.campaign.domain_window.0;
            let list = self.by_domain.entry(d).or_default();
            list.retain(|(_, t)| t.plus_secs(w) >= ts);
            if !list.iter().any(|(i, _)| *i == me) {
                list.push((me, ts));
            }
            let others: Vec<u32> = list.iter().map(|(i, _)| *i).filter(|i| *i != me).collect();
            for o in others {
                self.join(me, o, ts, 0);
                touched = true;
            }
        }
        if !touched {
            return;
        }
        let Some(&g) = self.group_of.get(&me) else {
            return;
        };
        let grp = &mut self.groups[g];
        if grp.members.len() < 2 || grp.members.len() <= grp.alerted_members {
            return;
        }
        grp.alerted_members = grp.members.len();
        let n = grp.members.len();
        out.push(Alert {
            ts,
            detector: Detector::Campaign,
            entity: Entity::new(EntityKind::Campaign, grp.id.clone()),
            score: (0.8 + 0.02 * n as f64).min(0.99),
            summary: format!(
                "{n} accounts hijacked together ({} shared source IPs; domains: {})",
                grp.shared_ips,
                grp.domains.join(", ")
            ),
            evidence: json!({
                "accounts": grp.members.iter().map(|(m, _)| m).collect::<Vec<_>>(),
                "entities": grp.members.iter().map(|(m, _)| json!({"kind": "account", "id": m})).collect::<Vec<_>>(),
                "joined": grp.members.iter().map(|(m, t)| json!({"account": m, "at": t.rfc3339()})).collect::<Vec<_>>(),
                "shared_ips": grp.shared_ips,
                "domains": grp.domains,
                "first": grp.first.rfc3339(),
            }),
        });
    }
}
