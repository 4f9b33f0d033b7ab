//! The simulated world: names, domains, remote mail exchangers and the per-account traits,
//! all derived from hashes of the seed so nothing per account is stored.

use std::net::Ipv4Addr;

use crate::addr::Sampler;
use crate::params::Params;
use crate::rng::{hash, Rng};
use crate::SimConfig;

pub const FIRST: &[&str] = &[
    "maria", "anna", "thomas", "michael", "stefan", "julia", "laura", "lukas", "jonas", "lea",
    "sophie", "felix", "paul", "emma", "mia", "ben", "leon", "sarah", "andreas", "sabine", "petra",
    "klaus", "jan", "tim", "nina", "eva", "frank", "ute", "jens", "katrin", "olga", "mehmet",
    "ayse", "ivan", "piotr", "giulia", "marco", "elena", "david", "hannah",
];
pub const LAST: &[&str] = &[
    "mueller",
    "schmidt",
    "schneider",
    "fischer",
    "weber",
    "meyer",
    "wagner",
    "becker",
    "schulz",
    "hoffmann",
    "koch",
    "richter",
    "klein",
    "wolf",
    "neumann",
    "schwarz",
    "braun",
    "zimmermann",
    "krueger",
    "hartmann",
    "lange",
    "werner",
    "krause",
    "lehmann",
    "koehler",
    "yilmaz",
    "kaiser",
];
pub const WORDS: &[&str] = &[
    "alpha", "nova", "sonne", "berg", "tal", "blau", "gruen", "nord", "sued", "stern", "kraft",
    "werk", "haus", "bau", "tech", "data", "media", "logistik", "praxis", "kanzlei", "studio",
    "garten", "auto", "reise", "immo", "finanz", "design", "optik", "dental", "fit",
];
pub const TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "de", "ru", "br", "in", "cn", "xyz", "top",
];

/// Big mailbox providers: (domain, MX host, MX address, acceptance reply).
pub const PROVIDERS: &[(&str, &str, [u8; 4], &str)] = &[
    (
        "gmail.com",
        "gmail-smtp-in.l.google.com",
        [142, 250, 102, 27],
        "250 2.0.0 OK  1763630835 a640c23a62f3a-b7a3f9c1d2si204566b.77 - gsmtp",
    ),
    (
        "googlemail.com",
        "gmail-smtp-in.l.google.com",
        [142, 250, 102, 26],
        "250 2.0.0 OK  1763630835 a640c23a62f3a-b7a3f9c1d2si204566b.78 - gsmtp",
    ),
    (
        "gmx.de",
        "mx00.emig.gmx.net",
        [212, 227, 15, 9],
        "250 Requested mail action okay, completed: id=1MlwBf-1vGz3T0Bx3-00jTQa",
    ),
    (
        "web.de",
        "mx-ha03.web.de",
        [212, 227, 17, 8],
        "250 Requested mail action okay, completed: id=1N5Vxf-1w1Zbk2Yv5-016sTg",
    ),
    (
        "t-online.de",
        "mx00.t-online.de",
        [194, 25, 134, 8],
        "250 2.0.0 Message accepted",
    ),
    (
        "outlook.com",
        "outlook-com.olc.protection.outlook.com",
        [52, 101, 68, 9],
        "250 2.6.0 <msg> Queued mail for delivery",
    ),
    (
        "hotmail.com",
        "hotmail-com.olc.protection.outlook.com",
        [52, 101, 73, 20],
        "250 2.6.0 <msg> Queued mail for delivery",
    ),
    (
        "yahoo.com",
        "mta7.am0.yahoodns.net",
        [67, 195, 204, 72],
        "250 ok dirdel",
    ),
    (
        "icloud.com",
        "mx01.mail.icloud.com",
        [17, 57, 154, 33],
        "250 2.0.0 Ok: queued as 4dB1xZ0m5Hz9vKl",
    ),
    (
        "posteo.de",
        "mx04.posteo.de",
        [185, 67, 36, 68],
        "250 2.0.0 Ok: queued as 4dB1xZ0bXnz9sQ2",
    ),
    (
        "freenet.de",
        "mx.freenet.de",
        [195, 4, 92, 212],
        "250 OK id=1vN3Kd-00000000Ab1-2RtQ",
    ),
    (
        "orange.fr",
        "smtp-in.orange.fr",
        [80, 12, 242, 82],
        "250 2.0.0 Gm1Lv2x0W0SG5aGm1Lvy0Q mail accepted for delivery",
    ),
    (
        "libero.it",
        "smtp-in.libero.it",
        [213, 209, 1, 129],
        "250 2.0.0 JKfQvBAGDpNzMJKfQvF6Pl mail accepted for delivery",
    ),
    (
        "mail.ru",
        "mxs.mail.ru",
        [94, 100, 180, 31],
        "250 OK id=1vN3Ke-0008RT-Sg",
    ),
];

/// Domains infected machines forge in HELO and MAIL FROM together: banks, parcel services
/// and freemail providers (issue 9 class 7; Clayton's "HELO names somebody else's domain").
pub const FORGED_DOMAINS: &[&str] = &[
    "paypal.com",
    "sparkasse.de",
    "deutsche-bank.de",
    "commerzbank.de",
    "dhl.de",
    "amazon.de",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "gmx.de",
    "web.de",
];

/// Countries botnets are drawn from, most frequent first (see SIMULATION.md).
pub const BOT_COUNTRIES: &[&str] = &[
    "VN", "IN", "BR", "ID", "US", "CN", "RU", "TR", "PK", "MX", "AR", "CO", "EG", "TH", "UA", "PH",
    "IR", "BD", "MA", "DZ", "ZA", "NG", "KZ", "VE", "PE", "CL", "RO", "PL", "IT", "ES",
];
/// Countries people travel to.
pub const TRAVEL_COUNTRIES: &[&str] = &[
    "ES", "IT", "FR", "AT", "GR", "TR", "US", "GB", "NL", "PT", "HR", "TH", "CH", "PL",
];
/// Countries of commercial VPN exits.
pub const VPN_COUNTRIES: &[&str] = &["NL", "SE", "CH", "US", "GB", "DE", "RO", "SG"];

/// A remote mail exchanger.
#[derive(Debug, Clone)]
pub struct Mx {
    pub host: String,
    pub ip: Ipv4Addr,
    pub ok: String,
}

/// The world, shared by all populations.
pub struct World<'a> {
    pub cfg: &'a SimConfig,
    pub seed: u64,
    pub geo: Sampler,
    /// This seed's population parameters.
    pub params: Params,
    /// Public addresses the address source does not place in any country.
    pub unplaced: Vec<Ipv4Addr>,
    pub hosted: Vec<String>,
    pub isp_blocks: u64,
    pub cgnat_ips: u64,
    pub companies: u64,
}

impl<'a> World<'a> {
    pub fn new(
        cfg: &'a SimConfig,
        geo: Sampler,
        params: Params,
        unplaced: Vec<Ipv4Addr>,
    ) -> World<'a> {
        let seed = cfg.seed;
        let n_hosted = (cfg.users as u64 / 150).max(4);
        let hosted = (0..n_hosted)
            .map(|i| {
                let mut r = Rng::keyed(&[seed, 0x405d, i]);
                let a = r.pick(WORDS).copied().unwrap_or("nova");
                let b = r.pick(WORDS).copied().unwrap_or("werk");
                format!("{a}-{b}{}.de", i)
            })
            .collect();
        World {
            cfg,
            seed,
            geo,
            params,
            unplaced,
            hosted,
            isp_blocks: (cfg.users as u64 / 200).max(4),
            cgnat_ips: (cfg.users as u64 / cfg.users_per_cgnat_ip.max(1) as u64).max(6),
            companies: (cfg.users as u64 / 25).max(3),
        }
    }

    /// The login (= address) of account `i`.
    pub fn account(&self, i: u64) -> String {
        let h = hash(&[self.seed, 0xacc, i]);
        let f = FIRST[(h % FIRST.len() as u64) as usize];
        let l = LAST[((h >> 8) % LAST.len() as u64) as usize];
        let dom = self.account_domain(i);
        match (h >> 16) % 3 {
            0 => format!("{f}.{l}{}@{dom}", i % 1000),
            1 => format!("{}{l}{}@{dom}", &f[..1], i),
            _ => format!("{f}.{}{}@{dom}", &l[..1], i),
        }
    }

    pub fn account_domain(&self, i: u64) -> &str {
        let h = hash(&[self.seed, 0xd0, i]);
        if (h % 10_000) as f64 / 10_000.0 < self.cfg.hosted_share {
            let k = (h >> 20) % self.hosted.len().max(1) as u64;
            self.hosted
                .get(k as usize)
                .map(|s| s.as_str())
                .unwrap_or("example.de")
        } else {
            let d = &self.cfg.isp_domains;
            d.get(((h >> 20) % d.len().max(1) as u64) as usize)
                .map(|s| s.as_str())
                .unwrap_or("example-isp.de")
        }
    }

    /// Accounts of one hosted domain (first `n` found).
    pub fn accounts_of(&self, domain: &str, n: usize) -> Vec<u64> {
        (0..self.cfg.users as u64)
            .filter(|i| self.account_domain(*i) == domain)
            .take(n)
            .collect()
    }

    pub fn home(&self) -> &str {
        &self.cfg.home_country
    }

    /// The home country as a static str (for a label's country set).
    pub fn home_static(&self) -> &'static str {
        let h = self.cfg.home_country.as_str();
        VPN_COUNTRIES
            .iter()
            .chain(TRAVEL_COUNTRIES)
            .chain(BOT_COUNTRIES)
            .find(|c| **c == h)
            .copied()
            .unwrap_or("DE")
    }

    /// An address the geo data does not place (falls back to the home country when the
    /// source places everything).
    pub fn unplaced_ip(&self, key: u64) -> Ipv4Addr {
        match self.unplaced.len() {
            0 => self.ip_in(self.home(), key),
            n => self.unplaced[(hash(&[key, 0x0e1]) % n as u64) as usize],
        }
    }

    /// The dynamic home IP of account `i` at `t` (seconds): changes every few days.
    pub fn home_ip(&self, i: u64, t: i64) -> Ipv4Addr {
        let h = hash(&[self.seed, 0x40e, i]);
        let period = (86_400.0 * self.cfg.home_ip_days * (0.25 + 1.5 * (h % 1000) as f64 / 1000.0))
            .max(3600.0) as i64;
        let epoch = (t + (h >> 12) as i64 % period) / period;
        self.isp_ip(hash(&[i, epoch as u64]))
    }

    /// An address in the ISP's own customer networks.
    pub fn isp_ip(&self, key: u64) -> Ipv4Addr {
        let block = key % self.isp_blocks;
        self.geo
            .ip_in_block(self.home(), hash(&[self.seed, 0x15b, block]), key >> 20)
            .unwrap_or(Ipv4Addr::new(192, 0, 2, 1))
    }

    pub fn isp_rdns(&self, ip: Ipv4Addr) -> String {
        let o = ip.octets();
        let d = self
            .cfg
            .isp_domains
            .first()
            .map(|s| s.as_str())
            .unwrap_or("example-isp.de");
        format!("ip-{}-{}-{}-{}.dyn.{d}", o[0], o[1], o[2], o[3])
    }

    pub fn cgnat_ip(&self, key: u64) -> Ipv4Addr {
        let k = key % self.cgnat_ips;
        let carrier = k % 3;
        self.geo
            .ip_in_block(self.home(), hash(&[self.seed, 0xc6a, carrier, k / 200]), k)
            .unwrap_or(Ipv4Addr::new(192, 0, 2, 2))
    }

    pub fn company_ip(&self, c: u64) -> Ipv4Addr {
        self.geo
            .ip(self.home(), hash(&[self.seed, 0xc0, c]))
            .unwrap_or(Ipv4Addr::new(192, 0, 2, 3))
    }

    pub fn ip_in(&self, country: &str, key: u64) -> Ipv4Addr {
        self.geo
            .ip(country, hash(&[self.seed, 0x1c, key]))
            .or_else(|| self.geo.ip(self.home(), key))
            .unwrap_or(Ipv4Addr::new(192, 0, 2, 4))
    }

    /// A provider mailbox that exists.
    pub fn provider_rcpt(&self, r: &mut Rng) -> (String, Mx) {
        let p = PROVIDERS[r.below(PROVIDERS.len() as u64) as usize];
        let f = r.pick(FIRST).copied().unwrap_or("x");
        let l = r.pick(LAST).copied().unwrap_or("y");
        (format!("{f}.{l}{}@{}", r.below(100), p.0), provider_mx(p))
    }

    /// The MX of an invented or small domain.
    pub fn small_mx(&self, domain: &str, r: &mut Rng) -> Mx {
        let c = BOT_COUNTRIES[r.below(BOT_COUNTRIES.len() as u64) as usize];
        Mx {
            host: format!("mx1.{domain}"),
            ip: self.ip_in(c, hash(&[0x5a11, domain.len() as u64, r.next_u64() & 0xff])),
            ok: "250 2.0.0 Ok: queued".into(),
        }
    }

    /// A random invented domain.
    pub fn invented_domain(&self, r: &mut Rng) -> String {
        let a = r.pick(WORDS).copied().unwrap_or("nova");
        let b = r.pick(LAST).copied().unwrap_or("x");
        let t = r.pick(TLDS).copied().unwrap_or("com");
        format!("{a}{b}{}.{t}", r.below(90))
    }
}

pub fn provider_mx(p: (&str, &str, [u8; 4], &str)) -> Mx {
    Mx {
        host: p.1.to_string(),
        ip: Ipv4Addr::from(p.2),
        ok: p.3.to_string(),
    }
}
