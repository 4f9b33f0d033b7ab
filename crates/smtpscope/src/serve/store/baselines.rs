//! Account baselines: saved every `baseline_interval` as rows (merged, never deleted for being
//! absent from memory), loaded at start when there is no usable checkpoint.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};
use tracing::warn;

use super::Store;

impl Store {
    /// Saved account baselines, if any.
    pub fn load_baselines(&self) -> Result<Option<detect::State>> {
        let meta: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key='baselines'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(meta) = meta else { return Ok(None) };
        let mut v: serde_json::Value = serde_json::from_str(&meta)?;
        let mut st = self.conn.prepare("SELECT account, value FROM baselines")?;
        let mut list = Vec::new();
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (a, b) = row?;
            let b: serde_json::Value = serde_json::from_str(&b)?;
            list.push(serde_json::json!([a, b]));
        }
        v["baselines"] = serde_json::Value::Array(list);
        match serde_json::from_value::<detect::State>(v) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                warn!("saved baselines do not match this version; starting without: {e}");
                Ok(None)
            }
        }
    }
}

pub(super) fn save_baselines(tx: &Connection, mut v: serde_json::Value, now: i64) -> Result<()> {
    let list = v
        .get_mut("baselines")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    // Upsert only: a baseline missing from the snapshot was evicted from the engine's memory,
    // not forgotten by the account; deleting it would lose what was learned.
    if let serde_json::Value::Array(items) = list {
        let mut st = tx.prepare_cached(
            "INSERT OR REPLACE INTO baselines(account, value, updated_at) VALUES(?1, ?2, ?3)",
        )?;
        for it in items {
            if let (Some(a), Some(b)) = (it.get(0).and_then(|x| x.as_str()), it.get(1)) {
                st.execute(params![a, b.to_string(), now])?;
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("baselines");
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('baselines', ?1)",
        [v.to_string()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_round_trip_through_rows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.db");
        let mut s = Store::open(&p).unwrap();
        assert!(s.load_baselines().unwrap().is_none());
        let st = detect::State {
            version: 1,
            taken_at: 1_700_000_000,
            baselines: Vec::new(),
        };
        let tx = s.conn.transaction().unwrap();
        save_baselines(&tx, serde_json::to_value(&st).unwrap(), 5).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.load_baselines().unwrap(), Some(st));
    }

    /// Issue 10 ("nor delete a baseline"): a save without an account's baseline (evicted from
    /// the engine's memory, e.g. by half a million invented names) keeps the saved one; a newer
    /// baseline replaces the older.
    #[test]
    fn a_save_never_deletes_a_baseline_absent_from_it() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(&d.path().join("s.db")).unwrap();
        let b = |days: u32| detect::hijack::Baseline {
            days,
            ..Default::default()
        };
        let save = |s: &mut Store, st: &detect::State| {
            let tx = s.conn.transaction().unwrap();
            save_baselines(&tx, serde_json::to_value(st).unwrap(), 5).unwrap();
            tx.commit().unwrap();
        };
        let first = detect::State {
            version: 1,
            taken_at: 10,
            baselines: (0..937)
                .map(|i| (format!("user{i:03}@isp.example"), b(3)))
                .collect(),
        };
        save(&mut s, &first);
        // Memory flushed: one account left, with a newer baseline.
        save(
            &mut s,
            &detect::State {
                version: 1,
                taken_at: 20,
                baselines: vec![("user000@isp.example".into(), b(4))],
            },
        );
        let mut got = s.load_baselines().unwrap().unwrap().baselines;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), 937, "no baseline deleted");
        assert_eq!(got[0], ("user000@isp.example".to_string(), b(4)));
        assert_eq!(got[1], ("user001@isp.example".to_string(), b(3)));
    }
}
