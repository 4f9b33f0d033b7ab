//! Postfix policy delegation server (SMTPD_POLICY_README): `name=value` lines ending with an
//! empty line; the answer is `action=...` and an empty line. Connections are kept open and
//! reused by Postfix.
//!
//! The answer comes from the containment snapshot only; the request is handed to the engine
//! with `try_send`, so a busy engine never delays Postfix (fail open, counted).
//!
//! Requests can contain accounts, so only `[serve] policy_peers` may connect over TCP, and the
//! unix socket is mode 0660 with group `postfix`. Connections take a slot after `accept`; when
//! all are taken the one that waited longest for input is closed (see [`super::slots`]), so
//! idle connections cannot hold the server shut. Refusals are counted in
//! `smtpscope_policy_refused_total{reason}`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result};
use maillog::{Event, Peer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
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

/// A parsed request: attributes borrowed from the raw text.
#[derive(Debug, Default)]
pub struct Request<'a> {
    attrs: Vec<(&'a str, &'a str)>,
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
    /// Parse the lines of one request (without the final empty line).
    pub fn parse(raw: &'a str) -> Result<Request<'a>, BadRequest> {
        let mut attrs = Vec::with_capacity(32);
        for line in raw.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or(BadRequest::Garbage)?;
            if attrs.len() == MAX_ATTRS {
                return Err(BadRequest::TooMany);
            }
            attrs.push((k, v));
        }
        let r = Request { attrs };
        if r.get("request") != Some("smtpd_access_policy") {
            return Err(BadRequest::NotPolicy);
        }
        Ok(r)
    }

    /// An attribute (the first of that name); empty values count as absent.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    }

    /// The engine's event for it.
    pub fn event(&self) -> Event<'a> {
        let g = |n: &str| self.get(n);
        Event::Policy {
            protocol_state: g("protocol_state").unwrap_or(""),
            client: Peer {
                host: g("client_name"),
                ip: g("client_address"),
                port: g("client_port").and_then(|p| p.parse().ok()),
            },
            helo: g("helo_name"),
            // The null sender is an empty value: keep it as "" when the attribute is present.
            sender: self
                .attrs
                .iter()
                .find(|(k, _)| *k == "sender")
                .map(|(_, v)| *v),
            recipient: g("recipient"),
            recipient_count: g("recipient_count").and_then(|p| p.parse().ok()),
            sasl_username: g("sasl_username"),
            sasl_method: g("sasl_method"),
            qid: g("queue_id"),
            instance: g("instance"),
            size: g("size").and_then(|p| p.parse().ok()),
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

/// Handle one complete request (raw text without the final empty line): answer, and hand the
/// event to the engine.
pub fn handle(shared: &Shared, raw: String) -> Cow<'static, str> {
    let now = super::now_ts();
    shared.metrics.lines[SourceKind::Policy as usize].inc();
    let reply = match Request::parse(&raw) {
        Ok(req) => answer(shared, &req, now.secs()),
        Err(e) => {
            shared.metrics.policy_malformed.inc();
            shared.metrics.policy_dunno.inc();
            debug!("malformed policy request: {e}");
            return Cow::Borrowed(DUNNO);
        }
    };
    if shared
        .engine_tx
        .try_send(Msg::Policy { ts: now, raw })
        .is_err()
    {
        shared.metrics.fail_open.inc();
    }
    reply
}

/// What ended reading a request.
#[derive(Debug, PartialEq, Eq)]
enum ReadEnd {
    /// A request (non-empty).
    Request,
    /// Clean end of connection.
    Eof,
    /// Over-long line or request: drop the connection.
    TooLong,
}

/// Read one request into `buf` (lines joined with '\n', final empty line not included).
async fn read_request<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &mut String,
    line: &mut Vec<u8>,
) -> std::io::Result<ReadEnd> {
    buf.clear();
    loop {
        line.clear();
        // Read one line, capped.
        loop {
            let avail = r.fill_buf().await?;
            if avail.is_empty() {
                return Ok(ReadEnd::Eof);
            }
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    if line.len() + i > MAX_LINE {
                        return Ok(ReadEnd::TooLong);
                    }
                    line.extend_from_slice(&avail[..i]);
                    r.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    if line.len() + n > MAX_LINE {
                        return Ok(ReadEnd::TooLong);
                    }
                    line.extend_from_slice(avail);
                    r.consume(n);
                }
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if buf.is_empty() {
                continue; // stray empty line between requests
            }
            return Ok(ReadEnd::Request);
        }
        if buf.len() + line.len() + 1 > MAX_REQUEST {
            return Ok(ReadEnd::TooLong);
        }
        buf.push_str(&String::from_utf8_lossy(line));
        buf.push('\n');
    }
}

/// Serve one connection until it closes, misbehaves, idles too long, is evicted or we stop.
pub async fn connection<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: R,
    mut wr: W,
    shared: Arc<Shared>,
    slot: Slot,
    timeouts: Timeouts,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut r = BufReader::with_capacity(16 * 1024, rd);
    let mut buf = String::with_capacity(1024);
    let mut line = Vec::with_capacity(256);
    loop {
        // Wait for the first byte of a request (idle timeout), then for the whole request.
        slot.idle();
        let first = tokio::select! {
            r = tokio::time::timeout(timeouts.idle, r.fill_buf()) => r,
            _ = slot.evicted() => return,
            _ = stop.changed() => return,
        };
        match first {
            Err(_) => {
                shared.metrics.policy_timeouts.inc();
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok([])) => return,
            Ok(Ok(_)) => {}
        }
        slot.busy();
        let got = tokio::select! {
            g = tokio::time::timeout(timeouts.request, read_request(&mut r, &mut buf, &mut line)) => g,
            _ = slot.evicted() => return,
        };
        let end = match got {
            Err(_) => {
                shared.metrics.policy_timeouts.inc();
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(e)) => e,
        };
        match end {
            ReadEnd::Eof => return,
            ReadEnd::TooLong => {
                shared.metrics.policy_malformed.inc();
                return;
            }
            ReadEnd::Request => {}
        }
        let t0 = Instant::now();
        let raw = std::mem::replace(&mut buf, String::with_capacity(1024));
        let reply = handle(&shared, raw);
        let w = wr.write_all(reply.as_bytes()).await;
        shared.metrics.policy_latency.observe(t0.elapsed());
        if w.is_err() {
            return;
        }
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
    timeouts: Timeouts,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Listener {
    /// Give an accepted connection its slot (evicting another when full) and serve it.
    fn serve<R, W>(&self, rd: R, wr: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (slot, how) = self.slots.admit();
        if let Admission::Evicted(was) = how {
            self.shared.metrics.policy_refused(PolicyRefusal::Evicted);
            debug!(
                ?was,
                "all policy connection slots taken: closed the longest waiting"
            );
        }
        let sh = self.shared.clone();
        let (t, st) = (self.timeouts, self.stop.clone());
        tokio::spawn(connection(rd, wr, sh, slot, t, st));
    }
}

/// Bind a policy listener ("host:port" or "unix:/path") and serve it in a task.
pub async fn listen(
    addr: &str,
    shared: Arc<Shared>,
    cfg: &ServeConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let lst = Listener {
        slots: Slots::new(cfg.limits.connections, shared.metrics.policy_open.clone()),
        shared,
        timeouts: Timeouts::of(&cfg.limits),
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
                    Ok((s, _)) => {
                        let (r, w) = s.into_split();
                        lst.serve(r, w);
                    }
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
                    let (r, w) = s.into_split();
                    lst.serve(r, w);
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

    #[tokio::test(flavor = "current_thread")]
    async fn reads_requests_in_any_chunking() {
        let wire = format!("{REQ}\n\nrequest=smtpd_access_policy\nsasl_username=bob\n\n");
        for chunk in [1usize, 2, 3, 7, 64, 4096] {
            let (mut a, b) = tokio::io::duplex(chunk.max(8));
            let bytes = wire.clone().into_bytes();
            let w = tokio::spawn(async move {
                for c in bytes.chunks(chunk) {
                    a.write_all(c).await.unwrap();
                }
            });
            let mut r = BufReader::new(b);
            let (mut buf, mut line) = (String::new(), Vec::new());
            assert_eq!(
                read_request(&mut r, &mut buf, &mut line).await.unwrap(),
                ReadEnd::Request
            );
            assert_eq!(buf, REQ, "chunk {chunk}");
            assert_eq!(
                read_request(&mut r, &mut buf, &mut line).await.unwrap(),
                ReadEnd::Request
            );
            assert_eq!(buf, "request=smtpd_access_policy\nsasl_username=bob\n");
            w.await.unwrap();
            assert_eq!(
                read_request(&mut r, &mut buf, &mut line).await.unwrap(),
                ReadEnd::Eof
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn over_long_line_is_refused() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let long = format!("x={}\n\n", "a".repeat(MAX_LINE + 10));
        tokio::spawn(async move {
            let _ = a.write_all(long.as_bytes()).await;
        });
        let mut r = BufReader::new(b);
        let (mut buf, mut line) = (String::new(), Vec::new());
        assert_eq!(
            read_request(&mut r, &mut buf, &mut line).await.unwrap(),
            ReadEnd::TooLong
        );
    }
}
