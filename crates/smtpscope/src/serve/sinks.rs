//! Alert sinks: a JSON Lines file rotated by size, and a webhook (HTTP POST with retries and
//! exponential back-off). Each runs in its own task behind a bounded queue that the engine
//! fills with `try_send`: a slow or failing sink drops (and counts) alerts, it never blocks
//! detection.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::warn;

use super::{ServeConfig, Shared};

/// Alerts waiting for a sink.
const SINK_QUEUE: usize = 10_000;
/// Webhook attempts per alert.
pub const WEBHOOK_ATTEMPTS: u32 = 5;
/// First back-off; doubles each retry.
pub const WEBHOOK_BACKOFF: Duration = Duration::from_millis(500);
/// One attempt's time limit.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles the engine thread sends alerts through.
#[derive(Clone, Default)]
pub struct Sinks {
    jsonl: Option<mpsc::Sender<Arc<String>>>,
    webhook: Option<mpsc::Sender<Arc<String>>>,
    shared: Option<Arc<Shared>>,
}

impl Sinks {
    /// Hand an alert to every sink (never waits).
    pub fn send(&self, a: &detect::Alert) {
        if self.jsonl.is_none() && self.webhook.is_none() {
            return;
        }
        let Ok(j) = serde_json::to_string(a) else {
            return;
        };
        let j = Arc::new(j);
        if let Some(tx) = &self.jsonl {
            let _ = tx.try_send(j.clone());
        }
        if let Some(tx) = &self.webhook {
            if tx.try_send(j).is_err() {
                if let Some(s) = &self.shared {
                    s.metrics.webhook_failed.inc();
                }
            }
        }
    }
}

/// Start the configured sinks (inside the runtime).
pub fn start(cfg: &ServeConfig, shared: Arc<Shared>) -> Result<Sinks> {
    let mut s = Sinks {
        shared: Some(shared.clone()),
        ..Sinks::default()
    };
    if let Some(p) = &cfg.alerts_jsonl {
        let mut w = Rotating::open(p, cfg.alerts_max_mib.max(1) << 20, cfg.alerts_keep)?;
        let (tx, mut rx) = mpsc::channel::<Arc<String>>(SINK_QUEUE);
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("alerts-jsonl".into())
            .spawn(move || {
                while let Some(j) = rx.blocking_recv() {
                    match w.write_line(&j) {
                        Ok(()) => sh.metrics.jsonl_written.inc(),
                        Err(e) => warn!("alerts file: {e}"),
                    }
                    if rx.is_empty() {
                        let _ = w.flush();
                    }
                }
                let _ = w.flush();
            })?;
        s.jsonl = Some(tx);
    }
    if let Some(url) = &cfg.webhook {
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("bad webhook URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("webhook URL {url:?}: only http:// is supported (put a TLS relay in front for https)");
        }
        let (tx, rx) = mpsc::channel::<Arc<String>>(SINK_QUEUE);
        tokio::spawn(webhook(uri, rx, shared));
        s.webhook = Some(tx);
    }
    Ok(s)
}

async fn webhook(uri: hyper::Uri, mut rx: mpsc::Receiver<Arc<String>>, shared: Arc<Shared>) {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    while let Some(j) = rx.recv().await {
        let mut delay = WEBHOOK_BACKOFF;
        let mut ok = false;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let req = hyper::Request::post(uri.clone())
                .header("content-type", "application/json")
                .header("user-agent", "smtpscope")
                .body(Full::new(bytes::Bytes::from(j.as_bytes().to_vec())));
            let Ok(req) = req else { break };
            match tokio::time::timeout(WEBHOOK_TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    ok = true;
                    break;
                }
                Ok(Ok(resp)) => {
                    warn!(status = %resp.status(), attempt, "webhook refused the alert")
                }
                Ok(Err(e)) => warn!(attempt, "webhook: {e}"),
                Err(_) => warn!(attempt, "webhook timed out"),
            }
            if attempt < WEBHOOK_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        if ok {
            shared.metrics.webhook_ok.inc();
        } else {
            shared.metrics.webhook_failed.inc();
        }
    }
}

/// A file rotated when it reaches `max` bytes: `f` -> `f.1` -> ... -> `f.keep`.
pub struct Rotating {
    path: PathBuf,
    max: u64,
    keep: u32,
    out: std::io::BufWriter<std::fs::File>,
    size: u64,
}

impl Rotating {
    /// Open for appending.
    pub fn open(path: &Path, max: u64, keep: u32) -> Result<Rotating> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open alerts file {}", path.display()))?;
        let size = f.metadata()?.len();
        Ok(Rotating {
            path: path.to_path_buf(),
            max,
            keep,
            out: std::io::BufWriter::new(f),
            size,
        })
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut s = self.path.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }

    /// Write one line (rotating first when full).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.max {
            self.out.flush()?;
            if self.keep == 0 {
                let _ = std::fs::remove_file(&self.path);
            } else {
                for i in (1..self.keep).rev() {
                    let _ = std::fs::rename(self.rotated(i), self.rotated(i + 1));
                }
                std::fs::rename(&self.path, self.rotated(1))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.out = std::io::BufWriter::new(f);
            self.size = 0;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Flush.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("alerts.jsonl");
        let mut r = Rotating::open(&p, 25, 2).unwrap();
        for i in 0..10 {
            r.write_line(&format!("{{\"n\":{i:04}}}")).unwrap(); // 11 bytes each with \n
        }
        r.flush().unwrap();
        let cur = std::fs::read_to_string(&p).unwrap();
        let one = std::fs::read_to_string(d.path().join("alerts.jsonl.1")).unwrap();
        let two = std::fs::read_to_string(d.path().join("alerts.jsonl.2")).unwrap();
        assert!(!d.path().join("alerts.jsonl.3").exists());
        assert_eq!(cur, "{\"n\":0008}\n{\"n\":0009}\n");
        assert_eq!(one, "{\"n\":0006}\n{\"n\":0007}\n");
        assert_eq!(two, "{\"n\":0004}\n{\"n\":0005}\n");
    }
}
