//! Helpers for the `serve` integration tests: start the real binary on loopback ports, talk
//! HTTP, the policy protocol and syslog to it, read its metrics. Servers are polled with time
//! limits, never slept on to make time pass.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (also free for UDP in practice).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Poll `f` until it returns Some, or panic after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `smtpscope serve`.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub http: u16,
    pub policy: u16,
    pub syslog: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

pub const TOKEN: &str = "test-token-123";

/// Starts of [`start_on_free_ports`] on new ports after a port was taken ([`ADDRESS_IN_USE`]).
const START_ATTEMPTS: usize = 5;
/// What the server's log says when a port it was given is taken (the OS error's text).
const ADDRESS_IN_USE: &str = "Address already in use";
/// What the server logs once its HTTP API listens (followed by `addr=`).
const HTTP_LISTENING: &str = "HTTP API and dashboard listening";

impl Server {
    /// Start with `extra` appended to a config that sets ports, store and token, on free
    /// ports ([`start_on_free_ports`]).
    pub fn start(dir: &Path, extra: &str) -> Server {
        start_on_free_ports(dir, || {
            let (http, policy, syslog) = (free_port(), free_port(), free_port());
            Self::try_start_ports(dir, extra, http, policy, syslog)
        })
    }

    pub fn start_ports(dir: &Path, extra: &str, http: u16, policy: u16, syslog: u16) -> Server {
        Self::try_start_ports(dir, extra, http, policy, syslog)
            .unwrap_or_else(|log| panic!("server exited at start: {log}"))
    }

    /// Write the config and start; the log's text when the server exited before it was ready.
    fn try_start_ports(
        dir: &Path,
        extra: &str,
        http: u16,
        policy: u16,
        syslog: u16,
    ) -> Result<Server, String> {
        let config = dir.join("smtpscope.toml");
        let text = format!(
            "[serve]\npolicy = [\"127.0.0.1:{policy}\", \"unix:{}\"]\nsyslog = [\"127.0.0.1:{syslog}\"]\nhttp = \"127.0.0.1:{http}\"\nstore = \"{}\"\ntoken = \"{TOKEN}\"\nfollow_start = \"start\"\n{extra}",
            dir.join("policy.sock").display(),
            dir.join("store.db").display(),
        );
        std::fs::write(&config, text).unwrap();
        Self::try_spawn(dir, config, http, policy, syslog)
    }

    pub fn spawn(dir: &Path, config: PathBuf, http: u16, policy: u16, syslog: u16) -> Server {
        Self::try_spawn(dir, config, http, policy, syslog)
            .unwrap_or_else(|log| panic!("server exited at start: {log}"))
    }

    fn try_spawn(
        dir: &Path,
        config: PathBuf,
        http: u16,
        policy: u16,
        syslog: u16,
    ) -> Result<Server, String> {
        let args = ["--config".to_string(), config.display().to_string()];
        launch(dir, &args, http, policy, syslog, config)
    }

    /// Wait until `/health` answers; the log's text when the server exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("exit {st}: {}", self.log_text()));
            }
            // Another test's server may hold this port (the start then fails): the answer
            // counts once this server's log shows its own HTTP listener (at the default log
            // level; with SMTPSCOPE_LOG set, the answer alone).
            if let Ok((200, _)) = http(self.http, "GET", "/health", &[], "") {
                let listening = format!("{HTTP_LISTENING} addr=127.0.0.1:{}", self.http);
                if std::env::var_os("SMTPSCOPE_LOG").is_some()
                    || self.log_text().contains(&listening)
                {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < end,
                "server did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.http, "GET", path, &[], "").unwrap()
    }

    pub fn post_json(&self, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![("Content-Type", "application/json".to_string())];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        http(self.http, "POST", path, &h, body).unwrap()
    }

    /// A metric's value (the line whose name+labels equal `key`).
    pub fn metric(&self, key: &str) -> f64 {
        let (_, t) = self.get("/metrics");
        for l in t.lines() {
            if let Some(v) = l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
                return v.trim().parse().unwrap();
            }
        }
        panic!("no metric {key} in {t}")
    }

    pub fn policy_conn(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.policy)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Stop with SIGTERM and wait; returns the exit status code.
    pub fn term(mut self) -> i32 {
        signal(&self.child, "TERM");
        wait_exit(&mut self.child, 30)
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// Start a server with `attempt`, which looks up the free ports it needs ([`free_port`]) and
/// gives the log's text when the server exited before it was ready.
///
/// The ports are free when looked up, not reserved: a test running beside this one can bind
/// one of them first (its server, or a listener of its own), and the server then exits at
/// start with "Address already in use". Such a start is tried again on new ports, up to
/// [`START_ATTEMPTS`] times; any other exit fails the test at once.
pub fn start_on_free_ports<T>(dir: &Path, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(s) => return s,
            Err(log) if log.contains(ADDRESS_IN_USE) => {
                // The failed start's log goes, so the next one's is read alone.
                let _ = std::fs::remove_file(dir.join("serve.log"));
            }
            Err(log) => panic!("server exited at start: {log}"),
        }
    }
    panic!("server found a port taken in each of {START_ATTEMPTS} starts");
}

/// Run `smtpscope serve ARGS`, its log `serve.log` in `dir` (appended to), and wait until it
/// is ready; the log's text when it exited first. `http`, `policy`, `syslog` and `config` are
/// what `args` gave it (0 and a file that need not exist when it has none).
pub fn launch(
    dir: &Path,
    args: &[String],
    http: u16,
    policy: u16,
    syslog: u16,
    config: PathBuf,
) -> Result<Server, String> {
    let log = dir.join("serve.log");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .arg("serve")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SMTPSCOPE_TOKEN")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .unwrap();
    let mut s = Server {
        child,
        dir: dir.to_path_buf(),
        http,
        policy,
        syslog,
        config,
        log,
    };
    s.wait_ready()?;
    Ok(s)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn wait_exit(child: &mut Child, secs: u64) -> i32 {
    wait_for(secs, "exit", || child.try_wait().unwrap())
        .code()
        .unwrap_or(-1)
}

/// One HTTP/1.1 request (Connection: close); (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((h, b))
            if h.to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(b)
        }
        Some((_, b)) => b.to_string(),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((n, rest)) = b.split_once("\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(n.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            return out;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
}

/// Send one policy request on a connection and read the answer (up to the empty line).
pub fn ask(s: &mut TcpStream, attrs: &str) -> String {
    s.write_all(attrs.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    read_answer(s)
}

pub fn read_answer(s: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\n\n") {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => out.push(b[0]),
            Err(e) => panic!("policy read: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8(out).unwrap()
}

/// A Postfix RCPT-state policy request.
pub fn rcpt(user: &str, client: &str, rcpt: &str) -> String {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={client}\nclient_name=unknown\nhelo_name=pc\nsender={user}@example.net\nrecipient={rcpt}\nrecipient_count=0\ninstance=abc.1\nsasl_method=PLAIN\nsasl_username={user}\n"
    )
}

/// Postfix SASL failure lines (auth-bruteforce raises one alert at 21 within the hour).
pub fn sasl_failures(ip: &str, n: usize, min: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "Nov 24 05:{min:02}:{:02} mx1 postfix/smtpd[123]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
                i % 60
            )
        })
        .collect()
}
