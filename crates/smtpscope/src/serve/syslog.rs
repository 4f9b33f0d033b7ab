//! Syslog receiver: UDP (one message per datagram) and TCP (RFC 6587: octet-counted
//! `LEN SP MSG` or newline-framed, detected per frame). Messages are RFC 3164 or RFC 5424; the
//! line parser reads their `<PRI>` header.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::core::{Msg, SYSLOG_SRC};
use super::{ServeLimits, Shared};

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

/// Bind UDP and TCP on `addr`; returns their tasks.
pub async fn listen(
    addr: &str,
    shared: Arc<Shared>,
    limits: &ServeLimits,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let udp = tokio::net::UdpSocket::bind(addr)
        .await
        .with_context(|| format!("cannot listen on syslog UDP {addr}"))?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on syslog TCP {addr}"))?;
    info!(udp = %udp.local_addr()?, tcp = %tcp.local_addr()?, "syslog receiver listening");
    let sh = shared.clone();
    let mut st = stop.clone();
    let u = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            let got = tokio::select! {
                r = udp.recv_from(&mut buf) => r,
                _ = st.changed() => return,
            };
            let Ok((n, _)) = got else { continue };
            for part in buf[..n].split(|c| *c == b'\n') {
                let part = part.strip_suffix(b"\r").unwrap_or(part);
                let part = part.strip_suffix(b"\0").unwrap_or(part);
                if part.is_empty() {
                    continue;
                }
                let m = Msg::Line {
                    src: SYSLOG_SRC,
                    line: text(part),
                };
                if sh.engine_tx.try_send(m).is_err() {
                    sh.metrics.syslog_dropped.inc();
                }
            }
        }
    });
    let sem = Arc::new(Semaphore::new(limits.connections.max(1)));
    let mut st = stop.clone();
    let t = tokio::spawn(async move {
        loop {
            let acc = tokio::select! {
                a = tcp.accept() => a,
                _ = st.changed() => return,
            };
            let Ok((s, peer)) = acc else { continue };
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                warn!(%peer, "too many syslog connections");
                continue;
            };
            let sh = shared.clone();
            let mut st2 = stop.clone();
            tokio::spawn(async move {
                let mut r = BufReader::with_capacity(64 * 1024, s);
                loop {
                    let f = tokio::select! {
                        f = read_frame(&mut r) => f,
                        _ = st2.changed() => break,
                    };
                    match f {
                        Ok(Frame::Msg(m)) => {
                            let msg = Msg::Line {
                                src: SYSLOG_SRC,
                                line: text(&m),
                            };
                            // TCP: back-pressure instead of loss.
                            if sh.engine_tx.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Ok(Frame::Bad) => {
                            sh.metrics.syslog_dropped.inc();
                            break;
                        }
                        Ok(Frame::Eof) | Err(_) => break,
                    }
                }
                drop(permit);
            });
        }
    });
    Ok(vec![u, t])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

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
