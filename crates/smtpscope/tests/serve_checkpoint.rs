//! `smtpscope serve`: the detection state survives a restart (issue 10, Build 3). An attack
//! that straddles a restart is reported, after SIGTERM (checkpoint at shutdown) and after
//! `kill -9` (the last checkpoint is restored and the lines after its positions are read again:
//! nothing lost, nothing counted twice). A checkpoint that cannot be used (another format
//! version, corrupt) gives a fresh start with a warning, never a crash.

mod serve_util;

use std::io::Write;
use std::path::Path;

use serve_util::*;

fn append(p: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn follow_lines(srv: &Server) -> f64 {
    srv.metric("smtpscope_lines_total{source=\"follow\"}")
}

fn brute_alerts(srv: &Server) -> f64 {
    srv.metric("smtpscope_alerts_total{detector=\"auth-bruteforce\"}")
}

fn wait_lines(srv: &Server, n: f64) {
    wait_for(20, &format!("{n} lines"), || {
        (follow_lines(srv) >= n).then_some(())
    });
    assert_eq!(follow_lines(srv), n);
}

fn config(log: &Path, interval: &str) -> String {
    format!(
        "follow = [\"{}\"]\ncheckpoint_interval = \"{interval}\"\n",
        log.display()
    )
}

/// Alerts stored for incidents of `id`, from the store.
fn stored_alerts(db: &Path, id: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.query_row(
        "SELECT count(*) FROM alerts a JOIN incidents i ON a.incident_id = i.id WHERE i.entity_id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

/// Position of the last checkpoint and the last saved position of the one followed file.
fn positions(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let cp = c
        .query_row("SELECT pos FROM checkpoint_positions", [], |r| r.get(0))
        .unwrap();
    let last = c
        .query_row("SELECT pos FROM file_positions", [], |r| r.get(0))
        .unwrap();
    (cp, last)
}

/// 15 failed logins before the restart and 10 after: auth-bruteforce raises its alert at the
/// 21st within the hour, so only an engine that kept the first 15 reports the attack.
#[test]
fn guessing_that_straddles_a_sigterm_restart_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mail.log");
    append(&log, &sasl_failures("192.0.2.9", 15, 1));
    let srv = Server::start(d.path(), &config(&log, "1s"));
    wait_lines(&srv, 15.0);
    // Periodic checkpoints are written.
    wait_for(20, "a periodic checkpoint", || {
        (srv.metric("smtpscope_checkpoints_total") >= 2.0).then_some(())
    });
    // Serialized on the engine thread, compressed and written by the checkpoint thread.
    assert!(srv.metric("smtpscope_checkpoint_bytes") > 8.0);
    assert!(srv.metric("smtpscope_checkpoint_pause_seconds") > 0.0);
    assert_eq!(brute_alerts(&srv), 0.0);
    assert_eq!(srv.term(), 0);

    append(&log, &sasl_failures("192.0.2.9", 10, 2));
    let srv = Server::start(d.path(), &config(&log, "1s"));
    assert!(
        srv.log_text()
            .contains("detection state restored from the last checkpoint"),
        "{}",
        srv.log_text()
    );
    wait_lines(&srv, 10.0);
    wait_for(20, "the auth-bruteforce alert", || {
        (brute_alerts(&srv) >= 1.0).then_some(())
    });
    // The alert is counted when raised, stored a moment later by the store thread.
    let v: serde_json::Value = wait_for(20, "the incident to be stored", || {
        let (_, j) = srv.get("/api/incidents?q=192.0.2.9");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        (!v.as_array().unwrap().is_empty()).then_some(v)
    });
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["detector"], "auth-bruteforce");
    assert_eq!(srv.metric("smtpscope_replayed_lines_total"), 0.0);
    assert_eq!(srv.term(), 0);
    assert_eq!(stored_alerts(&d.path().join("store.db"), "192.0.2.9"), 1);
}

/// After `kill -9` the service goes on from the last checkpoint: the lines fed after it are
/// read again (their alerts, already stored, are not raised twice) and an attack that was
/// under way when it died is still reported when it goes on.
#[test]
fn after_kill_9_the_last_checkpoint_is_restored_and_nothing_is_lost_or_counted_twice() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("store.db");
    let log = d.path().join("mail.log");
    // Phase 1: 15 failures from A; stopped cleanly, so the checkpoint holds them.
    append(&log, &sasl_failures("192.0.2.9", 15, 1));
    let srv = Server::start(d.path(), &config(&log, "1h"));
    wait_lines(&srv, 15.0);
    assert_eq!(srv.term(), 0);

    // Phase 2 (no checkpoint before the kill: the interval is an hour): A reaches 23 failures
    // and is reported; B starts guessing (12 failures); then kill -9.
    append(&log, &sasl_failures("192.0.2.9", 8, 2));
    append(&log, &sasl_failures("198.51.100.7", 12, 3));
    let srv = Server::start(d.path(), &config(&log, "1h"));
    wait_lines(&srv, 20.0);
    wait_for(20, "A's alert", || {
        (brute_alerts(&srv) >= 1.0).then_some(())
    });
    assert_eq!(brute_alerts(&srv), 1.0);
    // Written by the store (it commits a moment after the engine).
    let len = std::fs::read(&log).unwrap().len() as i64;
    wait_for(20, "the store to commit", || {
        (positions(&db).1 == len && stored_alerts(&db, "192.0.2.9") == 1).then_some(())
    });
    srv.kill9();
    let (cp, last) = positions(&db);
    assert!(
        cp < last,
        "the kill left lines after the checkpoint ({cp} < {last})"
    );
    assert_eq!(stored_alerts(&db, "192.0.2.9"), 1);

    // Phase 3: B went on with 10 more while the service was down (22 in the hour: only
    // reported if the 12 before the kill are counted). The 20 lines after the checkpoint are
    // read again as replay, in the same read as the 10 new ones.
    append(&log, &sasl_failures("198.51.100.7", 10, 4));
    let srv = Server::start(d.path(), &config(&log, "1h"));
    wait_for(20, "the replay", || {
        (srv.metric("smtpscope_replayed_lines_total") >= 20.0).then_some(())
    });
    assert_eq!(srv.metric("smtpscope_replayed_lines_total"), 20.0);
    assert_eq!(
        srv.metric("smtpscope_replayed_alerts_suppressed_total"),
        1.0,
        "A's alert came again from the replay and was not raised twice"
    );
    wait_lines(&srv, 10.0);
    wait_for(20, "B's alert", || {
        (brute_alerts(&srv) >= 1.0).then_some(())
    });
    // Nothing more: A is not reported again, B once.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(brute_alerts(&srv), 1.0);
    assert_eq!(srv.term(), 0);
    assert_eq!(stored_alerts(&db, "192.0.2.9"), 1, "A stored once");
    assert_eq!(
        stored_alerts(&db, "198.51.100.7"),
        1,
        "B reported after the kill"
    );
    let (cp, last) = positions(&db);
    assert_eq!(cp, last, "the shutdown checkpoint is at the end");
    assert_eq!(last as usize, std::fs::read(&log).unwrap().len());
}

/// A checkpoint of another format version, or a corrupt one, is not used: the service starts
/// with a fresh engine (and the last saved positions), says so, and works.
#[test]
fn a_checkpoint_of_another_version_or_corrupt_gives_a_fresh_start_with_a_warning() {
    for (what, damage) in [
        (
            "version",
            (|b: &mut Vec<u8>| b[4] = b[4].wrapping_add(1)) as fn(&mut Vec<u8>),
        ),
        ("corrupt", |b: &mut Vec<u8>| {
            let n = b.len();
            b[n / 2..].iter_mut().for_each(|x| *x ^= 0x5a)
        }),
    ] {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("store.db");
        let log = d.path().join("mail.log");
        append(&log, &sasl_failures("192.0.2.9", 15, 1));
        let srv = Server::start(d.path(), &config(&log, "1h"));
        wait_lines(&srv, 15.0);
        assert_eq!(srv.term(), 0);
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            let mut b: Vec<u8> = c
                .query_row("SELECT engine FROM checkpoint", [], |r| r.get(0))
                .unwrap();
            damage(&mut b);
            c.execute("UPDATE checkpoint SET engine = ?1", [b]).unwrap();
        }
        append(&log, &sasl_failures("192.0.2.9", 10, 2));
        let srv = Server::start(d.path(), &config(&log, "1h"));
        wait_lines(&srv, 10.0);
        let text = srv.log_text();
        assert!(
            text.contains("the last checkpoint is not used, detection starts fresh"),
            "{what}: {text}"
        );
        if what == "version" {
            assert!(text.contains("format version"), "{text}");
        }
        // Fresh: the 15 before the restart are gone, so 10 raise nothing; the service works.
        assert_eq!(brute_alerts(&srv), 0.0, "{what}");
        append(&log, &sasl_failures("192.0.2.9", 15, 3));
        wait_for(20, "an alert from the fresh engine", || {
            (brute_alerts(&srv) >= 1.0).then_some(())
        });
        assert_eq!(srv.term(), 0, "{what}");
    }
}

/// The saved positions of `path`: (checkpoint's inode and position, last saved inode and
/// position).
fn positions_of(db: &Path, path: &Path) -> ((i64, i64), (i64, i64)) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let key = path.display().to_string();
    let get = |table: &str| {
        c.query_row(
            &format!("SELECT ino, pos FROM {table} WHERE path = ?1"),
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or((0, 0))
    };
    (get("checkpoint_positions"), get("file_positions"))
}

fn inode(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino() as i64
}

fn len(p: &Path) -> i64 {
    std::fs::metadata(p).unwrap().len() as i64
}

/// logrotate's `copytruncate`: copy `log` to `copy`, then empty `log` in place (same inode).
fn copytruncate(log: &Path, copy: &Path) {
    std::fs::copy(log, copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Phase 1 of the rotation tests: 12 failed logins from 192.0.2.9 fed and checkpointed by a
/// clean stop (the checkpoint is at the end of `log`).
fn checkpointed_12(dir: &Path, cfg: &str, log: &Path) {
    append(log, &sasl_failures("192.0.2.9", 12, 1));
    let srv = Server::start(dir, cfg);
    wait_lines(&srv, 12.0);
    assert_eq!(srv.term(), 0);
}

/// The end of each rotation test: after the restart, `replayed` lines are read again (fed before
/// the kill) and `new` lines are new; the 21st failure within the hour (straddling the
/// restart) raises the alert, once, and it is stored once.
fn reported_once_after_restart(dir: &Path, cfg: &str, replayed: f64, new: f64) {
    let srv = Server::start(dir, cfg);
    wait_for(20, "the replay", || {
        (srv.metric("smtpscope_replayed_lines_total") >= replayed).then_some(())
    });
    wait_lines(&srv, new);
    wait_for(20, "the alert", || {
        (brute_alerts(&srv) >= 1.0).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        srv.metric("smtpscope_replayed_lines_total"),
        replayed,
        "none lost, none repeated"
    );
    assert_eq!(follow_lines(&srv), new, "none lost, none repeated");
    assert_eq!(brute_alerts(&srv), 1.0);
    assert_eq!(
        srv.metric("smtpscope_replayed_alerts_suppressed_total"),
        0.0
    );
    assert_eq!(srv.term(), 0);
    assert_eq!(stored_alerts(&dir.join("store.db"), "192.0.2.9"), 1);
}

/// Rename-and-create between the last checkpoint and `kill -9`, with the writer still appending
/// to the old file after the rename: the old file's lines after the checkpoint and the new
/// file's are replayed, the lines written while the service was down are new, and the attack
/// that straddles the restart (12 + 4 + 1 + 1 before, 3 after: the 21st) is reported once.
#[test]
fn rename_and_create_between_the_checkpoint_and_kill_9_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (db, log, old) = (
        d.path().join("store.db"),
        d.path().join("mail.log"),
        d.path().join("mail.log.1"),
    );
    let cfg = config(&log, "1h");
    checkpointed_12(d.path(), &cfg, &log);
    let srv = Server::start(d.path(), &cfg);
    append(&log, &sasl_failures("192.0.2.9", 4, 2));
    wait_lines(&srv, 4.0);
    std::fs::rename(&log, &old).unwrap();
    append(&old, &sasl_failures("192.0.2.9", 1, 3));
    append(&log, &sasl_failures("192.0.2.9", 1, 4));
    wait_lines(&srv, 6.0);
    wait_for(20, "the new file's position to be committed", || {
        (positions_of(&db, &log).1 == (inode(&log), len(&log))).then_some(())
    });
    assert_eq!(brute_alerts(&srv), 0.0, "18 failures: no alert yet");
    srv.kill9();
    assert_eq!(
        positions_of(&db, &log).0 .0,
        inode(&old),
        "checkpoint in the old file"
    );
    append(&log, &sasl_failures("192.0.2.9", 3, 5));
    reported_once_after_restart(d.path(), &cfg, 6.0, 3.0);
}

/// copytruncate between the last checkpoint and `kill -9`, noticed by the service before the
/// kill (it went on reading the file's new content): the copy's lines after the checkpoint are
/// replayed from the copy, then the new content's up to where the engine got.
#[test]
fn copytruncate_between_the_checkpoint_and_kill_9_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (db, log, copy) = (
        d.path().join("store.db"),
        d.path().join("mail.log"),
        d.path().join("mail.log.1"),
    );
    let cfg = config(&log, "1h");
    checkpointed_12(d.path(), &cfg, &log);
    let srv = Server::start(d.path(), &cfg);
    append(&log, &sasl_failures("192.0.2.9", 4, 2));
    wait_lines(&srv, 4.0);
    copytruncate(&log, &copy);
    append(&log, &sasl_failures("192.0.2.9", 2, 3));
    wait_lines(&srv, 6.0);
    wait_for(20, "the new content's position to be committed", || {
        (positions_of(&db, &log).1 == (inode(&log), len(&log))).then_some(())
    });
    assert_eq!(brute_alerts(&srv), 0.0, "18 failures: no alert yet");
    srv.kill9();
    append(&log, &sasl_failures("192.0.2.9", 3, 4));
    reported_once_after_restart(d.path(), &cfg, 6.0, 3.0);
}

/// copytruncate while the service is down after `kill -9`, with lines written before it: the
/// copy is read from the checkpoint's position (replayed up to where the engine got, the rest
/// new), then the file's new content from its start (new).
#[test]
fn copytruncate_while_down_after_kill_9_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (db, log, copy) = (
        d.path().join("store.db"),
        d.path().join("mail.log"),
        d.path().join("mail.log.1"),
    );
    let cfg = config(&log, "1h");
    checkpointed_12(d.path(), &cfg, &log);
    let srv = Server::start(d.path(), &cfg);
    append(&log, &sasl_failures("192.0.2.9", 4, 2));
    wait_lines(&srv, 4.0);
    wait_for(20, "the position to be committed", || {
        (positions_of(&db, &log).1 .1 == len(&log)).then_some(())
    });
    srv.kill9();
    append(&log, &sasl_failures("192.0.2.9", 1, 3));
    copytruncate(&log, &copy);
    append(&log, &sasl_failures("192.0.2.9", 4, 4));
    reported_once_after_restart(d.path(), &cfg, 4.0, 5.0);
}

/// Lines of other mail before the attack's in the two-file test.
const FILLER: usize = 30_000;

/// Two followed files, `kill -9` after lines of one were fed past the checkpoint: that file's
/// lines are replayed before the other file's new lines reach the engine (an alert raised by a
/// new line is never taken for a replayed one), and the attack spread over both files is
/// reported once.
#[test]
fn two_followed_files_after_kill_9_replay_before_new_lines() {
    let d = tempfile::tempdir().unwrap();
    let (db, a, b) = (
        d.path().join("store.db"),
        d.path().join("a.log"),
        d.path().join("b.log"),
    );
    append(&b, &[]);
    let cfg = format!(
        "follow = [\"{}\", \"{}\"]\ncheckpoint_interval = \"1h\"\n",
        a.display(),
        b.display()
    );
    checkpointed_12(d.path(), &cfg, &a);
    let srv = Server::start(d.path(), &cfg);
    // Other mail first, so that a's replay takes a while and b's new lines are there long
    // before it ends.
    let filler: Vec<String> = (0..FILLER)
        .map(|i| {
            format!(
                "Nov 24 05:02:00 mx1 postfix/smtpd[124]: connect from unknown[203.0.113.{}]",
                i % 250
            )
        })
        .collect();
    append(&a, &filler);
    append(&a, &sasl_failures("192.0.2.9", 6, 2));
    wait_lines(&srv, FILLER as f64 + 6.0);
    wait_for(20, "a's position to be committed", || {
        (positions_of(&db, &a).1 .1 == len(&a)).then_some(())
    });
    srv.kill9();
    append(&b, &sasl_failures("192.0.2.9", 3, 3));
    reported_once_after_restart(d.path(), &cfg, FILLER as f64 + 6.0, 3.0);
    // Both files' checkpoint positions are at their ends after the clean stop.
    assert_eq!(positions_of(&db, &a).0 .1, len(&a));
    assert_eq!(positions_of(&db, &b).0 .1, len(&b));
}
