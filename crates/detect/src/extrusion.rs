//! Extrusion detection: `delivery-failures`, mailing-list recognition, `multiple-lists`, and
//! rejection-daemon discounting.
//!
//! The idea (Clayton, "Stopping Spam by Extrusion Detection", CEAS 2004; "Stopping Outgoing Spam
//! by Examining Incoming Server Logs", CEAS 2005): spam fails. It goes to harvested, ancient and
//! invented addresses and is refused by remote filters, while a real customer's mail mostly
//! arrives. So count, per customer, the recipients that failed — but not the failures of bounces
//! (null sender), of mailing lists (most deliveries work, ~10% fail), or of rejection daemons
//! (autoresponders answering spam whose sender was forged).

use maillog::record::MessageRecord;
use maillog::Ts;
use serde_json::json;

use crate::alert::{round3, Alert, Detector, Entity};
use crate::bounded::BoundedMap;
use crate::config::Config;
use crate::evidence::{MessageSample, Samples};
use crate::window::Counter;

/// Most sender addresses tracked per entity for list recognition.
pub const MAX_SENDERS_PER_ENTITY: usize = 32;
/// Most distinct recipients remembered exactly per sender address (enough to call it a list).
pub const MAX_RCPTS_PER_SENDER: usize = 4096;
/// Most distinct failure replies counted per entity for the evidence.
pub const MAX_REPLIES: usize = 16;

fn hash_str(s: &str) -> u64 {
    // Case-insensitive, the same in every run.
    maillog::hash::str_key_ci(s)
}

#[derive(Debug, Clone)]
struct SenderState {
    addr: String,
    first: Ts,
    last: Ts,
    messages: u64,
    rcpts: maillog::hash::Set<u64>,
    distinct: u64,
    repeats: u64,
    delivered: u64,
    failed: u64,
    /// Failed recipients in the sliding window (what the entity's count holds of this sender).
    failed_w: Counter,
    /// Recognised as a list until then (sticky for one window after the last recognition).
    list_until: Option<Ts>,
}

impl SenderState {
    fn list_like(&self, cfg: &Config) -> bool {
        let done = self.delivered + self.failed;
        self.distinct >= cfg.mailing_lists.min_recipients
            && done > 0
            && (self.failed as f64) / (done as f64) <= cfg.mailing_lists.max_failure_ratio
    }
}

#[derive(Debug, Default)]
struct EntityState {
    failed: Counter,
    delivered: Counter,
    discounted: Counter,
    messages: Counter,
    senders: Vec<SenderState>,
    samples: Samples,
    replies: maillog::hash::Map<String, u64>,
    alerted_failures: u64,
    lists_alerted: Option<Ts>,
}

/// The extrusion detectors' state.
#[derive(Debug)]
pub struct Extrusion {
    entities: BoundedMap<Entity, EntityState>,
    /// Incoming (sender -> local recipient) pairs, for recognising replies.
    inbound: BoundedMap<u64, ()>,
}

/// Why failures of a message were not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// Counted.
    None,
    /// Sender looks like an autoresponder / daemon.
    DaemonSender,
    /// A reply to a message this sender received.
    Reply,
}

fn local_part(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr)
}

/// Normalize a failure reply for grouping: code and first words.
fn reply_key(r: &str) -> String {
    // "host mx.example[192.0.2.1] said: 550 5.1.1 <a@b>: Recipient address rejected: …"
    let r = r.split_once(" said: ").map_or(r, |(_, rest)| rest);
    let mut out = String::new();
    for (i, w) in r
        .split_whitespace()
        .filter(|w| !w.contains('@') && !w.contains('['))
        .enumerate()
    {
        if i >= 8 {
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

impl Extrusion {
    /// Empty state.
    pub fn new(cfg: &Config) -> Self {
        Extrusion {
            entities: BoundedMap::new(cfg.limits.max_entities),
            inbound: BoundedMap::new(cfg.rejection_daemons.max_pairs),
        }
    }

    /// Entities with state.
    pub fn tracked(&self) -> usize {
        self.entities.len()
    }

    /// Remember that `from` mailed local recipient `to` (incoming mail), for reply recognition.
    pub fn note_inbound(&mut self, ts: Ts, from: &str, to: &str) {
        if from.is_empty() {
            return;
        }
        let k = hash_str(to) ^ hash_str(from).rotate_left(17);
        self.inbound.get_or_insert_with(&k, ts, || ());
    }

    fn classify(&self, cfg: &Config, rec: &MessageRecord) -> Discount {
        let sender = rec.sender.as_deref().unwrap_or("");
        let lp = local_part(sender).to_ascii_lowercase();
        if cfg
            .rejection_daemons
            .sender_patterns
            .iter()
            .any(|p| !p.is_empty() && lp.contains(p.as_str()))
        {
            return Discount::DaemonSender;
        }
        if rec.recipients.len() == 1 {
            let to = &rec.recipients[0].addr;
            let k = hash_str(sender) ^ hash_str(to).rotate_left(17);
            if self.inbound.get(&k).is_some() {
                return Discount::Reply;
            }
        }
        Discount::None
    }

    /// Account one outgoing record of `entity`. Returns alerts.
    pub fn on_record(
        &mut self,
        cfg: &Config,
        entity: &Entity,
        rec: &MessageRecord,
        out: &mut Vec<Alert>,
    ) {
        if rec.is_null_sender() {
            return;
        }
        let ts = rec.finished;
        let window = cfg.delivery_failures.window.0;
        let failed = rec.failed().count() as u64;
        let delivered = rec.delivered().count() as u64;
        if failed == 0 && delivered == 0 {
            return;
        }
        let discount = if failed > 0 {
            self.classify(cfg, rec)
        } else {
            Discount::None
        };
        let n_samples = cfg.limits.samples;
        let st = self
            .entities
            .get_or_insert_with(entity, ts, EntityState::default);
        st.messages.add(ts, 1, window);
        st.delivered.add(ts, delivered as u32, window);
        st.failed.expire(ts, window);
        st.discounted.expire(ts, window);

        // Per-sender list tracking.
        let sender = rec.sender.as_deref().unwrap_or("");
        st.senders.retain(|s| s.last.plus_secs(window) >= ts);
        let idx = match st
            .senders
            .iter()
            .position(|s| s.addr.eq_ignore_ascii_case(sender))
        {
            Some(i) => Some(i),
            None if st.senders.len() < MAX_SENDERS_PER_ENTITY => {
                st.senders.push(SenderState {
                    addr: sender.to_string(),
                    first: ts,
                    last: ts,
                    messages: 0,
                    rcpts: Default::default(),
                    distinct: 0,
                    repeats: 0,
                    delivered: 0,
                    failed: 0,
                    failed_w: Counter::default(),
                    list_until: None,
                });
                Some(st.senders.len() - 1)
            }
            None => None,
        };
        let mut from_list = false;
        if let Some(i) = idx {
            let s = &mut st.senders[i];
            // Tumbling window: a list is judged on what it sent within one window.
            if s.first.plus_secs(window) < ts {
                s.first = ts;
                s.messages = 0;
                s.rcpts.clear();
                s.distinct = 0;
                s.repeats = 0;
                s.delivered = 0;
                s.failed = 0;
            }
            s.last = ts;
            s.messages += 1;
            for r in &rec.recipients {
                let h = hash_str(&r.addr);
                if s.rcpts.contains(&h) {
                    s.repeats += 1;
                } else if s.rcpts.len() < MAX_RCPTS_PER_SENDER {
                    s.rcpts.insert(h);
                    s.distinct += 1;
                } else {
                    s.distinct += 1;
                }
            }
            s.delivered += delivered;
            s.failed += failed;
            if discount == Discount::None {
                s.failed_w.add(ts, failed as u32, window);
            } else {
                s.failed_w.expire(ts, window);
            }
            if s.list_like(cfg) {
                s.list_until = Some(ts.plus_secs(window));
            }
            from_list = s.list_until.is_some_and(|u| u >= ts);
        }

        if failed > 0 {
            if discount != Discount::None {
                st.discounted.add(ts, failed as u32, window);
            } else {
                st.failed.add(ts, failed as u32, window);
                for r in rec.failed() {
                    if let Some(rep) = &r.reply {
                        let k = reply_key(rep);
                        if let Some(c) = st.replies.get_mut(&k) {
                            *c += 1;
                        } else if st.replies.len() < MAX_REPLIES {
                            st.replies.insert(k, 1);
                        }
                    }
                }
                st.samples.push(MessageSample::of(rec), n_samples);
            }
        }

        // Failures of list-like senders are not the customer's fault.
        let list_failures: u64 = st
            .senders
            .iter()
            .filter(|s| s.list_until.is_some_and(|u| u >= ts))
            .map(|s| {
                let mut c = s.failed_w.clone();
                c.expire(ts, window);
                c.get()
            })
            .sum();
        // For `multiple-lists`, only senders that are lists beyond doubt count: a large fan-out,
        // or a recipient set mailed again and again. Ten shop assistants each writing to fifty
        // customers in a day are not mailing lists.
        let lists: Vec<&SenderState> = st
            .senders
            .iter()
            .filter(|s| {
                s.list_like(cfg)
                    && (s.distinct >= cfg.mailing_lists.multiple_min_recipients
                        || s.repeats * 10 >= s.distinct * 3)
            })
            .collect();
        let counted = st.failed.get().saturating_sub(list_failures);
        let total_fail = st.failed.get();
        let deliv = st.delivered.get();

        if cfg.delivery_failures.enabled
            && counted > cfg.delivery_failures.threshold
            && counted >= st.alerted_failures.saturating_mul(2).max(1)
        {
            let thr = cfg.delivery_failures.threshold.max(1) as f64;
            let ratio = total_fail as f64 / (total_fail + deliv).max(1) as f64;
            let score = (0.5 + 0.25 * ((counted as f64) / thr).log2().min(1.0) + 0.25 * ratio)
                .clamp(0.0, 1.0);
            let mut replies: Vec<(&String, &u64)> = st.replies.iter().collect();
            replies.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            replies.truncate(5);
            out.push(Alert {
                ts,
                detector: Detector::DeliveryFailures,
                entity: entity.clone(),
                score: round3(score),
                summary: format!(
                    "{counted} failed recipients in {} ({} delivered, {:.0}% failed)",
                    crate::config::Duration(window).to_string_h(),
                    deliv,
                    ratio * 100.0
                ),
                evidence: json!({
                    "failed_recipients": counted,
                    "threshold": cfg.delivery_failures.threshold,
                    "window_secs": window,
                    "delivered_recipients": deliv,
                    "failure_ratio": round3(ratio),
                    "messages": st.messages.get(),
                    "discounted_rejection_daemon": st.discounted.get(),
                    "discounted_mailing_lists": list_failures,
                    "top_failure_replies": replies.iter().map(|(k, v)| json!({"reply": k, "count": v})).collect::<Vec<_>>(),
                    "sample_messages": st.samples.to_vec(),
                    "sampled_of": st.samples.seen(),
                }),
            });
            st.alerted_failures = counted;
        }

        if cfg.mailing_lists.alert_multiple
            && from_list
            && !lists.is_empty()
            && lists.len() as u64 > cfg.mailing_lists.max_lists
            && st.lists_alerted.is_none_or(|t| t.plus_secs(window) < ts)
        {
            let n = lists.len();
            out.push(Alert {
                ts,
                detector: Detector::MultipleLists,
                entity: entity.clone(),
                score: round3((0.6 + 0.1 * (n as f64 - 2.0)).clamp(0.6, 0.95)),
                summary: format!(
                    "{n} list-like senders in {} (more than {} mailing list from one customer)",
                    crate::config::Duration(window).to_string_h(),
                    cfg.mailing_lists.max_lists
                ),
                evidence: json!({
                    "lists": lists.iter().map(|s| json!({
                        "sender": s.addr,
                        "messages": s.messages,
                        "distinct_recipients": s.distinct,
                        "repeat_deliveries": s.repeats,
                        "delivered": s.delivered,
                        "failed": s.failed,
                        "first": s.first.rfc3339(),
                        "last": s.last.rfc3339(),
                    })).collect::<Vec<_>>(),
                    "min_recipients": cfg.mailing_lists.min_recipients,
                    "max_failure_ratio": cfg.mailing_lists.max_failure_ratio,
                }),
            });
            st.lists_alerted = Some(ts);
        }
    }
}

impl crate::config::Duration {
    /// `24 h`, `10 min`, `90 s`.
    pub fn to_string_h(self) -> String {
        let s = self.0;
        if s % 86_400 == 0 && s >= 86_400 * 2 {
            format!("{} days", s / 86_400)
        } else if s % 3600 == 0 && s >= 3600 {
            format!("{} h", s / 3600)
        } else if s % 60 == 0 && s >= 60 {
            format!("{} min", s / 60)
        } else {
            format!("{s} s")
        }
    }
}
