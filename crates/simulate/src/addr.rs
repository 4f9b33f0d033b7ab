//! Where source addresses come from: per-country IPv4 ranges, behind a small trait so the
//! simulator can use the built-in geo database (and tests a fake).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::rng::hash;

/// Something that knows which IPv4 ranges belong to a country.
pub trait AddressSource {
    /// Inclusive `(first, last)` IPv4 ranges of the country (ISO 3166-1 alpha-2, upper case).
    fn ranges(&self, country: &str) -> Vec<(u32, u32)>;

    /// Whether the source places `ip` in some country (`None`: it cannot tell).
    fn placed(&self, _ip: u32) -> Option<bool> {
        None
    }
}

/// Smallest range kept when sampling (smaller ones are often anycast or infrastructure).
pub const MIN_RANGE: u32 = 256;

/// A test/offline source: each country gets one synthetic public /16 derived from its
/// letters (`DE` -> 68.69.0.0/16). It does not agree with any real database; use it only in
/// tests that do not check geolocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeSource;

impl AddressSource for FakeSource {
    fn ranges(&self, country: &str) -> Vec<(u32, u32)> {
        let b = country.as_bytes();
        if b.len() != 2 {
            return Vec::new();
        }
        let base = (u32::from(b[0]) << 24) | (u32::from(b[1]) << 16);
        vec![(base, base + 0xFFFF)]
    }
}

impl AddressSource for geo::GeoDb {
    fn ranges(&self, country: &str) -> Vec<(u32, u32)> {
        match geo::Country::parse(country) {
            Some(c) => self.v4_ranges_for_country(c),
            None => Vec::new(),
        }
    }

    fn placed(&self, ip: u32) -> Option<bool> {
        let (country, _) = self.lookup_fast(std::net::IpAddr::V4(std::net::Ipv4Addr::from(ip)));
        Some(country.is_some())
    }
}

/// Ranges of several countries, cached, with weighted sampling by size.
#[derive(Debug, Default)]
pub struct Sampler {
    by_country: HashMap<String, Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    ranges: Vec<(u32, u32)>,
    cum: Vec<u64>,
}

/// Whether `ip` is public unicast space a simulated host may have.
pub fn usable(ip: u32) -> bool {
    let o = ip >> 24;
    // Not 0/8, 10/8, 127/8, 100.64/10, 169.254/16, 172.16/12, 192.168/16, multicast and above.
    !(o == 0
        || o == 10
        || o == 127
        || o >= 224
        || (ip & 0xFFC0_0000) == 0x6440_0000
        || (ip & 0xFFFF_0000) == 0xA9FE_0000
        || (ip & 0xFFF0_0000) == 0xAC10_0000
        || (ip & 0xFFFF_0000) == 0xC0A8_0000)
}

impl Sampler {
    /// Load the given countries from `src`. Countries with no usable range are left out.
    pub fn new(src: &dyn AddressSource, countries: &[&str]) -> Sampler {
        let mut by_country = HashMap::new();
        for c in countries {
            if by_country.contains_key(*c) {
                continue;
            }
            let mut ranges: Vec<(u32, u32)> = src
                .ranges(c)
                .into_iter()
                .filter(|(a, b)| b >= a && b - a + 1 >= MIN_RANGE && usable(*a) && usable(*b))
                .collect();
            ranges.sort_unstable();
            let mut cum = Vec::with_capacity(ranges.len());
            let mut total = 0u64;
            for (a, b) in &ranges {
                total += u64::from(b - a) + 1;
                cum.push(total);
            }
            if total > 0 {
                by_country.insert((*c).to_string(), Pool { ranges, cum });
            }
        }
        Sampler { by_country }
    }

    /// Whether the country has addresses.
    pub fn has(&self, country: &str) -> bool {
        self.by_country.contains_key(country)
    }

    /// A deterministic address of `country` for the key (`None` when the country is unknown).
    /// Host parts .0 and .255 are avoided.
    pub fn ip(&self, country: &str, key: u64) -> Option<Ipv4Addr> {
        let p = self.by_country.get(country)?;
        let total = *p.cum.last()?;
        let mut h = key;
        for _ in 0..8 {
            let x = hash(&[h, 0x1b]) % total;
            let i = p.cum.partition_point(|&c| c <= x);
            let (a, _) = *p.ranges.get(i)?;
            let before = if i == 0 { 0 } else { p.cum[i - 1] };
            let ip = a.wrapping_add((x - before) as u32);
            let last = ip & 0xFF;
            if last != 0 && last != 255 && usable(ip) {
                return Some(Ipv4Addr::from(ip));
            }
            h = hash(&[h, 0x2c]);
        }
        None
    }

    /// A deterministic address in a block of up to 256 addresses of the country chosen by
    /// `block` (an ISP or carrier prefix): the same `(block, host)` gives the same address, and
    /// the block never crosses its range's end.
    pub fn ip_in_block(&self, country: &str, block: u64, host: u64) -> Option<Ipv4Addr> {
        let p = self.by_country.get(country)?;
        let total = *p.cum.last()?;
        let x = hash(&[block, 0xb10c]) % total;
        let i = p.cum.partition_point(|&c| c <= x);
        let (a, b) = *p.ranges.get(i)?;
        let before = if i == 0 { 0 } else { p.cum[i - 1] };
        let ip = a.wrapping_add((x - before) as u32);
        let start = (ip & 0xFFFF_FF00).max(a);
        let end = start.saturating_add(255).min(b);
        let span = u64::from(end - start) + 1;
        for k in 0..span {
            let cand = start + ((host + k) % span) as u32;
            let l = cand & 0xFF;
            if l != 0 && l != 255 && usable(cand) {
                return Some(Ipv4Addr::from(cand));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_stays_in_country() {
        let s = Sampler::new(&FakeSource, &["DE", "FR", "X"]);
        assert!(s.has("DE") && !s.has("X"));
        for k in 0..1000 {
            let ip = u32::from(s.ip("DE", k).unwrap());
            assert_eq!(ip >> 16, (68 << 8) | 69);
            let l = ip & 0xFF;
            assert!(l != 0 && l != 255);
        }
        assert_eq!(s.ip("DE", 5), s.ip("DE", 5));
        assert!(s.ip("ZZ", 1).is_none());
    }
}
