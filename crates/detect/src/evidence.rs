//! Evidence kept with alerts: compact samples of messages, as the abuse desk's report shows them.

use maillog::record::{MessageRecord, Outcome};
use serde::Serialize;

/// Most recipients listed per sample message (the rest are counted).
pub const SAMPLE_RECIPIENTS: usize = 8;

/// One recipient in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RcptSample {
    /// Address.
    pub addr: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Enhanced status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// Reply text (cut).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// One message in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MessageSample {
    /// Accepted, `2026-11-20 10:47:15` UTC.
    pub time: String,
    /// Queue id.
    pub qid: String,
    /// Envelope sender (`<>` shown as empty).
    pub sender: String,
    /// Size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Client IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// HELO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// SASL user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// Failed recipients first, then delivered, up to [`SAMPLE_RECIPIENTS`].
    pub recipients: Vec<RcptSample>,
    /// Delivered recipients not listed.
    pub more_delivered: usize,
    /// Failed recipients not listed.
    pub more_failed: usize,
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut e = n;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    format!("{}…", &s[..e])
}

impl MessageSample {
    /// Sample a record.
    pub fn of(r: &MessageRecord) -> MessageSample {
        let mut recipients = Vec::new();
        let (mut more_d, mut more_f) = (0, 0);
        let mut order: Vec<_> = r.recipients.iter().collect();
        order.sort_by_key(|x| !x.outcome.is_failure());
        for rc in order {
            if recipients.len() < SAMPLE_RECIPIENTS {
                recipients.push(RcptSample {
                    addr: rc.addr.clone(),
                    outcome: rc.outcome,
                    dsn: rc.dsn.clone(),
                    reply: if rc.outcome.is_delivered() {
                        None
                    } else {
                        rc.reply.as_deref().map(|x| cut(x, 160))
                    },
                });
            } else if rc.outcome.is_failure() {
                more_f += 1;
            } else {
                more_d += 1;
            }
        }
        MessageSample {
            time: r.accepted.display_utc(),
            qid: r.qid.clone(),
            sender: r.sender.clone().unwrap_or_default(),
            size: r.size,
            client: r.client_ip.map(|i| i.to_string()),
            helo: r.helo.clone(),
            auth_user: r.auth_user.clone(),
            recipients,
            more_delivered: more_d,
            more_failed: more_f,
        }
    }
}

/// A small ring of samples: keeps the first `n/2` and the latest `n - n/2`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Samples {
    first: Vec<MessageSample>,
    last: std::collections::VecDeque<MessageSample>,
    seen: u64,
}

impl Samples {
    /// Add one, keeping at most `n`.
    pub fn push(&mut self, s: MessageSample, n: usize) {
        self.seen += 1;
        if self.first.len() < n / 2 {
            self.first.push(s);
            return;
        }
        self.last.push_back(s);
        while self.last.len() > n - n / 2 {
            self.last.pop_front();
        }
    }
    /// The kept samples, in order.
    pub fn to_vec(&self) -> Vec<MessageSample> {
        self.first.iter().chain(self.last.iter()).cloned().collect()
    }
    /// How many were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}
