//! Postfix policy delegation server (SMTPD_POLICY_README): `name=value` lines ending with an
//! empty line; the answer is `action=...` and an empty line. Connections are kept open and
//! reused by Postfix.
//!
//! The answer comes from the containment snapshot only; the request is handed to the engine
//! through the [`Inbox`], which never waits, so a busy engine never delays Postfix (fail open,
//! counted).
//!
//! Each connection is served by a thread of its own with blocking reads and writes
//! ([`connection`]), as Postfix's smtpd processes use it: one request in flight each. On
//! loopback that costs less CPU per request than tokio's readiness path (docs/PERFORMANCE.md,
//! "Policy server"); the listeners still accept on tokio.
//!
//! The hot path allocates nothing per request: a connection reads into one buffer, finds the
//! complete requests in it ([`Scanner`]), parses each in place ([`Request`]), appends the
//! answers to one output buffer and writes them with one write per read (a client that
//! pipelines several requests gets them all in one write, in order), and copies the values of
//! the attributes smtpscope reads, with where each lies ([`Batch`]), into the shared [`Inbox`]
//! under one lock; the engine is woken once per batch, not once per request, and rebuilds each
//! request from the spans without parsing it again.
//!
//! Requests can contain accounts, so only `[serve] policy_peers` may connect over TCP, and the
//! unix socket is mode 0660 with group `postfix`. Connections take a slot after `accept`; when
//! all are taken the one that waited longest for input is closed (see [`super::slots`]), so
//! idle connections cannot hold the server shut. Refusals are counted in
//! `smtpscope_policy_refused_total{reason}`.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result};
use maillog::{Event, Peer, Ts};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::metrics::{PolicyRefusal, SourceKind};
use super::peers::Allowlist;
use super::slots::{Admission, Slot, Slots};
use super::{core::Msg, Mode, ServeConfig, ServeLimits, Shared};

/// Longest attribute line accepted (Postfix's own are far shorter; an address is ≤ 320 bytes).
pub const MAX_LINE: usize = 8192;
/// The usual answer.
const DUNNO: &str = "action=DUNNO\n\n";

/// Largest request accepted.
pub const MAX_REQUEST: usize = 32 * 1024;
/// Most attributes in one request (Postfix sends about 30).
pub const MAX_ATTRS: usize = 100;

/// A parsed request: the attributes smtpscope reads, borrowed from the raw text (the first of
/// each name; the others Postfix sends are skipped). Parsing allocates nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Request<'a> {
    request: Option<&'a str>,
    protocol_state: Option<&'a str>,
    client_name: Option<&'a str>,
    client_address: Option<&'a str>,
    client_port: Option<&'a str>,
    helo_name: Option<&'a str>,
    sender: Option<&'a str>,
    recipient: Option<&'a str>,
    recipient_count: Option<&'a str>,
    queue_id: Option<&'a str>,
    instance: Option<&'a str>,
    size: Option<&'a str>,
    sasl_method: Option<&'a str>,
    sasl_username: Option<&'a str>,
}

/// Why a request was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// A line without `=`.
    Garbage,
    /// Too many attributes.
    TooMany,
    /// No `request=smtpd_access_policy`.
    NotPolicy,
}

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadRequest::Garbage => "line without '='",
            BadRequest::TooMany => "too many attributes",
            BadRequest::NotPolicy => "not an smtpd_access_policy request",
        })
    }
}

impl<'a> Request<'a> {
    /// Parse the lines of one request (without the final empty line; `\r\n` line ends and
    /// empty lines are tolerated).
    pub fn parse(raw: &'a str) -> Result<Request<'a>, BadRequest> {
        let mut r = Request::default();
        let mut attrs = 0;
        // A request is ~30 short lines, parsed once (the engine rebuilds it from a `Batch`'s
        // spans): the line ends are found in one pass over the whole text, the `=` of each
        // line (after a name of a few bytes) by a plain loop; `str::split` with a char pattern
        // per line was 5% of the server's CPU. `cargo bench -p smtpscope --bench policy`.
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', raw.as_bytes()).chain(std::iter::once(raw.len()));
        for end in ends {
            let line = &raw[start..end];
            start = (end + 1).min(raw.len());
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let eq = line
                .bytes()
                .position(|b| b == b'=')
                .ok_or(BadRequest::Garbage)?;
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            if attrs == MAX_ATTRS {
                return Err(BadRequest::TooMany);
            }
            attrs += 1;
            if let Some(slot) = r.slot(k) {
                if slot.is_none() {
                    *slot = Some(v);
                }
            }
        }
        if r.request != Some("smtpd_access_policy") {
            return Err(BadRequest::NotPolicy);
        }
        Ok(r)
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<&'a str>> {
        let b = name.as_bytes();
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return None;
        };
        // Each name smtpscope reads has a length, first and last byte of its own, so a name is
        // compared with one of them at most, and most of the twenty-odd names Postfix sends
        // that smtpscope does not read with none (a `match` on the strings alone compares a
        // name with every one of its length: up to three calls to compare memory a line).
        Some(match (b.len(), first, last) {
            (7, b'r', b't') if name == "request" => &mut self.request,
            (14, b'p', b'e') if name == "protocol_state" => &mut self.protocol_state,
            (11, b'c', b'e') if name == "client_name" => &mut self.client_name,
            (14, b'c', b's') if name == "client_address" => &mut self.client_address,
            (11, b'c', b't') if name == "client_port" => &mut self.client_port,
            (9, b'h', b'e') if name == "helo_name" => &mut self.helo_name,
            (6, b's', b'r') if name == "sender" => &mut self.sender,
            (9, b'r', b't') if name == "recipient" => &mut self.recipient,
            (15, b'r', b't') if name == "recipient_count" => &mut self.recipient_count,
            (8, b'q', b'd') if name == "queue_id" => &mut self.queue_id,
            (8, b'i', b'e') if name == "instance" => &mut self.instance,
            (4, b's', b'e') if name == "size" => &mut self.size,
            (11, b's', b'd') if name == "sasl_method" => &mut self.sasl_method,
            (13, b's', b'e') if name == "sasl_username" => &mut self.sasl_username,
            _ => return None,
        })
    }

    /// An attribute smtpscope reads (the first of that name); empty values count as absent,
    /// and so do the attributes it does not read.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let mut r = *self;
        r.slot(name).and_then(|v| *v).filter(|v| !v.is_empty())
    }

    /// The attributes smtpscope reads, by name, as given (`None` when absent), in the order
    /// [`Request::from_values`] takes them.
    fn attrs(&self) -> [(&'static str, Option<&'a str>); ATTRS] {
        [
            ("request", self.request),
            ("protocol_state", self.protocol_state),
            ("client_name", self.client_name),
            ("client_address", self.client_address),
            ("client_port", self.client_port),
            ("helo_name", self.helo_name),
            ("sender", self.sender),
            ("recipient", self.recipient),
            ("recipient_count", self.recipient_count),
            ("queue_id", self.queue_id),
            ("instance", self.instance),
            ("size", self.size),
            ("sasl_method", self.sasl_method),
            ("sasl_username", self.sasl_username),
        ]
    }

    /// Append the request as the lines of the attributes smtpscope reads (without the final
    /// empty line): parsed again, it gives the same request. A third of Postfix's ~900 bytes;
    /// the cluster's edge publishes this (`wire::Kind::Policy`).
    pub fn write_to(&self, out: &mut String) {
        for (name, value) in self.attrs() {
            if let Some(v) = value {
                out.push_str(name);
                out.push('=');
                out.push_str(v);
                out.push('\n');
            }
        }
    }

    /// The request whose attributes are `v`, in the order of [`Request::attrs`].
    fn from_values(v: [Option<&'a str>; ATTRS]) -> Request<'a> {
        let [request, protocol_state, client_name, client_address, client_port, helo_name, sender, recipient, recipient_count, queue_id, instance, size, sasl_method, sasl_username] =
            v;
        Request {
            request,
            protocol_state,
            client_name,
            client_address,
            client_port,
            helo_name,
            sender,
            recipient,
            recipient_count,
            queue_id,
            instance,
            size,
            sasl_method,
            sasl_username,
        }
    }

    /// The engine's event for it (the fields read directly: [`Request::get`] looks the name up).
    pub fn event(&self) -> Event<'a> {
        let g = |v: Option<&'a str>| v.filter(|v| !v.is_empty());
        Event::Policy {
            protocol_state: g(self.protocol_state).unwrap_or(""),
            client: Peer {
                host: g(self.client_name),
                ip: g(self.client_address),
                port: g(self.client_port).and_then(|p| p.parse().ok()),
            },
            helo: g(self.helo_name),
            // The null sender is an empty value: keep it as "" when the attribute is present.
            sender: self.sender,
            recipient: g(self.recipient),
            recipient_count: g(self.recipient_count).and_then(|p| p.parse().ok()),
            sasl_username: g(self.sasl_username),
            sasl_method: g(self.sasl_method),
            qid: g(self.queue_id),
            instance: g(self.instance),
            size: g(self.size).and_then(|p| p.parse().ok()),
        }
    }
}

/// The answer for one request, from the containment snapshot and the live settings.
pub fn answer(shared: &Shared, req: &Request<'_>, now: i64) -> Cow<'static, str> {
    let set = shared.contained.load();
    let hit = if set.is_empty() {
        None
    } else {
        set.lookup(
            now,
            req.get("sasl_username"),
            req.get("client_address"),
            req.get("sender"),
        )
    };
    let Some(e) = hit else {
        shared.metrics.policy_dunno.inc();
        return Cow::Borrowed(DUNNO);
    };
    let live = shared.live.load();
    if live.mode == Mode::Observe {
        shared.metrics.policy_would_act.inc();
        shared.metrics.policy_dunno.inc();
        info!(
            entity = %format!("{} {}", e.kind, e.id),
            incident = e.incident,
            action = e.action.as_str(),
            "observe: would act on policy request"
        );
        return Cow::Borrowed(DUNNO);
    }
    shared.metrics.policy_acted.inc();
    let text: String = live
        .containment
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(400)
        .collect();
    debug!(entity = %e.id, action = e.action.as_str(), "policy action");
    Cow::Owned(format!("action={} {}\n\n", e.action.as_str(), text))
}

/// Handle one complete request (raw text without the final empty line): append its answer to
/// `out` and, when it is a policy request, its text to `batch` for the engine.
pub fn handle(shared: &Shared, raw: &str, now: Ts, out: &mut Vec<u8>, batch: &mut Batch) {
    match Request::parse(raw) {
        Ok(req) => {
            out.extend_from_slice(answer(shared, &req, now.secs()).as_bytes());
            batch.push(now, &req);
        }
        Err(e) => {
            shared.metrics.policy_malformed.inc();
            shared.metrics.policy_dunno.inc();
            debug!("malformed policy request: {e}");
            out.extend_from_slice(DUNNO.as_bytes());
        }
    }
}

/// How many attributes smtpscope reads ([`Request::attrs`]).
const ATTRS: usize = 14;

/// Where one attribute's value lies in a [`Batch`]'s text, from its request's start: `start`
/// and `len` bytes; [`Span::ABSENT`] when the request did not give it. A request's values are
/// far shorter than [`MAX_REQUEST`], so 32 bits each are ample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The attribute is absent (an empty value is present: the null sender).
    const ABSENT: Span = Span {
        start: u32::MAX,
        len: 0,
    };
}

/// One request in a [`Batch`]: its arrival, where its values begin in the text, and where
/// each lies from there.
#[derive(Debug, Clone, Copy)]
struct Entry {
    ts: Ts,
    at: usize,
    spans: [Span; ATTRS],
}

/// Requests for the engine, already parsed: the values of the attributes smtpscope reads
/// ([`Request::attrs`]), one request's after the other's in one text, and where each lies.
/// The engine rebuilds each [`Request`] from the spans without parsing it again (a second
/// parse was an eighth of the engine thread's time at saturation, docs/PERFORMANCE.md).
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    entries: Vec<Entry>,
}

impl Batch {
    /// Add one request.
    pub fn push(&mut self, ts: Ts, req: &Request<'_>) {
        let at = self.text.len();
        let mut spans = [Span::ABSENT; ATTRS];
        for (span, (_, value)) in spans.iter_mut().zip(req.attrs()) {
            if let Some(v) = value {
                // Values are cut to MAX_REQUEST by the scanner, far below u32::MAX.
                *span = Span {
                    start: (self.text.len() - at) as u32,
                    len: v.len() as u32,
                };
                self.text.push_str(v);
            }
        }
        self.entries.push(Entry { ts, at, spans });
    }

    /// The requests, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (Ts, Request<'_>)> {
        self.entries.iter().map(|e| {
            let text = &self.text[e.at..];
            let values = e.spans.map(|s| {
                (s != Span::ABSENT)
                    .then(|| text.get(s.start as usize..(s.start + s.len) as usize))
                    .flatten()
            });
            (e.ts, Request::from_values(values))
        })
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No request?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget the requests, keep the memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// Append the first `max` requests of `other`; returns how many.
    fn append(&mut self, other: &Batch, max: usize) -> usize {
        let n = other.len().min(max);
        let end = other.entries.get(n).map_or(other.text.len(), |e| e.at);
        let base = self.text.len();
        self.text.push_str(&other.text[..end]);
        self.entries
            .extend(other.entries[..n].iter().map(|e| Entry {
                at: base + e.at,
                ..*e
            }));
        n
    }
}

/// Policy requests waiting for the engine, from every connection. A connection adds the
/// requests of one read under one lock and wakes the engine (one [`Msg::Policy`]) only when
/// the inbox was empty; the engine takes everything waiting at once ([`Inbox::take`]). So a
/// busy engine is woken once per batch, not once per request, and nobody ever waits for it:
/// past `cap` waiting requests, new ones are not analysed (fail open, counted).
///
/// With a [`Inbox::pump`] running (every policy listener starts one), the first request of a
/// batch does not wake the engine itself: it wakes the pump, which wakes the engine
/// [`POLICY_BATCH_DELAY`] later, so under load the engine takes a few hundred requests per
/// wake-up instead of one (a wake-up per request, a futex call and a context switch on a
/// machine whose cores the server shares with Postfix, cost more than the engine's work on the
/// request). A batch reaching [`POLICY_WAKE_NOW`] wakes the engine at once.
#[derive(Debug)]
pub struct Inbox {
    waiting: Mutex<Batch>,
    cap: usize,
    /// Set while a pump runs: batches are then woken by it.
    pumped: AtomicBool,
    /// The pump's signal: a batch has begun.
    begun: tokio::sync::Notify,
}

/// How long the first request of a batch waits before the engine is woken for it (with a
/// [`Inbox::pump`]): the requests arriving meanwhile go with it. Short beside what anything
/// downstream waits for (the policy claims wait [`detect::claims::POLICY_LINK_SECS`] for the
/// log), long beside a request's ~5 µs of engine work. Not longer: the engine then works
/// through the batch in one go, and on a machine whose cores it shares with the connections a
/// longer burst delays answers (p99 0.96-1.01 ms with 2 ms against 0.69-1.23 ms with 1 ms in
/// interleaved runs, docs/PERFORMANCE.md); 1 ms is the resolution of tokio's timer. Our own
/// choice.
pub const POLICY_BATCH_DELAY: StdDuration = StdDuration::from_millis(1);
/// Requests waiting that wake the engine at once, without waiting for the pump (or the
/// inbox's cap, if smaller).
pub const POLICY_WAKE_NOW: usize = 1024;

impl Inbox {
    /// An inbox holding at most `cap` requests.
    pub fn new(cap: usize) -> Inbox {
        Inbox {
            waiting: Mutex::new(Batch::default()),
            cap: cap.max(1),
            pumped: AtomicBool::new(false),
            begun: tokio::sync::Notify::new(),
        }
    }

    /// Wake the engine [`POLICY_BATCH_DELAY`] after each batch begins, until `stop`. One pump
    /// per inbox: a second call returns at once.
    pub async fn pump(
        &self,
        engine: tokio::sync::mpsc::Sender<Msg>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.pumped.swap(true, Ordering::AcqRel) {
            return;
        }
        loop {
            tokio::select! {
                _ = self.begun.notified() => {}
                _ = stop.changed() => break,
            }
            tokio::time::sleep(POLICY_BATCH_DELAY).await;
            // A full engine queue: the requests wait in the inbox for the engine's next tick.
            let _ = engine.try_send(Msg::Policy);
        }
        self.pumped.store(false, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        // Every change is one append or swap: a poisoned lock still holds whole requests.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add the requests of `b`; wake the engine when they are the first waiting. Requests
    /// past the cap are counted as fail-open. Returns how many are waiting now.
    pub fn put(&self, shared: &Shared, b: &Batch) -> usize {
        if b.is_empty() {
            return 0;
        }
        let (taken, before) = {
            let mut w = self.lock();
            let before = w.len();
            let room = self.cap.saturating_sub(before);
            (w.append(b, room), before)
        };
        if taken < b.len() {
            // Not an add of 0 per read: the counter is shared by every connection.
            shared.metrics.fail_open.add((b.len() - taken) as u64);
        }
        if taken == 0 {
            return before;
        }
        // A flood, or an inbox about to refuse requests, does not wait for the pump.
        let wake_at = POLICY_WAKE_NOW.min(self.cap);
        let now = before < wake_at && before + taken >= wake_at;
        let wake = if self.pumped.load(Ordering::Acquire) {
            if before == 0 && !now {
                self.begun.notify_one();
            }
            now
        } else {
            before == 0
        };
        if wake {
            // A full engine queue: the requests wait in the inbox for the engine's next tick.
            let _ = shared.engine_tx.try_send(Msg::Policy);
        }
        before + taken
    }

    /// Swap the waiting requests into `into` (whose old content is dropped, its memory reused).
    pub fn take(&self, into: &mut Batch) {
        into.clear();
        std::mem::swap(&mut *self.lock(), into);
    }
}

/// Finds the requests in a connection's input buffer, remembering how far it looked so that a
/// request arriving in many small reads is scanned once.
#[derive(Debug, Default)]
struct Scanner {
    /// Start of the line not yet scanned.
    pos: usize,
    /// Start of the request's first attribute line, once seen.
    start: Option<usize>,
    /// The request's size so far (attribute lines without `\r`, with `\n`).
    size: usize,
}

/// What the scanner found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A complete request: its attribute lines are `buf[start..end]`; the empty line that
    /// ends it ends at `next`.
    Request {
        start: usize,
        end: usize,
        next: usize,
    },
    /// No complete request yet.
    Partial,
    /// A line longer than [`MAX_LINE`] or a request longer than [`MAX_REQUEST`].
    TooLong,
}

/// The end of a request whose lines end in LF alone: its last attribute line's end and the
/// empty line.
static REQUEST_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));

impl Scanner {
    /// Look for the end of the request that starts at `self.pos` (after the last one).
    fn scan(&mut self, buf: &[u8]) -> Scan {
        self.scan_whole(buf).unwrap_or_else(|| self.scan_lines(buf))
    }

    /// The common case in one search, as [`Scanner::scan_lines`] would find it: a whole
    /// request at `self.pos`, none of it scanned before, its lines ended by LF alone (no `\r`
    /// in it), shorter than [`MAX_LINE`] (so no line of it is too long, nor is it). `None`
    /// when it is not that case (nothing changed): the lines are then scanned one by one.
    /// Postfix's requests are that case; one search for the empty line instead of one per
    /// line (about 30) is what it saves.
    fn scan_whole(&mut self, buf: &[u8]) -> Option<Scan> {
        if self.start.is_some() {
            return None;
        }
        let rest = buf.get(self.pos..)?;
        if rest.first() == Some(&b'\n') {
            return None;
        }
        // An end found in this window is at most `MAX_LINE` bytes in.
        let window = &rest[..rest.len().min(MAX_LINE + 2)];
        let i = REQUEST_END.find(window)?;
        if memchr::memchr(b'\r', &rest[..i]).is_some() {
            return None;
        }
        let start = self.pos;
        self.pos += i + 2;
        Some(Scan::Request {
            start,
            end: start + i + 1,
            next: self.pos,
        })
    }

    /// [`Scanner::scan`] a line at a time, from where the last look stopped.
    fn scan_lines(&mut self, buf: &[u8]) -> Scan {
        loop {
            let rest = &buf[self.pos..];
            let Some(i) = memchr::memchr(b'\n', rest) else {
                return if rest.len() > MAX_LINE {
                    Scan::TooLong
                } else {
                    Scan::Partial
                };
            };
            if i > MAX_LINE {
                return Scan::TooLong;
            }
            let len = if i > 0 && rest[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            let line = self.pos;
            self.pos += i + 1;
            if len == 0 {
                match self.start.take() {
                    // A stray empty line between requests.
                    None => continue,
                    Some(start) => {
                        self.size = 0;
                        return Scan::Request {
                            start,
                            end: line,
                            next: self.pos,
                        };
                    }
                }
            }
            self.start.get_or_insert(line);
            self.size += len + 1;
            if self.size > MAX_REQUEST {
                return Scan::TooLong;
            }
        }
    }

    /// Is a request begun but not complete (or is there a partial line)?
    fn partial(&self, buf: &[u8]) -> bool {
        self.start.is_some() || self.pos < buf.len()
    }

    /// The buffer lost its first `n` bytes (all scanned, none of a pending request).
    fn shift(&mut self, n: usize) {
        self.pos -= n;
        if let Some(s) = self.start.as_mut() {
            *s -= n;
        }
    }

    /// Where the bytes still needed begin: the pending request, or the unscanned rest.
    fn keep_from(&self) -> usize {
        self.start.unwrap_or(self.pos)
    }
}

/// A connection's buffers, reused for every request.
struct Conn {
    input: Vec<u8>,
    scanner: Scanner,
    out: Vec<u8>,
    batch: Batch,
}

/// Room a read can always fill.
const READ_ROOM: usize = 4096;

impl Conn {
    fn new() -> Conn {
        Conn {
            input: Vec::with_capacity(16 * 1024),
            scanner: Scanner::default(),
            out: Vec::with_capacity(1024),
            batch: Batch::default(),
        }
    }

    /// Answer every complete request in the input (into `out`, their texts into `batch`);
    /// false when one was too long. Returns the number answered.
    fn answer_all(&mut self, shared: &Shared, now: Ts) -> (usize, bool) {
        let mut n = 0;
        loop {
            match self.scanner.scan(&self.input) {
                Scan::Request { start, end, .. } => {
                    let raw = &self.input[start..end];
                    match std::str::from_utf8(raw) {
                        Ok(s) => handle(shared, s, now, &mut self.out, &mut self.batch),
                        Err(_) => handle(
                            shared,
                            &String::from_utf8_lossy(raw),
                            now,
                            &mut self.out,
                            &mut self.batch,
                        ),
                    }
                    n += 1;
                }
                Scan::Partial => return (n, true),
                Scan::TooLong => return (n, false),
            }
        }
    }

    /// Drop the input that is done with, keep a pending request, leave room for a read.
    fn compact(&mut self) {
        let keep = self.scanner.keep_from();
        if keep > 0 {
            self.input.drain(..keep);
            self.scanner.shift(keep);
        }
        if self.input.capacity() - self.input.len() < READ_ROOM {
            self.input.reserve(READ_ROOM.max(self.input.len()));
        }
    }
}

/// How often the connections past their deadline are closed ([`reap`]): the timeouts take
/// effect within this much of their time. Our own choice.
pub const REAP_INTERVAL: StdDuration = StdDuration::from_millis(250);

/// Close the policy connections past their deadline: idle longer than `policy_idle` between
/// requests, or inside one request longer than `request_timeout` from its first byte (a
/// request trickling in a byte at a time too); counted as timeouts. Returns how many.
///
/// A connection's thread blocks in its read with no timeout, so it costs nothing while idle;
/// its deadlines are kept here, from its slot's activity and since-when, which the thread sets
/// as requests begin and end. (With a read timeout on each socket instead, every idle
/// connection's thread woke four times a second.)
pub fn reap(slots: &Slots, timeouts: Timeouts, shared: &Shared) -> usize {
    slots.close_overdue(
        tokio::time::Instant::now(),
        timeouts.idle,
        timeouts.request,
        |n| shared.metrics.policy_timeouts.add(n as u64),
    )
}

/// Stack of a connection's thread: it parses in place and keeps its buffers on the heap, so it
/// needs little, and a listener may hold `[serve.limits] connections` of them (1,000 by
/// default).
pub const CONNECTION_STACK_BYTES: usize = 256 * 1024;

/// A policy client's connection as its thread reads and writes it: TCP or a unix socket.
pub trait PolicyStream: std::io::Write + Send + 'static {
    /// Read what has arrived (at least one byte, blocking until then) onto the end of `buf`,
    /// into room it already has; 0 at end of input (or once shut down from another thread).
    fn recv_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize>;
    /// Closes this connection from another thread ([`super::slots::Closer`]).
    fn closer(&self) -> std::io::Result<super::slots::Closer>;
}

/// `recv(2)` into the spare room of `buf` (no zeroing of the room first, as `Read::read`
/// would need).
fn recv_spare(fd: std::os::fd::RawFd, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `recv` writes at most `spare.len()` bytes into the buffer's allocated, unused
    // room, which is valid for writes; the bytes it reports written are initialised.
    let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised `n` ≤ spare.len() bytes after the current length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// [`PolicyStream`] for a socket type of std (the same code for TCP and unix sockets).
macro_rules! policy_stream {
    ($($t:ty),*) => {$(
        impl PolicyStream for $t {
            fn recv_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
                recv_spare(std::os::fd::AsRawFd::as_raw_fd(self), buf)
            }
            fn closer(&self) -> std::io::Result<super::slots::Closer> {
                let s = self.try_clone()?;
                Ok(Box::new(move || {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }))
            }
        }
    )*};
}

policy_stream!(std::net::TcpStream, std::os::unix::net::UnixStream);

/// Serve one connection, on its own thread, until it closes, misbehaves, is closed from
/// outside through its slot (idle or slow past its deadline, [`reap`]; evicted to make room;
/// `serve` stopping) or `serve` stops.
///
/// A thread per connection with blocking reads and writes, as Postfix's own clients use it
/// (one request in flight per smtpd process): on loopback this took 8.5–9.7 µs of CPU per
/// request against 9.4–10.9 on tokio's workers, and answered about 40% more requests a second
/// (docs/PERFORMANCE.md, "Policy server"). The slot tells [`reap`] when a request begins and
/// ends; the thread itself keeps no timer.
pub fn connection<S: PolicyStream>(
    mut s: S,
    shared: Arc<Shared>,
    slot: Slot,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut c = Conn::new();
    let mut busy = false;
    slot.idle();
    loop {
        // Stopped: the value changed (or the sender is gone). One atomic load, where
        // `borrow` would take the channel's lock, shared by every connection, per request.
        if !matches!(stop.has_changed(), Ok(false)) {
            return;
        }
        match s.recv_into(&mut c.input) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let t0 = Instant::now();
        let (n, ok) = c.answer_all(&shared, super::now_ts());
        // When the answers went out: the latency's end, and the start of the wait for the
        // next request (one clock read for both).
        let mut answered = None;
        if n > 0 {
            shared.metrics.lines[SourceKind::Policy as usize].add(n as u64);
            let waiting = shared.policy_inbox.put(&shared, &c.batch);
            c.batch.clear();
            let w = s.write_all(&c.out);
            c.out.clear();
            let t1 = Instant::now();
            shared
                .metrics
                .policy_latency
                .observe_n(t1.saturating_duration_since(t0), n as u64);
            answered = Some(t1);
            if w.is_err() {
                return;
            }
            if waiting >= POLICY_WAKE_NOW {
                // The engine is behind: let it have this core (each connection is a thread
                // as runnable as the engine's; at saturation they took its time and the inbox
                // filled, failing requests open).
                std::thread::yield_now();
            }
        }
        if !ok {
            shared.metrics.policy_malformed.inc();
            return;
        }
        if c.scanner.partial(&c.input) {
            // A request has begun (a new one, when others were just answered): it must be
            // complete within `request_timeout` of its first byte ([`reap`]).
            if !busy || n > 0 {
                slot.busy();
                busy = true;
            }
        } else if n > 0 || busy {
            match answered {
                Some(t) => slot.idle_since(t.into()),
                None => slot.idle(),
            }
            busy = false;
        }
        c.compact();
    }
}

/// How long a policy connection may idle between requests, and take for one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Between requests (`[serve.limits] policy_idle`).
    pub idle: StdDuration,
    /// From a request's first byte to its end (`request_timeout`).
    pub request: StdDuration,
}

impl Timeouts {
    /// From `[serve.limits]`.
    pub fn of(limits: &ServeLimits) -> Timeouts {
        Timeouts {
            idle: StdDuration::from_secs(limits.policy_idle.0.max(1) as u64),
            request: StdDuration::from_secs(limits.request_timeout.0.max(1) as u64),
        }
    }
}

/// Pause after a failed `accept` (out of file descriptors, say), so the loop does not spin.
pub const ACCEPT_BACKOFF: StdDuration = StdDuration::from_millis(50);

/// Permissions of the policy unix socket, written as an octal string (`"0660"`).
///
/// Postfix's smtpd connects as user `postfix`; anyone who can connect can have accounts
/// contained, so the socket is not world-writable: owner and group only by default, with the
/// group `postfix` (see [`SocketMode`]'s use in [`listen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SocketMode(pub u32);

impl Default for SocketMode {
    fn default() -> Self {
        SocketMode(0o660)
    }
}

impl TryFrom<String> for SocketMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(SocketMode(m)),
            _ => Err(format!(
                "invalid socket mode {s:?} (expected octal permissions 0000 to 0777, e.g. \"0660\")"
            )),
        }
    }
}

impl From<SocketMode> for String {
    fn from(m: SocketMode) -> String {
        format!("{:04o}", m.0)
    }
}

/// The group Postfix's processes run as, used for the socket when no group is configured.
pub const POSTFIX_GROUP: &str = "postfix";

/// The id of a group, from /etc/group.
fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Give the socket its mode and group: the configured group must exist and be settable; the
/// default `postfix` is used when it exists.
fn secure_socket(path: &str, mode: SocketMode, group: Option<&str>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.0))
        .with_context(|| format!("cannot set permissions of {path}"))?;
    match group {
        Some(g) => {
            let gid =
                group_id(g).with_context(|| format!("policy_socket_group {g:?}: no such group"))?;
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("cannot give {path} to group {g:?}"))?;
        }
        None => {
            if let Some(gid) = group_id(POSTFIX_GROUP) {
                if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
                    warn!(
                        socket = path,
                        "cannot give the socket to group postfix: {e}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// What every connection of one listener shares.
struct Listener {
    shared: Arc<Shared>,
    slots: Arc<Slots>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Close the connections past their deadline every [`REAP_INTERVAL`] ([`reap`]), and every
/// connection when `serve` stops (their threads, blocked in reads, then end).
async fn reaper(
    slots: Arc<Slots>,
    timeouts: Timeouts,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                reap(&slots, timeouts, &shared);
            }
            _ = stop.changed() => break,
        }
    }
    slots.close_all();
}

impl Listener {
    /// Give an accepted connection its slot (evicting another when full) and serve it on a
    /// thread of its own ([`connection`]).
    fn serve<S: PolicyStream>(&self, stream: std::io::Result<S>) {
        let (stream, closer) = match stream.and_then(|s| s.closer().map(|c| (s, c))) {
            Ok(sc) => sc,
            Err(e) => {
                warn!("policy connection: {e}");
                return;
            }
        };
        let (slot, how) = self.slots.admit_closing(closer);
        if let Admission::Evicted(was) = how {
            self.shared.metrics.policy_refused(PolicyRefusal::Evicted);
            debug!(
                ?was,
                "all policy connection slots taken: closed the longest waiting"
            );
        }
        let (sh, st) = (self.shared.clone(), self.stop.clone());
        let spawned = std::thread::Builder::new()
            .name("policy".into())
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || connection(stream, sh, slot, st));
        if let Err(e) = spawned {
            warn!("policy connection: cannot start its thread: {e}");
        }
    }
}

/// Bind a policy listener ("host:port" or "unix:/path") and serve it in a task.
pub async fn listen(
    addr: &str,
    shared: Arc<Shared>,
    cfg: &ServeConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let (sh, st) = (shared.clone(), stop.clone());
    tokio::spawn(async move { sh.policy_inbox.pump(sh.engine_tx.clone(), st).await });
    let slots = Slots::new(cfg.limits.connections, shared.metrics.policy_open.clone());
    let timeouts = Timeouts::of(&cfg.limits);
    tokio::spawn(reaper(
        slots.clone(),
        timeouts,
        shared.clone(),
        stop.clone(),
    ));
    let lst = Listener {
        slots,
        shared,
        stop: stop.clone(),
    };
    let mut stop = stop;
    if let Some(path) = addr.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("cannot listen on policy socket {path}"))?;
        secure_socket(
            path,
            cfg.policy_socket_mode,
            cfg.policy_socket_group.as_deref(),
        )?;
        info!(socket = path, "policy server listening");
        return Ok(tokio::spawn(async move {
            loop {
                let acc = tokio::select! {
                    a = l.accept() => a,
                    _ = stop.changed() => return,
                };
                match acc {
                    Ok((s, _)) => lst.serve(s.into_std().and_then(|s| {
                        s.set_nonblocking(false)?;
                        Ok(s)
                    })),
                    Err(e) => {
                        warn!("policy accept: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }));
    }
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on policy address {addr}"))?;
    let peers = Allowlist::new(&cfg.policy_peers);
    info!(addr = %l.local_addr()?, peers = ?cfg.policy_peers, "policy server listening");
    Ok(tokio::spawn(async move {
        loop {
            let acc = tokio::select! {
                a = l.accept() => a,
                _ = stop.changed() => return,
            };
            match acc {
                Ok((s, peer)) => {
                    if !peers.allows(peer.ip()) {
                        lst.shared.metrics.policy_refused(PolicyRefusal::Peer);
                        debug!(%peer, "policy connection from outside policy_peers refused");
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    lst.serve(s.into_std().and_then(|s| {
                        s.set_nonblocking(false)?;
                        Ok(s)
                    }));
                }
                Err(e) => {
                    warn!("policy accept: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.1.2.3\nclient_name=unknown\nhelo_name=pc1\nsender=a@example.com\nrecipient=b@example.org\nrecipient_count=0\nqueue_id=\ninstance=1a2b.3c4d.0\nsize=0\nsasl_method=PLAIN\nsasl_username=alice\n";

    #[test]
    fn parses_postfix_request_into_event() {
        let r = Request::parse(REQ).unwrap();
        assert_eq!(r.get("sasl_username"), Some("alice"));
        assert_eq!(r.get("queue_id"), None);
        match r.event() {
            Event::Policy {
                protocol_state,
                client,
                helo,
                sender,
                recipient,
                recipient_count,
                sasl_username,
                instance,
                qid,
                ..
            } => {
                assert_eq!(protocol_state, "RCPT");
                assert_eq!(client.ip, Some("127.1.2.3"));
                assert_eq!(client.host, Some("unknown"));
                assert_eq!(helo, Some("pc1"));
                assert_eq!(sender, Some("a@example.com"));
                assert_eq!(recipient, Some("b@example.org"));
                assert_eq!(recipient_count, Some(0));
                assert_eq!(sasl_username, Some("alice"));
                assert_eq!(instance, Some("1a2b.3c4d.0"));
                assert_eq!(qid, None);
            }
            e => panic!("{e:?}"),
        }
    }

    /// Every attribute smtpscope reads is read, under its own name only: names of the same
    /// length, first and last byte (what `slot` looks at before comparing) are not.
    #[test]
    fn every_attribute_is_read_under_its_own_name_only() {
        let names = Request::default().attrs().map(|(n, _)| n);
        let mut raw = String::new();
        for (i, n) in names.iter().enumerate() {
            // A look-alike first: the same length and ends, one byte changed in the middle.
            let mut alike = n.as_bytes().to_vec();
            let mid = alike.len() / 2;
            alike[mid] = if alike[mid] == b'x' { b'y' } else { b'x' };
            raw.push_str(&format!("{}=alike{i}\n", String::from_utf8(alike).unwrap()));
            if *n != "request" {
                raw.push_str(&format!("{n}=value{i}\n"));
            }
        }
        raw.push_str("server_port=25\nsasl_sender=x\nstress=yes\nrequest=smtpd_access_policy\n");
        let r = Request::parse(&raw).unwrap();
        for (i, n) in names.iter().enumerate() {
            let want = if *n == "request" {
                "smtpd_access_policy".to_string()
            } else {
                format!("value{i}")
            };
            assert_eq!(r.get(n).map(str::to_string), Some(want), "{n}");
        }
        for n in [
            "server_port",
            "sasl_sender",
            "stress",
            "requesx",
            "Sender",
            "",
        ] {
            assert_eq!(r.get(n), None, "{n}");
        }
    }

    /// What the cluster's edge publishes (`Request::write_to`) parses back into the same
    /// request: every attribute read, the null sender, the first of a repeated name, `\r\n`
    /// line ends.
    #[test]
    fn the_published_copy_parses_back_to_the_same_request() {
        let odd = "request=smtpd_access_policy\r\nsender=\r\nsasl_username=bob\r\n\
                   sasl_username=eve\r\nrecipient=x@y\r\nunknown_attr=1\r\n";
        for raw in [REQ, odd] {
            let r = Request::parse(raw).unwrap();
            let mut copy = String::new();
            r.write_to(&mut copy);
            assert!(copy.len() < raw.len(), "{copy}");
            let back = Request::parse(&copy).unwrap();
            assert_eq!(back.attrs(), r.attrs());
            assert_eq!(format!("{:?}", back.event()), format!("{:?}", r.event()));
        }
    }

    /// What goes to the engine (a [`Batch`]) reads back as the same requests: every attribute
    /// read, absent ones absent, the null sender (an empty value) present, the first of a
    /// repeated name, `\r\n` line ends; also after being appended to another batch, in part.
    #[test]
    fn the_engines_copy_is_the_same_request() {
        let odd = "request=smtpd_access_policy\r\nsender=\r\nsasl_username=bob\r\n\
                   sasl_username=eve\r\nrecipient=x@y\r\nunknown_attr=1\r\n";
        let bare = "request=smtpd_access_policy\n";
        let raws = [REQ, odd, bare, REQ];
        let reqs: Vec<Request> = raws.iter().map(|r| Request::parse(r).unwrap()).collect();
        let mut b = Batch::default();
        for (i, r) in reqs.iter().enumerate() {
            b.push(Ts(i as i64), r);
        }
        assert!(
            b.text.len() < REQ.len() + odd.len(),
            "only the values are kept"
        );
        let same = |got: &Batch, want: &[Request]| {
            assert_eq!(got.len(), want.len());
            for ((ts, back), (i, r)) in got.iter().zip(want.iter().enumerate()) {
                assert_eq!(back.attrs(), r.attrs(), "request {i}");
                assert_eq!(format!("{:?}", back.event()), format!("{:?}", r.event()));
                assert_eq!(back.get("sender"), r.get("sender"));
                let _ = ts;
            }
        };
        same(&b, &reqs);
        assert_eq!(reqs[1].sender, Some(""), "the null sender is present");
        assert_eq!(b.iter().nth(1).unwrap().1.sender, Some(""));
        assert_eq!(b.iter().nth(2).unwrap().1.sender, None);
        let ts: Vec<Ts> = b.iter().map(|(t, _)| t).collect();
        assert_eq!(ts, [Ts(0), Ts(1), Ts(2), Ts(3)]);
        // Appended after a request already waiting, whole and in part.
        let mut waiting = Batch::default();
        waiting.push(Ts(9), &reqs[1]);
        assert_eq!(waiting.append(&b, 2), 2);
        same(&waiting, &[reqs[1], reqs[0], reqs[1]]);
        assert_eq!(waiting.append(&b, 10), 4);
        same(
            &waiting,
            &[
                reqs[1], reqs[0], reqs[1], reqs[0], reqs[1], reqs[2], reqs[3],
            ],
        );
    }

    #[test]
    fn null_sender_and_bad_requests() {
        let r = Request::parse("request=smtpd_access_policy\nsender=\n").unwrap();
        match r.event() {
            Event::Policy { sender, .. } => assert_eq!(sender, Some("")),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            Request::parse("GET / HTTP/1.0\n").unwrap_err(),
            BadRequest::Garbage
        );
        assert_eq!(
            Request::parse("client_address=1.2.3.4\n").unwrap_err(),
            BadRequest::NotPolicy
        );
        let many: String = (0..200).map(|i| format!("x{i}=y\n")).collect();
        assert_eq!(Request::parse(&many).unwrap_err(), BadRequest::TooMany);
    }

    /// The requests the scanner finds in `wire` fed in chunks of `chunk` bytes, as the
    /// connection does (compacting between reads).
    fn scan_chunked(wire: &[u8], chunk: usize) -> (Vec<String>, Option<Scan>) {
        scan_chunked_with(wire, chunk, Scanner::scan)
    }

    /// [`scan_chunked`] with the line-at-a-time scan alone (no [`Scanner::scan_whole`]).
    fn scan_chunked_by_lines(wire: &[u8], chunk: usize) -> (Vec<String>, Option<Scan>) {
        scan_chunked_with(wire, chunk, Scanner::scan_lines)
    }

    /// The requests `scan` finds in `wire` read `chunk` bytes at a time, and how it stopped.
    fn scan_chunked_with(
        wire: &[u8],
        chunk: usize,
        scan: fn(&mut Scanner, &[u8]) -> Scan,
    ) -> (Vec<String>, Option<Scan>) {
        let (mut buf, mut sc, mut got) = (Vec::new(), Scanner::default(), Vec::new());
        for c in wire.chunks(chunk) {
            buf.extend_from_slice(c);
            loop {
                match scan(&mut sc, &buf) {
                    Scan::Request { start, end, .. } => {
                        got.push(String::from_utf8_lossy(&buf[start..end]).into_owned())
                    }
                    Scan::Partial => break,
                    Scan::TooLong => return (got, Some(Scan::TooLong)),
                }
            }
            let keep = sc.keep_from();
            buf.drain(..keep);
            sc.shift(keep);
        }
        (got, None)
    }

    #[test]
    fn finds_requests_in_any_chunking() {
        let wire = format!(
            "{REQ}\n\nrequest=smtpd_access_policy\r\nsasl_username=bob\r\n\r\nrequest=smtpd_access_policy\nsasl_user"
        );
        for chunk in [1usize, 2, 3, 7, 64, 4096] {
            let (got, end) = scan_chunked(wire.as_bytes(), chunk);
            assert_eq!(end, None);
            assert_eq!(
                got,
                [REQ, "request=smtpd_access_policy\r\nsasl_username=bob\r\n"],
                "chunk {chunk}"
            );
            let r = Request::parse(&got[1]).unwrap();
            assert_eq!(r.get("sasl_username"), Some("bob"));
        }
    }

    /// The one-search path finds what the line-at-a-time scan finds, on wires of requests
    /// with LF and CRLF ends, stray empty lines, `\r` inside values, and lines and requests
    /// around [`MAX_LINE`] and [`MAX_REQUEST`], read in chunks of many sizes.
    #[test]
    fn one_search_finds_what_the_line_scan_finds() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut whole = 0;
        for _ in 0..300 {
            let mut wire = String::new();
            for _ in 0..next(6) {
                let eol = if next(5) == 0 { "\r\n" } else { "\n" };
                if next(6) == 0 {
                    wire.push_str(eol);
                }
                for a in 0..1 + next(30) {
                    let len = match next(40) {
                        0 => MAX_LINE - 4 + next(8) as usize,
                        1 => MAX_LINE / 4,
                        _ => next(40) as usize,
                    };
                    let value: String = (0..len)
                        .map(|i| if i == 3 && next(20) == 0 { '\r' } else { 'v' })
                        .collect();
                    wire.push_str(&format!("a{a}={value}{eol}"));
                }
                wire.push_str(eol);
            }
            if next(3) == 0 {
                wire.push_str("request=smtpd_access_policy\nsasl_user");
            }
            for chunk in [1usize, 5, 64, 700, 4096, 1 << 20] {
                let got = scan_chunked(wire.as_bytes(), chunk);
                assert_eq!(
                    got,
                    scan_chunked_by_lines(wire.as_bytes(), chunk),
                    "chunk {chunk}"
                );
                whole += got.0.len();
            }
        }
        assert!(
            whole > 1000,
            "{whole} requests found: the wires hold requests"
        );
    }

    #[test]
    fn over_long_line_or_request_is_refused() {
        let long = format!("x={}\n\n", "a".repeat(MAX_LINE + 10));
        let unended = "a".repeat(MAX_LINE + 10);
        let many: String = (0..MAX_REQUEST / 16)
            .map(|i| format!("attribute{i:05}=0\n"))
            .collect();
        for wire in [long, unended, many] {
            for chunk in [1000, 1 << 16] {
                assert_eq!(
                    scan_chunked(wire.as_bytes(), chunk).1,
                    Some(Scan::TooLong),
                    "{}",
                    &wire[..20]
                );
            }
        }
    }

    fn shared_enforcing(account: &str) -> (Arc<Shared>, tokio::sync::mpsc::Receiver<Msg>) {
        let (sh, rx) = crate::serve::syslog::tests::shared();
        let mut set = crate::serve::contain::Set::default();
        set.insert(crate::serve::contain::Entry {
            kind: detect::EntityKind::Account,
            id: account.into(),
            incident: 1,
            action: crate::serve::PolicyAction::Hold,
            since: 0,
            until: None,
            by: "test".into(),
            reason: "test".into(),
        });
        sh.contained.store(Arc::new(set));
        sh.live.store(Arc::new(crate::serve::Live {
            mode: Mode::Enforce,
            containment: Default::default(),
            token: String::new(),
        }));
        (sh, rx)
    }

    const TIMEOUTS: Timeouts = Timeouts {
        idle: StdDuration::from_secs(3600),
        request: StdDuration::from_secs(10),
    };

    /// A connection served on its own thread over a socket pair; the client's end returned.
    fn serve_pair(
        sh: &Arc<Shared>,
        slots: &Arc<Slots>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> (
        std::os::unix::net::UnixStream,
        std::sync::mpsc::Receiver<()>,
    ) {
        let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        let (slot, _) = slots.admit_closing(server.closer().unwrap());
        let (done_tx, done) = std::sync::mpsc::channel();
        let sh = sh.clone();
        std::thread::spawn(move || {
            connection(server, sh, slot, stop);
            let _ = done_tx.send(());
        });
        (client, done)
    }

    /// The listener's [`reaper`] on a thread of its own (with a runtime for its timer).
    fn run_reaper(
        sh: &Arc<Shared>,
        slots: &Arc<Slots>,
        timeouts: Timeouts,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let (sh, slots) = (sh.clone(), slots.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(reaper(slots, timeouts, sh, stop))
        });
    }

    /// Long enough for a connection's thread to notice anything (a few [`REAP_INTERVAL`]s).
    const SETTLE: StdDuration = StdDuration::from_secs(10);

    /// A client that pipelines requests (sends several before reading any answer, in any
    /// chunking) gets every answer, in order; the engine gets every request, in order.
    #[test]
    fn pipelined_requests_are_answered_in_order() {
        use std::io::{Read, Write};
        let users = ["alice", "bob", "alice", "carol", "alice", "bob"];
        let mut wire = String::new();
        for (i, u) in users.iter().enumerate() {
            wire.push_str(&format!(
                "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.1.0.{i}\nsasl_username={u}\n\n"
            ));
        }
        wire.push_str("GET / HTTP/1.0\n\n");
        for chunk in [1usize, 5, 64, 100_000] {
            let (sh, mut rx) = shared_enforcing("alice");
            let slots = Slots::new(10, sh.metrics.policy_open.clone());
            let (_stop_tx, stop) = tokio::sync::watch::channel(false);
            let (mut client, done) = serve_pair(&sh, &slots, stop);
            for c in wire.as_bytes().chunks(chunk) {
                client.write_all(c).unwrap();
            }
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            done.recv_timeout(SETTLE).expect("the connection ends");
            let hold = "action=HOLD Your account is blocked for suspected abuse; please contact the abuse desk\n\n";
            let want: String = users
                .iter()
                .map(|u| if *u == "alice" { hold } else { DUNNO })
                .chain([DUNNO])
                .collect();
            assert_eq!(got, want, "chunk {chunk}");
            assert!(
                matches!(rx.try_recv(), Ok(Msg::Policy)),
                "the engine is woken"
            );
            let mut b = Batch::default();
            sh.policy_inbox.take(&mut b);
            let fed: Vec<String> = b
                .iter()
                .map(|(_, r)| r.get("sasl_username").unwrap().to_string())
                .collect();
            assert_eq!(fed, users, "chunk {chunk}");
            assert_eq!(sh.metrics.policy_malformed.get(), 1);
            assert_eq!(sh.metrics.fail_open.get(), 0);
            assert_eq!(sh.metrics.lines[SourceKind::Policy as usize].get(), 7);
        }
    }

    /// One read of pipelined requests is answered with one write.
    #[test]
    fn answers_of_one_read_go_out_in_one_write() {
        struct Recorded {
            input: Vec<u8>,
            writes: Vec<usize>,
        }
        struct Mock(Arc<Mutex<Recorded>>);
        impl std::io::Write for Mock {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().writes.push(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl PolicyStream for Mock {
            fn recv_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
                let input = std::mem::take(&mut self.0.lock().unwrap().input);
                buf.extend_from_slice(&input);
                Ok(input.len())
            }
            fn closer(&self) -> std::io::Result<crate::serve::slots::Closer> {
                Ok(Box::new(|| {}))
            }
        }
        let (sh, _rx) = shared_enforcing("alice");
        let slots = Slots::new(10, sh.metrics.policy_open.clone());
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let rec = Arc::new(Mutex::new(Recorded {
            input: "request=smtpd_access_policy\nsasl_username=bob\n\n"
                .repeat(20)
                .into_bytes(),
            writes: Vec::new(),
        }));
        let (slot, _) = slots.admit();
        connection(Mock(rec.clone()), sh.clone(), slot, stop);
        assert_eq!(rec.lock().unwrap().writes, [20 * DUNNO.len()]);
        assert_eq!(sh.metrics.lines[SourceKind::Policy as usize].get(), 20);
    }

    /// A connection that sends nothing is closed after `idle`; one whose request trickles in,
    /// a byte at a time, `request` after its first byte, though its reads never wait long:
    /// by the listener's reaper, the threads keep no timer.
    #[test]
    fn idle_and_slow_connections_time_out() {
        use std::io::{Read, Write};
        let (sh, _rx) = shared_enforcing("alice");
        let slots = Slots::new(10, sh.metrics.policy_open.clone());
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let short = Timeouts {
            idle: StdDuration::from_millis(300),
            request: StdDuration::from_millis(600),
        };
        run_reaper(&sh, &slots, short, stop.clone());
        let t0 = Instant::now();
        let (mut idle, done) = serve_pair(&sh, &slots, stop.clone());
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0, "closed");
        done.recv_timeout(SETTLE).unwrap();
        assert!(t0.elapsed() >= short.idle);
        // Counted by the reaper just after it closed the connection.
        let counted = |n| {
            let t = Instant::now();
            while sh.metrics.policy_timeouts.get() != n && t.elapsed() < SETTLE {
                std::thread::sleep(StdDuration::from_millis(5));
            }
            sh.metrics.policy_timeouts.get()
        };
        assert_eq!(counted(1), 1);

        let (mut slow, done) = serve_pair(&sh, &slots, stop);
        let t0 = Instant::now();
        let request = b"request=smtpd_access_policy\nsasl_username=bob\n";
        for b in request.iter().cycle() {
            if slow.write_all(&[*b]).is_err() || done.try_recv().is_ok() {
                break;
            }
            assert!(t0.elapsed() < SETTLE, "still open");
            std::thread::sleep(StdDuration::from_millis(20));
        }
        assert!(t0.elapsed() >= short.request);
        assert_eq!(counted(2), 2);
    }

    /// A connection evicted to make room, or open when `serve` stops (the reaper closes every
    /// one), is closed though its thread is blocked in a read with no timeout.
    #[test]
    fn evicted_and_stopped_connections_close() {
        use std::io::Read;
        let (sh, _rx) = shared_enforcing("alice");
        let slots = Slots::new(1, sh.metrics.policy_open.clone());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        run_reaper(&sh, &slots, TIMEOUTS, stop.clone());
        let (mut first, first_done) = serve_pair(&sh, &slots, stop.clone());
        let (_second, second_done) = serve_pair(&sh, &slots, stop);
        let mut rest = Vec::new();
        assert_eq!(first.read_to_end(&mut rest).unwrap(), 0, "evicted");
        first_done.recv_timeout(SETTLE).expect("its thread ends");
        assert!(second_done.try_recv().is_err(), "the newcomer is served");
        stop_tx.send(true).unwrap();
        second_done.recv_timeout(SETTLE).expect("stopped");
        assert_eq!(sh.metrics.policy_timeouts.get(), 0);
    }

    /// With a pump, the requests that arrive within [`POLICY_BATCH_DELAY`] of a batch's first
    /// wake the engine once, after the delay; a batch of [`POLICY_WAKE_NOW`] wakes it at once;
    /// and the pump stops with the service.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_pump_wakes_the_engine_once_per_batch() {
        let (sh, mut rx) = crate::serve::syslog::tests::shared();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let pump = {
            let sh = sh.clone();
            tokio::spawn(async move { sh.policy_inbox.pump(sh.engine_tx.clone(), stop).await })
        };
        tokio::task::yield_now().await;
        let mut one = Batch::default();
        let a = Request::parse("request=smtpd_access_policy\nsasl_username=a\n").unwrap();
        one.push(Ts(0), &a);
        for _ in 0..10 {
            sh.policy_inbox.put(&sh, &one);
        }
        assert!(rx.try_recv().is_err(), "not woken before the delay");
        tokio::time::sleep(POLICY_BATCH_DELAY * 2).await;
        assert!(matches!(rx.try_recv(), Ok(Msg::Policy)), "woken after it");
        assert!(rx.try_recv().is_err(), "once for the ten requests");
        let mut got = Batch::default();
        sh.policy_inbox.take(&mut got);
        assert_eq!(got.len(), 10);

        // A second batch: the pump is waiting again.
        sh.policy_inbox.put(&sh, &one);
        tokio::time::sleep(POLICY_BATCH_DELAY * 2).await;
        assert!(matches!(rx.try_recv(), Ok(Msg::Policy)));
        sh.policy_inbox.take(&mut got);

        // A flood does not wait.
        let mut many = Batch::default();
        for _ in 0..POLICY_WAKE_NOW {
            many.push(Ts(0), &a);
        }
        sh.policy_inbox.put(&sh, &many);
        assert!(matches!(rx.try_recv(), Ok(Msg::Policy)), "woken at once");
        sh.policy_inbox.take(&mut got);

        stop_tx.send(true).unwrap();
        pump.await.unwrap();
        // Without a pump, every batch wakes the engine itself again.
        sh.policy_inbox.put(&sh, &one);
        assert!(matches!(rx.try_recv(), Ok(Msg::Policy)));
    }

    /// Past the inbox's cap, requests are answered but not analysed (fail open, counted).
    #[test]
    fn full_inbox_fails_open() {
        let (sh, mut rx) = crate::serve::syslog::tests::shared();
        let inbox = Inbox::new(3);
        let mut b = Batch::default();
        for u in ["a", "b"] {
            let raw = format!("request=smtpd_access_policy\nsasl_username={u}\n");
            b.push(Ts(0), &Request::parse(&raw).unwrap());
        }
        assert_eq!(inbox.put(&sh, &b), 2, "waiting");
        assert_eq!(inbox.put(&sh, &b), 3, "waiting, at the cap");
        assert!(matches!(rx.try_recv(), Ok(Msg::Policy)));
        assert!(rx.try_recv().is_err(), "one wake-up for the batch");
        assert_eq!(sh.metrics.fail_open.get(), 1);
        let mut got = Batch::default();
        inbox.take(&mut got);
        assert_eq!(got.len(), 3);
        let last = got.iter().last().unwrap().1;
        assert_eq!(last.get("sasl_username"), Some("a"));
        assert_eq!(last.get("request"), Some("smtpd_access_policy"));
        inbox.take(&mut got);
        assert!(got.is_empty());
    }
}
