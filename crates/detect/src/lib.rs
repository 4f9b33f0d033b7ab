//! # detect
//!
//! smtpscope's detectors: small, independent state machines over windows of **event time**, fed
//! with normalized events and message records from [`maillog`]. This crate never does I/O and
//! never reads the wall clock: a replay of the same log gives the same alerts, in `analyze` and in
//! `serve` alike. Every detector and threshold is documented in docs/DETECTION.md.
#![deny(missing_docs)]

pub mod alert;
pub mod arrivals;
pub mod bounded;
pub mod bruteforce;
pub mod campaign;
pub mod claims;
pub mod cold;
pub mod compact;
pub mod config;
pub mod distinct;
pub mod engine;
pub mod evidence;
pub mod extrusion;
pub mod helo;
pub mod hijack;
pub mod incident;
pub mod incoming;
pub mod incoming_filter;
pub mod packed;
pub mod slab;
pub mod snapshot;
#[cfg(test)]
mod testing;
pub mod window;

pub use alert::{Alert, Detector, Entity, EntityKind};
pub use config::Config;
pub use engine::{Direction, Engine, GeoRef, State};
