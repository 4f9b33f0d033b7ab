//! Population parameters drawn per seed from documented ranges (docs/SIMULATION.md
//! "Parameters drawn per seed", grounded on /work/shared TRAFFIC-FACTS §1–§5), so the
//! detectors are not tuned on one fixed world. Each range is a named constant `(low, high)`;
//! `draw` picks one value per seed (uniform, or log-uniform where the range spans decades).

use crate::rng::Rng;

/// Share of a mailing list's subscribers whose delivery fails on each post (persistent dead
/// set). TRAFFIC-FACTS §1: list servers 2–15% failures per post (Clayton "~10% fail"; Mailman
/// keeps dead addresses ≥ 5 days).
pub const LIST_FAIL: (f64, f64) = (0.02, 0.15);
/// Subscribers of one list (log-uniform). Our own idea (no published distribution).
pub const LIST_SUBS: (f64, f64) = (50.0, 2000.0);
/// Posts per list and day. Our own idea.
pub const LIST_POSTS_PER_DAY: (f64, f64) = (0.5, 8.0);
/// Newsletter failures per campaign: hard + soft bounce 0.2–3.3% (Mailchimp) up to 7%
/// for transactional lists (SocketLabs). TRAFFIC-FACTS §1.
pub const NEWS_FAIL: (f64, f64) = (0.002, 0.07);
/// Newsletter recipients (log-uniform). Our own idea.
pub const NEWS_SUBS: (f64, f64) = (300.0, 8000.0);
/// Failure share of ordinary-looking business mail (customer MTAs, business NATs, web sites):
/// TRAFFIC-FACTS §1, ordinary users 0–3% (Foster, derived ≈ 2%), heavy senders up to 9%.
pub const BIZ_FAIL: (f64, f64) = (0.0, 0.05);
/// Customer mail servers on ISP lines (HELO = own domain, port 25, no AUTH) per 10,000
/// accounts. Our own idea.
pub const MTA_PER_10K: (f64, f64) = (2.0, 10.0);
/// Messages per customer mail server and day (log-uniform): a business of 5–50 users at
/// 10–60 messages each (TRAFFIC-FACTS §7, Radicati).
pub const MTA_MSGS_PER_DAY: (f64, f64) = (30.0, 1500.0);
/// Business NATs relaying on port 25 (many PCs, many HELOs, one address) per 10,000 accounts.
/// Our own idea.
pub const NAT_PER_10K: (f64, f64) = (2.0, 10.0);
/// PCs behind one business NAT. Our own idea (small offices).
pub const NAT_PCS: (f64, f64) = (5.0, 60.0);
/// Messages per PC and day (log-uniform): business users send 10–60/day (TRAFFIC-FACTS §7).
pub const NAT_MSGS_PER_PC: (f64, f64) = (3.0, 40.0);
/// Shared web-hosting servers on the ISP's network per 10,000 accounts. Our own idea.
pub const HOSTING_PER_10K: (f64, f64) = (0.5, 3.0);
/// Clean sites per hosting server (log-uniform): TRAFFIC-FACTS §5, "10¹–10³ clean sites".
pub const HOSTING_SITES: (f64, f64) = (10.0, 600.0);
/// Messages per site and day (log-uniform): contact forms, shop orders. Our own idea.
pub const SITE_MSGS_PER_DAY: (f64, f64) = (0.3, 20.0);
/// Alias / `.forward` accounts that forward to an external mailbox, per 10,000 accounts.
/// Our own idea.
pub const FWD_PER_10K: (f64, f64) = (5.0, 40.0);
/// Forwarded messages per alias and day (log-uniform). Our own idea.
pub const FWD_MSGS_PER_DAY: (f64, f64) = (3.0, 80.0);
/// Share of forwarded mail the external mailbox rejects: TRAFFIC-FACTS §6 ties it to the
/// inbound spam share (40–95% unwanted before filtering); after a local filter much less gets
/// through — unsourced, so swept wide.
pub const FWD_REJECT: (f64, f64) = (0.03, 0.4);
/// Share of accounts that submit part of their mail through webmail (one internal address for
/// all of them). Our own idea.
pub const WEBMAIL_SHARE: (f64, f64) = (0.05, 0.4);
/// Share of accounts with a device that keeps a stale password: TRAFFIC-FACTS §2 "prevalence
/// unsourced: sweep it".
pub const STALE_SHARE: (f64, f64) = (0.002, 0.02);
/// Minutes between a stale device's failed attempts: TRAFFIC-FACTS §2 (Thunderbird polls every
/// 10 min, iOS every 15/30/60).
pub const STALE_MINUTES: (f64, f64) = (10.0, 60.0);
/// Hours one VPN session keeps its exit (log-uniform). TRAFFIC-FACTS §2: "exit per session",
/// length unsourced.
pub const VPN_SESSION_HOURS: (f64, f64) = (0.5, 8.0);
/// Failed background logins per day on the whole server (log-uniform): TRAFFIC-FACTS §3,
/// 10²–10⁴ per day.
pub const BG_FAILS_PER_DAY: (f64, f64) = (300.0, 10_000.0);
/// Background guessing campaigns running at once. Our own idea.
pub const BG_CAMPAIGNS: (f64, f64) = (1.0, 5.0);
/// Addresses per background campaign (log-uniform): TRAFFIC-FACTS §3, 10¹–10³ IPs, corpus 37
/// in one /24 and 152 spread.
pub const BG_IPS: (f64, f64) = (10.0, 600.0);
/// Share of guessed names that are real accounts: TRAFFIC-FACTS §3, 90–99% non-existent.
pub const BG_REAL_SHARE: (f64, f64) = (0.01, 0.10);
/// Share of hijacks whose sources the geo data cannot place or that sit in the home country
/// (domestic botnet, issue 9 class 8). Our own idea; swept.
pub const HIJACK_NOGEO_SHARE: (f64, f64) = (0.1, 0.4);
/// Spam messages of one exploited web site (log-uniform): TRAFFIC-FACTS §5, 10²–10⁴.
pub const SITE_SPAM: (f64, f64) = (200.0, 10_000.0);
/// Hours an exploited site sends (log-uniform): TRAFFIC-FACTS §5, 1–24 h.
pub const SITE_SPAM_HOURS: (f64, f64) = (1.0, 24.0);

/// One seed's draw: (low, high) pairs are sub-ranges each entity draws inside.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// This seed's sub-range of [`LIST_FAIL`].
    pub list_fail: (f64, f64),
    /// This seed's sub-range of [`LIST_SUBS`].
    pub list_subs: (f64, f64),
    /// This seed's value in [`LIST_POSTS_PER_DAY`].
    pub list_posts: f64,
    /// This seed's sub-range of [`NEWS_FAIL`].
    pub news_fail: (f64, f64),
    /// This seed's sub-range of [`NEWS_SUBS`].
    pub news_subs: (f64, f64),
    /// This seed's value in [`MTA_PER_10K`].
    pub mta_per_10k: f64,
    /// This seed's sub-range of [`MTA_MSGS_PER_DAY`].
    pub mta_msgs: (f64, f64),
    /// This seed's value in [`NAT_PER_10K`].
    pub nat_per_10k: f64,
    /// This seed's sub-range of [`NAT_PCS`].
    pub nat_pcs: (f64, f64),
    /// This seed's sub-range of [`NAT_MSGS_PER_PC`].
    pub nat_msgs_per_pc: (f64, f64),
    /// This seed's sub-range of [`BIZ_FAIL`].
    pub biz_fail: (f64, f64),
    /// This seed's value in [`HOSTING_PER_10K`].
    pub hosting_per_10k: f64,
    /// This seed's sub-range of [`HOSTING_SITES`].
    pub hosting_sites: (f64, f64),
    /// This seed's sub-range of [`SITE_MSGS_PER_DAY`].
    pub site_msgs: (f64, f64),
    /// This seed's value in [`FWD_PER_10K`].
    pub fwd_per_10k: f64,
    /// This seed's sub-range of [`FWD_MSGS_PER_DAY`].
    pub fwd_msgs: (f64, f64),
    /// This seed's value in [`FWD_REJECT`].
    pub fwd_reject: f64,
    /// This seed's value in [`WEBMAIL_SHARE`].
    pub webmail_share: f64,
    /// This seed's value in [`STALE_SHARE`].
    pub stale_share: f64,
    /// This seed's sub-range of [`STALE_MINUTES`].
    pub stale_minutes: (f64, f64),
    /// This seed's value in [`VPN_SESSION_HOURS`].
    pub vpn_session_hours: f64,
    /// This seed's value in [`BG_FAILS_PER_DAY`].
    pub bg_fails_per_day: f64,
    /// This seed's value in [`BG_CAMPAIGNS`].
    pub bg_campaigns: u64,
    /// This seed's sub-range of [`BG_IPS`].
    pub bg_ips: (f64, f64),
    /// This seed's value in [`BG_REAL_SHARE`].
    pub bg_real_share: f64,
    /// This seed's value in [`HIJACK_NOGEO_SHARE`].
    pub hijack_nogeo_share: f64,
    /// This seed's sub-range of [`SITE_SPAM`].
    pub site_spam: (f64, f64),
    /// This seed's sub-range of [`SITE_SPAM_HOURS`].
    pub site_spam_hours: (f64, f64),
}

fn uni(r: &mut Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * r.f64()
}

fn log_uni(r: &mut Rng, (lo, hi): (f64, f64)) -> f64 {
    let (a, b) = (lo.max(1e-9).ln(), hi.max(1e-9).ln());
    (a + (b - a) * r.f64()).exp()
}

/// A sub-range of `range` for this seed: each seed sees its own world, and entities within
/// it still differ (each population entity draws inside the sub-range).
fn sub(r: &mut Rng, range: (f64, f64), log: bool) -> (f64, f64) {
    let mut x = if log {
        log_uni(r, range)
    } else {
        uni(r, range)
    };
    let mut y = if log {
        log_uni(r, range)
    } else {
        uni(r, range)
    };
    if y < x {
        std::mem::swap(&mut x, &mut y);
    }
    (x, y)
}

impl Params {
    /// The parameters of `seed`.
    pub fn draw(seed: u64) -> Params {
        let mut r = Rng::keyed(&[seed, 0x9a2a]);
        Params {
            list_fail: sub(&mut r, LIST_FAIL, false),
            list_subs: sub(&mut r, LIST_SUBS, true),
            list_posts: log_uni(&mut r, LIST_POSTS_PER_DAY),
            news_fail: sub(&mut r, NEWS_FAIL, true),
            news_subs: sub(&mut r, NEWS_SUBS, true),
            mta_per_10k: uni(&mut r, MTA_PER_10K),
            mta_msgs: sub(&mut r, MTA_MSGS_PER_DAY, true),
            nat_per_10k: uni(&mut r, NAT_PER_10K),
            nat_pcs: sub(&mut r, NAT_PCS, false),
            nat_msgs_per_pc: sub(&mut r, NAT_MSGS_PER_PC, true),
            biz_fail: sub(&mut r, BIZ_FAIL, false),
            hosting_per_10k: uni(&mut r, HOSTING_PER_10K),
            hosting_sites: sub(&mut r, HOSTING_SITES, true),
            site_msgs: sub(&mut r, SITE_MSGS_PER_DAY, true),
            fwd_per_10k: uni(&mut r, FWD_PER_10K),
            fwd_msgs: sub(&mut r, FWD_MSGS_PER_DAY, true),
            fwd_reject: uni(&mut r, FWD_REJECT),
            webmail_share: uni(&mut r, WEBMAIL_SHARE),
            stale_share: log_uni(&mut r, STALE_SHARE),
            stale_minutes: sub(&mut r, STALE_MINUTES, false),
            vpn_session_hours: log_uni(&mut r, VPN_SESSION_HOURS),
            bg_fails_per_day: log_uni(&mut r, BG_FAILS_PER_DAY),
            bg_campaigns: uni(&mut r, BG_CAMPAIGNS).round() as u64,
            bg_ips: sub(&mut r, BG_IPS, true),
            bg_real_share: uni(&mut r, BG_REAL_SHARE),
            hijack_nogeo_share: uni(&mut r, HIJACK_NOGEO_SHARE),
            site_spam: sub(&mut r, SITE_SPAM, true),
            site_spam_hours: sub(&mut r, SITE_SPAM_HOURS, true),
        }
    }

    /// A value inside `range` for one entity (uniform).
    pub fn pick(r: &mut Rng, range: (f64, f64)) -> f64 {
        uni(r, range)
    }

    /// A value inside `range` for one entity (log-uniform).
    pub fn pick_log(r: &mut Rng, range: (f64, f64)) -> f64 {
        log_uni(r, range)
    }
}

/// Internet hosts (or /24 clusters of them) sending spam to our MX, per 10,000 accounts and day.
/// Our own guess: TRAFFIC-FACTS §6 has 40–95% of inbound unwanted and "dark traffic" 64–83% of
/// enterprise inbound, but no count of sources per mailbox.
pub const IN_SOURCES_PER_10K_DAY: (f64, f64) = (3.0, 15.0);
/// Share of those sources that are a cluster of hosts in one /24 (labelled as the network):
/// TRAFFIC-FACTS §6, the corpus's dictionary attack came from 6 IPs of one /24 and snowshoe
/// spam uses blocks of 8–16 IPs; the share is our own guess.
pub const IN_CLUSTER_SHARE: (f64, f64) = (0.2, 0.5);
/// Hosts of one cluster: TRAFFIC-FACTS §6 (6 IPs in the corpus, 8–16 per snowshoe block).
pub const IN_CLUSTER_HOSTS: (f64, f64) = (3.0, 16.0);
/// Recipients one source tries over its run (log-uniform): TRAFFIC-FACTS §6, dictionary bursts
/// of 10²–10³ an hour, 1,104 in 9 h in the corpus; the low end (a few dozen) is our own guess.
pub const IN_SOURCE_RCPTS: (f64, f64) = (40.0, 2000.0);
/// Hours one source sends (log-uniform). Our own guess (the corpus's attack lasted 9 h).
pub const IN_SOURCE_HOURS: (f64, f64) = (0.5, 12.0);
/// Share of a source's recipients that exist (harvested real addresses); the rest are stale
/// (former customers) or invented. Our own guess: TRAFFIC-FACTS §6 "NOT FOUND: share of inbound
/// RCPTs to unknown users".
pub const IN_SOURCE_REAL: (f64, f64) = (0.05, 0.4);
/// Forwarding partners (a university or another provider relaying our users' mail) per 10,000
/// accounts. Our own guess.
pub const IN_PARTNERS_PER_10K: (f64, f64) = (0.5, 3.0);
/// Messages one forwarding partner relays to us per day (log-uniform). Our own guess.
pub const IN_PARTNER_MSGS: (f64, f64) = (30.0, 1000.0);
/// Share of a partner's recipients that no longer exist (a user left us but the forward
/// stayed). Our own guess.
pub const IN_PARTNER_UNKNOWN: (f64, f64) = (0.0, 0.05);
/// Messages from the big providers' outbound servers per account and day (log-uniform): a part
/// of the 30–150 a business user receives (TRAFFIC-FACTS §7, Radicati), scaled down to keep runs
/// small; our own guess.
pub const IN_PROVIDER_MSGS_PER_ACCOUNT: (f64, f64) = (0.3, 2.0);
/// Share of big-provider recipients unknown here (typos, departed users): like the outgoing
/// typo rate (TRAFFIC-FACTS §1, ordinary users 0–3%).
pub const IN_PROVIDER_UNKNOWN: (f64, f64) = (0.002, 0.03);
/// External bulk senders (an ESP's servers sending newsletters to our users) per 10,000
/// accounts. Our own guess.
pub const IN_ESP_PER_10K: (f64, f64) = (1.0, 5.0);
/// Messages per ESP server and day to us (log-uniform). Our own guess.
pub const IN_ESP_MSGS: (f64, f64) = (50.0, 2000.0);
/// Share of an ESP's recipients here that are dead: TRAFFIC-FACTS §1, list failures 2–15% per post.
pub const IN_ESP_UNKNOWN: (f64, f64) = (0.02, 0.15);
/// Small external mail servers (companies, clubs) writing to our users, per 10,000 accounts.
/// Our own guess.
pub const IN_SMALL_PER_10K: (f64, f64) = (20.0, 100.0);
/// Messages per small server and day (log-uniform). Our own guess.
pub const IN_SMALL_MSGS: (f64, f64) = (1.0, 30.0);
/// Share of small servers whose HELO is their bare mail domain (= the MAIL FROM domain of
/// their mail): legitimate, and the reason a HELO equal to the sender domain alone proves
/// nothing. Our own guess.
pub const IN_SMALL_BARE_HELO: (f64, f64) = (0.05, 0.3);
/// Infected customer machines sending straight to our MX (looped back), per 10,000 accounts and
/// day. Our own guess (half the rate of `infected_per_day` at 20,000 accounts).
pub const IN_LOOPED_PER_10K_DAY: (f64, f64) = (0.1, 0.5);

/// Share of spam the MX's spam filter judges spam (its catch rate). Our own guess, in the range
/// public filter tests report for tuned SpamAssassin/rspamd set-ups (90-99%), widened down.
pub const IN_FILTER_CATCH: (f64, f64) = (0.85, 0.99);
/// Share of ham the filter judges spam (false positives). Our own guess (0.1-2%).
pub const IN_FILTER_FALSE_POSITIVE: (f64, f64) = (0.001, 0.02);
/// Spam sources visible only through the filter (harvested valid addresses, a proper HELO and
/// name, one to three recipients a message), per 10,000 accounts and day. Our own guess, a
/// fraction of `IN_SOURCES_PER_10K_DAY`.
pub const IN_FILTER_SOURCES_PER_10K_DAY: (f64, f64) = (1.0, 5.0);
/// Messages one such source sends us over its run (log-uniform). Our own guess.
pub const IN_FILTER_SOURCE_MSGS: (f64, f64) = (20.0, 400.0);
/// Share of a forwarding partner's mail that is spam (its users' own spam, forwarded). Our
/// own guess: "mostly ham with some spam".
pub const IN_PARTNER_SPAM: (f64, f64) = (0.05, 0.5);
/// Our users one forwarding partner forwards to us (their mail goes to them alone). Our own
/// guess.
pub const IN_PARTNER_USERS: (f64, f64) = (1.0, 12.0);
/// Share of forwarding partners that rewrite senders with SRS. Our own guess.
pub const IN_PARTNER_SRS: (f64, f64) = (0.3, 0.7);
/// Share of a big provider's mail to us that is spam (accounts abused on the provider). Our
/// own guess.
pub const IN_PROVIDER_SPAM: (f64, f64) = (0.005, 0.08);
/// Share of an external bulk sender's mail that is spam. Our own guess.
pub const IN_ESP_SPAM: (f64, f64) = (0.0, 0.2);
/// Share of a small external server's mail that is spam. Our own guess.
pub const IN_SMALL_SPAM: f64 = 0.01;

/// One seed's draw of the incoming-mail populations (a stream of its own, so the outgoing
/// populations of a seed are the same with or without them).
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingParams {
    /// This seed's value in [`IN_SOURCES_PER_10K_DAY`].
    pub sources_per_10k_day: f64,
    /// This seed's value in [`IN_CLUSTER_SHARE`].
    pub cluster_share: f64,
    /// This seed's sub-range of [`IN_CLUSTER_HOSTS`].
    pub cluster_hosts: (f64, f64),
    /// This seed's sub-range of [`IN_SOURCE_RCPTS`].
    pub source_rcpts: (f64, f64),
    /// This seed's sub-range of [`IN_SOURCE_HOURS`].
    pub source_hours: (f64, f64),
    /// This seed's sub-range of [`IN_SOURCE_REAL`].
    pub source_real: (f64, f64),
    /// This seed's value in [`IN_PARTNERS_PER_10K`].
    pub partners_per_10k: f64,
    /// This seed's sub-range of [`IN_PARTNER_MSGS`].
    pub partner_msgs: (f64, f64),
    /// This seed's sub-range of [`IN_PARTNER_UNKNOWN`].
    pub partner_unknown: (f64, f64),
    /// This seed's value in [`IN_PROVIDER_MSGS_PER_ACCOUNT`].
    pub provider_msgs_per_account: f64,
    /// This seed's sub-range of [`IN_PROVIDER_UNKNOWN`].
    pub provider_unknown: (f64, f64),
    /// This seed's value in [`IN_ESP_PER_10K`].
    pub esp_per_10k: f64,
    /// This seed's sub-range of [`IN_ESP_MSGS`].
    pub esp_msgs: (f64, f64),
    /// This seed's sub-range of [`IN_ESP_UNKNOWN`].
    pub esp_unknown: (f64, f64),
    /// This seed's value in [`IN_SMALL_PER_10K`].
    pub small_per_10k: f64,
    /// This seed's sub-range of [`IN_SMALL_MSGS`].
    pub small_msgs: (f64, f64),
    /// This seed's value in [`IN_SMALL_BARE_HELO`].
    pub small_bare_helo: f64,
    /// This seed's value in [`IN_LOOPED_PER_10K_DAY`].
    pub looped_per_10k_day: f64,
    /// The MX's spam filter this seed: rspamd or spamd (even chance), [`IN_FILTER_CATCH`],
    /// [`IN_FILTER_FALSE_POSITIVE`].
    pub filter: crate::render::SimFilter,
    /// This seed's value in [`IN_FILTER_SOURCES_PER_10K_DAY`].
    pub filter_sources_per_10k_day: f64,
    /// This seed's sub-range of [`IN_FILTER_SOURCE_MSGS`].
    pub filter_source_msgs: (f64, f64),
    /// This seed's sub-range of [`IN_PARTNER_SPAM`].
    pub partner_spam: (f64, f64),
    /// This seed's sub-range of [`IN_PARTNER_USERS`].
    pub partner_users: (f64, f64),
    /// This seed's value in [`IN_PARTNER_SRS`].
    pub partner_srs: f64,
    /// This seed's sub-range of [`IN_PROVIDER_SPAM`].
    pub provider_spam: (f64, f64),
    /// This seed's sub-range of [`IN_ESP_SPAM`].
    pub esp_spam: (f64, f64),
}

impl IncomingParams {
    /// The incoming parameters of `seed`.
    pub fn draw(seed: u64) -> IncomingParams {
        let mut r = Rng::keyed(&[seed, 0x1c0e]);
        let mut fr = Rng::keyed(&[seed, 0x1cf2]);
        IncomingParams {
            sources_per_10k_day: uni(&mut r, IN_SOURCES_PER_10K_DAY),
            cluster_share: uni(&mut r, IN_CLUSTER_SHARE),
            cluster_hosts: sub(&mut r, IN_CLUSTER_HOSTS, false),
            source_rcpts: sub(&mut r, IN_SOURCE_RCPTS, true),
            source_hours: sub(&mut r, IN_SOURCE_HOURS, true),
            source_real: sub(&mut r, IN_SOURCE_REAL, false),
            partners_per_10k: uni(&mut r, IN_PARTNERS_PER_10K),
            partner_msgs: sub(&mut r, IN_PARTNER_MSGS, true),
            partner_unknown: sub(&mut r, IN_PARTNER_UNKNOWN, false),
            provider_msgs_per_account: log_uni(&mut r, IN_PROVIDER_MSGS_PER_ACCOUNT),
            provider_unknown: sub(&mut r, IN_PROVIDER_UNKNOWN, true),
            esp_per_10k: uni(&mut r, IN_ESP_PER_10K),
            esp_msgs: sub(&mut r, IN_ESP_MSGS, true),
            esp_unknown: sub(&mut r, IN_ESP_UNKNOWN, false),
            small_per_10k: uni(&mut r, IN_SMALL_PER_10K),
            small_msgs: sub(&mut r, IN_SMALL_MSGS, true),
            small_bare_helo: uni(&mut r, IN_SMALL_BARE_HELO),
            looped_per_10k_day: uni(&mut r, IN_LOOPED_PER_10K_DAY),
            // A stream of its own: the draws above stay what they were before the filter.
            filter: {
                let mut f = Rng::keyed(&[seed, 0x1cf1]);
                crate::render::SimFilter {
                    kind: if f.chance(0.5) {
                        crate::render::FilterKind::Rspamd
                    } else {
                        crate::render::FilterKind::Spamd
                    },
                    catch: uni(&mut f, IN_FILTER_CATCH),
                    false_positive: uni(&mut f, IN_FILTER_FALSE_POSITIVE),
                }
            },
            filter_sources_per_10k_day: uni(&mut fr, IN_FILTER_SOURCES_PER_10K_DAY),
            filter_source_msgs: sub(&mut fr, IN_FILTER_SOURCE_MSGS, true),
            partner_spam: sub(&mut fr, IN_PARTNER_SPAM, false),
            partner_users: sub(&mut fr, IN_PARTNER_USERS, false),
            partner_srs: uni(&mut fr, IN_PARTNER_SRS),
            provider_spam: sub(&mut fr, IN_PROVIDER_SPAM, true),
            esp_spam: sub(&mut fr, IN_ESP_SPAM, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range_and_differ_by_seed() {
        let a = Params::draw(1);
        assert_eq!(a, Params::draw(1));
        assert_ne!(a, Params::draw(2));
        for s in 0..200 {
            let p = Params::draw(s);
            assert!(p.list_fail.0 >= LIST_FAIL.0 && p.list_fail.1 <= LIST_FAIL.1);
            assert!(p.list_fail.0 <= p.list_fail.1);
            assert!(p.bg_ips.0 >= BG_IPS.0 * 0.999 && p.bg_ips.1 <= BG_IPS.1 * 1.001);
            assert!((1..=5).contains(&p.bg_campaigns));
            assert!(
                p.stale_share >= STALE_SHARE.0 * 0.999 && p.stale_share <= STALE_SHARE.1 * 1.001
            );
        }
    }
}
