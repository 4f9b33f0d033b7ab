//! Incidents and containment, persisted: `detect::incident` decides (merge, auto-contain,
//! re-arm, operator commands); these functions write what it decides as rows and timeline
//! entries and keep the writer's containment [`Set`] in step.

use anyhow::{anyhow, Result};
use detect::incident::{self, Actor, AutoVerdict, Refusal, State, Step};
use detect::EntityKind;
use rusqlite::{params, Connection, OptionalExtension};
use tracing::warn;

use super::super::contain::{Entry, Set};
use super::super::held::{Op, Outcome, Source, MAX_HELD_PER_INCIDENT};
use super::super::{Mode, PolicyAction, Shared};
use super::{kind_str, parse_kind, Action, Store, MAX_ALERTS_PER_INCIDENT};

impl Store {
    /// The containment list.
    pub fn load_containment(&self) -> Result<Set> {
        let mut st = self.conn.prepare(
            "SELECT entity_kind, entity_id, incident_id, action, since, until, by, reason FROM containment",
        )?;
        let mut set = Set::default();
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        for row in rows {
            let (k, id, incident, action, since, until, by, reason) = row?;
            if let Some(kind) = parse_kind(&k) {
                set.insert(Entry {
                    kind,
                    id,
                    incident,
                    action: parse_action(&action),
                    since,
                    until,
                    by,
                    reason,
                });
            }
        }
        Ok(set)
    }
}

/// The action a stored containment answers with.
fn parse_action(s: &str) -> PolicyAction {
    match s {
        "REJECT" => PolicyAction::Reject,
        "DEFER_IF_PERMIT" => PolicyAction::DeferIfPermit,
        _ => PolicyAction::Hold,
    }
}

fn find_open(tx: &Connection, kind: EntityKind, id: &str) -> Result<Option<(i64, String)>> {
    Ok(tx
        .query_row(
            "SELECT id, state FROM incidents WHERE entity_kind=?1 AND entity_id=?2
             AND state IN ('open','contained') ORDER BY id DESC LIMIT 1",
            params![kind_str(kind), id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

#[allow(clippy::too_many_arguments)]
fn new_incident(
    tx: &Connection,
    kind: EntityKind,
    id: &str,
    detector: &str,
    score: f64,
    summary: &str,
    ts: &str,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO incidents(entity_kind, entity_id, state, detector, score, summary, first_ts, last_ts, alerts, created_at, updated_at)
         VALUES(?1, ?2, 'open', ?3, ?4, ?5, ?6, ?6, 0, ?7, ?7)",
        params![kind_str(kind), id, detector, score, summary, ts, now],
    )?;
    Ok(tx.last_insert_rowid())
}

fn timeline(
    tx: &Connection,
    incident: i64,
    at: i64,
    action: &str,
    by: &str,
    note: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO timeline(incident_id, at, action, by, note) VALUES(?1, ?2, ?3, ?4, ?5)",
        params![incident, at, action, by, note],
    )?;
    Ok(())
}

/// Merge an alert into its entity's open incident (or open one) and contain automatically when
/// the policy says so. True when the containment set changed.
pub(super) fn on_alert(
    tx: &Connection,
    set: &mut Set,
    a: &detect::Alert,
    now: i64,
    policy: &super::super::ContainmentConfig,
    shared: &Shared,
) -> Result<bool> {
    let kind = a.entity.kind;
    let id = a.entity.id.as_str();
    let ts = a.ts.rfc3339();
    let inc = match find_open(tx, kind, id)? {
        Some((i, _)) => i,
        None => {
            let i = new_incident(
                tx,
                kind,
                id,
                a.detector.as_str(),
                a.score,
                &a.summary,
                &ts,
                now,
            )?;
            timeline(tx, i, now, "opened", a.detector.as_str(), &a.summary)?;
            shared.metrics.incidents_opened.inc();
            i
        }
    };
    let n: i64 = tx.query_row("SELECT alerts FROM incidents WHERE id=?1", [inc], |r| {
        r.get(0)
    })?;
    if n < MAX_ALERTS_PER_INCIDENT {
        tx.execute(
            "INSERT INTO alerts(incident_id, ts, detector, score, summary, json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            params![inc, ts, a.detector.as_str(), a.score, a.summary, serde_json::to_string(a)?],
        )?;
    }
    // The headline stays the incident's own detector's: an alert of another detector on the
    // same entity is evidence under it, not a new title (issue 11).
    tx.execute(
        "UPDATE incidents SET alerts=alerts+1, last_ts=?2, score=max(score, ?3),
         summary=CASE WHEN detector=?6 THEN ?4 ELSE summary END, updated_at=?5 WHERE id=?1",
        params![inc, ts, a.score, a.summary, now, a.detector.as_str()],
    )?;
    let contained = set.get(kind, id).is_some_and(|e| e.active(now));
    let closed = operator_closed_at(tx, kind, id)?;
    let until = match incident::auto_contain(&policy.policy(), a, now, contained, closed) {
        AutoVerdict::Contain { until } => until,
        AutoVerdict::NotWanted | AutoVerdict::AlreadyContained | AutoVerdict::OperatorDecided => {
            return Ok(false)
        }
    };
    let secs = until.map(|u| u - now);
    contain(
        tx,
        set,
        inc,
        kind,
        id,
        secs,
        Actor::Auto.name(),
        &a.summary,
        now,
        policy.action,
        shared.live.load().mode,
    )?;
    shared.metrics.containments.inc();
    warn!(entity = %a.entity, incident = inc, detector = a.detector.as_str(), score = a.score, "contained");
    Ok(true)
}

/// When an operator last released or dismissed an incident of this entity (expiry is no
/// operator's decision).
fn operator_closed_at(tx: &Connection, kind: EntityKind, id: &str) -> Result<Option<i64>> {
    let mut st = tx.prepare_cached(
        "SELECT state_by, state_at FROM incidents WHERE entity_kind=?1 AND entity_id=?2
         AND state IN ('released','dismissed') AND state_by IS NOT NULL AND state_at IS NOT NULL",
    )?;
    let rows = st.query_map(params![kind_str(kind), id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut last = None;
    for r in rows {
        let (by, at) = r?;
        if Actor::parse(&by).is_operator() {
            last = last.max(Some(at));
        }
    }
    Ok(last)
}

#[allow(clippy::too_many_arguments)]
fn contain(
    tx: &Connection,
    set: &mut Set,
    inc: i64,
    kind: EntityKind,
    id: &str,
    secs: Option<i64>,
    by: &str,
    reason: &str,
    now: i64,
    action: PolicyAction,
    mode: Mode,
) -> Result<()> {
    let until = secs.map(|s| now + s);
    tx.execute(
        "INSERT INTO containment(entity_kind, entity_id, incident_id, action, since, until, by, reason)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(entity_kind, entity_id) DO UPDATE SET incident_id=?3, action=?4, since=?5, until=?6, by=?7, reason=?8",
        params![kind_str(kind), id, inc, action.as_str(), now, until, by, reason],
    )?;
    tx.execute(
        "UPDATE incidents SET state='contained', state_by=?2, state_at=?3, updated_at=?3 WHERE id=?1",
        params![inc, by, now],
    )?;
    // In observe mode the policy server answers DUNNO: the timeline says what would be done.
    let (step, would) = match mode {
        Mode::Enforce => ("contained", ""),
        Mode::Observe => ("would contain (observe mode)", "would answer "),
    };
    let mut note = match until {
        Some(u) => format!(
            "{would}{} until {}",
            action.as_str(),
            maillog::Ts::from_secs(u).rfc3339()
        ),
        None => format!("{would}{} until released", action.as_str()),
    };
    if !reason.is_empty() {
        note.push_str(": ");
        note.push_str(reason);
    }
    timeline(tx, inc, now, step, by, &note)?;
    set.insert(Entry {
        kind,
        id: id.to_string(),
        incident: inc,
        action,
        since: now,
        until,
        by: by.to_string(),
        reason: reason.to_string(),
    });
    Ok(())
}

pub(super) fn release(
    tx: &Connection,
    e: &Entry,
    state: State,
    by: &str,
    note: &str,
    now: i64,
) -> Result<()> {
    let state = state.as_str();
    tx.execute(
        "DELETE FROM containment WHERE entity_kind=?1 AND entity_id=?2",
        params![kind_str(e.kind), e.id],
    )?;
    tx.execute(
        "UPDATE incidents SET state=?2, state_by=?3, state_at=?4, updated_at=?4 WHERE id=?1 AND state IN ('open','contained')",
        params![e.incident, state, by, now],
    )?;
    timeline(tx, e.incident, now, state, by, note)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn act(
    tx: &Connection,
    set: &mut Set,
    incident: i64,
    action: Action,
    secs: Option<i64>,
    by: &str,
    note: &str,
    now: i64,
    policy_action: PolicyAction,
    mode: Mode,
) -> Result<bool> {
    let (k, id, state): (String, String, String) = tx
        .query_row(
            "SELECT entity_kind, entity_id, state FROM incidents WHERE id=?1",
            [incident],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| anyhow!("no incident {incident}"))?;
    let kind = parse_kind(&k).ok_or_else(|| anyhow!("bad entity kind {k}"))?;
    let state = State::parse(&state).ok_or_else(|| anyhow!("bad incident state {state}"))?;
    let entry = set
        .get(kind, &id)
        .filter(|e| e.incident == incident)
        .cloned();
    let t = incident::command(state, kind, action, entry.is_some()).map_err(|r| match r {
        Refusal::NotContained => anyhow!("incident {incident} {r}"),
        Refusal::CampaignNotContainable => anyhow!("{r}"),
    })?;
    if t.reopen {
        tx.execute("UPDATE incidents SET state='open' WHERE id=?1", [incident])?;
        timeline(tx, incident, now, Step::Reopened.as_str(), by, note)?;
    }
    if t.contain {
        contain(
            tx,
            set,
            incident,
            kind,
            &id,
            secs,
            by,
            note,
            now,
            policy_action,
            mode,
        )?;
        return Ok(true);
    }
    match entry.filter(|_| t.lift) {
        Some(e) => {
            set.remove(kind, &id);
            release(tx, &e, t.state, by, note, now)?;
            Ok(true)
        }
        None => {
            tx.execute(
                "UPDATE incidents SET state=?2, state_by=?3, state_at=?4, updated_at=?4 WHERE id=?1",
                params![incident, t.state.as_str(), by, now],
            )?;
            timeline(tx, incident, now, t.step.as_str(), by, note)?;
            Ok(false)
        }
    }
}

/// Contain an entity by hand: into its open incident, or a new one opened for it. The incident's
/// id.
#[allow(clippy::too_many_arguments)]
pub(super) fn contain_entity(
    tx: &Connection,
    set: &mut Set,
    kind: EntityKind,
    id: &str,
    secs: Option<i64>,
    by: &str,
    note: &str,
    now: i64,
    policy_action: PolicyAction,
    mode: Mode,
) -> Result<i64> {
    let inc = match find_open(tx, kind, id)? {
        Some((i, _)) => i,
        None => {
            let i = new_incident(
                tx,
                kind,
                id,
                "manual",
                1.0,
                note,
                &super::super::now_ts().rfc3339(),
                now,
            )?;
            timeline(tx, i, now, "opened", by, note)?;
            i
        }
    };
    act(
        tx,
        set,
        inc,
        Action::Contain,
        secs,
        by,
        note,
        now,
        policy_action,
        mode,
    )?;
    Ok(inc)
}

/// Record a queue id held for an incident; false when the incident is gone or its list is
/// full ([`MAX_HELD_PER_INCIDENT`]). A queue id seen again (log and policy) is kept once.
pub(super) fn add_held(
    tx: &Connection,
    incident: i64,
    qid: &str,
    source: Source,
    now: i64,
) -> Result<bool> {
    let (exists, n): (i64, i64) = tx.query_row(
        "SELECT (SELECT count(*) FROM incidents WHERE id=?1), (SELECT count(*) FROM held WHERE incident_id=?1)",
        [incident],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let known = tx
        .query_row(
            "SELECT 1 FROM held WHERE incident_id=?1 AND queue_id=?2",
            params![incident, qid],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if known {
        return Ok(true);
    }
    if exists == 0 || n >= MAX_HELD_PER_INCIDENT {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO held(incident_id, queue_id, source, state, at) VALUES(?1, ?2, ?3, 'held', ?4)",
        params![incident, qid, source.as_str(), now],
    )?;
    Ok(true)
}

/// A hold-queue action's timeline entry (the command, its exit status and standard error), and
/// the queue ids' new state when postsuper succeeded.
#[allow(clippy::too_many_arguments)]
pub(super) fn held_done(
    tx: &Connection,
    incident: i64,
    op: Op,
    ids: &[String],
    command: &str,
    outcome: Option<&Outcome>,
    by: &str,
    note: &str,
    now: i64,
) -> Result<()> {
    let mut text = format!("{} queue id(s): {command}", ids.len());
    match outcome {
        None => text.push_str(" (observe mode: not run)"),
        Some(o) => {
            match (o.status, &o.error) {
                (_, Some(e)) => text.push_str(&format!("; failed: {e}")),
                (Some(c), None) => text.push_str(&format!("; exit status {c}")),
                (None, None) => text.push_str("; killed by a signal"),
            }
            if !o.stderr.is_empty() {
                text.push_str(&format!("; stderr: {}", o.stderr));
            }
        }
    }
    if !note.is_empty() {
        text.push_str(&format!("; note: {note}"));
    }
    let step = op.step(outcome.is_some());
    let step = match outcome {
        Some(o) if !o.ok() => format!("{step}: FAILED"),
        _ => step.to_string(),
    };
    timeline(tx, incident, now, &step, by, &text)?;
    if outcome.is_some_and(Outcome::ok) {
        let mut st = tx.prepare_cached(
            "UPDATE held SET state=?3, at=?4 WHERE incident_id=?1 AND queue_id=?2 AND state='held'",
        )?;
        for q in ids {
            st.execute(params![incident, q, op.done_state(), now])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{get_incident, list_incidents, reader, Cmd, Store};
    use super::*;
    use crate::serve::{ContainmentConfig, Live, Mode};
    use detect::{Alert, Detector, Entity};
    use std::path::Path;
    use std::sync::Arc;

    fn shared(path: &Path, containment: ContainmentConfig) -> Arc<Shared> {
        super::super::test_shared(path, containment)
    }

    fn alert(det: Detector, kind: EntityKind, id: &str, score: f64) -> Alert {
        Alert {
            ts: maillog::Ts::from_secs(1_795_000_000),
            detector: det,
            entity: Entity::new(kind, id),
            score,
            summary: format!("{det} on {id}"),
            evidence: serde_json::json!({"n": 1}),
        }
    }

    fn commit(s: &mut Store, sh: &Shared, alerts: Vec<Alert>) -> bool {
        s.apply(&mut vec![Cmd::Commit { alerts, pos: None }], sh)
            .unwrap()
    }

    fn act(s: &mut Store, sh: &Shared, incident: i64, action: Action) -> Result<i64, String> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        s.apply(
            &mut vec![Cmd::Act {
                incident,
                action,
                secs: None,
                by: "op".into(),
                note: "n".into(),
                reply: tx,
            }],
            sh,
        )
        .unwrap();
        rx.try_recv().unwrap()
    }

    #[test]
    fn policy_merging_rearm_expiry_and_retention() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let policy = ContainmentConfig {
            detectors: vec!["auth-hijack".into()],
            min_score: 0.9,
            ..ContainmentConfig::default()
        };
        let sh = shared(&p, policy);
        let mut s = Store::open(&p).unwrap();
        // Below the score, or another detector: an open incident, no containment.
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(Detector::AuthHijack, EntityKind::Account, "a@x", 0.5)]
        ));
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::HeloAnomaly,
                EntityKind::Client,
                "192.0.2.1",
                0.99
            )]
        ));
        // Contained; later alerts merge into the same incident.
        assert!(commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "a@x",
                0.95
            )]
        ));
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "A@X",
                0.97
            )]
        ));
        let c = reader(&p).unwrap();
        let list = list_incidents(&c, None, None, 10).unwrap();
        assert_eq!(list.len(), 3, "a@x, A@X (ids are kept as given), 192.0.2.1");
        let ax = list.iter().find(|i| i.entity_id == "a@x").unwrap();
        assert_eq!(
            (ax.state.as_str(), ax.alerts, ax.score),
            ("contained", 2, 0.95)
        );
        let e = s.set.get(EntityKind::Account, "a@x").unwrap();
        assert_eq!(e.until, Some(e.since + 4 * 3600));
        assert_eq!(sh.metrics.containments.get(), 1);
        // Released by hand: no automatic re-containment within `rearm`.
        act(&mut s, &sh, ax.id, Action::Release).unwrap();
        assert!(s.set.get(EntityKind::Account, "a@x").is_none());
        assert!(!commit(
            &mut s,
            &sh,
            vec![alert(
                Detector::AuthHijack,
                EntityKind::Account,
                "a@x",
                0.99
            )]
        ));
        let list = list_incidents(&c, Some("open"), Some("a@x"), 10).unwrap();
        assert_eq!(list.len(), 2, "a new incident opened (and A@X's)");
        // Releasing what is not contained is refused; dismissing works.
        let new = list.iter().find(|i| i.entity_id == "a@x").unwrap().id;
        assert!(act(&mut s, &sh, new, Action::Release).is_err());
        act(&mut s, &sh, new, Action::Dismiss).unwrap();
        assert!(act(&mut s, &sh, 999, Action::Contain).is_err());
        // Expiry: make the containment of another entity end in the past.
        let (tx, _rx) = tokio::sync::oneshot::channel();
        s.apply(
            &mut vec![Cmd::ContainEntity {
                kind: EntityKind::Client,
                id: "192.0.2.9".into(),
                secs: Some(60),
                by: "op".into(),
                note: "".into(),
                reply: tx,
            }],
            &sh,
        )
        .unwrap();
        s.conn
            .execute("UPDATE containment SET until = 1", [])
            .unwrap();
        s.set = s.load_containment().unwrap();
        assert!(s.apply(&mut vec![Cmd::Expire], &sh).unwrap());
        assert!(s.set.is_empty());
        let tl = get_incident(
            &c,
            list_incidents(&c, None, Some("192.0.2.9"), 1).unwrap()[0].id,
        )
        .unwrap()
        .unwrap()
        .2;
        assert_eq!(
            tl.last().map(|e| (e.action.as_str(), e.by.as_str())),
            Some(("released", "expiry"))
        );
        // Retention: closed incidents older than the limit go, with their alerts.
        s.conn
            .execute(
                "UPDATE incidents SET updated_at = 0 WHERE state IN ('released','dismissed')",
                [],
            )
            .unwrap();
        s.apply(&mut vec![Cmd::Retention(86_400)], &sh).unwrap();
        let left: Vec<String> = list_incidents(&c, None, None, 10)
            .unwrap()
            .into_iter()
            .map(|i| i.state)
            .collect();
        assert_eq!(left, ["open", "open"]);
        let orphans: i64 = c
            .query_row(
                "SELECT count(*) FROM alerts WHERE incident_id NOT IN (SELECT id FROM incidents)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    /// Issue 11: the headline stays the incident's own detector's; held queue ids are kept once
    /// each, bounded, and change state only when postsuper succeeded; in observe mode the
    /// timeline says "would contain".
    #[test]
    fn headline_held_ids_and_observe_wording() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let policy = ContainmentConfig {
            detectors: vec!["auth-hijack".into()],
            min_score: 0.5,
            ..ContainmentConfig::default()
        };
        let sh = shared(&p, policy.clone());
        sh.live.store(Arc::new(Live {
            mode: Mode::Observe,
            containment: policy,
            token: String::new(),
        }));
        let mut s = Store::open(&p).unwrap();
        commit(
            &mut s,
            &sh,
            vec![
                alert(Detector::AuthHijack, EntityKind::Account, "a@x", 0.9),
                alert(Detector::DeliveryFailures, EntityKind::Account, "a@x", 0.95),
            ],
        );
        let r = reader(&p).unwrap();
        let inc = list_incidents(&r, None, None, 10).unwrap().remove(0);
        assert_eq!(inc.detector, "auth-hijack");
        assert_eq!(inc.summary, "auth-hijack on a@x");
        assert_eq!(inc.alerts, 2);
        let (_, _, tl) = get_incident(&r, inc.id).unwrap().unwrap();
        assert!(tl.iter().any(|e| e.action == "would contain (observe mode)"
            && e.note.starts_with("would answer HOLD")));
        assert!(!tl.iter().any(|e| e.action == "contained"), "{tl:?}");

        let held = |s: &mut Store, q: &str| {
            s.apply(
                &mut vec![Cmd::Held {
                    incident: inc.id,
                    qid: q.into(),
                    source: Source::Log,
                }],
                &sh,
            )
            .unwrap();
        };
        held(&mut s, "D7C189940CB");
        held(&mut s, "D7C189940CB");
        held(&mut s, "4BDEF9940C4");
        let ids = super::super::held_ids(&r, inc.id).unwrap();
        assert_eq!(
            ids.iter().map(|h| h.queue_id.as_str()).collect::<Vec<_>>(),
            ["D7C189940CB", "4BDEF9940C4"]
        );
        assert_eq!(sh.metrics.held_recorded.get(), 3);
        // An incident that does not exist: dropped, counted.
        s.apply(
            &mut vec![Cmd::Held {
                incident: 999,
                qid: "ABCDEF1".into(),
                source: Source::Policy,
            }],
            &sh,
        )
        .unwrap();
        assert_eq!(sh.metrics.held_dropped.get(), 1);

        let done = |s: &mut Store, outcome: Option<Outcome>| {
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            s.apply(
                &mut vec![Cmd::HeldDone {
                    incident: inc.id,
                    op: Op::Release,
                    ids: vec!["D7C189940CB".into()],
                    command: "postsuper -H -".into(),
                    outcome,
                    by: "op".into(),
                    note: "fp".into(),
                    reply: tx,
                }],
                &sh,
            )
            .unwrap();
            rx.try_recv().unwrap().unwrap();
        };
        let failed = Outcome {
            status: Some(1),
            stderr: "postsuper: fatal: not permitted".into(),
            error: None,
        };
        done(&mut s, None);
        done(&mut s, Some(failed));
        let states = |r: &rusqlite::Connection| {
            super::super::held_ids(r, inc.id)
                .unwrap()
                .into_iter()
                .map(|h| h.state)
                .collect::<Vec<_>>()
        };
        assert_eq!(states(&r), ["held", "held"]);
        done(
            &mut s,
            Some(Outcome {
                status: Some(0),
                stderr: "postsuper: Released from hold: 1 message".into(),
                error: None,
            }),
        );
        assert_eq!(states(&r), ["released", "held"]);
        let (_, _, tl) = get_incident(&r, inc.id).unwrap().unwrap();
        let steps: Vec<_> = tl.iter().map(|e| e.action.as_str()).collect();
        assert!(steps.ends_with(&[
            "would release held mail",
            "held mail released: FAILED",
            "held mail released"
        ]));
        let last = tl.last().unwrap();
        assert_eq!(
            last.note,
            "1 queue id(s): postsuper -H -; exit status 0; stderr: postsuper: Released from hold: 1 message; note: fp"
        );
        assert!(tl[tl.len() - 2]
            .note
            .contains("exit status 1; stderr: postsuper: fatal"));
    }
}
