//! The schema: migrations applied at open (`PRAGMA user_version` is the number applied) and the
//! service's connection settings.

use std::path::Path;

use anyhow::{anyhow, Result};
use rusqlite::Connection;
use tracing::info;

/// Schema migrations, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE incidents(
        id INTEGER PRIMARY KEY,
        entity_kind TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        state TEXT NOT NULL,
        detector TEXT NOT NULL,
        score REAL NOT NULL,
        summary TEXT NOT NULL,
        first_ts TEXT NOT NULL,
        last_ts TEXT NOT NULL,
        alerts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        state_by TEXT,
        state_at INTEGER);
     CREATE INDEX incidents_entity ON incidents(entity_kind, entity_id, state);
     CREATE INDEX incidents_updated ON incidents(updated_at);
     CREATE TABLE alerts(
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        ts TEXT NOT NULL,
        detector TEXT NOT NULL,
        score REAL NOT NULL,
        summary TEXT NOT NULL,
        json TEXT NOT NULL);
     CREATE INDEX alerts_incident ON alerts(incident_id);
     CREATE TABLE timeline(
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        by TEXT NOT NULL,
        note TEXT NOT NULL);
     CREATE INDEX timeline_incident ON timeline(incident_id);
     CREATE TABLE containment(
        entity_kind TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        incident_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        since INTEGER NOT NULL,
        until INTEGER,
        by TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY(entity_kind, entity_id));
     CREATE TABLE baselines(
        account TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL);
     CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE file_positions(
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        fingerprint BLOB NOT NULL,
        updated_at INTEGER NOT NULL);",
    // 2: the engine checkpoint (detection state) and the file positions it corresponds to.
    "CREATE TABLE checkpoint(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        engine BLOB NOT NULL,
        next_sweep INTEGER,
        taken_at INTEGER NOT NULL);
     CREATE TABLE checkpoint_positions(
        path TEXT PRIMARY KEY,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        fingerprint BLOB NOT NULL);",
    // 3: the queue ids Postfix held for an incident's containment, and what became of them.
    "CREATE TABLE held(
        incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
        queue_id TEXT NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'held',
        at INTEGER NOT NULL,
        PRIMARY KEY(incident_id, queue_id));",
    // 4: the cluster sink's state across its restarts (issue 13): the message ids of the alerts
    // it stored (the held ones whole), and its campaign correlator's snapshot.
    "CREATE TABLE sink_alerts(
        seq INTEGER PRIMARY KEY,
        msg_id TEXT NOT NULL UNIQUE,
        detector TEXT NOT NULL,
        ts TEXT NOT NULL,
        held TEXT,
        at INTEGER NOT NULL);
     CREATE INDEX sink_alerts_held ON sink_alerts(seq) WHERE held IS NOT NULL;
     CREATE TABLE sink_correlator(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state BLOB NOT NULL,
        updated_at INTEGER NOT NULL);",
];

/// Open a connection with the service's settings and the schema up to date.
pub fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let v = usize::try_from(v).unwrap_or(0);
    if v > MIGRATIONS.len() {
        return Err(anyhow!(
            "store schema version {v} is newer than this smtpscope knows ({})",
            MIGRATIONS.len()
        ));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(v) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        info!(version = i + 1, "store schema migrated");
    }
    Ok(conn)
}

/// A read-only connection for queries.
pub fn reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        {
            let c = connect(&p).unwrap();
            let v: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v as usize, MIGRATIONS.len());
            c.execute("INSERT INTO meta(key, value) VALUES('x', 'y')", [])
                .unwrap();
        }
        let c = connect(&p).unwrap();
        let v: String = c
            .query_row("SELECT value FROM meta WHERE key='x'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "y");
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(connect(&p).unwrap_err().to_string().contains("newer"));
    }
}
