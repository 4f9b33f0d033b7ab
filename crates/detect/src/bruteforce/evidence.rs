//! The evidence of `auth-bruteforce` alerts: one struct per kind of alert (an attacking
//! address, an attacking network, a guessing wave, a targeted account, a probably guessed
//! password), and [`BruteforceEvidence`], which tells them apart when reading an alert back.

use maillog::Service;
use serde::{Deserialize, Serialize};

use super::{Origin, Shape};

/// Which rule made an address an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressRule {
    /// More than `max_failures_per_ip` failures in the window.
    Rate,
    /// At least `slow_min_names` names within `slow_window`, nobody logged in from it.
    SlowNames,
}

/// Evidence of an attacking address (entity `client`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressEvidence {
    /// The rule that fired.
    pub rule: AddressRule,
    /// Distinct names it failed against within `slow_window`.
    pub names_in_slow_window: u64,
    /// `slow_window`, as `24h`.
    pub slow_window: String,
    /// Failures in the window.
    pub failures: u64,
    /// `max_failures_per_ip`.
    pub threshold: u64,
    /// The window, as `1h`.
    pub window: String,
    /// Failures since the attack began.
    pub attack_failures: u64,
    /// Distinct names tried since the attack began.
    pub accounts_tried: u64,
    /// Some of the names tried.
    pub sample_accounts: Vec<String>,
    /// Services it tried.
    pub services: Vec<Service>,
    /// First failure, RFC 3339.
    pub first: String,
    /// Latest failure, RFC 3339.
    pub last: String,
    /// The failure count of the previous alert, when this one escalates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<u64>,
}

/// Which rule made a network an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkRule {
    /// More than `max_failures_per_network` failures in the window from two of its addresses.
    Rate,
    /// A second address of the network started an attack while another one's goes on.
    SecondAttacker,
    /// At least `slow_min_network_names` names within `slow_window` from two of its addresses.
    SlowNames,
}

/// Evidence of an attacking network (entity `network`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkEvidence {
    /// The rule that fired.
    pub rule: NetworkRule,
    /// Distinct names its addresses failed against within `slow_window`.
    pub names_in_slow_window: u64,
    /// Its addresses that failed within `slow_window`.
    pub addresses_in_slow_window: u64,
    /// `slow_window`, as `24h`.
    pub slow_window: String,
    /// Failures in the window.
    pub failures: u64,
    /// `max_failures_per_network`.
    pub threshold: u64,
    /// The window, as `1h`.
    pub window: String,
    /// Its addresses that failed in the window.
    pub addresses: u64,
    /// Some of them.
    pub sample_ips: Vec<String>,
    /// Its addresses with an attack of their own.
    pub attacking_addresses: Vec<String>,
    /// When the attack began, RFC 3339.
    pub attack_start: String,
    /// The failure count of the previous alert, when this one escalates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<u64>,
}

/// Evidence of a guessing wave (many addresses, few failures each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveEvidence {
    /// Failures in the window.
    pub failures: u64,
    /// `max_failures_total`.
    pub threshold: u64,
    /// The window, as `1h`.
    pub window: String,
    /// Addresses that failed in the window.
    pub addresses: u64,
    /// `min_wave_ips`.
    pub min_addresses: u64,
    /// The addresses with the most failures.
    pub top_addresses: Vec<TopAddress>,
    /// When the attack began, RFC 3339.
    pub attack_start: String,
    /// The failure count of the previous alert, when this one escalates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<u64>,
}

/// One address of a wave and its failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopAddress {
    /// The address.
    pub ip: String,
    /// Its failures in the window.
    pub failures: u64,
}

/// Evidence of a targeted account (one name guessed from many addresses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetEvidence {
    /// Failures against the account in the window.
    pub failures: u64,
    /// Addresses they came from.
    pub source_ips: u64,
    /// `max_ips_per_account`.
    pub threshold: u64,
    /// The window, as `1h`.
    pub window: String,
    /// Some of the addresses.
    pub sample_ips: Vec<String>,
    /// Failures per other name in the window (how much it stands out).
    pub failures_per_other_name: f64,
    /// `min_target_ratio`.
    pub min_target_ratio: f64,
    /// When the attack began, RFC 3339.
    pub attack_start: String,
    /// The failure count of the previous alert, when this one escalates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<u64>,
}

/// Evidence of a probably guessed password (a successful login after guessing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuessedEvidence {
    /// How the successful login's address relates to the guessing.
    pub origin: Origin,
    /// What the failures against the account looked like (none when there were none outside
    /// its places).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// The successful login's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_ip: Option<String>,
    /// The service logged in to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// Failures against the account before.
    pub account_failures: u64,
    /// Addresses they came from.
    pub failing_addresses: u64,
    /// Some of them.
    pub sample_failure_ips: Vec<String>,
    /// Addresses the account is known to log in from.
    pub places_known: usize,
    /// Whether the account had a login history.
    pub history: bool,
}

/// The evidence of any `auth-bruteforce` alert. Serialized as the inner struct alone (the wire
/// has no tag); read back by the fields each kind has and the others lack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BruteforceEvidence {
    /// An attacking address.
    Address(AddressEvidence),
    /// An attacking network.
    Network(NetworkEvidence),
    /// A guessing wave.
    Wave(WaveEvidence),
    /// A targeted account.
    Target(TargetEvidence),
    /// A probably guessed password.
    Guessed(GuessedEvidence),
}

impl BruteforceEvidence {
    /// The account names the attack tried, when the evidence lists them.
    pub fn sample_accounts(&self) -> &[String] {
        match self {
            BruteforceEvidence::Address(e) => &e.sample_accounts,
            _ => &[],
        }
    }

    /// The sample of failing addresses a network, targeted-account or guessed-password alert
    /// lists (an address alert is one address; a wave lists its top addresses instead).
    pub fn sample_failing_ips(&self) -> &[String] {
        match self {
            BruteforceEvidence::Address(_) | BruteforceEvidence::Wave(_) => &[],
            BruteforceEvidence::Network(e) => &e.sample_ips,
            BruteforceEvidence::Target(e) => &e.sample_ips,
            BruteforceEvidence::Guessed(e) => &e.sample_failure_ips,
        }
    }
}
