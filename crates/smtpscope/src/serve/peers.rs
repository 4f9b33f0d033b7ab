//! Who may push into the service: allowlists of peer networks for the syslog receiver and the
//! policy server (`[serve] syslog_peers`, `policy_peers`).
//!
//! Both sources can contain accounts: forged syslog lines or policy requests about an account
//! from thirty countries put it on HOLD. So only the MTAs may talk to them, and by default that
//! is this host alone (127.0.0.1 and ::1); an MTA elsewhere is configured by address. What is
//! refused is counted (`smtpscope_syslog_refused_total{reason="peer"}`,
//! `smtpscope_policy_refused_total{reason="peer"}`).

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// One allowed network, written in the configuration as a CIDR (`192.0.2.0/24`,
/// `2001:db8::/32`) or a single address (`192.0.2.7`, taken as `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerNet(pub IpNetwork);

impl TryFrom<String> for PeerNet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        // An address without a prefix is one host (/32 or /128); host bits are cleared.
        s.trim()
            .parse::<IpNetwork>()
            .and_then(|n| IpNetwork::new(n.network(), n.prefix()))
            .map(PeerNet)
            .map_err(|e| {
            format!("invalid peer network {s:?} ({e}; expected an address or a CIDR such as 192.0.2.0/24)")
        })
    }
}

impl From<PeerNet> for String {
    fn from(p: PeerNet) -> String {
        p.0.to_string()
    }
}

impl fmt::Display for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The default allowlist: this host only (127.0.0.1/32 and ::1/128).
pub fn loopback() -> Vec<PeerNet> {
    vec![
        PeerNet(IpNetwork::from(IpAddr::from([127, 0, 0, 1]))),
        PeerNet(IpNetwork::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))),
    ]
}

/// The networks a listener accepts peers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNetwork>,
}

impl Allowlist {
    /// From the configured networks (an empty list refuses everyone).
    pub fn new(nets: &[PeerNet]) -> Allowlist {
        Allowlist {
            nets: nets.iter().map(|n| n.0).collect(),
        }
    }

    /// Whether `ip` may talk to us. An IPv4 peer of a dual-stack socket (`::ffff:192.0.2.7`)
    /// is judged as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> PeerNet {
        PeerNet::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn addresses_and_networks() {
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert_eq!(net("192.0.2.77/24").to_string(), "192.0.2.0/24");
        for bad in ["10.0.0.0/33", "mx1.example.org", "", "1.2.3.4/"] {
            let e = PeerNet::try_from(bad.to_string()).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn default_is_this_host_only() {
        let a = Allowlist::new(&loopback());
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("::1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.allows("127.0.0.2".parse().unwrap()));
        assert!(!a.allows("192.0.2.1".parse().unwrap()));
        let a = Allowlist::new(&[net("192.0.2.0/24"), net("2001:db8::/32")]);
        assert!(a.allows("192.0.2.200".parse().unwrap()));
        assert!(a.allows("2001:db8::25".parse().unwrap()));
        assert!(!a.allows("127.0.0.1".parse().unwrap()));
        assert!(!Allowlist::new(&[]).allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn config_errors_name_key_and_value() {
        use crate::config::FileConfig;
        for (text, key, value) in [
            (
                "syslog_peers = [\"127.0.0.1/32\", \"10.0.0.0/33\"]",
                "syslog_peers",
                "10.0.0.0/33",
            ),
            (
                "policy_peers = [\"mx1.example.org\"]",
                "policy_peers",
                "mx1.example.org",
            ),
            (
                "policy_socket_mode = \"0999\"",
                "policy_socket_mode",
                "0999",
            ),
        ] {
            let e = FileConfig::parse(&format!("[serve]\n{text}\n"), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(key) && e.contains(value) && e.contains("line 2"),
                "{e}"
            );
        }
        let c = FileConfig::parse(
            "[serve]\nsyslog_peers = [\"192.0.2.25\", \"2001:db8::/32\"]\npolicy_socket_mode = \"0600\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(
            c.serve.syslog_peers,
            vec![net("192.0.2.25/32"), net("2001:db8::/32")]
        );
        assert_eq!(c.serve.policy_socket_mode.0, 0o600);
    }
}
