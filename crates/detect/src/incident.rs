//! Incidents: alerts about one entity merged into one case, and the containment lifecycle
//! around it, as pure, event-time domain logic.
//!
//! `analyze` runs the whole lifecycle in memory ([`Incidents`], with the alerts' own times as
//! "now"), and `serve`'s store asks the same rules ([`auto_contain`], [`command`]) and only
//! persists what they decide. Nothing here does I/O or reads a clock: every function takes `now`
//! (unix seconds).
//!
//! The rules:
//! - **merge**: an alert joins its entity's incident while that incident is open or contained;
//!   otherwise it opens a new one. Entities are compared as given (kind and id).
//! - **auto-contain**: an alert of a configured detector with at least the configured score
//!   contains its entity (campaigns never: contain their accounts), unless the entity is already
//!   contained, or an operator released or dismissed it within `rearm` (the operator decided;
//!   new alerts still reach an incident).
//! - **expiry**: a containment with an end is lifted when its time is up; the incident becomes
//!   released by "expiry" (which does not count as an operator's decision for `rearm`).
//! - **operator commands**: contain (reopens a released or dismissed incident), release (only
//!   what is contained), dismiss (closes, lifting containment).

use std::collections::BTreeMap;

use maillog::Ts;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Detector, Entity, EntityKind};

/// Alerts kept per incident as evidence (the count goes on).
pub const MAX_ALERTS_PER_INCIDENT: usize = 200;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Alerts arrive; nothing is enforced.
    Open,
    /// Its entity is contained.
    Contained,
    /// Containment lifted (by an operator or by expiry); closed.
    Released,
    /// Closed as a false positive.
    Dismissed,
}

impl State {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Contained => "contained",
            State::Released => "released",
            State::Dismissed => "dismissed",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "open" => State::Open,
            "contained" => State::Contained,
            "released" => State::Released,
            "dismissed" => State::Dismissed,
            _ => return None,
        })
    }

    /// Open or contained: new alerts of its entity merge into it.
    pub fn is_active(self) -> bool {
        matches!(self, State::Open | State::Contained)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who changed an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    /// A detector's alert (opening an incident).
    Detector(Detector),
    /// The automatic containment policy.
    Auto,
    /// The containment's time ran out.
    Expiry,
    /// An operator, by name.
    Operator(String),
}

impl Actor {
    /// The name stored in a timeline ("auto", "expiry", the detector or the operator's name).
    pub fn name(&self) -> &str {
        match self {
            Actor::Detector(d) => d.as_str(),
            Actor::Auto => "auto",
            Actor::Expiry => "expiry",
            Actor::Operator(n) => n,
        }
    }

    /// From a stored name (anything else is an operator).
    pub fn parse(s: &str) -> Actor {
        match s {
            "auto" => Actor::Auto,
            "expiry" => Actor::Expiry,
            _ => match Detector::ALL.iter().find(|d| d.as_str() == s) {
                Some(d) => Actor::Detector(*d),
                None => Actor::Operator(s.to_string()),
            },
        }
    }

    /// An operator's decision (what `rearm` respects)?
    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Operator(_))
    }
}

/// A timeline step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// First alert.
    Opened,
    /// Entity contained.
    Contained,
    /// Containment lifted / incident closed as handled.
    Released,
    /// Closed as a false positive.
    Dismissed,
    /// A closed incident taken up again.
    Reopened,
}

impl Step {
    /// The name stored in a timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Opened => "opened",
            Step::Contained => "contained",
            Step::Released => "released",
            Step::Dismissed => "dismissed",
            Step::Reopened => "reopened",
        }
    }
}

/// The automatic containment policy (`[serve.containment]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Detectors whose alerts contain automatically.
    pub detectors: Vec<Detector>,
    /// Lowest score that contains.
    pub min_score: f64,
    /// How long an automatic containment lasts (seconds); `None`: until released.
    pub duration: Option<i64>,
    /// After an operator's release or dismissal, no automatic containment for this long.
    pub rearm: i64,
}

impl Default for Policy {
    /// The service's defaults: `auth-hijack` at 0.9 for 4 hours, re-armed after a day.
    fn default() -> Policy {
        Policy {
            detectors: vec![Detector::AuthHijack],
            min_score: 0.9,
            duration: Some(4 * 3600),
            rearm: 86_400,
        }
    }
}

impl Policy {
    /// Would this alert contain its entity (before looking at the entity's history)?
    pub fn wants(&self, a: &Alert) -> bool {
        self.detectors.contains(&a.detector)
            && a.score >= self.min_score
            && a.entity.kind != EntityKind::Campaign
    }
}

/// What the policy decides for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoVerdict {
    /// Contain until this time (`None`: until released).
    Contain {
        /// End (unix seconds).
        until: Option<i64>,
    },
    /// Not a containing alert (detector, score, or a campaign).
    NotWanted,
    /// The entity is contained already.
    AlreadyContained,
    /// An operator released or dismissed the entity within `rearm`.
    OperatorDecided,
}

/// The automatic containment decision for `a` at `now`, given whether its entity is contained
/// (an active containment) and when an operator last released or dismissed it.
pub fn auto_contain(
    policy: &Policy,
    a: &Alert,
    now: i64,
    contained: bool,
    operator_closed_at: Option<i64>,
) -> AutoVerdict {
    if !policy.wants(a) {
        return AutoVerdict::NotWanted;
    }
    if contained {
        return AutoVerdict::AlreadyContained;
    }
    if operator_closed_at.is_some_and(|t| t > now.saturating_sub(policy.rearm)) {
        return AutoVerdict::OperatorDecided;
    }
    AutoVerdict::Contain {
        until: policy.duration.map(|d| now.saturating_add(d)),
    }
}

/// An operator's command on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// Contain its entity.
    Contain,
    /// Lift containment.
    Release,
    /// Close as a false positive (lifts containment too).
    Dismiss,
}

/// Why a command is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Campaigns are not contained; their accounts are.
    CampaignNotContainable,
    /// Release of an incident that is not contained.
    NotContained,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::CampaignNotContainable => {
                "a campaign cannot be contained; contain its accounts"
            }
            Refusal::NotContained => "is not contained",
        })
    }
}

/// What a command does to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// A closed incident is reopened first.
    pub reopen: bool,
    /// Contain its entity.
    pub contain: bool,
    /// Lift the entity's containment (held by this incident).
    pub lift: bool,
    /// The incident's state afterwards.
    pub state: State,
    /// The timeline step.
    pub step: Step,
}

/// The transition of `cmd` on an incident in `state` about an entity of `kind`;
/// `holds_containment`: its entity is contained by this incident.
pub fn command(
    state: State,
    kind: EntityKind,
    cmd: Command,
    holds_containment: bool,
) -> Result<Transition, Refusal> {
    match cmd {
        Command::Contain => {
            if kind == EntityKind::Campaign {
                return Err(Refusal::CampaignNotContainable);
            }
            Ok(Transition {
                reopen: !state.is_active(),
                contain: true,
                lift: false,
                state: State::Contained,
                step: Step::Contained,
            })
        }
        Command::Release | Command::Dismiss => {
            if cmd == Command::Release && !holds_containment && state != State::Contained {
                return Err(Refusal::NotContained);
            }
            let (state, step) = if cmd == Command::Release {
                (State::Released, Step::Released)
            } else {
                (State::Dismissed, Step::Dismissed)
            };
            Ok(Transition {
                reopen: false,
                contain: false,
                lift: holds_containment,
                state,
                step,
            })
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Unix seconds.
    pub at: i64,
    /// What.
    pub step: Step,
    /// Who.
    pub by: Actor,
    /// Note.
    pub note: String,
}

/// An entity's containment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Containment {
    /// Incident that holds it.
    pub incident: u64,
    /// Since (unix seconds).
    pub since: i64,
    /// Until (unix seconds); `None`: until released.
    pub until: Option<i64>,
    /// Who contained.
    pub by: Actor,
}

impl Containment {
    /// In force at `now`?
    pub fn active(&self, now: i64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Number (1, 2, … in order of opening).
    pub id: u64,
    /// The entity.
    pub entity: Entity,
    /// State.
    pub state: State,
    /// Detector of the first alert.
    pub detector: Detector,
    /// Every detector that contributed, in order of first alert.
    pub detectors: Vec<Detector>,
    /// Highest score.
    pub score: f64,
    /// The summary of the latest alert of the incident's own detector (its headline).
    pub summary: String,
    /// First alert's time.
    #[serde(serialize_with = "crate::alert::ser_ts")]
    pub first: Ts,
    /// Latest alert's time.
    #[serde(serialize_with = "crate::alert::ser_ts")]
    pub last: Ts,
    /// Alerts merged.
    pub alerts: u64,
    /// The first [`MAX_ALERTS_PER_INCIDENT`] alerts (not serialized: they are the alerts).
    #[serde(skip)]
    pub evidence: Vec<Alert>,
    /// What happened to it.
    pub timeline: Vec<TimelineEntry>,
}

/// What changed, for whoever keeps a record (the store, metrics).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident.
    Opened(u64),
    /// An alert merged into an incident.
    Merged(u64),
    /// An entity contained (automatically or by hand).
    Contained(u64),
    /// An entity's containment lifted, and why.
    Lifted(u64, Step),
}

/// Every incident and containment, in memory (`analyze`; the lifecycle tests).
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    policy: Policy,
    list: Vec<Incident>,
    active: BTreeMap<Entity, usize>,
    contained: BTreeMap<Entity, Containment>,
    operator_closed: BTreeMap<Entity, i64>,
}

impl Incidents {
    /// Empty, with this auto-containment policy.
    pub fn new(policy: Policy) -> Incidents {
        Incidents {
            policy,
            ..Incidents::default()
        }
    }

    /// Every incident, in order of opening.
    pub fn list(&self) -> &[Incident] {
        &self.list
    }

    /// The containment of an entity, if any (expired ones included until [`Incidents::expire`]).
    pub fn containment(&self, e: &Entity) -> Option<&Containment> {
        self.contained.get(e)
    }

    /// An incident by id.
    pub fn get(&self, id: u64) -> Option<&Incident> {
        id.checked_sub(1).and_then(|i| self.list.get(i as usize))
    }

    /// Merge an alert (its time is "now"): expiry first, then merge or open, then the policy.
    pub fn on_alert(&mut self, a: &Alert) -> Vec<Change> {
        let now = a.ts.secs();
        let mut out = self.expire(now);
        let idx = match self.active.get(&a.entity) {
            Some(&i) => {
                let inc = &mut self.list[i];
                inc.alerts += 1;
                inc.last = inc.last.max(a.ts);
                inc.score = inc.score.max(a.score);
                // The headline stays the incident's own detector's (issue 11): another
                // detector's alert on the entity is evidence under it, not a new title.
                if a.detector == inc.detector {
                    inc.summary = a.summary.clone();
                }
                if !inc.detectors.contains(&a.detector) {
                    inc.detectors.push(a.detector);
                }
                if inc.evidence.len() < MAX_ALERTS_PER_INCIDENT {
                    inc.evidence.push(a.clone());
                }
                out.push(Change::Merged(inc.id));
                i
            }
            None => {
                let id = self.list.len() as u64 + 1;
                self.list.push(Incident {
                    id,
                    entity: a.entity.clone(),
                    state: State::Open,
                    detector: a.detector,
                    detectors: vec![a.detector],
                    score: a.score,
                    summary: a.summary.clone(),
                    first: a.ts,
                    last: a.ts,
                    alerts: 1,
                    evidence: vec![a.clone()],
                    timeline: vec![TimelineEntry {
                        at: now,
                        step: Step::Opened,
                        by: Actor::Detector(a.detector),
                        note: a.summary.clone(),
                    }],
                });
                let i = self.list.len() - 1;
                self.active.insert(a.entity.clone(), i);
                out.push(Change::Opened(id));
                i
            }
        };
        let contained = self.contained.get(&a.entity).is_some_and(|c| c.active(now));
        let closed = self.operator_closed.get(&a.entity).copied();
        if let AutoVerdict::Contain { until } =
            auto_contain(&self.policy, a, now, contained, closed)
        {
            self.contain(idx, now, until, Actor::Auto, &a.summary);
            out.push(Change::Contained(self.list[idx].id));
        }
        out
    }

    /// New alerts of `ent` go to its newest open or contained incident (as the store's query).
    fn make_active(&mut self, ent: &Entity, idx: usize) {
        if self.active.get(ent).is_none_or(|&cur| cur < idx) {
            self.active.insert(ent.clone(), idx);
        }
    }

    fn contain(&mut self, idx: usize, now: i64, until: Option<i64>, by: Actor, note: &str) {
        let inc = &mut self.list[idx];
        inc.state = State::Contained;
        inc.timeline.push(TimelineEntry {
            at: now,
            step: Step::Contained,
            by: by.clone(),
            note: note.to_string(),
        });
        self.contained.insert(
            inc.entity.clone(),
            Containment {
                incident: inc.id,
                since: now,
                until,
                by,
            },
        );
    }

    /// Lift containments whose time is up at `now`; their incidents are released by expiry.
    pub fn expire(&mut self, now: i64) -> Vec<Change> {
        let done: Vec<Entity> = self
            .contained
            .iter()
            .filter(|(_, c)| !c.active(now))
            .map(|(e, _)| e.clone())
            .collect();
        let mut out = Vec::new();
        for e in done {
            let Some(c) = self.contained.remove(&e) else {
                continue;
            };
            let idx = (c.incident - 1) as usize;
            let at = c.until.unwrap_or(now);
            self.close(
                idx,
                State::Released,
                Step::Released,
                Actor::Expiry,
                at,
                "containment expired",
            );
            out.push(Change::Lifted(c.incident, Step::Released));
        }
        out
    }

    fn close(&mut self, idx: usize, state: State, step: Step, by: Actor, at: i64, note: &str) {
        let inc = &mut self.list[idx];
        if inc.state.is_active() {
            inc.state = state;
        }
        inc.timeline.push(TimelineEntry {
            at,
            step,
            by: by.clone(),
            note: note.to_string(),
        });
        if self.active.get(&inc.entity) == Some(&idx) && !inc.state.is_active() {
            self.active.remove(&inc.entity);
        }
        if by.is_operator() {
            self.operator_closed.insert(inc.entity.clone(), at);
        }
    }

    /// An operator's command on incident `id` at `now`; `secs`: containment length (contain
    /// only; `None` = until released).
    pub fn command(
        &mut self,
        id: u64,
        cmd: Command,
        secs: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<Vec<Change>, CommandError> {
        let mut out = self.expire(now);
        let idx = id
            .checked_sub(1)
            .map(|i| i as usize)
            .filter(|i| *i < self.list.len())
            .ok_or(CommandError::NoIncident(id))?;
        let ent = self.list[idx].entity.clone();
        let holds = self.contained.get(&ent).is_some_and(|c| c.incident == id);
        let t = command(self.list[idx].state, ent.kind, cmd, holds)
            .map_err(|r| CommandError::Refused(id, r))?;
        let actor = Actor::Operator(by.to_string());
        if t.reopen {
            let inc = &mut self.list[idx];
            inc.state = State::Open;
            inc.timeline.push(TimelineEntry {
                at: now,
                step: Step::Reopened,
                by: actor.clone(),
                note: String::new(),
            });
            self.make_active(&ent, idx);
        }
        if t.contain {
            self.make_active(&ent, idx);
            self.contain(idx, now, secs.map(|s| now.saturating_add(s)), actor, "");
            out.push(Change::Contained(id));
            return Ok(out);
        }
        if t.lift {
            self.contained.remove(&ent);
            out.push(Change::Lifted(id, t.step));
        }
        self.close(idx, t.state, t.step, actor, now, "");
        Ok(out)
    }
}

/// A refused or impossible operator command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No such incident.
    NoIncident(u64),
    /// The lifecycle refuses it.
    Refused(u64, Refusal),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NoIncident(id) => write!(f, "no incident {id}"),
            CommandError::Refused(id, r @ Refusal::NotContained) => write!(f, "incident {id} {r}"),
            CommandError::Refused(_, r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for CommandError {}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_000_000;

    fn alert(at: i64, det: Detector, kind: EntityKind, id: &str, score: f64) -> Alert {
        Alert {
            ts: Ts::from_secs(at),
            detector: det,
            entity: Entity::new(kind, id),
            score,
            summary: format!("{det} on {id}"),
            evidence: serde_json::json!({"n": 1}),
        }
    }

    /// Issue 11: an incident's headline is its own detector's latest alert, whatever other
    /// detectors say about the entity later.
    #[test]
    fn headline_is_the_incidents_own_detectors() {
        let mut inc = Incidents::new(Policy::default());
        let mut a = alert(T, Detector::AuthHijack, EntityKind::Account, "a@x", 0.5);
        inc.on_alert(&a);
        inc.on_alert(&alert(
            T + 1,
            Detector::DeliveryFailures,
            EntityKind::Account,
            "a@x",
            0.9,
        ));
        let i = &inc.list()[0];
        assert_eq!((i.alerts, i.summary.as_str()), (2, "auth-hijack on a@x"));
        assert_eq!(
            i.detectors,
            [Detector::AuthHijack, Detector::DeliveryFailures]
        );
        a.ts = Ts::from_secs(T + 2);
        a.summary = "auth-hijack again".into();
        inc.on_alert(&a);
        assert_eq!(inc.list()[0].summary, "auth-hijack again");
    }

    /// The store's lifecycle test, on the pure module: the same assertions.
    #[test]
    fn policy_merging_rearm_and_expiry() {
        let mut inc = Incidents::new(Policy::default());
        let acc = |id: &str| Entity::new(EntityKind::Account, id);
        // Below the score, or another detector: an open incident, no containment.
        let ch = inc.on_alert(&alert(
            T,
            Detector::AuthHijack,
            EntityKind::Account,
            "a@x",
            0.5,
        ));
        assert_eq!(ch, [Change::Opened(1)]);
        inc.on_alert(&alert(
            T,
            Detector::HeloAnomaly,
            EntityKind::Client,
            "192.0.2.1",
            0.99,
        ));
        assert!(inc.containment(&acc("a@x")).is_none());
        // Contained; later alerts merge into the same incident.
        let ch = inc.on_alert(&alert(
            T,
            Detector::AuthHijack,
            EntityKind::Account,
            "a@x",
            0.95,
        ));
        assert_eq!(ch, [Change::Merged(1), Change::Contained(1)]);
        let ch = inc.on_alert(&alert(
            T,
            Detector::AuthHijack,
            EntityKind::Account,
            "A@X",
            0.97,
        ));
        assert_eq!(
            ch,
            [Change::Opened(3), Change::Contained(3)],
            "ids are kept as given"
        );
        let ax = inc.get(1).unwrap();
        assert_eq!((ax.state, ax.alerts, ax.score), (State::Contained, 2, 0.95));
        let c = inc.containment(&acc("a@x")).unwrap();
        assert_eq!(c.until, Some(c.since + 4 * 3600));
        // Released by hand: no automatic re-containment within `rearm`.
        inc.command(1, Command::Release, None, "op", T + 10)
            .unwrap();
        assert!(inc.containment(&acc("a@x")).is_none());
        let ch = inc.on_alert(&alert(
            T + 20,
            Detector::AuthHijack,
            EntityKind::Account,
            "a@x",
            0.99,
        ));
        assert_eq!(ch, [Change::Opened(4)], "a new incident, not contained");
        // Releasing what is not contained is refused; dismissing works; unknown ids are refused.
        assert_eq!(
            inc.command(4, Command::Release, None, "op", T + 30),
            Err(CommandError::Refused(4, Refusal::NotContained))
        );
        inc.command(4, Command::Dismiss, None, "op", T + 30)
            .unwrap();
        assert_eq!(inc.get(4).unwrap().state, State::Dismissed);
        assert_eq!(
            inc.command(999, Command::Contain, None, "op", T + 30),
            Err(CommandError::NoIncident(999))
        );
        // After `rearm`, the policy contains again (and A@X's four hours ran out meanwhile).
        let later = T + 30 + 86_400 + 1;
        let ch = inc.on_alert(&alert(
            later,
            Detector::AuthHijack,
            EntityKind::Account,
            "a@x",
            0.99,
        ));
        assert_eq!(
            ch,
            [
                Change::Lifted(3, Step::Released),
                Change::Opened(5),
                Change::Contained(5)
            ]
        );
        // Expiry: the containment ends after 4 h; the incident is released by expiry, which
        // is no operator's decision (the next alert contains again at once).
        let ch = inc.expire(later + 4 * 3600);
        assert_eq!(ch, [Change::Lifted(5, Step::Released)]);
        let last = inc.get(5).unwrap().timeline.last().unwrap().clone();
        assert_eq!((last.step, last.by), (Step::Released, Actor::Expiry));
        let ch = inc.on_alert(&alert(
            later + 4 * 3600 + 5,
            Detector::AuthHijack,
            EntityKind::Account,
            "a@x",
            0.99,
        ));
        assert_eq!(ch, [Change::Opened(6), Change::Contained(6)]);
    }

    #[test]
    fn campaigns_are_never_contained_and_operators_reopen() {
        let mut inc = Incidents::new(Policy {
            detectors: vec![Detector::Campaign, Detector::AuthHijack],
            ..Policy::default()
        });
        let ch = inc.on_alert(&alert(
            T,
            Detector::Campaign,
            EntityKind::Campaign,
            "c1",
            1.0,
        ));
        assert_eq!(ch, [Change::Opened(1)]);
        assert_eq!(
            inc.command(1, Command::Contain, None, "op", T),
            Err(CommandError::Refused(1, Refusal::CampaignNotContainable))
        );
        // A dismissed incident contained by hand is reopened, contained until released.
        inc.on_alert(&alert(
            T,
            Detector::HeloAnomaly,
            EntityKind::Client,
            "192.0.2.7",
            0.8,
        ));
        inc.command(2, Command::Dismiss, None, "op", T + 1).unwrap();
        inc.command(2, Command::Contain, None, "op", T + 2).unwrap();
        let i = inc.get(2).unwrap();
        assert_eq!(i.state, State::Contained);
        let steps: Vec<Step> = i.timeline.iter().map(|t| t.step).collect();
        assert_eq!(
            steps,
            [
                Step::Opened,
                Step::Dismissed,
                Step::Reopened,
                Step::Contained
            ]
        );
        let e = Entity::new(EntityKind::Client, "192.0.2.7");
        assert_eq!(inc.containment(&e).unwrap().until, None);
        assert!(inc.expire(T + 10 * 86_400).is_empty(), "no end, no expiry");
        // New alerts of the entity merge into the reopened incident.
        assert_eq!(
            inc.on_alert(&alert(
                T + 5,
                Detector::HeloAnomaly,
                EntityKind::Client,
                "192.0.2.7",
                0.9
            )),
            [Change::Merged(2)]
        );
    }

    #[test]
    fn names_round_trip() {
        for s in [
            State::Open,
            State::Contained,
            State::Released,
            State::Dismissed,
        ] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for a in [
            Actor::Auto,
            Actor::Expiry,
            Actor::Detector(Detector::AuthHijack),
            Actor::Operator("jane".into()),
        ] {
            assert_eq!(Actor::parse(a.name()), a);
        }
    }
}
