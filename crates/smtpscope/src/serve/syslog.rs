//! Syslog receiver: UDP (one message per datagram) and TCP (RFC 6587: octet-counted
//! `LEN SP MSG` or newline-framed, detected per frame). Messages are RFC 3164 or RFC 5424; the
//! line parser reads their `<PRI>` header.
//!
//! Only peers in `[serve] syslog_peers` are heard (forged lines could contain accounts). A TCP
//! connection takes a slot after `accept`; when all are taken the one that waited longest for
//! input is closed (see [`super::slots`]). A connection idle for `syslog_idle`, or a frame not
//! complete within `request_timeout`, is closed, so stalled senders cannot lock rsyslog out.
//! Every refusal is counted in `smtpscope_syslog_refused_total{reason}`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::{debug, info, warn};

use super::core::{Msg, SYSLOG_SRC};
use super::metrics::SyslogRefusal;
use super::peers::Allowlist;
use super::slots::{Admission, Slot, Slots};
use super::{ServeConfig, ServeLimits, Shared};

/// Largest message accepted (rsyslog's default maximum is 8 KiB).
pub const MAX_MSG: usize = 64 * 1024;

/// One framing step's result.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message.
    Msg(Vec<u8>),
    /// Connection ended.
    Eof,
    /// Broken framing or over-long message: drop the connection.
    Bad,
}

/// Read one frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Frame> {
    loop {
        let avail = r.fill_buf().await?;
        let Some(&first) = avail.first() else {
            return Ok(Frame::Eof);
        };
        if first == b'\n' || first == b'\r' || first == 0 {
            r.consume(1);
            continue;
        }
        // Octet counting (digits, a space, then exactly that many bytes) — unless the digits
        // are the start of a plain line (an Exim stamp "2026-11-24 ..."): then newline framing.
        let mut head: Vec<u8> = Vec::new();
        if first.is_ascii_digit() {
            loop {
                let avail = r.fill_buf().await?;
                let Some(&c) = avail.first() else {
                    return Ok(if head.is_empty() {
                        Frame::Eof
                    } else {
                        Frame::Msg(head)
                    });
                };
                if c == b' ' && !head.is_empty() {
                    r.consume(1);
                    let len = head
                        .iter()
                        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
                    if len > MAX_MSG {
                        return Ok(Frame::Bad);
                    }
                    let mut buf = vec![0u8; len];
                    tokio::io::AsyncReadExt::read_exact(r, &mut buf).await?;
                    while matches!(buf.last(), Some(b'\n' | b'\r' | 0)) {
                        buf.pop();
                    }
                    return Ok(Frame::Msg(buf));
                }
                if c.is_ascii_digit() && head.len() < 9 {
                    head.push(c);
                    r.consume(1);
                    continue;
                }
                break;
            }
        }
        // Newline framing.
        let mut buf = head;
        loop {
            let avail = r.fill_buf().await?;
            if avail.is_empty() {
                return Ok(if buf.is_empty() {
                    Frame::Eof
                } else {
                    Frame::Msg(buf)
                });
            }
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    if buf.len() + i > MAX_MSG {
                        return Ok(Frame::Bad);
                    }
                    buf.extend_from_slice(&avail[..i]);
                    r.consume(i + 1);
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    return Ok(Frame::Msg(buf));
                }
                None => {
                    let n = avail.len();
                    if buf.len() + n > MAX_MSG {
                        return Ok(Frame::Bad);
                    }
                    buf.extend_from_slice(avail);
                    r.consume(n);
                }
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Hand one UDP datagram's lines to the engine (a full queue drops them, counted).
fn datagram(shared: &Shared, bytes: &[u8]) {
    for part in bytes.split(|c| *c == b'\n') {
        let part = part.strip_suffix(b"\r").unwrap_or(part);
        let part = part.strip_suffix(b"\0").unwrap_or(part);
        if part.is_empty() {
            continue;
        }
        let m = Msg::Line {
            src: SYSLOG_SRC,
            line: text(part),
        };
        if shared.engine_tx.try_send(m).is_err() {
            shared.metrics.syslog_dropped.inc();
        }
    }
}

/// How long a TCP connection may wait for a frame, and take for one.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Between frames (`[serve.limits] syslog_idle`).
    pub idle: StdDuration,
    /// From a frame's first byte to its end (`request_timeout`).
    pub frame: StdDuration,
}

impl Timeouts {
    /// From `[serve.limits]`.
    pub fn of(limits: &ServeLimits) -> Timeouts {
        Timeouts {
            idle: StdDuration::from_secs(limits.syslog_idle.0.max(1) as u64),
            frame: StdDuration::from_secs(limits.request_timeout.0.max(1) as u64),
        }
    }
}

/// Read frames from one TCP connection until it closes, misbehaves, idles or stalls too long,
/// is evicted or we stop.
pub async fn connection<R: AsyncRead + Unpin>(
    rd: R,
    shared: Arc<Shared>,
    slot: Slot,
    timeouts: Timeouts,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, rd);
    loop {
        slot.idle();
        let first = tokio::select! {
            f = tokio::time::timeout(timeouts.idle, r.fill_buf()) => f,
            _ = slot.evicted() => return,
            _ = stop.changed() => return,
        };
        match first {
            Err(_) => {
                shared.metrics.syslog_refused(SyslogRefusal::Timeout);
                return;
            }
            Ok(Err(_)) | Ok(Ok([])) => return,
            Ok(Ok(_)) => {}
        }
        slot.busy();
        let f = tokio::select! {
            f = tokio::time::timeout(timeouts.frame, read_frame(&mut r)) => f,
            _ = slot.evicted() => return,
            _ = stop.changed() => return,
        };
        match f {
            Err(_) => {
                shared.metrics.syslog_refused(SyslogRefusal::Timeout);
                return;
            }
            Ok(Ok(Frame::Msg(m))) => {
                let msg = Msg::Line {
                    src: SYSLOG_SRC,
                    line: text(&m),
                };
                // TCP: back-pressure instead of loss.
                if shared.engine_tx.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(Ok(Frame::Bad)) => {
                shared.metrics.syslog_refused(SyslogRefusal::Bad);
                return;
            }
            Ok(Ok(Frame::Eof)) | Ok(Err(_)) => return,
        }
    }
}

/// Bind UDP and TCP on `addr`; returns their tasks.
pub async fn listen(
    addr: &str,
    shared: Arc<Shared>,
    cfg: &ServeConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let udp = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen on syslog UDP {addr}"))?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on syslog TCP {addr}"))?;
    info!(udp = %udp.local_addr()?, tcp = %tcp.local_addr()?, peers = ?cfg.syslog_peers, "syslog receiver listening");
    let peers = Arc::new(Allowlist::new(&cfg.syslog_peers));
    let sh = shared.clone();
    let mut st = stop.clone();
    let allowed = peers.clone();
    let u = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            let got = tokio::select! {
                r = udp.recv_from(&mut buf) => r,
                _ = st.changed() => return,
            };
            let Ok((n, peer)) = got else { continue };
            if !allowed.allows(peer.ip()) {
                sh.metrics.syslog_refused(SyslogRefusal::Peer);
                debug!(%peer, "syslog datagram from outside syslog_peers dropped");
                continue;
            }
            datagram(&sh, &buf[..n]);
        }
    });
    let slots = Slots::new(cfg.limits.connections, shared.metrics.syslog_open.clone());
    let timeouts = Timeouts::of(&cfg.limits);
    let mut st = stop.clone();
    let t = tokio::spawn(async move {
        loop {
            let acc = tokio::select! {
                a = tcp.accept() => a,
                _ = st.changed() => return,
            };
            let (s, peer) = match acc {
                Ok(a) => a,
                Err(e) => {
                    warn!("syslog accept: {e}");
                    tokio::time::sleep(super::policy::ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            if !peers.allows(peer.ip()) {
                shared.metrics.syslog_refused(SyslogRefusal::Peer);
                debug!(%peer, "syslog connection from outside syslog_peers refused");
                continue;
            }
            let (slot, how) = slots.admit();
            if let Admission::Evicted(was) = how {
                shared.metrics.syslog_refused(SyslogRefusal::Evicted);
                debug!(%peer, ?was, "all syslog connection slots taken: closed the longest waiting");
            }
            tokio::spawn(connection(s, shared.clone(), slot, timeouts, stop.clone()));
        }
    });
    Ok(vec![u, t])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::serve::{contain, Live, Mode};
    use std::sync::atomic::AtomicU64;
    use tokio::io::AsyncWriteExt;

    /// Shared state for connection tests; the receiver gets what reaches the engine.
    pub(crate) fn shared() -> (Arc<Shared>, tokio::sync::mpsc::Receiver<Msg>) {
        shared_with_queue(64)
    }

    /// [`shared`] with an engine queue of `queue` messages.
    pub(crate) fn shared_with_queue(
        queue: usize,
    ) -> (Arc<Shared>, tokio::sync::mpsc::Receiver<Msg>) {
        let (engine_tx, rx) = tokio::sync::mpsc::channel(queue);
        let (store_tx, _) = std::sync::mpsc::sync_channel(1);
        let sh = Arc::new(Shared {
            metrics: Default::default(),
            contained: arc_swap::ArcSwap::from_pointee(contain::Set::default()),
            live: arc_swap::ArcSwap::from_pointee(Live {
                mode: Mode::Observe,
                containment: Default::default(),
                token: String::new(),
            }),
            engine_tx,
            policy_inbox: crate::serve::policy::Inbox::new(queue),
            store_tx,
            store_path: "unused.db".into(),
            started: std::time::Instant::now(),
            seen: Default::default(),
            geo: detect::GeoRef::Builtin,
        });
        (sh, rx)
    }

    const TIMEOUTS: Timeouts = Timeouts {
        idle: StdDuration::from_secs(3600),
        frame: StdDuration::from_secs(10),
    };

    fn refused(sh: &Shared, why: SyslogRefusal) -> u64 {
        sh.metrics.syslog_refused[why as usize].get()
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn stalled_frame_and_idle_connection_time_out() {
        let (sh, mut rx) = shared();
        let slots = Slots::new(10, Arc::new(AtomicU64::new(0)));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        // A frame that never completes: closed after the frame timeout, not before.
        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(b"<38>Nov 24 05:00:00 mx1 postfix/smtpd[1]: one\n500 <38>stall")
            .await
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let (slot, _) = slots.admit();
        connection(b, sh.clone(), slot, TIMEOUTS, stop.clone()).await;
        assert_eq!(t0.elapsed(), TIMEOUTS.frame);
        assert!(
            matches!(rx.try_recv(), Ok(Msg::Line { .. })),
            "the complete frame"
        );
        assert_eq!(refused(&sh, SyslogRefusal::Timeout), 1);
        // A silent connection: closed after the idle timeout.
        let (_a, b) = tokio::io::duplex(1024);
        let t0 = tokio::time::Instant::now();
        let (slot, _) = slots.admit();
        connection(b, sh.clone(), slot, TIMEOUTS, stop).await;
        assert_eq!(t0.elapsed(), TIMEOUTS.idle);
        assert_eq!(refused(&sh, SyslogRefusal::Timeout), 2);
        drop(a);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn full_listener_closes_a_stalled_sender_for_a_new_one() {
        let (sh, mut rx) = shared();
        let slots = Slots::new(2, Arc::new(AtomicU64::new(0)));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let mut stalled = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (mut a, b) = tokio::io::duplex(1024);
            a.write_all(b"500 <38>stall").await.unwrap();
            let (slot, how) = slots.admit();
            assert_eq!(how, Admission::Free);
            tasks.push(tokio::spawn(connection(
                b,
                sh.clone(),
                slot,
                TIMEOUTS,
                stop.clone(),
            )));
            stalled.push(a);
            tokio::time::advance(StdDuration::from_millis(10)).await;
        }
        let (mut a, b) = tokio::io::duplex(1024);
        let (slot, how) = slots.admit();
        assert_eq!(how, Admission::Evicted(crate::serve::slots::Activity::Busy));
        let new = tokio::spawn(connection(b, sh.clone(), slot, TIMEOUTS, stop));
        a.write_all(b"<38>Nov 24 05:00:00 mx1 postfix/smtpd[1]: new sender\n")
            .await
            .unwrap();
        match rx.recv().await {
            Some(Msg::Line { line, .. }) => assert!(line.ends_with("new sender"), "{line}"),
            _ => panic!("no line from the new sender"),
        }
        // The oldest stalled connection was closed; the other still waits.
        let first = tasks.remove(0);
        tokio::time::timeout(StdDuration::from_millis(1), first)
            .await
            .expect("evicted connection ended")
            .unwrap();
        assert!(!tasks[0].is_finished());
        drop((a, stalled));
        new.await.unwrap();
    }

    async fn frames(wire: Vec<u8>, chunk: usize) -> Vec<Frame> {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for c in wire.chunks(chunk) {
                a.write_all(c).await.unwrap();
            }
        });
        let mut r = BufReader::new(b);
        let mut out = Vec::new();
        loop {
            let f = read_frame(&mut r).await.unwrap();
            let end = matches!(f, Frame::Eof | Frame::Bad);
            out.push(f);
            if end {
                return out;
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn octet_counted_and_newline_framing_mixed() {
        let m1 = "<22>1 2026-11-20T10:47:15Z mx1 postfix/smtpd 123 - - connect from x[1.2.3.4]";
        let m2 = "<22>Nov 20 10:47:16 mx1 postfix/smtpd[123]: disconnect from x[1.2.3.4]";
        let wire = format!("{} {m1}{m2}\n{} {m1}\n", m1.len(), m1.len() + 1).into_bytes();
        for chunk in [1, 2, 5, 1000] {
            let f = frames(wire.clone(), chunk).await;
            assert_eq!(
                f,
                vec![
                    Frame::Msg(m1.as_bytes().to_vec()),
                    Frame::Msg(m2.as_bytes().to_vec()),
                    Frame::Msg(m1.as_bytes().to_vec()),
                    Frame::Eof
                ],
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bad_frames() {
        // Not octet counting after all: a plain line that starts with digits.
        let exim = "2026-11-24 10:00:00 1vABCD-000000000X-0000 <= a@b.c H=x [192.0.2.1]";
        assert_eq!(
            frames(format!("{exim}\n12x foo").into_bytes(), 3).await,
            vec![
                Frame::Msg(exim.as_bytes().to_vec()),
                Frame::Msg(b"12x foo".to_vec()),
                Frame::Eof
            ]
        );
        assert_eq!(
            frames(format!("{} x", MAX_MSG + 1).into_bytes(), 100).await,
            vec![Frame::Bad]
        );
        let long = vec![b'a'; MAX_MSG + 10];
        assert_eq!(frames(long, 4096).await, vec![Frame::Bad]);
    }
}
