//! Where an account has logged in successfully: a compact, bounded memory of its addresses,
//! networks and autonomous systems, most recently used first.

use std::net::IpAddr;

use maillog::Ts;

/// Addresses, networks and ASNs remembered per account. Home, work and a phone's carrier are
/// three places; one more leaves room for a second home or a VPN. The least recently used is
/// forgotten first.
pub const PLACES: usize = 4;

/// A small most-recently-used list (serialized as the list, most recent first: serde has no
/// impls for arrays of a generic length).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(
    into = "Vec<T>",
    try_from = "Vec<T>",
    bound(
        serialize = "T: serde::Serialize",
        deserialize = "T: serde::Deserialize<'de>"
    )
)]
pub struct Mru<T: Copy + PartialEq + Default, const N: usize> {
    items: [T; N],
    len: u8,
}

impl<T: Copy + PartialEq + Default, const N: usize> Default for Mru<T, N> {
    fn default() -> Self {
        Mru {
            items: [T::default(); N],
            len: 0,
        }
    }
}

impl<T: Copy + PartialEq + Default, const N: usize> From<Mru<T, N>> for Vec<T> {
    fn from(m: Mru<T, N>) -> Vec<T> {
        m.items[..m.len as usize].to_vec()
    }
}

impl<T: Copy + PartialEq + Default, const N: usize> TryFrom<Vec<T>> for Mru<T, N> {
    type Error = String;
    fn try_from(v: Vec<T>) -> Result<Self, String> {
        if v.len() > N || v.len() > u8::MAX as usize {
            return Err(format!("{} items in a list of at most {N}", v.len()));
        }
        let mut m = Mru::default();
        m.items[..v.len()].copy_from_slice(&v);
        m.len = v.len() as u8;
        Ok(m)
    }
}

impl<T: Copy + PartialEq + Default, const N: usize> Mru<T, N> {
    /// Whether `x` is remembered.
    pub fn contains(&self, x: T) -> bool {
        self.items[..self.len as usize].contains(&x)
    }

    /// Remember `x` as the most recent, forgetting the least recent when full.
    pub fn touch(&mut self, x: T) {
        let len = self.len as usize;
        let at = self.items[..len].iter().position(|y| *y == x);
        let end = match at {
            Some(i) => i,
            None if len < N => {
                self.len += 1;
                len
            }
            None => N - 1,
        };
        self.items.copy_within(0..end, 1);
        self.items[0] = x;
    }

    /// Items remembered.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A key for one address (IPv4 addresses and IPv4-mapped IPv6 addresses alike).
pub fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u64,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => u32::from(m) as u64,
            None => {
                let x = u128::from(a);
                crate::distinct::mix((x >> 64) as u64 ^ crate::distinct::mix(x as u64)) | 1 << 63
            }
        },
    }
}

/// The places an account has logged in from successfully.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Places {
    /// First successful login seen.
    pub since: Ts,
    ips: Mru<u64, PLACES>,
    nets: Mru<u64, PLACES>,
    asns: Mru<u32, PLACES>,
}

impl Places {
    /// Nothing known yet; the account was first seen at `since`.
    pub fn new(since: Ts) -> Places {
        Places {
            since,
            ips: Mru::default(),
            nets: Mru::default(),
            asns: Mru::default(),
        }
    }

    /// Whether the account has used this address or its /24 (/48) before.
    pub fn knows_address(&self, ip: IpAddr) -> bool {
        self.ips.contains(ip_key(ip)) || self.nets.contains(geo::prefix_key(ip))
    }

    /// Whether the account has used this autonomous system before.
    pub fn knows_asn(&self, asn: u32) -> bool {
        self.asns.contains(asn)
    }

    /// Whether the place is one of the account's own: an address or network it used, or an
    /// address in an autonomous system it used. A home line is renumbered inside its ISP (half
    /// of the changes move to another BGP prefix, TRAFFIC-FACTS §2) and a phone changes address
    /// inside its carrier's network within minutes, so the AS is what stays the owner's.
    pub fn owns(&self, ip: IpAddr, asn: Option<u32>) -> bool {
        self.knows_address(ip) || asn.is_some_and(|a| self.knows_asn(a))
    }

    /// Whether the place (address, network, or AS when known) is new to the account.
    pub fn is_new(&self, ip: IpAddr, asn: Option<u32>) -> bool {
        !self.knows_address(ip) && asn.is_none_or(|a| !self.knows_asn(a))
    }

    /// Addresses remembered.
    pub fn addresses_known(&self) -> usize {
        self.ips.len()
    }

    /// Remember a successful login from `ip` (in `asn`).
    pub fn learn(&mut self, ip: IpAddr, asn: Option<u32>) {
        self.ips.touch(ip_key(ip));
        self.nets.touch(geo::prefix_key(ip));
        if let Some(a) = asn {
            self.asns.touch(a);
        }
    }

    /// Whether the places are history: some are known and the first success is at least
    /// `learn_secs` old.
    pub fn has_history(&self, now: Ts, learn_secs: i64) -> bool {
        !self.ips.is_empty() && self.since.plus_secs(learn_secs) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mru_forgets_least_recent() {
        let mut m: Mru<u32, 3> = Mru::default();
        for x in [1, 2, 3, 1, 4] {
            m.touch(x);
        }
        assert!(m.contains(1) && m.contains(3) && m.contains(4));
        assert!(!m.contains(2));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn places_by_address_network_and_as() {
        let mut p = Places::new(Ts::from_secs(0));
        let home: IpAddr = "192.0.2.10".parse().unwrap();
        p.learn(home, Some(64500));
        assert!(p.knows_address("192.0.2.99".parse().unwrap()));
        assert!(!p.is_new("198.51.100.1".parse().unwrap(), Some(64500)));
        assert!(p.is_new("198.51.100.1".parse().unwrap(), Some(64501)));
        assert!(p.is_new("198.51.100.1".parse().unwrap(), None));
        assert!(p.owns("198.51.100.1".parse().unwrap(), Some(64500)));
        assert!(!p.owns("198.51.100.1".parse().unwrap(), Some(64501)));
        assert!(!p.owns("198.51.100.1".parse().unwrap(), None));
        assert!(!p.has_history(Ts::from_secs(100), 86_400));
        assert!(p.has_history(Ts::from_secs(86_400), 86_400));
    }
}
