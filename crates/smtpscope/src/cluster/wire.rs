//! The event schema: what an edge publishes to `<prefix>.events.<partition>`, version
//! [`SCHEMA_VERSION`]. docs/ARCHITECTURE.md ("Cluster") is its reference.
//!
//! One JSON object per NATS message (short keys; unknown keys ignored, so a newer edge may add
//! optional fields without a version change; any change of meaning bumps `v`, and a worker
//! refuses — counts and acknowledges without processing — a version it does not know):
//!
//! ```json
//! {"v":1,"edge":"mx1","run":1764669600123,"seq":42,"order":1763628435000000,
//!  "kind":"line","ts":1763628435000000,"text":"Nov 20 10:47:15 mx1 postfix/smtpd[123]: ..."}
//! ```
//! - `edge`, `run`, `seq`: the event id. `run` is the edge process's start (Unix ms), `seq`
//!   counts from 1 in each run and over all partitions, so within one partition an edge's ids
//!   only grow: a worker drops an id not above the last it processed from that edge (redelivery
//!   after a crash, a publish retried after a lost acknowledgement).
//! - `order`: the edge's event time so far (the largest `ts` it has published, µs since the
//!   epoch): never decreases within a run. Workers process events by `(order, edge, run, seq)`,
//!   so the events of several MTAs are merged by event time the same way on every run and every
//!   worker (see [`super::merge`]).
//! - `kind`: `line` (a mail log line, `text`, with `ts` its event time as the edge resolved
//!   the year and zone), `policy` (a Postfix policy request, `text` its attribute lines, `ts` its
//!   arrival: the policy clock), `mark` (no event: the edge's watermark, sent to every partition
//!   once a second so a partition without traffic from it still learns its time) or `idle` (a
//!   mark saying the edge has nothing to read; workers stop waiting for it until its next event).
//!
//! Why the log line and not a binary encoding of the parsed event: every field of an event is a
//! substring of its line, so the line is the event's most compact lossless form (a binary form
//! would repeat the same bytes plus tags), and the workers' parser is the same code as the
//! edge's (one parser, versioned with the schema). The edge parses too: it needs the event's
//! time and its entity key to pick the partition ([`super::route`]). Why JSON: the envelope is
//! about 110 bytes beside a line of 150 to 300, any NATS tool can read it, and decoding it is
//! a few hundred nanoseconds (docs/SCALE.md).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Version of the schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Longest `text` accepted (the log reader's own line cap, with room for a policy request).
pub const MAX_TEXT: usize = 64 * 1024;

/// What an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A log line.
    Line,
    /// A policy request's attribute lines.
    Policy,
    /// The edge's watermark only.
    Mark,
    /// The edge's watermark, and it has nothing more to read for now.
    Idle,
}

/// One message on the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// Schema version.
    pub v: u32,
    /// Publishing edge's name.
    #[serde(borrow)]
    pub edge: Cow<'a, str>,
    /// The edge process's start, Unix milliseconds.
    pub run: u64,
    /// Sequence number in the run, from 1.
    pub seq: u64,
    /// The edge's event time so far (µs), never decreasing in a run.
    pub order: i64,
    /// What it carries.
    pub kind: Kind,
    /// Event time (lines) or arrival (policy requests), µs; the watermark for marks.
    pub ts: i64,
    /// The line or the request; empty for marks.
    #[serde(borrow, default)]
    pub text: Cow<'a, str>,
}

/// Why a message on the event stream was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a JSON event object.
    Malformed(String),
    /// A schema version this build does not read.
    Version(u32),
    /// `text` longer than [`MAX_TEXT`].
    TooLong(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(e) => write!(f, "not an event: {e}"),
            DecodeError::Version(v) => write!(
                f,
                "event schema version {v}, this build reads {SCHEMA_VERSION}"
            ),
            DecodeError::TooLong(n) => write!(f, "event text of {n} bytes (at most {MAX_TEXT})"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl<'a> Event<'a> {
    /// Decode one message (untrusted bytes: never panics).
    pub fn decode(bytes: &'a [u8]) -> Result<Event<'a>, DecodeError> {
        let e: Event<'a> =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if e.v != SCHEMA_VERSION {
            return Err(DecodeError::Version(e.v));
        }
        if e.text.len() > MAX_TEXT {
            return Err(DecodeError::TooLong(e.text.len()));
        }
        Ok(e)
    }

    /// Encode for publishing.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event of strings and integers always serializes")
    }

    /// The event's id as the dedupe compares it: (run, seq) of its edge.
    pub fn id(&self) -> (u64, u64) {
        (self.run, self.seq)
    }
}

/// An alert as the stream carries it (the alert JSON contract).
#[derive(serde::Deserialize)]
struct WireAlert {
    ts: String,
    detector: String,
    entity: detect::Entity,
    score: f64,
    summary: String,
    evidence: serde_json::Value,
}

impl WireAlert {
    fn into_alert(self) -> Option<detect::Alert> {
        Some(detect::Alert {
            ts: maillog::Ts::parse_rfc3339(&self.ts)?,
            detector: *detect::Detector::ALL
                .iter()
                .find(|d| d.as_str() == self.detector)?,
            entity: self.entity,
            score: self.score,
            summary: self.summary,
            evidence: self.evidence,
        })
    }
}

/// An alert from its JSON (the alert stream's, the store's), or None when it is not one.
pub fn decode_alert(json: &[u8]) -> Option<detect::Alert> {
    serde_json::from_slice::<WireAlert>(json)
        .ok()
        .and_then(WireAlert::into_alert)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Event<'static> {
        Event {
            v: SCHEMA_VERSION,
            edge: "mx1".into(),
            run: 1_764_669_600_123,
            seq: 42,
            order: 1_763_628_435_000_000,
            kind: Kind::Line,
            ts: 1_763_628_435_000_000,
            text: "Nov 20 10:47:15 mx1 postfix/smtpd[123]: \"quoted\" \\ ünïcode".into(),
        }
    }

    #[test]
    fn round_trip_and_documented_shape() {
        let e = line();
        let b = e.encode();
        assert_eq!(Event::decode(&b).unwrap(), e);
        let s = String::from_utf8(b).unwrap();
        assert!(
            s.starts_with(r#"{"v":1,"edge":"mx1","run":1764669600123,"seq":42,"order":1763628435000000,"kind":"line","ts":"#),
            "{s}"
        );
        // A line without escapes is borrowed, not copied.
        let plain = Event {
            text: "Nov 20 10:47:15 mx1 postfix/smtpd[123]: connect".into(),
            ..line()
        }
        .encode();
        assert!(matches!(
            Event::decode(&plain).unwrap().text,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn untrusted_bytes_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"{}",
            b"null",
            b"{\"v\":1}",
            b"\xff\xfe",
            br#"{"v":1,"edge":"a","run":1,"seq":1,"order":1,"kind":"nope","ts":1}"#,
        ] {
            assert!(
                matches!(Event::decode(bad), Err(DecodeError::Malformed(_))),
                "{bad:?}"
            );
        }
        let mut e = line();
        e.v = 2;
        assert_eq!(Event::decode(&e.encode()), Err(DecodeError::Version(2)));
        let mut e = line();
        e.text = "x".repeat(MAX_TEXT + 1).into();
        assert_eq!(
            Event::decode(&e.encode()),
            Err(DecodeError::TooLong(MAX_TEXT + 1))
        );
        // A mark has no text.
        let m = br#"{"v":1,"edge":"a","run":1,"seq":1,"order":5,"kind":"idle","ts":5}"#;
        assert_eq!(Event::decode(m).unwrap().kind, Kind::Idle);
    }
}
