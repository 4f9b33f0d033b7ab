//! Follow a log file like `tail -F`, surviving rotation by rename and by truncation.
//!
//! The position (bytes of complete lines consumed), the file's identity (device, inode) and its
//! first bytes are saved in the store together with the alerts those lines raised, so a
//! restart resumes exactly there. A file renamed away while we were down is found again by its
//! inode in the same directory and read to its end before the new file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tracing::{info, warn};

use super::core::Msg;
use super::store::FilePos;
use super::{FollowStart, Shared};

/// How often an idle file is checked for growth and rotation.
pub const POLL: Duration = Duration::from_millis(100);
/// Bytes read per step (and most bytes of lines sent in one message).
const CHUNK: usize = 256 * 1024;
/// Bytes of the file's beginning kept as its fingerprint.
pub const FP_LEN: usize = 64;
/// A line longer than this is cut (as in `analyze`).
const MAX_LINE: usize = crate::input::MAX_LINE;

struct Follower {
    path: PathBuf,
    src: u32,
    file: Option<File>,
    dev: u64,
    ino: u64,
    /// Bytes of complete lines consumed.
    pos: u64,
    fp: Vec<u8>,
    partial: Vec<u8>,
    shared: Arc<Shared>,
}

fn fingerprint(f: &File) -> Vec<u8> {
    let mut b = vec![0u8; FP_LEN];
    let n = f.read_at(&mut b, 0).unwrap_or(0);
    b.truncate(n);
    b
}

fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if let Ok(md) = e.metadata() {
            if md.dev() == dev && md.ino() == ino && md.is_file() {
                return Some(e.path());
            }
        }
    }
    None
}

impl Follower {
    fn send(&mut self, lines: Vec<String>) -> bool {
        let pos = FilePos {
            path: self.path.display().to_string(),
            dev: self.dev,
            ino: self.ino,
            pos: self.pos,
            fp: self.fp.clone(),
        };
        self.shared
            .engine_tx
            .blocking_send(Msg::Lines {
                src: self.src,
                lines,
                pos: Some(pos),
            })
            .is_ok()
    }

    fn open(&mut self, f: File, pos: u64) -> std::io::Result<()> {
        let md = f.metadata()?;
        self.dev = md.dev();
        self.ino = md.ino();
        let mut f = f;
        f.seek(SeekFrom::Start(pos))?;
        self.pos = pos;
        self.fp = fingerprint(&f);
        self.partial.clear();
        self.file = Some(f);
        Ok(())
    }

    /// Read what is there; returns bytes read (0 at end of file).
    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let Some(f) = self.file.as_mut() else {
            return 0;
        };
        let n = match f.read(buf) {
            Ok(n) => n,
            Err(e) => {
                warn!(file = %self.path.display(), "read: {e}");
                0
            }
        };
        if n == 0 {
            return 0;
        }
        let mut lines = Vec::new();
        let mut rest = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let consumed = self.partial.len() + i + 1;
            self.partial.extend_from_slice(&rest[..i]);
            self.partial.truncate(MAX_LINE);
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
            self.pos += consumed as u64;
            rest = &rest[i + 1..];
        }
        // Bytes of an incomplete line: counted in `pos` only once the line is complete.
        let keep = rest.len();
        if self.partial.len() < MAX_LINE {
            self.partial.extend_from_slice(rest);
        } else {
            // Over-long line: skip its bytes but remember we consumed them.
            self.pos += keep as u64;
        }
        if self.fp.len() < FP_LEN {
            if let Some(f) = &self.file {
                self.fp = fingerprint(f);
            }
        }
        if !lines.is_empty() {
            self.send(lines);
        }
        n
    }

    /// The file's last line had no newline and the file is done (rotated away): emit it.
    fn flush_partial(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.pos += self.partial.len() as u64;
        self.partial.clear();
        self.send(vec![line]);
    }

    fn drain(&mut self, buf: &mut [u8]) {
        while self.read_some(buf) > 0 {}
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
                if self.open(f, at).is_ok() {
                    info!(file = %self.path.display(), at, "following");
                }
            }
            return;
        };
        if let Ok(f) = &cur {
            if let Ok(md) = f.metadata() {
                if md.dev() == p.dev && md.ino() == p.ino {
                    let fp = fingerprint(f);
                    let same =
                        md.len() >= p.pos && fp.starts_with(&p.fp[..p.fp.len().min(fp.len())]);
                    let at = if same { p.pos } else { 0 };
                    if let Ok(f) = File::open(&self.path) {
                        if self.open(f, at).is_ok() {
                            info!(file = %self.path.display(), at, "resuming");
                        }
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
        self.file = None;
        if let Ok(f) = File::open(&self.path) {
            if self.open(f, 0).is_ok() {
                info!(file = %self.path.display(), "following new file");
                // Record the switch even before the first line.
                self.send(Vec::new());
            }
        }
    }

    /// At end of file: rotation or truncation?
    fn check(&mut self, buf: &mut [u8]) {
        let md = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(_) => return, // gone; keep the old one until a new one appears
        };
        if self.file.is_none() {
            if let Ok(f) = File::open(&self.path) {
                if self.open(f, 0).is_ok() {
                    info!(file = %self.path.display(), "file appeared");
                }
            }
            return;
        }
        if md.dev() != self.dev || md.ino() != self.ino {
            self.drain(buf);
            self.flush_partial();
            self.shared.metrics.rotations.inc();
            info!(file = %self.path.display(), "rotated (renamed); reading the new file");
            if let Ok(f) = File::open(&self.path) {
                if self.open(f, 0).is_ok() {
                    self.send(Vec::new());
                }
            }
            return;
        }
        let read_to = self.pos + self.partial.len() as u64;
        let rewritten = self.file.as_ref().map(fingerprint).is_some_and(|fp| {
            !fp.starts_with(&self.fp[..self.fp.len().min(fp.len())]) || fp.len() < self.fp.len()
        });
        if md.len() < read_to || rewritten {
            self.shared.metrics.rotations.inc();
            info!(file = %self.path.display(), "truncated; reading from the start");
            if let Some(f) = self.file.take() {
                if self.open(f, 0).is_ok() {
                    self.send(Vec::new());
                }
            }
        }
    }
}

/// Follow `path` in a thread until `stop`.
pub fn spawn(
    path: PathBuf,
    src: u32,
    saved: Option<FilePos>,
    start: FollowStart,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>> {
    let name = format!("follow-{src}");
    Ok(std::thread::Builder::new().name(name).spawn(move || {
        let mut fo = Follower {
            path,
            src,
            file: None,
            dev: 0,
            ino: 0,
            pos: 0,
            fp: Vec::new(),
            partial: Vec::new(),
            shared,
        };
        let mut buf = vec![0u8; CHUNK];
        fo.start(saved, start, &mut buf);
        while !*stop.borrow() {
            if fo.read_some(&mut buf) > 0 {
                continue;
            }
            fo.check(&mut buf);
            std::thread::sleep(POLL);
        }
    })?)
}
