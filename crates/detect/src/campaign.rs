//! `campaign`: accounts hijacked by one botnet at once.
//!
//! Botnets reuse bots, and a stolen password list often holds several accounts of one domain
//! (IIJ: several accounts of one domain at once). So flagged accounts that share source IPs, or
//! flagged accounts of one domain within a short time, are one incident: the campaign lists its
//! accounts, the IPs they share and when it started. Its IPs are remembered for a while, and an
//! account seen from them is suspicious sooner (the `campaign-ips` signal of `auth-hijack`).
//!
//! The correlator is linear in the flagged accounts: groups are a union–find over account
//! numbers, an index maps each remembered IP to the last flagged account that used it, and a
//! domain remembers only its latest flagged account (joining that one joins the whole group,
//! since groups are transitive). An alert lists at most [`MAX_MEMBERS`] accounts, and a large
//! campaign is re-alerted only when it has doubled, so 8,000 accounts of one domain cost a few
//! alerts, not 8,000 ever-longer ones.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maillog::event::domain_of;
use maillog::hash::Map as HashMap;
use maillog::Ts;

use crate::alert::{Alert, Detector, Entity, EntityKind};
use crate::bounded::BoundedMap;
use crate::config::Config;

/// Most member accounts listed per campaign (and per alert); the alert also gives the total.
pub const MAX_MEMBERS: usize = 1000;
/// Most sender domains listed per campaign.
pub const MAX_DOMAINS: usize = 50;
/// A campaign of up to this many accounts is re-alerted for every new member; a larger one only
/// when it has doubled since its last alert (our own idea: every member of a small campaign
/// matters to the desk; a large one needs a few updates, not one per account).
pub const SMALL_CAMPAIGN: u64 = 8;
/// Remembered IPs older than `ip_memory` are swept at most once per this many seconds of event
/// time (each lookup also checks the age, so the sweep only frees memory).
pub const SWEEP_SECS: i64 = 3600;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Group {
    id: String,
    /// Listed members (at most [`MAX_MEMBERS`]).
    members: Vec<(u32, Ts)>,
    /// All members.
    size: u64,
    shared_ips: u64,
    domains: Vec<String>,
    first: Ts,
    alerted_size: u64,
}

/// Evidence of a `campaign` alert (its `evidence` JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CampaignEvidence {
    /// Listed member accounts (at most [`MAX_MEMBERS`]).
    pub accounts: Vec<String>,
    /// All members.
    pub accounts_total: u64,
    /// The listed members as entities (for tools that read any alert's members).
    pub entities: Vec<Entity>,
    /// When each listed member joined.
    pub joined: Vec<Joined>,
    /// Source IPs shared by members.
    pub shared_ips: u64,
    /// Domains of the members hit at once.
    pub domains: Vec<String>,
    /// When the campaign began, RFC 3339.
    pub first: String,
}

/// One member of a campaign and when it joined.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Joined {
    /// The account.
    pub account: String,
    /// When, RFC 3339.
    pub at: String,
}

/// The correlator.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Campaigns {
    /// IP -> (index of the flagged account that used it most recently, when).
    ip_owner: BoundedMap<IpAddr, (u32, Ts)>,
    accounts: Vec<String>,
    account_idx: HashMap<String, u32>,
    /// Union–find parent of each account number.
    parent: Vec<u32>,
    /// Group of each root account number.
    group_of_root: HashMap<u32, usize>,
    groups: Vec<Group>,
    /// Domain -> its latest flagged account and when.
    by_domain: HashMap<String, (u32, Ts)>,
    last_sweep: Option<Ts>,
    steps: u64,
}

impl Campaigns {
    /// Empty.
    pub fn new(cfg: &Config) -> Self {
        Campaigns {
            ip_owner: BoundedMap::new(cfg.campaign.max_ips),
            accounts: Vec::new(),
            account_idx: HashMap::default(),
            parent: Vec::new(),
            group_of_root: HashMap::default(),
            groups: Vec::new(),
            by_domain: HashMap::default(),
            last_sweep: None,
            steps: 0,
        }
    }

    /// Is this IP one a flagged account used within `ip_memory` before `now`?
    pub fn is_campaign_ip(&self, cfg: &Config, ip: IpAddr, now: Ts) -> bool {
        self.ip_owner
            .get(&ip)
            .is_some_and(|(_, t)| t.plus_secs(cfg.campaign.ip_memory.0) >= now)
    }

    fn idx(&mut self, account: &str) -> u32 {
        if let Some(&i) = self.account_idx.get(account) {
            return i;
        }
        let i = self.accounts.len() as u32;
        self.accounts.push(account.to_string());
        self.account_idx.insert(account.to_string(), i);
        self.parent.push(i);
        i
    }

    /// Elementary steps of correlation so far (IP index look-ups, union–find hops, members
    /// moved or listed in alerts): the measure of its linear cost, build-independent.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The campaign an account belongs to: its id and how many accounts it has.
    pub fn campaign_of(&self, account: &str) -> Option<(&str, u64)> {
        let mut i = *self.account_idx.get(account)?;
        while self.parent[i as usize] != i {
            i = self.parent[i as usize];
        }
        let g = &self.groups[*self.group_of_root.get(&i)?];
        Some((g.id.as_str(), g.size))
    }

    fn root(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            self.steps += 1;
            let p = self.parent[i as usize];
            // Path halving keeps the trees flat.
            self.parent[i as usize] = self.parent[p as usize];
            i = p;
        }
        i
    }

    /// The group of `i`, created (with `i` as its only member) when it has none.
    fn group(&mut self, i: u32, ts: Ts) -> usize {
        let r = self.root(i);
        if let Some(&g) = self.group_of_root.get(&r) {
            return g;
        }
        let id = format!(
            "campaign-{}-{}",
            ts.display_utc().replace([' ', ':'], "").replace('-', ""),
            self.groups.len() + 1
        );
        let mut g = Group {
            id,
            members: Vec::new(),
            size: 0,
            shared_ips: 0,
            domains: Vec::new(),
            first: ts,
            alerted_size: 0,
        };
        add_member(&self.accounts, &mut g, i, ts);
        self.groups.push(g);
        self.group_of_root.insert(r, self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// Put `a` and `b` in one group (`b` was flagged before, `a` now).
    fn join(&mut self, a: u32, b: u32, ts: Ts, shared: u64) -> usize {
        let gb = self.group(b, ts);
        let rb = self.root(b);
        let ra = self.root(a);
        let Some(&ga) = self.group_of_root.get(&ra) else {
            // `a` is alone: it joins b's group.
            self.parent[ra as usize] = rb;
            add_member(&self.accounts, &mut self.groups[gb], a, ts);
            self.groups[gb].shared_ips += shared;
            return gb;
        };
        if ga == gb {
            self.groups[ga].shared_ips += shared;
            return ga;
        }
        // Merge the smaller group into the larger (ties: into the older).
        let (keep, gone, rkeep, rgone) = if (self.groups[ga].size, gb) > (self.groups[gb].size, ga)
        {
            (ga, gb, ra, rb)
        } else {
            (gb, ga, rb, ra)
        };
        self.parent[rgone as usize] = rkeep;
        self.group_of_root.remove(&rgone);
        let g = std::mem::replace(
            &mut self.groups[gone],
            Group {
                id: String::new(),
                members: Vec::new(),
                size: 0,
                shared_ips: 0,
                domains: Vec::new(),
                first: ts,
                alerted_size: 0,
            },
        );
        self.steps += g.members.len() as u64;
        absorb(&mut self.groups[keep], g);
        self.groups[keep].shared_ips += shared;
        keep
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
        let memory = cfg.campaign.ip_memory.0;
        if self
            .last_sweep
            .is_none_or(|t| t.plus_secs(SWEEP_SECS) <= ts)
        {
            self.ip_owner.retain_since(ts.plus_secs(-memory));
            self.last_sweep = Some(ts);
        }
        let me = self.idx(account);
        self.steps += ips.len() as u64 + 1;
        // Shared IPs with other flagged accounts (ordered, so merges never depend on a hash).
        let mut shared: BTreeMap<u32, u64> = BTreeMap::new();
        for ip in ips {
            let slot = self.ip_owner.get_or_insert_with(ip, ts, || (me, ts));
            let (o, t) = *slot;
            if o != me && t.plus_secs(memory) >= ts {
                *shared.entry(o).or_default() += 1;
            }
            *slot = (me, ts);
        }
        let mut touched = false;
        for (o, n) in shared {
            if n >= cfg.campaign.min_shared_ips {
                self.join(me, o, ts, n);
                touched = true;
            }
        }
        // Same domain within the window: joining its latest flagged account joins its group.
        if let Some(d) = domain_of(account) {
            let w = cfg.campaign.domain_window.0;
            let prev = self.by_domain.get(d).copied();
            if let Some((o, _)) = prev.filter(|(o, t)| *o != me && t.plus_secs(w) >= ts) {
                self.join(me, o, ts, 0);
                touched = true;
            }
            match self.by_domain.get_mut(d) {
                Some(e) => *e = (me, ts),
                None => {
                    self.by_domain.insert(d.to_string(), (me, ts));
                }
            }
        }
        if !touched {
            return;
        }
        let g = self.group(me, ts);
        if let Some(a) = self.alert(g, ts) {
            out.push(a);
        }
    }

    /// The alert for group `g` when it grew enough since its last one.
    fn alert(&mut self, g: usize, ts: Ts) -> Option<Alert> {
        let grp = &mut self.groups[g];
        let n = grp.size;
        let grown = n > grp.alerted_size
            && (n <= SMALL_CAMPAIGN || n >= grp.alerted_size.saturating_mul(2));
        if n < 2 || !grown {
            return None;
        }
        grp.alerted_size = n;
        self.steps += grp.members.len() as u64;
        let grp = &self.groups[g];
        let name = |i: u32| self.accounts[i as usize].as_str();
        Some(Alert {
            ts,
            detector: Detector::Campaign,
            entity: Entity::new(EntityKind::Campaign, grp.id.clone()),
            score: (0.8 + 0.02 * n as f64).min(0.99),
            summary: format!(
                "{n} accounts hijacked together ({} shared source IPs; domains: {})",
                grp.shared_ips,
                grp.domains.join(", ")
            ),
            evidence: serde_json::to_value(CampaignEvidence {
                accounts: grp
                    .members
                    .iter()
                    .map(|(m, _)| name(*m).to_string())
                    .collect(),
                accounts_total: n,
                entities: grp
                    .members
                    .iter()
                    .map(|(m, _)| Entity::new(EntityKind::Account, name(*m)))
                    .collect(),
                joined: grp
                    .members
                    .iter()
                    .map(|(m, t)| Joined {
                        account: name(*m).to_string(),
                        at: t.rfc3339(),
                    })
                    .collect(),
                shared_ips: grp.shared_ips,
                domains: grp.domains.clone(),
                first: grp.first.rfc3339(),
            })
            .unwrap_or_default(),
        })
    }
}

/// Add account `i` to `g` (listed while there is room).
fn add_member(accounts: &[String], g: &mut Group, i: u32, ts: Ts) {
    g.size += 1;
    if g.members.len() < MAX_MEMBERS {
        g.members.push((i, ts));
    }
    if let Some(d) = domain_of(&accounts[i as usize]) {
        if g.domains.len() < MAX_DOMAINS && !g.domains.iter().any(|x| x == d) {
            g.domains.push(d.to_string());
        }
    }
}

/// Move a merged group into `keep` (the listing stays capped).
fn absorb(keep: &mut Group, gone: Group) {
    keep.size += gone.size;
    keep.shared_ips += gone.shared_ips;
    let room = MAX_MEMBERS.saturating_sub(keep.members.len());
    keep.members.extend(gone.members.into_iter().take(room));
    keep.first = keep.first.min(gone.first);
    for d in gone.domains {
        if keep.domains.len() >= MAX_DOMAINS {
            break;
        }
        if !keep.domains.contains(&d) {
            keep.domains.push(d);
        }
    }
}

/// What the alert-stream [`Correlator`] did with an alert offered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// An `auth-hijack` alert, held until its turn in `(ts, account)` order.
    Held,
    /// An `auth-hijack` alert that came after the correlator had already gone past its place
    /// (an alert later in that order waited out its hold before this one arrived): held, and
    /// correlated out of order. Counted in [`Correlator::late`].
    Late,
    /// Not an `auth-hijack` alert: nothing to correlate.
    Ignored,
}

/// An `auth-hijack` alert waiting for its turn.
#[derive(Debug)]
struct Waiting {
    /// When it arrived, on the caller's clock (ms).
    arrived_ms: u64,
    ips: Vec<IpAddr>,
}

/// Campaign correlation over an alert stream: the [`Campaigns`] logic and `[detect.campaign]`
/// config, fed with `auth-hijack` alerts (account = entity id, time = alert time, addresses =
/// the evidence's `window_ips`, else its `recent_ips`) instead of the engine's own state. For
/// the cluster, where each partition's engine sees only its own accounts (docs/SCALE.md).
///
/// The result depends on the order of the flagged accounts, so the correlator puts them in
/// `(ts, account)` order: an alert is held until it, or an alert later in that order, has waited
/// `hold_ms` on the caller's clock, and then correlated with everything before it. Alerts from
/// several sources (partitions) thus give the same campaign alerts whatever their interleaving,
/// as long as no alert arrives more than `hold_ms` after one later in the order (else it is
/// [`Arrival::Late`] and correlated out of order). One account's alerts at one time keep their
/// arrival order (they come from one partition, in its order).
#[derive(Debug)]
pub struct Correlator {
    campaigns: Campaigns,
    hold_ms: u64,
    /// `(ts, account, arrival number)` -> the alert's addresses.
    waiting: BTreeMap<(Ts, String, u64), Waiting>,
    arrivals: u64,
    /// `(ts, account)` of the last alert correlated.
    done: Option<(Ts, String)>,
    late: u64,
}

impl Correlator {
    /// Empty, holding each alert `hold_ms` (on the clock the caller passes).
    pub fn new(cfg: &Config, hold_ms: u64) -> Self {
        Correlator {
            campaigns: Campaigns::new(cfg),
            hold_ms,
            waiting: BTreeMap::new(),
            arrivals: 0,
            done: None,
            late: 0,
        }
    }

    /// Offer an alert that arrived at `now_ms`, then correlate what waited long enough
    /// (campaign alerts into `out`).
    pub fn push(&mut self, cfg: &Config, a: &Alert, now_ms: u64, out: &mut Vec<Alert>) -> Arrival {
        if a.detector != Detector::AuthHijack {
            self.release(cfg, now_ms, out);
            return Arrival::Ignored;
        }
        let account = a.entity.id.as_str();
        let late = self
            .done
            .as_ref()
            .is_some_and(|(t, acc)| (a.ts, account) < (*t, acc.as_str()));
        self.arrivals += 1;
        self.waiting.insert(
            (a.ts, account.to_string(), self.arrivals),
            Waiting {
                arrived_ms: now_ms,
                ips: hijack_ips(&a.evidence),
            },
        );
        self.release(cfg, now_ms, out);
        if late {
            self.late += 1;
            Arrival::Late
        } else {
            Arrival::Held
        }
    }

    /// Correlate, in order, every held alert up to the last one that has waited `hold_ms`.
    pub fn release(&mut self, cfg: &Config, now_ms: u64, out: &mut Vec<Alert>) {
        let due = self
            .waiting
            .iter()
            .filter(|(_, w)| w.arrived_ms.saturating_add(self.hold_ms) <= now_ms)
            .map(|(k, _)| k.clone())
            .next_back();
        if let Some(last) = due {
            self.correlate_until(cfg, Some(&last), out);
        }
    }

    /// Correlate everything held (end of input).
    pub fn flush(&mut self, cfg: &Config, out: &mut Vec<Alert>) {
        self.correlate_until(cfg, None, out);
    }

    fn correlate_until(
        &mut self,
        cfg: &Config,
        last: Option<&(Ts, String, u64)>,
        out: &mut Vec<Alert>,
    ) {
        while let Some(e) = self.waiting.first_entry() {
            if last.is_some_and(|l| e.key() > l) {
                break;
            }
            let ((ts, account, _), w) = e.remove_entry();
            self.campaigns.flagged(cfg, ts, &account, &w.ips, out);
            self.done = Some((ts, account));
        }
    }

    /// Alerts held now.
    pub fn held(&self) -> usize {
        self.waiting.len()
    }

    /// `auth-hijack` alerts offered so far: the last one offered is number `arrivals()` (the
    /// numbers [`Correlator::held_arrivals`] lists). Counts from 0 again after a restore.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// The arrival numbers of the alerts held now, in their `(ts, account)` order: an alert
    /// offered and no longer listed here has been correlated.
    pub fn held_arrivals(&self) -> impl Iterator<Item = u64> + '_ {
        self.waiting.keys().map(|k| k.2)
    }

    /// What the correlator has correlated, as a snapshot (the engine snapshot's format and
    /// version, [`crate::snapshot`]): the campaigns, the place in the order reached and the
    /// count of late alerts. The alerts it holds are not in it: whoever keeps the snapshot
    /// keeps them and offers them again after [`Correlator::restore`].
    pub fn snapshot(&self) -> Result<Vec<u8>, crate::snapshot::SnapshotError> {
        #[derive(serde::Serialize)]
        struct Ref<'a> {
            campaigns: &'a Campaigns,
            done: &'a Option<(Ts, String)>,
            late: u64,
        }
        crate::snapshot::serialize(&Ref {
            campaigns: &self.campaigns,
            done: &self.done,
            late: self.late,
        })?
        .compress()
    }

    /// A correlator holding each alert `hold_ms` that has correlated what `bytes` (a
    /// [`Correlator::snapshot`]) had, holding nothing.
    pub fn restore(hold_ms: u64, bytes: &[u8]) -> Result<Self, crate::snapshot::SnapshotError> {
        #[derive(serde::Deserialize)]
        struct Owned {
            campaigns: Campaigns,
            done: Option<(Ts, String)>,
            late: u64,
        }
        let s: Owned = crate::snapshot::decode(bytes)?;
        Ok(Correlator {
            campaigns: s.campaigns,
            hold_ms,
            waiting: BTreeMap::new(),
            arrivals: 0,
            done: s.done,
            late: s.late,
        })
    }

    /// Alerts that arrived after their place in the order was passed (correlated out of order).
    pub fn late(&self) -> u64 {
        self.late
    }
}

/// The source addresses an `auth-hijack` alert lists: its evidence's `window_ips` (every
/// address of the window), else (an alert from before that field) its latest `recent_ips`.
/// Unparsable entries are skipped.
pub fn hijack_ips(evidence: &serde_json::Value) -> Vec<IpAddr> {
    let parse = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
    match evidence["window_ips"].as_array() {
        Some(all) if !all.is_empty() => all.iter().filter_map(parse).collect(),
        _ => evidence["recent_ips"]
            .as_array()
            .map(|r| r.iter().filter_map(|s| parse(&s["ip"])).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn shared_ips_and_domains_join_transitively() {
        let cfg = Config::default();
        let mut c = Campaigns::new(&cfg);
        let mut out = Vec::new();
        let t = Ts::from_secs(1_000_000);
        c.flagged(&cfg, t, "a@x.example", &[ip(1), ip(2)], &mut out);
        assert!(out.is_empty());
        c.flagged(
            &cfg,
            t.plus_secs(10),
            "b@y.example",
            &[ip(1), ip(2), ip(3)],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evidence["accounts_total"], 2);
        // c shares the domain of a: one campaign of three.
        c.flagged(&cfg, t.plus_secs(20), "c@x.example", &[ip(9)], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].evidence["accounts_total"], 3);
        assert_eq!(out[1].entity, out[0].entity);
        // Outside the domain window and with no shared IP: a campaign of its own, no alert.
        c.flagged(
            &cfg,
            t.plus_secs(90_000),
            "d@x.example",
            &[ip(50)],
            &mut out,
        );
        assert_eq!(out.len(), 2);
        // Remembered IPs expire after ip_memory.
        assert!(!c.is_campaign_ip(&cfg, ip(1), t.plus_secs(200_000)));
        assert!(c.is_campaign_ip(&cfg, ip(50), t.plus_secs(90_001)));
    }

    fn hijack(secs: i64, account: &str, ips: &[u32]) -> Alert {
        Alert {
            ts: Ts::from_secs(1_000_000 + secs),
            detector: Detector::AuthHijack,
            entity: Entity::new(EntityKind::Account, account),
            score: 0.9,
            summary: String::new(),
            evidence: serde_json::json!({
                "window_ips": ips.iter().map(|i| ip(*i).to_string()).collect::<Vec<_>>(),
            }),
        }
    }

    /// What the correlator raises for `alerts` given all at once (the reference order).
    fn at_once(cfg: &Config, alerts: &[Alert]) -> Vec<Alert> {
        let mut c = Correlator::new(cfg, 1000);
        let mut out = Vec::new();
        for a in alerts {
            c.push(cfg, a, 0, &mut out);
        }
        assert!(out.is_empty(), "nothing before its hold");
        c.flush(cfg, &mut out);
        out
    }

    fn json(v: &[Alert]) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn accounts_of_one_domain_from_two_partitions_form_one_campaign() {
        let cfg = Config::default();
        // Partition 0 flagged a@x, partition 1 flagged b@x ten minutes later: each engine alone
        // has one flagged account, the stream has both.
        let p0 = [hijack(0, "a@x.example", &[1, 2])];
        let p1 = [hijack(600, "b@x.example", &[7, 8])];
        for p in [&p0, &p1] {
            let mut own = Campaigns::new(&cfg);
            let mut out = Vec::new();
            let ips = hijack_ips(&p[0].evidence);
            own.flagged(&cfg, p[0].ts, &p[0].entity.id, &ips, &mut out);
            assert!(out.is_empty(), "one partition alone raises no campaign");
        }
        let mut c = Correlator::new(&cfg, 5_000);
        let mut out = Vec::new();
        // Partition 1's alert reaches the stream first.
        assert_eq!(c.push(&cfg, &p1[0], 100, &mut out), Arrival::Held);
        assert_eq!(c.push(&cfg, &p0[0], 900, &mut out), Arrival::Held);
        assert!(out.is_empty(), "held");
        c.release(&cfg, 5_099, &mut out);
        assert!(out.is_empty(), "the first arrival waits its whole hold");
        c.release(&cfg, 5_100, &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].detector, Detector::Campaign);
        assert_eq!(out[0].ts, p1[0].ts);
        let ev: CampaignEvidence = serde_json::from_value(out[0].evidence.clone()).unwrap();
        assert_eq!(ev.accounts, ["a@x.example", "b@x.example"]);
        assert_eq!(ev.domains, ["x.example"]);
        assert_eq!(c.held(), 0);
        assert_eq!(c.late(), 0);
        // A hijack alert's addresses: window_ips, else the older evidence's recent_ips.
        let old = serde_json::json!({"recent_ips": [{"ip": "10.0.0.5"}, {"ip": "bogus"}]});
        assert_eq!(hijack_ips(&old), [ip(5)]);
    }

    /// Three partitions' alerts: shared bots across domains, domains across partitions, a
    /// campaign that grows past `SMALL_CAMPAIGN`, and ties in time.
    fn three_partitions() -> Vec<Vec<Alert>> {
        let mut parts = vec![Vec::new(), Vec::new(), Vec::new()];
        for k in 0..30u32 {
            let secs = i64::from(k / 2) * 120; // two alerts at each time
            let dom = ["x", "y", "z"][(k % 3) as usize];
            let account = format!("u{k}@{dom}.example");
            let bots = [100 + k % 7, 101 + k % 7, 200 + k];
            parts[(k as usize * 7 + 1) % 3].push(hijack(secs, &account, &bots));
        }
        parts
    }

    /// Arrivals: each partition's alerts in its order, at event time (ms) plus its delay.
    fn arrivals(parts: &[Vec<Alert>], delays_ms: &[u64]) -> Vec<(u64, Alert)> {
        let mut v: Vec<(u64, usize, usize, Alert)> = Vec::new();
        for (p, alerts) in parts.iter().enumerate() {
            for (i, a) in alerts.iter().enumerate() {
                let at = (a.ts.0 / 1000 - 1_000_000_000) as u64 + delays_ms[p];
                v.push((at, p, i, a.clone()));
            }
        }
        v.sort_by_key(|(at, p, i, _)| (*at, *p, *i));
        v.into_iter().map(|(at, _, _, a)| (at, a)).collect()
    }

    fn streamed(cfg: &Config, hold_ms: u64, arr: &[(u64, Alert)]) -> (Vec<Alert>, u64) {
        let mut c = Correlator::new(cfg, hold_ms);
        let mut out = Vec::new();
        for (at, a) in arr {
            c.push(cfg, a, *at, &mut out);
            // A timer between arrivals.
            c.release(cfg, at + 1, &mut out);
        }
        c.release(cfg, u64::MAX, &mut out);
        assert_eq!(c.held(), 0);
        (out, c.late())
    }

    #[test]
    fn interleavings_within_the_hold_give_the_same_campaign_alerts() {
        let cfg = Config::default();
        let parts = three_partitions();
        let mut all: Vec<Alert> = parts.concat();
        all.sort_by(|a, b| (a.ts, &a.entity.id).cmp(&(b.ts, &b.entity.id)));
        let want = at_once(&cfg, &all);
        assert!(want.len() >= 3, "{}", want.len());
        let hold = 60_000;
        for delays in [
            [0, 0, 0],
            [0, 59_000, 30_000],
            [59_999, 0, 1],
            [20_000, 40_000, 0],
        ] {
            let (got, late) = streamed(&cfg, hold, &arrivals(&parts, &delays));
            assert_eq!(late, 0, "{delays:?}");
            assert_eq!(json(&got), json(&want), "{delays:?}");
        }
        // A partition later than the hold: its alerts are late and the result differs.
        let (got, late) = streamed(&cfg, hold, &arrivals(&parts, &[0, 400_000, 0]));
        assert!(late > 0);
        assert_ne!(json(&got), json(&want));
    }

    /// A correlator stopped anywhere (its snapshot and the alerts it held kept, as the cluster
    /// sink keeps them in its store) and restored, its held alerts offered again at the
    /// restart, raises the same campaign alerts as one never stopped.
    #[test]
    fn a_restored_correlator_goes_on_as_if_never_stopped() {
        let cfg = Config::default();
        let parts = three_partitions();
        let arr = arrivals(&parts, &[0, 20_000, 40_000]);
        let hold = 60_000;
        let (want, _) = streamed(&cfg, hold, &arr);
        assert!(want.len() >= 3, "{}", want.len());
        for cut in [1, arr.len() / 3, arr.len() / 2, arr.len() - 1] {
            let mut c = Correlator::new(&cfg, hold);
            let mut out = Vec::new();
            let mut offered: Vec<(u64, &Alert)> = Vec::new();
            for (at, a) in &arr[..cut] {
                c.push(&cfg, a, *at, &mut out);
                offered.push((c.arrivals(), a));
                c.release(&cfg, at + 1, &mut out);
            }
            let held: Vec<u64> = c.held_arrivals().collect();
            assert!(
                !held.is_empty(),
                "cut {cut}: something held across the restart"
            );
            let kept: Vec<&Alert> = offered
                .iter()
                .filter(|(n, _)| held.contains(n))
                .map(|(_, a)| *a)
                .collect();
            let snap = c.snapshot().unwrap();
            drop(c);
            let mut r = Correlator::restore(hold, &snap).unwrap();
            assert_eq!(r.held(), 0);
            let restart = arr[cut - 1].0 + 1;
            for a in kept {
                assert_eq!(r.push(&cfg, a, restart, &mut out), Arrival::Held);
            }
            for (at, a) in &arr[cut..] {
                r.push(&cfg, a, *at, &mut out);
                r.release(&cfg, at + 1, &mut out);
            }
            r.release(&cfg, u64::MAX, &mut out);
            assert_eq!(r.late(), 0, "cut {cut}");
            assert_eq!(json(&out), json(&want), "cut {cut}");
        }
        // A snapshot of another version, or garbage, is refused.
        assert!(Correlator::restore(hold, b"garbage").is_err());
    }
}
