//! Read-only queries for the HTTP API and the dashboard (through [`super::reader`]
//! connections).

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// An incident row.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// Id.
    pub id: i64,
    /// Entity kind.
    pub entity_kind: String,
    /// Entity id.
    pub entity_id: String,
    /// open, contained, released, dismissed.
    pub state: String,
    /// First detector.
    pub detector: String,
    /// Highest score.
    pub score: f64,
    /// Latest summary.
    pub summary: String,
    /// First alert's event time.
    pub first_ts: String,
    /// Latest alert's event time.
    pub last_ts: String,
    /// Alerts merged.
    pub alerts: i64,
    /// Opened (unix seconds).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Who changed the state last.
    pub state_by: Option<String>,
}

/// A stored alert.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAlert {
    /// Event time.
    pub ts: String,
    /// Detector.
    pub detector: String,
    /// Score.
    pub score: f64,
    /// Summary.
    pub summary: String,
    /// The full alert JSON.
    pub alert: serde_json::Value,
}

/// A timeline entry.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    /// What.
    pub action: String,
    /// Who.
    pub by: String,
    /// Note.
    pub note: String,
}

const INCIDENT_COLS: &str = "id, entity_kind, entity_id, state, detector, score, summary, first_ts, last_ts, alerts, created_at, updated_at, state_by";

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        entity_kind: r.get(1)?,
        entity_id: r.get(2)?,
        state: r.get(3)?,
        detector: r.get(4)?,
        score: r.get(5)?,
        summary: r.get(6)?,
        first_ts: r.get(7)?,
        last_ts: r.get(8)?,
        alerts: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        state_by: r.get(12)?,
    })
}

/// Incidents, newest change first; `state` filters, `q` searches entity and summary.
pub fn list_incidents(
    c: &Connection,
    state: Option<&str>,
    q: Option<&str>,
    limit: i64,
) -> Result<Vec<Incident>> {
    let like = q.map(|q| format!("%{}%", q.replace(['%', '_'], "")));
    let sql = format!(
        "SELECT {INCIDENT_COLS} FROM incidents WHERE (?1 IS NULL OR state=?1)
         AND (?2 IS NULL OR entity_id LIKE ?2 OR summary LIKE ?2 OR detector LIKE ?2)
         ORDER BY updated_at DESC, id DESC LIMIT ?3"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(params![state, like, limit], incident_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// An incident, its alerts and its timeline.
pub type Detail = (Incident, Vec<StoredAlert>, Vec<Event>);

/// One incident with its alerts and timeline.
pub fn get_incident(c: &Connection, id: i64) -> Result<Option<Detail>> {
    let inc = c
        .query_row(
            &format!("SELECT {INCIDENT_COLS} FROM incidents WHERE id=?1"),
            [id],
            incident_row,
        )
        .optional()?;
    let Some(inc) = inc else { return Ok(None) };
    let mut st = c.prepare(
        "SELECT ts, detector, score, summary, json FROM alerts WHERE incident_id=?1 ORDER BY id",
    )?;
    let alerts = st
        .query_map([id], |r| {
            let j: String = r.get(4)?;
            Ok(StoredAlert {
                ts: r.get(0)?,
                detector: r.get(1)?,
                score: r.get(2)?,
                summary: r.get(3)?,
                alert: serde_json::from_str(&j).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st =
        c.prepare("SELECT at, action, by, note FROM timeline WHERE incident_id=?1 ORDER BY id")?;
    let tl = st
        .query_map([id], |r| {
            Ok(Event {
                at: r.get(0)?,
                action: r.get(1)?,
                by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((inc, alerts, tl)))
}

/// The newest `limit` stored alerts about accounts (of any detector), as stored; and whether
/// there were more.
pub fn account_alerts(c: &Connection, limit: i64) -> Result<(Vec<serde_json::Value>, bool)> {
    let mut st = c.prepare(
        "SELECT a.json FROM alerts a JOIN incidents i ON a.incident_id = i.id
         WHERE i.entity_kind = 'account' ORDER BY a.id DESC LIMIT ?1",
    )?;
    let mut raw = st
        .query_map([limit.saturating_add(1)], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = raw.len() as i64 > limit;
    raw.truncate(limit.max(0) as usize);
    Ok((
        raw.iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect(),
        more,
    ))
}

/// Counts by state.
pub fn counts(c: &Connection) -> Result<Vec<(String, i64)>> {
    let mut st =
        c.prepare("SELECT state, count(*) FROM incidents GROUP BY state ORDER BY state")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A queue id Postfix held for an incident.
#[derive(Debug, Clone, Serialize)]
pub struct HeldId {
    /// Queue id.
    pub queue_id: String,
    /// `log` or `policy`.
    pub source: String,
    /// held, released, deleted.
    pub state: String,
    /// When it was recorded or last changed (unix seconds).
    pub at: i64,
}

/// The queue ids held for an incident, in the order they were recorded.
pub fn held_ids(c: &Connection, incident: i64) -> Result<Vec<HeldId>> {
    let mut st = c.prepare(
        "SELECT queue_id, source, state, at FROM held WHERE incident_id=?1 ORDER BY rowid",
    )?;
    let rows = st.query_map([incident], |r| {
        Ok(HeldId {
            queue_id: r.get(0)?,
            source: r.get(1)?,
            state: r.get(2)?,
            at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
