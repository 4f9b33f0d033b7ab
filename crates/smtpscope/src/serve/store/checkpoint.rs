//! Durable positions: the followed-file position saved with each commit's alerts, and the
//! checkpoint (the engine's state with the positions of exactly the lines fed to it).

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};

use super::Store;

/// The engine's detection state and the followed-file positions of exactly the lines fed to it
/// before it was taken (see `docs/OPERATIONS.md`, "Checkpoints").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// `detect::Engine::snapshot`.
    pub engine: Vec<u8>,
    /// The driver's next idle sweep (log time, microseconds).
    pub next_sweep: Option<i64>,
    /// Position of every followed file after the last of its lines the engine was fed.
    pub positions: Vec<FilePos>,
}

/// Where a followed file was read to, and which file it was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePos {
    /// Path followed.
    pub path: String,
    /// Device of the file read.
    pub dev: u64,
    /// Inode of the file read.
    pub ino: u64,
    /// Bytes consumed (complete lines).
    pub pos: u64,
    /// First bytes of the file (detects truncate-and-rewrite).
    pub fp: Vec<u8>,
}

impl Store {
    /// The last checkpoint, if any.
    pub fn load_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT engine, next_sweep FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((engine, next_sweep)) = row else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare("SELECT path, dev, ino, pos, fingerprint FROM checkpoint_positions")?;
        let positions = st
            .query_map([], file_pos)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Checkpoint {
            engine,
            next_sweep,
            positions,
        }))
    }

    /// Saved file positions by path.
    pub fn load_positions(&self) -> Result<HashMap<String, FilePos>> {
        let mut st = self
            .conn
            .prepare("SELECT path, dev, ino, pos, fingerprint FROM file_positions")?;
        let rows = st.query_map([], file_pos)?;
        let mut m = HashMap::new();
        for r in rows {
            let r = r?;
            m.insert(r.path.clone(), r);
        }
        Ok(m)
    }
}

/// A `FilePos` from `path, dev, ino, pos, fingerprint`.
fn file_pos(r: &rusqlite::Row<'_>) -> rusqlite::Result<FilePos> {
    Ok(FilePos {
        path: r.get(0)?,
        dev: r.get::<_, i64>(1)? as u64,
        ino: r.get::<_, i64>(2)? as u64,
        pos: r.get::<_, i64>(3)? as u64,
        fp: r.get(4)?,
    })
}

/// The checkpoint replaces the last one, with its positions, in the caller's transaction. A
/// position of a file not in this checkpoint (no longer followed) is kept: it is only read for
/// a path that is followed again, and then it is that file's last known state.
pub(super) fn save_checkpoint(tx: &Connection, c: &Checkpoint, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO checkpoint(id, version, engine, next_sweep, taken_at)
         VALUES(1, ?1, ?2, ?3, ?4)",
        params![detect::snapshot::VERSION, c.engine, c.next_sweep, now],
    )?;
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO checkpoint_positions(path, dev, ino, pos, fingerprint)
         VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in &c.positions {
        st.execute(params![
            p.path,
            p.dev as i64,
            p.ino as i64,
            p.pos as i64,
            p.fp
        ])?;
    }
    Ok(())
}

/// The position after the lines whose alerts are committed in the caller's transaction.
pub(super) fn save_position(tx: &Connection, p: &FilePos, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO file_positions(path, dev, ino, pos, fingerprint, updated_at)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(path) DO UPDATE SET dev=?2, ino=?3, pos=?4, fingerprint=?5, updated_at=?6",
        params![p.path, p.dev as i64, p.ino as i64, p.pos as i64, p.fp, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_replaces_the_last_one_with_its_positions() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("s.db")).unwrap();
        assert!(s.load_checkpoint().unwrap().is_none());
        let pos = |path: &str, at: u64| FilePos {
            path: path.into(),
            dev: 1,
            ino: 2,
            pos: at,
            fp: b"Nov 24".to_vec(),
        };
        for (engine, at) in [(b"first".to_vec(), 10), (b"second".to_vec(), 20)] {
            let cp = Checkpoint {
                engine,
                next_sweep: Some(at as i64),
                positions: vec![pos("/var/log/mail.log", at), pos("/var/log/b.log", at + 1)],
            };
            let tx = s.conn.transaction().unwrap();
            save_checkpoint(&tx, &cp, 5).unwrap();
            tx.commit().unwrap();
            let mut got = s.load_checkpoint().unwrap().unwrap();
            got.positions.sort_by(|a, b| b.path.cmp(&a.path));
            assert_eq!(got, cp);
        }
    }
}
