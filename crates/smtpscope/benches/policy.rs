//! Criterion bench of the policy server's request parser (issue 12, item 6): what a policy
//! connection's thread does with each request before answering it, and what the engine reads
//! back, without the network, so a regression in the connection's own code shows here and not
//! only in `bench/policy/run.sh`'s noisy rates. Throughput is bytes of request.
//!
//! `cargo bench -p smtpscope --bench policy`; docs/PERFORMANCE.md has the figures.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use maillog::Ts;
use smtpscope::serve::policy::{Batch, Request};

/// A request as Postfix 3.7 sends it at `RCPT` for a client that logged in (the attributes of
/// SMTPD_POLICY_README, in its order; the load generator of bench/policy sends the same),
/// without the empty line that ends it.
fn request(i: u32) -> String {
    let u = i % 1000;
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
         client_address=10.0.{}.{}\nclient_name=unknown\nclient_port=5{:04}\n\
         reverse_client_name=unknown\nserver_address=127.0.0.1\nserver_port=587\n\
         helo_name=pc-{u}\nsender=user{u}@example.net\nrecipient=rcpt{i}@example.org\n\
         recipient_count=0\nqueue_id=\ninstance={i:x}.5f3a.0\nsize=0\netrn_domain=\nstress=\n\
         sasl_method=PLAIN\nsasl_username=user{u}@example.net\nsasl_sender=\nccert_subject=\n\
         ccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\n\
         encryption_cipher=\nencryption_keysize=0\netrn_domain=\npolicy_context=\n\
         compatibility_level=3.6\nmail_version=3.7.11",
        u >> 8,
        u & 255,
        i % 10_000
    )
}

/// Requests a connection sees in turn, and how many the engine takes at once in the benches
/// that batch them (about what one wake-up brings it under the benchmark's load).
const REQUESTS: u32 = 256;

fn policy(c: &mut Criterion) {
    let reqs: Vec<String> = (0..REQUESTS).map(request).collect();
    let bytes: usize = reqs.iter().map(String::len).sum();
    let mut g = c.benchmark_group("policy_request");
    g.throughput(Throughput::Bytes(bytes as u64));
    // Parsing alone: the attributes smtpscope reads, borrowed from the text.
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &reqs {
                let req = Request::parse(black_box(r)).expect("a policy request");
                n += req.get("sasl_username").map_or(0, str::len);
            }
            n
        })
    });
    // Parsing and handing over: each request's values copied into a batch (as the connection
    // does for the engine), then every request rebuilt from the batch (as the engine does).
    g.bench_function("parse_batch_read_back", |b| {
        let mut batch = Batch::default();
        b.iter(|| {
            batch.clear();
            for (i, r) in reqs.iter().enumerate() {
                let req = Request::parse(black_box(r)).expect("a policy request");
                batch.push(Ts(i as i64), &req);
            }
            batch
                .iter()
                .map(|(_, req)| req.get("instance").map_or(0, str::len))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
