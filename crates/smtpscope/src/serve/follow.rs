//! Follow a log file like `tail -F`, through every way logs are rotated, losing and repeating
//! nothing.
//!
//! * **Rename and create** (logrotate's default, `postfix logrotate`): the writer keeps
//!   appending to the renamed file until it reopens its log. So when the path names another
//!   file, the old one is read on until it has not grown for [`ROTATED_IDLE`] *and* the new
//!   one has data; only then do we switch (the new file from its start).
//! * **Delete and create**: the same, the deleted file read through the descriptor we hold.
//! * **Copy and truncate** (`copytruncate`): the file keeps its identity (device, inode) and
//!   may grow again past our position before we look. So before every read, and again after it,
//!   the file's size and the last bytes we read (the *tail*) are checked: a file shorter than
//!   our offset, or whose bytes before our offset are no longer the ones we read, was truncated.
//!   What was read from it then is dropped; the lines we had not read yet are taken from the
//!   copy (found in the same directory by its first bytes and its tail) before the file is read
//!   again from its start.
//! * **Plain append**: read as it grows.
//!
//! All reads are positioned (`pread`), never through a shared file offset. The position saved
//! with the alerts those lines raised is always the end of a complete line (an over-long line
//! is cut, its rest skipped, and the position moves on only at its end), together with the
//! file's identity and first bytes, so a restart — even after `kill -9` — resumes exactly there.
//! A file renamed away while we were down is found again by its inode in the same directory
//! and read to its end before the new file.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{info, warn};

use super::core::Msg;
use super::store::FilePos;
use super::{FollowStart, Shared};

/// How often an idle file is checked for growth and rotation.
pub const POLL: Duration = Duration::from_millis(100);
/// After a rename or delete, the old file is read on until it has not grown for this long (and
/// the new file has data). Writers reopen their log within moments of the rotation (syslog
/// daemons on SIGHUP, Postfix's postlog on `postfix logrotate`); a second covers a loaded
/// host. Our own idea.
pub const ROTATED_IDLE: Duration = Duration::from_secs(1);
/// After a restart, how long a follower with new lines waits for the other followed files to
/// finish their replay (see [`ReplayGate`]). A replay is at most a checkpoint interval of
/// lines and takes moments; the bound only keeps one stuck file (a hung network mount) from
/// holding up the others for ever. Our own idea.
pub const REPLAY_WAIT: Duration = Duration::from_secs(10);
/// Bytes read per step (and most bytes of lines sent in one message).
const CHUNK: usize = 256 * 1024;
/// Bytes of the file's beginning kept as its fingerprint.
pub const FP_LEN: usize = 64;
/// Bytes before the read offset compared on every read to detect truncation and regrowth.
pub const TAIL_LEN: usize = 64;
/// A line longer than this is cut (as in `analyze`).
const MAX_LINE: usize = crate::input::MAX_LINE;

/// The pace of a follower (the constants above; tests go faster).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// [`POLL`].
    pub poll: Duration,
    /// [`ROTATED_IDLE`].
    pub rotated_idle: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: POLL,
            rotated_idle: ROTATED_IDLE,
        }
    }
}

/// The file being read, identified by what we opened (not by the path).
struct Opened {
    file: File,
    dev: u64,
    ino: u64,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Read or switched: go on at once.
    Progress,
    /// Nothing new: wait a poll.
    Idle,
}

/// After a restart from a checkpoint: the lines between the checkpoint's position and where the
/// engine had been fed before it stopped are read again, to rebuild the engine's state, but were
/// already counted (their alerts committed): they are sent as replay.
#[derive(Debug, Clone)]
struct Replay {
    /// The checkpoint's file, when the engine had gone on to another file before it stopped
    /// (all of its lines had been fed).
    done: Option<(u64, u64)>,
    /// Where the engine had been fed to (the saved position).
    until: FilePos,
}

impl Replay {
    /// Whether everything fed before the stop has been read again (we are at `pos` of `id`).
    fn reached(&self, id: (u64, u64), pos: u64) -> bool {
        id == (self.until.dev, self.until.ino) && pos >= self.until.pos
    }

    /// Whether what was fed before the stop is of a later content of `p`'s file than `p` (the
    /// file was truncated, `copytruncate`, between the two): same file, but a position behind
    /// `p`'s or other first bytes.
    fn later_than(&self, p: &FilePos) -> bool {
        let u = &self.until;
        (u.dev, u.ino) == (p.dev, p.ino) && (u.pos < p.pos || !same_start(&u.fp, &p.fp))
    }

    /// Whether the line ending at `end` of the file `id` was fed before the stop.
    fn covers(&self, id: (u64, u64), end: u64) -> bool {
        Some(id) == self.done || (id == (self.until.dev, self.until.ino) && end <= self.until.pos)
    }
}

/// After a restart, every followed file's replay comes before any file's new lines: the engine
/// rebuilds its state from what it had been fed before the stop first, so an attack whose lines
/// are spread over several files is judged on the whole of it, and an alert it raised before the
/// stop is raised again only by a replayed line (and suppressed), never by a new one.
#[derive(Debug)]
pub struct ReplayGate {
    /// Followers not yet past their replay.
    pending: std::sync::Mutex<usize>,
    done: std::sync::Condvar,
}

impl ReplayGate {
    /// A gate for `followers` followed files.
    pub fn new(followers: usize) -> Arc<ReplayGate> {
        Arc::new(ReplayGate {
            pending: std::sync::Mutex::new(followers),
            done: std::sync::Condvar::new(),
        })
    }

    /// One follower is past its replay (or had none).
    fn arrive(&self) {
        let mut n = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.done.notify_all();
        }
    }

    /// Wait until every follower is past its replay, at most `max`; false on time-out.
    fn wait(&self, max: Duration) -> bool {
        let n = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (n, _) = self
            .done
            .wait_timeout_while(n, max, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *n == 0
    }
}

struct Follower {
    path: PathBuf,
    src: u32,
    cur: Option<Opened>,
    /// End of the last complete line consumed (what is saved).
    pos: u64,
    /// Bytes after `pos` read but not yet ended by a newline.
    pending: u64,
    /// Start of the incomplete line (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// The last bytes read (up to [`TAIL_LEN`]), ending at `pos + pending`.
    tail: Vec<u8>,
    /// First bytes of the file.
    fp: Vec<u8>,
    /// The path names another file (or none): since when the old one has not grown.
    rotated: Option<Instant>,
    /// Lines to replay after a restart (see [`Replay`]); `None` once past them.
    replay: Option<Replay>,
    /// The other followers' replays to wait for before sending new lines (`None` once passed,
    /// or when nothing is replayed).
    gate: Option<Arc<ReplayGate>>,
    timing: Timing,
    shared: Arc<Shared>,
}

fn fingerprint(f: &File) -> Vec<u8> {
    let mut b = vec![0u8; FP_LEN];
    let n = read_full_at(f, &mut b, 0);
    b.truncate(n);
    b
}

/// Fill `buf` from `off` as far as the file goes; bytes read.
fn read_full_at(f: &File, buf: &mut [u8], off: u64) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// Whether `f` holds exactly `want` at `off`.
fn holds(f: &File, off: u64, want: &[u8]) -> bool {
    let mut b = vec![0u8; want.len()];
    read_full_at(f, &mut b, off) == want.len() && b == want
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir_of(path)).ok()?.flatten() {
        if let Ok(md) = e.metadata() {
            if md.dev() == dev && md.ino() == ino && md.is_file() {
                return Some(e.path());
            }
        }
    }
    None
}

impl Follower {
    fn new(path: PathBuf, src: u32, timing: Timing, shared: Arc<Shared>) -> Follower {
        Follower {
            path,
            src,
            cur: None,
            pos: 0,
            pending: 0,
            partial: Vec::new(),
            tail: Vec::new(),
            fp: Vec::new(),
            rotated: None,
            replay: None,
            gate: None,
            timing,
            shared,
        }
    }

    /// This follower is past its replay: let the others know (once).
    fn arrive(&mut self) -> Option<Arc<ReplayGate>> {
        let g = self.gate.take()?;
        g.arrive();
        Some(g)
    }

    /// Before the first new lines: past our replay, and wait for the other files' replays.
    fn pass_gate(&mut self) {
        if let Some(g) = self.arrive() {
            if !g.wait(REPLAY_WAIT) {
                warn!(file = %self.path.display(), "other followed files are still replaying; going on");
            }
        }
    }

    fn id(&self) -> (u64, u64) {
        self.cur.as_ref().map(|o| (o.dev, o.ino)).unwrap_or((0, 0))
    }

    /// Whether the line ending at `end` of the current file is a replay; the first one that is
    /// not ends the replay.
    fn replaying(&mut self, end: u64) -> bool {
        let id = self.id();
        match &self.replay {
            Some(r) if r.covers(id, end) => true,
            Some(_) => {
                info!(file = %self.path.display(), at = end, "replay after restart done");
                self.replay = None;
                false
            }
            None => false,
        }
    }

    /// Offset of the next byte to read.
    fn off(&self) -> u64 {
        self.pos + self.pending
    }

    /// Send lines that end at our position (none: record a switch of file).
    fn send(&mut self, lines: Vec<String>) -> bool {
        let replay = match &self.replay {
            Some(r) => r.covers(self.id(), self.pos),
            None => false,
        };
        self.send_at(lines, self.pos, replay)
    }

    fn send_at(&mut self, lines: Vec<String>, at: u64, replay: bool) -> bool {
        if !replay && !lines.is_empty() {
            self.pass_gate();
        }
        let (dev, ino) = self.id();
        let pos = FilePos {
            path: self.path.display().to_string(),
            dev,
            ino,
            pos: at,
            fp: self.fp.clone(),
        };
        self.shared
            .engine_tx
            .blocking_send(Msg::Lines {
                src: self.src,
                lines,
                pos: Some(pos),
                replay,
            })
            .is_ok()
    }

    /// Read `file` from `at` (a line end) on.
    fn open(&mut self, file: File, at: u64) -> std::io::Result<()> {
        let md = file.metadata()?;
        let mut tail = vec![0u8; TAIL_LEN.min(at as usize)];
        let from = at - tail.len() as u64;
        let n = read_full_at(&file, &mut tail, from);
        tail.truncate(n);
        self.fp = fingerprint(&file);
        self.cur = Some(Opened {
            file,
            dev: md.dev(),
            ino: md.ino(),
        });
        self.pos = at;
        self.pending = 0;
        self.partial.clear();
        self.tail = tail;
        self.rotated = None;
        Ok(())
    }

    /// Whether the bytes before our offset are still the ones we read.
    fn tail_intact(&self, f: &File) -> bool {
        self.tail.is_empty() || holds(f, self.off() - self.tail.len() as u64, &self.tail)
    }

    /// Take bytes read at our offset: complete lines go to the engine.
    fn consume(&mut self, bytes: &[u8]) {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&rest[..i.min(room)]);
            let before = self.pos;
            let end = self.pos + self.pending + i as u64 + 1;
            if self.replay.is_some() && !self.replaying(end) && !lines.is_empty() {
                // The replay ends inside this chunk: what came before is sent as replay.
                self.send_at(std::mem::take(&mut lines), before, true);
            }
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
            self.pos = end;
            self.pending = 0;
            rest = &rest[i + 1..];
        }
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&rest[..rest.len().min(room)]);
        self.pending += rest.len() as u64;
        // The tail: the last TAIL_LEN bytes read.
        if bytes.len() >= TAIL_LEN {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - TAIL_LEN..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let cut = self.tail.len().saturating_sub(TAIL_LEN);
            self.tail.drain(..cut);
        }
        if self.fp.len() < FP_LEN {
            if let Some(o) = &self.cur {
                self.fp = fingerprint(&o.file);
            }
        }
        if !lines.is_empty() {
            self.send(lines);
        }
    }

    /// Read one chunk; `None` when the file was found truncated (nothing taken from it).
    fn read_chunk(&mut self, buf: &mut [u8]) -> Option<usize> {
        let o = self.cur.as_ref()?;
        let off = self.off();
        let len = o.file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if len < off || !self.tail_intact(&o.file) {
            return None;
        }
        let n = match o.file.read_at(buf, off) {
            Ok(n) => n,
            Err(e) => {
                warn!(file = %self.path.display(), "read: {e}");
                0
            }
        };
        // Truncated (and regrown) between the check and the read: what we read is not ours.
        if n > 0 && !self.tail_intact(&o.file) {
            return None;
        }
        self.consume(&buf[..n]);
        Some(n)
    }

    /// The last line had no newline and the file is done (rotated away): emit it.
    fn flush_partial(&mut self) {
        if self.pending == 0 {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        let end = self.pos + self.pending;
        let replay = self.replaying(end);
        self.pos = end;
        self.pending = 0;
        self.partial.clear();
        self.send_at(vec![line], end, replay);
    }

    /// Read the current file to its end.
    fn drain(&mut self, buf: &mut [u8]) {
        while matches!(self.read_chunk(buf), Some(n) if n > 0) {}
    }

    /// Files beside ours whose names start with our file's name (`mail.log.1`, `mail.log-2026…`),
    /// in name order: where `copytruncate` may have put its copy.
    fn copy_candidates(&self) -> Option<Vec<PathBuf>> {
        let name = self.path.file_name()?.to_string_lossy().into_owned();
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir_of(&self.path))
            .ok()?
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&name) && n != name
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        Some(found)
    }

    /// The copy `copytruncate` made: a file beside ours, named after it, that starts with our
    /// first bytes and holds our tail just before our offset.
    fn find_copy(&self) -> Option<File> {
        let (dev, ino) = self.cur.as_ref().map(|o| (o.dev, o.ino))?;
        let off = self.off();
        self.copy_candidates()?.into_iter().find_map(|p| {
            let f = File::open(&p).ok()?;
            let md = f.metadata().ok()?;
            let ours = md.is_file()
                && (md.dev(), md.ino()) != (dev, ino)
                && md.len() >= off
                && holds(&f, 0, &self.fp)
                && holds(&f, off - self.tail.len() as u64, &self.tail);
            ours.then_some(f)
        })
    }

    /// The file was truncated: finish what we had not read from its copy, then read it anew.
    fn truncated(&mut self, buf: &mut [u8]) {
        self.shared.metrics.rotations.inc();
        let Some((dev, ino)) = self.cur.as_ref().map(|o| (o.dev, o.ino)) else {
            return;
        };
        if self.off() > 0 {
            match self.find_copy() {
                Some(copy) => {
                    // Read the copy as if it were our file (same offset, same tail).
                    let ours = self.cur.replace(Opened {
                        file: copy,
                        dev,
                        ino,
                    });
                    self.drain(buf);
                    self.flush_partial();
                    self.cur = ours;
                    info!(file = %self.path.display(), "truncated (copytruncate): finished the copy, reading from the start");
                }
                None => {
                    self.shared.metrics.follow_unrecovered.inc();
                    warn!(file = %self.path.display(), at = self.off(), "truncated, and no copy with the unread lines found: reading from the start");
                }
            }
        }
        // Lines after a truncation are new whatever their offset: no replay past it.
        self.replay = None;
        if let Some(o) = self.cur.take() {
            if self.open(o.file, 0).is_ok() {
                self.send(Vec::new());
            }
        }
    }

    /// At start, the file of the saved position `p` was truncated (`copytruncate`) since: the
    /// lines after `p` are in the copy beside it (named after the file, starting with `p`'s
    /// first bytes, a line ending at `p`), if it is still there; read them before the file
    /// anew. When the engine had gone on to the file's later content before the stop
    /// (`later`), all of the copy was fed then and is replayed; otherwise the replay covers the
    /// copy up to where the engine had got, as for any file.
    fn truncated_while_down(&mut self, p: &FilePos, later: bool, buf: &mut [u8]) {
        self.shared.metrics.rotations.inc();
        let replay = self.replay.take();
        let (during, after) = if later {
            let all = replay.clone().map(|r| Replay {
                done: Some((p.dev, p.ino)),
                ..r
            });
            (all, replay)
        } else {
            // Lines fed before the stop from this content end at most where the engine got.
            (replay, None)
        };
        self.replay = during;
        match self.find_copy_of(p) {
            Some((copy, name)) => {
                if self.open(copy, p.pos).is_ok() {
                    // Positions keep the followed file's identity, as during a live truncation.
                    if let Some(o) = self.cur.as_mut() {
                        (o.dev, o.ino) = (p.dev, p.ino);
                    }
                    self.fp = p.fp.clone();
                    info!(file = %self.path.display(), copy = %name.display(), at = p.pos, "truncated while down (copytruncate): finishing the copy");
                    self.drain(buf);
                    self.flush_partial();
                }
            }
            None => {
                self.shared.metrics.follow_unrecovered.inc();
                warn!(file = %self.path.display(), at = p.pos, "truncated while down, and no copy with the unread lines found: reading from the start");
            }
        }
        self.cur = None;
        // The file's new content: replayed up to where the engine got when it had got there.
        self.replay = after;
    }

    /// The copy `copytruncate` made of the content `p` is a position in: a file beside ours,
    /// named after it, not ours, that starts with `p`'s first bytes and has a line end at `p`.
    fn find_copy_of(&self, p: &FilePos) -> Option<(File, PathBuf)> {
        self.copy_candidates()?.into_iter().find_map(|c| {
            let f = File::open(&c).ok()?;
            let md = f.metadata().ok()?;
            let ours = md.is_file()
                && (md.dev(), md.ino()) != (p.dev, p.ino)
                && md.len() >= p.pos
                && !p.fp.is_empty()
                && holds(&f, 0, &p.fp)
                && (p.pos == 0 || holds(&f, p.pos - 1, b"\n"));
            ours.then_some((f, c))
        })
    }

    /// One step: read what is there, else look for truncation and rotation.
    fn step(&mut self, buf: &mut [u8]) -> Step {
        if self.cur.is_none() {
            return self.appeared();
        }
        match self.read_chunk(buf) {
            None => {
                self.truncated(buf);
                return Step::Progress;
            }
            Some(n) if n > 0 => {
                if self.rotated.is_some() {
                    self.rotated = Some(Instant::now());
                }
                return Step::Progress;
            }
            Some(_) => {}
        }
        self.at_end()
    }

    /// No file yet: open the path when it appears.
    fn appeared(&mut self) -> Step {
        let Ok(f) = File::open(&self.path) else {
            return Step::Idle;
        };
        if self.open(f, 0).is_ok() {
            info!(file = %self.path.display(), "file appeared");
            self.send(Vec::new());
            return Step::Progress;
        }
        Step::Idle
    }

    /// At the end of our file: does the path still name it?
    fn at_end(&mut self) -> Step {
        let Some(o) = &self.cur else {
            return Step::Idle;
        };
        let now = Instant::now();
        let moved = match std::fs::metadata(&self.path) {
            Ok(md) => (md.dev(), md.ino()) != (o.dev, o.ino),
            Err(_) => true, // deleted (or renamed with no new file yet)
        };
        if !moved {
            self.rotated = None;
            return Step::Idle;
        }
        let since = *self.rotated.get_or_insert_with(|| {
            self.shared.metrics.rotations.inc();
            info!(file = %self.path.display(), "rotated (renamed or deleted): reading the old file until it is idle");
            now
        });
        if now.duration_since(since) < self.timing.rotated_idle {
            return Step::Idle;
        }
        // The old file is idle and drained; switch once the new one has data. The file is
        // identified by the descriptor we open, not by the path (it may change again meanwhile).
        let Ok(f) = File::open(&self.path) else {
            return Step::Idle;
        };
        if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Step::Idle;
        }
        self.flush_partial();
        if self.open(f, 0).is_ok() {
            info!(file = %self.path.display(), "reading the new file");
            self.send(Vec::new());
        }
        Step::Progress
    }

    /// Start: resume from the saved position when it is the same file.
    fn start(&mut self, saved: Option<FilePos>, start: FollowStart, buf: &mut [u8]) {
        let cur = File::open(&self.path);
        let Some(p) = saved else {
            if let Ok(f) = cur {
                let at = match start {
                    FollowStart::End => f.metadata().map(|m| m.len()).unwrap_or(0),
                    FollowStart::Start => 0,
                };
                // From the end: from the end of the last complete line.
                let at = line_start_before(&f, at);
                if self.open(f, at).is_ok() {
                    info!(file = %self.path.display(), at, "following");
                }
            }
            return;
        };
        if let Ok(f) = cur {
            if let Ok(md) = f.metadata() {
                if md.dev() == p.dev && md.ino() == p.ino {
                    let fp = fingerprint(&f);
                    // The engine was fed this file's later content (after a truncation) before
                    // the stop: the content the position is in is gone from the file.
                    let later = self.replay.as_ref().is_some_and(|r| r.later_than(&p));
                    let same = !later
                        && md.len() >= p.pos
                        && same_start(&fp, &p.fp)
                        && (p.pos == 0 || holds(&f, p.pos - 1, b"\n"));
                    if same {
                        if self.open(f, p.pos).is_ok() {
                            info!(file = %self.path.display(), at = p.pos, "resuming");
                        }
                        return;
                    }
                    self.truncated_while_down(&p, later, buf);
                    if self.open(f, 0).is_ok() {
                        info!(file = %self.path.display(), "truncated since the saved position: reading it from the start");
                        self.send(Vec::new());
                    }
                    return;
                }
            }
        }
        // Rotated while we were down: finish the old file first.
        if let Some(old) = find_by_inode(&self.path, p.dev, p.ino) {
            if let Ok(f) = File::open(&old) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len >= p.pos && self.open(f, p.pos).is_ok() {
                    info!(file = %old.display(), at = p.pos, "finishing rotated file");
                    self.drain(buf);
                    self.flush_partial();
                }
            }
        }
        self.cur = None;
        if let Ok(f) = File::open(&self.path) {
            if self.open(f, 0).is_ok() {
                info!(file = %self.path.display(), "following new file");
                // Record the switch even before the first line.
                self.send(Vec::new());
            }
        }
    }
}

/// Whether two fingerprints of a file can be of the same content (one is the start of the
/// other: a fingerprint taken while the file was shorter than [`FP_LEN`] is shorter).
fn same_start(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The start of the line `at` is in (just after the newline before it), so following from
/// the end never starts in the middle of a line.
fn line_start_before(f: &File, at: u64) -> u64 {
    let mut b = vec![0u8; MAX_LINE.min(at as usize)];
    let from = at - b.len() as u64;
    let n = read_full_at(f, &mut b, from);
    match memchr::memrchr(b'\n', &b[..n]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => at,
    }
}

/// Follow `path` in a thread until `stop`.
pub fn spawn(
    path: PathBuf,
    src: u32,
    resume: Resume,
    start: FollowStart,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>> {
    spawn_timed(path, src, resume, start, Timing::default(), shared, stop)
}

/// Where a follower resumes.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The position to read from (the checkpoint's, or the last saved one).
    pub saved: Option<FilePos>,
    /// Where the engine had been fed to before the stop, when it is past `saved`: the lines
    /// in between are sent as replay.
    pub replay_until: Option<FilePos>,
    /// Shared by every follower when any of them replays (see [`ReplayGate`]).
    pub gate: Option<Arc<ReplayGate>>,
}

impl Resume {
    /// Whether lines are read again after the restart.
    pub fn replays(&self) -> bool {
        match (&self.saved, &self.replay_until) {
            (Some(s), Some(u)) => (s.dev, s.ino, s.pos) != (u.dev, u.ino, u.pos),
            _ => false,
        }
    }
}

/// [`spawn`] at another pace.
pub fn spawn_timed(
    path: PathBuf,
    src: u32,
    resume: Resume,
    start: FollowStart,
    timing: Timing,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>> {
    let name = format!("follow-{src}");
    Ok(std::thread::Builder::new().name(name).spawn(move || {
        let mut fo = Follower::new(path, src, timing, shared);
        let mut buf = vec![0u8; CHUNK];
        fo.gate = resume.gate.clone();
        if let (true, Some(s), Some(u)) = (resume.replays(), &resume.saved, resume.replay_until) {
            let done = ((s.dev, s.ino) != (u.dev, u.ino)).then_some((s.dev, s.ino));
            fo.replay = Some(Replay { done, until: u });
        }
        fo.start(resume.saved, start, &mut buf);
        while !*stop.borrow() {
            if fo.step(&mut buf) == Step::Idle {
                // Caught up with the file: past the replay (if it was all there to read).
                if fo
                    .replay
                    .as_ref()
                    .is_none_or(|r| r.reached(fo.id(), fo.pos))
                {
                    fo.arrive();
                }
                std::thread::sleep(timing.poll);
            }
        }
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::syslog::tests::shared_with_queue;
    use std::collections::BTreeMap;
    use std::io::Write;

    /// The follower's pace in these tests (the writer is faster than any real MTA).
    const FAST: Timing = Timing {
        poll: Duration::from_millis(5),
        rotated_idle: Duration::from_millis(200),
    };
    /// Lines written per rotation cycle; three cycles make the 13,500.
    const CYCLE: usize = 4500;

    fn line(i: usize) -> String {
        format!(
            "Nov 24 05:10:00 mx1 postfix/smtpd[77]: connect from unknown[198.51.100.{}] n={i:06}\n",
            i % 250
        )
    }

    /// Append lines `from..to` in small batches, with a pause now and then so the follower
    /// reads in between (a real MTA writes line by line).
    fn write(f: &mut File, from: usize, to: usize) {
        write_paced(f, from, to, Duration::from_micros(500));
    }

    /// [`write`] with `pause` after every 50 lines.
    fn write_paced(f: &mut File, from: usize, to: usize, pause: Duration) {
        for chunk in (from..to).collect::<Vec<_>>().chunks(50) {
            let text: String = chunk.iter().map(|i| line(*i)).collect();
            f.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(pause);
        }
    }

    /// The writer's pace on the old file after a rename or delete: 10 ms per 50 lines, so it
    /// keeps writing there for 200–300 ms, over many polls of the follower (and two polls of
    /// [`POLL`]), yet never pauses as long as [`FAST`]`.rotated_idle`.
    const OLD_FILE_PACE: Duration = Duration::from_millis(10);

    fn append(p: &Path) -> File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
    }

    /// Blocks the writer until the follower has delivered `n` distinct lines: rotations come
    /// hours apart in life, not before the follower has even seen the new file.
    #[derive(Clone)]
    struct CaughtUp(Arc<std::sync::atomic::AtomicUsize>);

    impl CaughtUp {
        fn wait(&self, n: usize) {
            let end = Instant::now() + Duration::from_secs(30);
            while self.0.load(std::sync::atomic::Ordering::Relaxed) < n && Instant::now() < end {
                std::thread::sleep(FAST.poll);
            }
        }
    }

    /// Follow `mail.log` in a temporary directory while `writer` writes `total` numbered lines
    /// (rotating as it likes); every number must arrive exactly once.
    fn follow_while(
        total: usize,
        writer: impl FnOnce(&Path, CaughtUp) + Send + 'static,
    ) -> Arc<Shared> {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("mail.log");
        append(&path);
        let (sh, mut rx) = shared_with_queue(1 << 20);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let fo = spawn_timed(
            path.clone(),
            7,
            Resume::default(),
            FollowStart::Start,
            FAST,
            sh.clone(),
            stop,
        )
        .unwrap();
        let caught_up = CaughtUp(Default::default());
        let w = {
            let c = caught_up.clone();
            std::thread::spawn(move || writer(&path, c))
        };
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        let take = |rx: &mut tokio::sync::mpsc::Receiver<Msg>,
                    seen: &mut BTreeMap<usize, usize>| {
            while let Ok(m) = rx.try_recv() {
                if let Msg::Lines { lines, .. } = m {
                    for l in lines {
                        let n: usize = l.rsplit("n=").next().unwrap().parse().unwrap();
                        *seen.entry(n).or_default() += 1;
                    }
                }
            }
            caught_up
                .0
                .store(seen.len(), std::sync::atomic::Ordering::Relaxed);
        };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            take(&mut rx, &mut seen);
            if (seen.len() == total && w.is_finished()) || Instant::now() > end {
                break;
            }
            std::thread::sleep(FAST.poll);
        }
        w.join().unwrap();
        // A quiet spell of a few polls: nothing read twice comes after.
        std::thread::sleep(FAST.poll * 10);
        stop_tx.send(true).unwrap();
        fo.join().unwrap();
        take(&mut rx, &mut seen);
        let lost: Vec<usize> = (0..total).filter(|i| !seen.contains_key(i)).collect();
        let repeated: Vec<(&usize, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            lost.is_empty() && repeated.is_empty(),
            "{} lost (first {:?}), {} repeated (first {:?})",
            lost.len(),
            &lost[..lost.len().min(5)],
            repeated.len(),
            &repeated[..repeated.len().min(5)]
        );
        assert_eq!(sh.metrics.follow_unrecovered.get(), 0);
        sh
    }

    #[test]
    fn plain_append() {
        let sh = follow_while(CYCLE, |p, _| write(&mut append(p), 0, CYCLE));
        assert_eq!(sh.metrics.rotations.get(), 0);
    }

    #[test]
    fn rename_and_create_while_the_writer_keeps_the_old_file() {
        let sh = follow_while(3 * CYCLE, |p, caught_up| {
            let mut f = append(p);
            for c in 0..3 {
                let base = c * CYCLE;
                write(&mut f, base, base + 3000);
                // The follower reads the current file before it is rotated (rotations come
                // hours apart).
                caught_up.wait(base + 3000);
                // logrotate: rename, create the new empty file; the writer goes on writing
                // to the old one until it reopens its log.
                std::fs::rename(p, p.with_extension(format!("log.{c}"))).unwrap();
                append(p);
                write_paced(&mut f, base + 3000, base + 4500, OLD_FILE_PACE);
                f = append(p);
            }
        });
        assert_eq!(sh.metrics.rotations.get(), 3);
    }

    #[test]
    fn copytruncate_with_quick_regrowth() {
        let sh = follow_while(3 * CYCLE, |p, caught_up| {
            let mut f = append(p);
            for c in 0..3 {
                let base = c * CYCLE;
                caught_up.wait(base);
                write(&mut f, base, base + 1500);
                // logrotate copytruncate (the writer waits meanwhile, so no line falls between
                // the copy and the truncation), then at once more than was there before.
                std::fs::copy(p, p.with_extension(format!("log.{c}"))).unwrap();
                f.set_len(0).unwrap();
                let burst: String = (base + 1500..base + 3500).map(line).collect();
                f.write_all(burst.as_bytes()).unwrap();
                write(&mut f, base + 3500, base + 4500);
            }
        });
        assert_eq!(sh.metrics.rotations.get(), 3);
    }

    #[test]
    fn delete_and_create_while_the_writer_keeps_the_old_file() {
        let sh = follow_while(3 * CYCLE, |p, caught_up| {
            let mut f = append(p);
            for c in 0..3 {
                let base = c * CYCLE;
                write(&mut f, base, base + 3000);
                // The follower reads the current file before it is rotated (rotations come
                // hours apart).
                caught_up.wait(base + 3000);
                // Delete, and something creates the new file at once; the writer goes on with
                // the deleted one until it reopens its log.
                std::fs::remove_file(p).unwrap();
                append(p);
                write_paced(&mut f, base + 3000, base + 4000, OLD_FILE_PACE);
                f = append(p);
                write(&mut f, base + 4000, base + 4500);
            }
        });
        assert_eq!(sh.metrics.rotations.get(), 3);
    }
}
