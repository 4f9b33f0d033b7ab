//! Load generator for Postfix policy delegation servers (SMTPD_POLICY_README protocol), and a
//! do-nothing responder that answers `action=DUNNO` to everything: the floor of what the
//! machine can do.
//!
//! ```text
//! policy-loadgen floor PORT
//! policy-loadgen run ADDR CONNECTIONS SECONDS [USERS]
//! ```
//! `run` opens CONNECTIONS connections (each like one Postfix smtpd process: a request, then
//! wait for the answer), sends realistic RCPT-state requests with `sasl_username` drawn from
//! USERS accounts (default 1000) for SECONDS, and prints one JSON line: requests per second,
//! latency percentiles (microseconds), and the answers seen.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn request(i: u64, users: u64) -> String {
    let u = (i.wrapping_mul(2_654_435_761)) % users;
    let ip = format!("10.{}.{}.{}", (u >> 16) & 255, (u >> 8) & 255, u & 255);
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={ip}\nclient_name=unknown\nclient_port=5{:04}\nreverse_client_name=unknown\nserver_address=127.0.0.1\nserver_port=587\nhelo_name=pc-{u}\nsender=user{u}@example.net\nrecipient=rcpt{i}@example.org\nrecipient_count=0\nqueue_id=\ninstance={i:x}.5f3a.0\nsize=0\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_username=user{u}@example.net\nsasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\nencryption_keysize=0\netrn_domain=\npolicy_context=\ncompatibility_level=3.6\nmail_version=3.7.11\n\n",
        i % 10_000
    )
}

fn floor(port: u16) {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for s in l.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == "\n" && w.write_all(b"action=DUNNO\n\n").is_err() {
                    return;
                }
            }
        });
    }
}

fn read_answer(r: &mut BufReader<TcpStream>, buf: &mut String) -> std::io::Result<()> {
    buf.clear();
    loop {
        let n = r.read_line(buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf.ends_with("\n\n") {
            return Ok(());
        }
    }
}

fn run(addr: &str, conns: usize, secs: u64, users: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut hs = Vec::new();
    for c in 0..conns {
        let stop = stop.clone();
        let addr = addr.to_string();
        hs.push(std::thread::spawn(move || {
            let s = TcpStream::connect(&addr).expect("connect");
            s.set_nodelay(true).ok();
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
            let mut answers: BTreeMap<String, u64> = BTreeMap::new();
            let mut buf = String::new();
            let mut i = c as u64;
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let req = request(i, users);
                i += conns as u64;
                let t = Instant::now();
                if w.write_all(req.as_bytes()).is_err() || read_answer(&mut r, &mut buf).is_err() {
                    errors += 1;
                    break;
                }
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                let word = buf
                    .trim_start_matches("action=")
                    .split(|c: char| c == ' ' || c == '\n')
                    .next()
                    .unwrap_or("")
                    .to_string();
                *answers.entry(word).or_default() += 1;
            }
            let mut rest = Vec::new();
            let _ = r.get_mut().set_read_timeout(Some(Duration::from_millis(10)));
            let _ = r.read_to_end(&mut rest);
            (lat, answers, errors)
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = 0;
    for h in hs {
        let (l, a, e) = h.join().expect("thread");
        lat.extend(l);
        for (k, v) in a {
            *answers.entry(k).or_default() += v;
        }
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]
    };
    let answers: Vec<String> = answers.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!(
        "{{\"addr\":\"{addr}\",\"connections\":{conns},\"seconds\":{elapsed:.2},\"requests\":{},\"rps\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{errors},\"answers\":{{{}}}}}",
        lat.len(),
        lat.len() as f64 / elapsed,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0),
        answers.join(",")
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("floor") => floor(a[2].parse().expect("port")),
        Some("run") => run(
            &a[2],
            a[3].parse().expect("connections"),
            a[4].parse().expect("seconds"),
            a.get(5).map_or(1000, |u| u.parse().expect("users")),
        ),
        _ => {
            eprintln!("usage: policy-loadgen floor PORT | run ADDR CONNECTIONS SECONDS [USERS]");
            std::process::exit(2);
        }
    }
}
