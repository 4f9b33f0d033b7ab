//! `smtpscope serve` cannot be pushed around (issue 10): forged syslog and policy requests from
//! peers outside the allowlists contain nothing, idle policy connections and stalled syslog
//! frames do not lock new clients out, the policy socket is not world-writable.
//!
//! The "outside" peer is a loopback address outside the allowlist: the server allows only
//! 127.0.0.2 and the forger sends from 127.0.0.1 (client sockets bound explicitly).

mod serve_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serve_util::*;

const ALLOWED: &str = "127.0.0.2";
const FORGER: &str = "127.0.0.1";

/// A TCP connection from `from` to 127.0.0.1:`port`.
fn connect_from(from: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
        s.connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Threads of process `pid` named `name` asleep (waiting for input), from /proc.
fn waiting_threads(pid: u32, name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|stat| {
            // "tid (comm) state ...": the name in parentheses, the state after them.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            &stat[open + 1..close] == name && stat[close + 1..].trim_start().starts_with('S')
        })
        .count()
}

/// Raise this process's open-files limit: the tests below hold a thousand connections.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own, passed by valid pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn refused(srv: &Server, source: &str, reason: &str) -> f64 {
    srv.metric(&format!(
        "smtpscope_{source}_refused_total{{reason=\"{reason}\"}}"
    ))
}

#[test]
fn forged_syslog_from_outside_syslog_peers_contains_nothing() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(
        d.path(),
        &format!("mode = \"enforce\"\nsyslog_peers = [\"{ALLOWED}/32\"]\n[serve.containment]\ndetectors = [\"auth-bruteforce\"]\nmin_score = 0.5\n"),
    );
    let lines = sasl_failures("192.0.2.9", 25, 1);
    // Forged: 20 datagrams and 5 lines over TCP, from 127.0.0.1.
    let u = UdpSocket::bind((FORGER, 0)).unwrap();
    for l in &lines[..20] {
        u.send_to(format!("<38>{l}").as_bytes(), ("127.0.0.1", srv.syslog))
            .unwrap();
    }
    let mut t = connect_from(FORGER, srv.syslog);
    let _ = t.write_all(lines[20..].join("\n").as_bytes());
    let mut b = [0u8; 1];
    assert!(
        matches!(t.read(&mut b), Ok(0) | Err(_)),
        "connection closed"
    );
    wait_for(20, "21 refusals", || {
        (refused(&srv, "syslog", "peer") == 21.0).then_some(())
    });
    let mut c = srv.policy_conn();
    assert_eq!(
        ask(&mut c, &rcpt("x", "192.0.2.9", "a@example.org")),
        "action=DUNNO\n\n"
    );
    assert_eq!(srv.metric("smtpscope_lines_total{source=\"syslog\"}"), 0.0);
    let (_, j) = srv.get("/api/incidents");
    assert_eq!(j.trim(), "[]", "no incident");

    // The same lines from the allowed peer contain the client: the test can see containment.
    let u = UdpSocket::bind((ALLOWED, 0)).unwrap();
    for l in &lines {
        u.send_to(format!("<38>{l}").as_bytes(), ("127.0.0.1", srv.syslog))
            .unwrap();
    }
    wait_for(20, "containment from the allowed peer", || {
        ask(&mut c, &rcpt("x", "192.0.2.9", "a@example.org"))
            .starts_with("action=HOLD")
            .then_some(())
    });
    assert_eq!(refused(&srv, "syslog", "peer"), 21.0);
    assert_eq!(srv.term(), 0);
}

#[test]
fn forged_policy_requests_from_outside_policy_peers_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), &format!("policy_peers = [\"{ALLOWED}/32\"]\n"));
    let mut f = connect_from(FORGER, srv.policy);
    let _ = f.write_all(format!("{}\n", rcpt("alice", "203.0.113.9", "a@example.org")).as_bytes());
    let mut b = [0u8; 16];
    assert!(
        matches!(f.read(&mut b), Ok(0) | Err(_)),
        "closed without an answer"
    );
    wait_for(20, "refusal", || {
        (refused(&srv, "policy", "peer") == 1.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_lines_total{source=\"policy\"}"), 0.0);
    let mut ok = connect_from(ALLOWED, srv.policy);
    assert_eq!(
        ask(&mut ok, &rcpt("alice", "203.0.113.9", "a@example.org")),
        "action=DUNNO\n\n"
    );
    assert_eq!(srv.metric("smtpscope_lines_total{source=\"policy\"}"), 1.0);

    // The unix socket is for owner and group only (group postfix where it exists).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("policy.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    assert_eq!(srv.term(), 0);
}

#[test]
fn a_thousand_idle_policy_connections_do_not_lock_out_a_new_client() {
    raise_fd_limit();
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "");
    let idle: Vec<TcpStream> = (0..1000).map(|_| srv.policy_conn()).collect();
    wait_for(20, "1000 open connections", || {
        (srv.metric("smtpscope_connections_open{source=\"policy\"}") == 1000.0).then_some(())
    });
    // And their threads started and waiting for input: right after a thousand connections
    // are accepted at once, their threads are still starting (in a debug build, under the
    // other tests' load, for up to a few hundred ms), and a new client's thread queues behind
    // them; that start-up is not what this measures.
    wait_for(20, "1000 policy threads waiting", || {
        (waiting_threads(srv.child.id(), "policy") == 1000).then_some(())
    });
    let t0 = Instant::now();
    let mut c = srv.policy_conn();
    assert_eq!(
        ask(&mut c, &rcpt("bob", "127.1.0.6", "y@example.org")),
        "action=DUNNO\n\n"
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(100), "answered in {took:?}");
    assert_eq!(refused(&srv, "policy", "evicted"), 1.0);
    // The oldest idle connection was the one closed.
    let mut first = &idle[0];
    let mut b = [0u8; 1];
    assert!(matches!(first.read(&mut b), Ok(0) | Err(_)));
    drop(idle);
    assert_eq!(srv.term(), 0);
}

#[test]
fn a_thousand_stalled_syslog_frames_do_not_lock_out_a_new_sender() {
    raise_fd_limit();
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "");
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", srv.syslog)).unwrap();
            s.write_all(b"500 <38>Nov 24 05:00:00 mx1 postfix/smtpd[1]: never ends")
                .unwrap();
            s
        })
        .collect();
    wait_for(20, "1000 open connections", || {
        (srv.metric("smtpscope_connections_open{source=\"syslog\"}") == 1000.0).then_some(())
    });
    let mut t = TcpStream::connect(("127.0.0.1", srv.syslog)).unwrap();
    let lines = sasl_failures("192.0.2.50", 3, 2);
    t.write_all(format!("<38>{}\n", lines.join("\n<38>")).as_bytes())
        .unwrap();
    wait_for(5, "the new sender's lines", || {
        (srv.metric("smtpscope_lines_total{source=\"syslog\"}") == 3.0).then_some(())
    });
    assert_eq!(refused(&srv, "syslog", "evicted"), 1.0);
    drop(stalled);
    assert_eq!(srv.term(), 0);
}

#[test]
fn policy_socket_mode_and_group_are_configurable() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let srv = Server::start(d.path(), "policy_socket_mode = \"0600\"\n");
    let mode = std::fs::metadata(d.path().join("policy.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(srv.term(), 0);
    // A configured group must exist.
    let cfg = d.path().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[serve]\npolicy = [\"unix:{}\"]\nhttp = \"\"\nstore = \"{}\"\npolicy_socket_group = \"no-such-group-here\"\n",
            d.path().join("p2.sock").display(),
            d.path().join("store2.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smtpscope"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("policy_socket_group") && e.contains("no-such-group-here"),
        "{e}"
    );
}
