//! Inputs: files (plain, .gz, .zst, .bz2 — recognised by their magic bytes) and stdin, read as
//! lines of bytes; the year and zone that year-less syslog stamps need.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Size of the read buffer.
const BUF: usize = 1 << 20;
/// Longest line kept whole; longer lines are cut (the rest is skipped), so one broken line
/// cannot use unbounded memory.
pub const MAX_LINE: usize = 64 * 1024;

/// One input: a path or stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// From the command line: `-` is stdin.
    pub fn from_arg(s: &Path) -> Source {
        if s == Path::new("-") {
            Source::Stdin
        } else {
            Source::File(s.to_path_buf())
        }
    }

    /// Display name.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// Size in bytes on disk (compressed size for compressed files), if known.
    // A size, not a collection's length: there is no "empty" to ask for.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<u64> {
        match self {
            Source::Stdin => None,
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }

    /// Open, decompressing as the magic bytes say. `counter` counts raw bytes read (for progress).
    pub fn open(
        &self,
        counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(p) => {
                Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?)
            }
        };
        let raw: Box<dyn Read + Send> = match counter {
            Some(c) => Box::new(Counting { inner: raw, n: c }),
            None => raw,
        };
        let mut br = BufReader::with_capacity(BUF, raw);
        let head = br
            .fill_buf()
            .with_context(|| format!("cannot read {}", self.name()))?;
        let decoder: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(br))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(br).context("zstd stream")?)
        } else if head.starts_with(b"BZh") {
            Box::new(bzip2::bufread::MultiBzDecoder::new(br))
        } else {
            return Ok(Box::new(br));
        };
        let damaged = Damaged {
            inner: decoder,
            name: self.name(),
            out: 0,
            done: false,
        };
        Ok(Box::new(Decompressed::spawn(damaged)?))
    }
}

/// Bytes of decompressed text per block handed from the decompression thread to the reader.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the decompression thread and the reader: the two overlap, and the
/// decompressor runs at most this far ahead, so memory stays a few MB whatever the file.
const BLOCKS_AHEAD: usize = 4;

/// A compressed input decompressed on its own thread (`decompress`): the thread that reads the
/// lines (the reader of the parallel pipeline, or the only thread with `--threads 1`) gets
/// plain text in blocks and spends none of its time in the decompressor, as with
/// `zcat | smtpscope analyze -`.
///
/// Errors of the compressed stream never cross the channel: [`Damaged`] turns them into a
/// warning and the end of that file, on the decompression thread. When the reader is dropped
/// early (a peek at the first lines), the thread's next send fails and it stops.
struct Decompressed {
    blocks: std::sync::mpsc::Receiver<(Vec<u8>, usize)>,
    /// Used buffers go back to the thread (no allocation per block).
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
}

impl Decompressed {
    fn spawn(mut src: Damaged) -> Result<Decompressed> {
        let (tx, blocks) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(BLOCKS_AHEAD);
        let (spent, back) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("decompress".into())
            .spawn(move || loop {
                let mut buf = back.try_recv().unwrap_or_else(|_| vec![0u8; BLOCK]);
                let mut n = 0;
                let mut eof = false;
                while n < buf.len() {
                    match src.read(&mut buf[n..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // `Damaged` reports errors itself and returns end of file instead.
                        Err(_) => {
                            eof = true;
                            break;
                        }
                    }
                }
                if (n > 0 && tx.send((buf, n)).is_err()) || eof {
                    return;
                }
            })
            .context("cannot start the decompression thread")?;
        Ok(Decompressed {
            blocks,
            spent,
            cur: Vec::new(),
            len: 0,
            pos: 0,
        })
    }
}

impl Read for Decompressed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let k = avail.len().min(out.len());
        out[..k].copy_from_slice(&avail[..k]);
        self.consume(k);
        Ok(k)
    }
}

impl BufRead for Decompressed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            // End of input when the thread has hung up after its last block.
            if let Ok((b, n)) = self.blocks.recv() {
                let old = std::mem::replace(&mut self.cur, b);
                if !old.is_empty() {
                    // The thread may have ended: then the buffer is simply dropped.
                    let _ = self.spent.send(old);
                }
                (self.len, self.pos) = (n, 0);
            }
        }
        Ok(&self.cur[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

/// A decompressor whose input may be truncated or damaged (a log archive cut short by a full
/// disk or an interrupted copy): the first error is reported on stderr, naming the file and
/// how much of it was read, and ends that file; the lines before it are kept and the other
/// inputs are still read.
struct Damaged {
    inner: Box<dyn Read + Send>,
    name: String,
    /// Decompressed bytes delivered so far.
    out: u64,
    /// An error was reported: nothing more is read.
    done: bool,
}

impl Read for Damaged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        loop {
            match self.inner.read(buf) {
                Ok(k) => {
                    self.out += k as u64;
                    return Ok(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    eprintln!(
                        "smtpscope: warning: {}: damaged or truncated compressed data after {} \
                         bytes ({e}); the rest of this file is skipped",
                        self.name, self.out
                    );
                    return Ok(0);
                }
            }
        }
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n
            .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(k)
    }
}

/// Read one line (without `\n`) into `buf`, cutting lines longer than [`MAX_LINE`]. Returns
/// false at end of input.
pub fn read_line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    Ok(capped_line(r, buf)?.is_some())
}

/// Append one line to `out` as [`read_line`] reads it (cut at [`MAX_LINE`]), followed by `\n`.
/// Returns the length kept, or `None` at end of input (then `out` is unchanged).
pub fn append_line(r: &mut dyn BufRead, out: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let n = capped_line(r, out)?;
    if n.is_some() {
        out.push(b'\n');
    }
    Ok(n)
}

/// `r.fill_buf()`, tried again when a signal interrupted it: the reader's buffered bytes, empty
/// at end of input.
pub fn fill_buf(r: &mut dyn BufRead) -> io::Result<&[u8]> {
    loop {
        match r.fill_buf() {
            Ok([]) => return Ok(&[]),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Bytes are buffered now, so this only hands them out (`BufRead` reads only when its
    // buffer is empty); the borrow checker does not let the first call's slice out of the loop.
    r.fill_buf()
}

/// The lines of text that [`append_lines`] appended (each ends in `\n`, which is not part of
/// the line).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes()).map(move |e| {
        // `\n` is ASCII, so both ends are char boundaries.
        let l = &text[start..e];
        start = e + 1;
        l
    })
}

/// What [`append_lines`] appended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Bytes appended, each line's `\n` included (a last line without one gets one).
    pub bytes: u64,
    /// End of input reached.
    pub eof: bool,
}

/// Append whole lines to `out`, each cut as [`append_line`] cuts it and followed by `\n`,
/// until `out` holds at least `until` bytes or the input ends: the same bytes as calling
/// [`append_line`] while `out` is shorter than `until`.
///
/// The whole lines in the reader's buffer are copied at once, found from the last `\n`
/// (`memrchr`) without a search per line; [`lines_are_short`] makes sure none of them is
/// longer than [`MAX_LINE`]. Only a line that crosses the buffer's end, or a block with a line
/// that may be too long, goes through [`append_line`] one line at a time. Copying line by line
/// cost about 240 instructions a line (docs/PERFORMANCE.md, "Reading in blocks").
pub fn append_lines(r: &mut dyn BufRead, out: &mut Vec<u8>, until: usize) -> io::Result<Appended> {
    let start = out.len();
    let mut eof = false;
    while out.len() < until {
        let avail = fill_buf(r)?;
        if avail.is_empty() {
            eof = true;
            break;
        }
        // Whole lines up to the last `\n` within what is still wanted, or else up to the
        // first `\n` after it (the line that reaches `until`).
        let want = (until - out.len()).min(avail.len());
        let whole = match memchr::memrchr(b'\n', &avail[..want]) {
            Some(i) => i + 1,
            None => memchr::memchr(b'\n', &avail[want..]).map_or(0, |j| want + j + 1),
        };
        if whole > 0 && lines_are_short(&avail[..whole]) {
            out.extend_from_slice(&avail[..whole]);
            r.consume(whole);
            continue;
        }
        if append_line(r, out)?.is_none() {
            eof = true;
            break;
        }
    }
    Ok(Appended {
        bytes: (out.len() - start) as u64,
        eof,
    })
}

/// Whether every line of `block` (whole lines, ending in `\n`) is shorter than [`MAX_LINE`]:
/// true when each [`SHORT_LINE_SPAN`] bytes of it hold a `\n`, for then no two successive
/// `\n` lie [`MAX_LINE`] apart. One `memchr` per span, found within a line's length in a log;
/// false for a block that holds a line of half [`MAX_LINE`] or more, which is then read line
/// by line.
fn lines_are_short(block: &[u8]) -> bool {
    block
        .chunks(SHORT_LINE_SPAN)
        .all(|span| memchr::memchr(b'\n', span).is_some())
}

/// The span [`lines_are_short`] looks for a `\n` in: half of [`MAX_LINE`], so that two
/// successive `\n`, each in its span, are less than two spans apart.
const SHORT_LINE_SPAN: usize = MAX_LINE / 2;

/// The one capped line reader: appends one line (without `\n`) to `out`, keeping at most
/// [`MAX_LINE`] bytes of it and skipping the rest. Returns the length kept, or `None` at end of
/// input.
fn capped_line(r: &mut dyn BufRead, out: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let start = out.len();
    let mut got_any = false;
    loop {
        let avail = fill_buf(r)?;
        if avail.is_empty() {
            break;
        }
        got_any = true;
        let room = MAX_LINE.saturating_sub(out.len() - start);
        match memchr::memchr(b'\n', avail) {
            Some(i) => {
                out.extend_from_slice(&avail[..i.min(room)]);
                r.consume(i + 1);
                break;
            }
            None => {
                let n = avail.len();
                out.extend_from_slice(&avail[..n.min(room)]);
                r.consume(n);
            }
        }
    }
    if !got_any {
        return Ok(None);
    }
    Ok(Some(out.len() - start))
}

/// The year to assume for the first year-less stamp of a file: the year of its modification
/// time, or the one before when the first stamp's month is later than that time's month (a
/// file started in December and last written in January).
pub fn infer_year(src: &Source, first_month: Option<u32>) -> i64 {
    let now = jiff::Timestamp::now();
    let mtime = match src {
        Source::File(p) => std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .unwrap_or(now),
        Source::Stdin => now,
    };
    let d = mtime.to_zoned(jiff::tz::TimeZone::system()).date();
    let (y, m) = (d.year() as i64, d.month() as u32);
    match first_month {
        Some(fm) if fm > m => y - 1,
        _ => y,
    }
}

/// Month of the first RFC 3164 stamp among the first lines of a file (cheap peek), if any.
pub fn first_month(src: &Source) -> Option<u32> {
    let Source::File(_) = src else { return None };
    let mut r = src.open(None).ok()?;
    let mut buf = Vec::new();
    for _ in 0..50 {
        if !read_line(&mut *r, &mut buf).ok()? {
            break;
        }
        let b: &[u8] = buf.strip_prefix(b"<").map_or(&buf, |_| {
            let e = memchr::memchr(b'>', &buf).map_or(0, |e| e + 1);
            &buf[e..]
        });
        if b.len() > 4 && b[3] == b' ' {
            const M: [&[u8; 3]; 12] = [
                b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
                b"Nov", b"Dec",
            ];
            if let Some(i) = M.iter().position(|m| &b[..3] == *m) {
                return Some(i as u32 + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_compressed_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let text = "line one\nline two\r\nthree";
        let gz = dir.path().join("a.log.gz");
        let mut e =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
        let zs = dir.path().join("a.log.zst");
        std::fs::write(&zs, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
        let bz = dir.path().join("a.log.bz2");
        let mut b =
            bzip2::write::BzEncoder::new(File::create(&bz).unwrap(), bzip2::Compression::fast());
        b.write_all(text.as_bytes()).unwrap();
        b.finish().unwrap();
        for p in [gz, zs, bz] {
            let mut r = Source::File(p.clone()).open(None).unwrap();
            let mut buf = Vec::new();
            let mut lines = Vec::new();
            while read_line(&mut *r, &mut buf).unwrap() {
                lines.push(String::from_utf8(buf.clone()).unwrap());
            }
            assert_eq!(
                lines,
                ["line one", "line two\r", "three"],
                "{}",
                p.display()
            );
        }
        let long = dir.path().join("long.log");
        let mut s = "x".repeat(MAX_LINE * 3);
        s.push_str("\nnext\n");
        std::fs::write(&long, s).unwrap();
        let mut r = Source::File(long).open(None).unwrap();
        let mut buf = Vec::new();
        assert!(read_line(&mut *r, &mut buf).unwrap());
        assert_eq!(buf.len(), MAX_LINE);
        assert!(read_line(&mut *r, &mut buf).unwrap());
        assert_eq!(buf, b"next");
        assert!(!read_line(&mut *r, &mut buf).unwrap());
    }

    /// A compressed file cut short ends like a file: what was decoded is read, then end of
    /// input, no error (the warning names the file on stderr).
    #[test]
    fn truncated_archives_end_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(text.as_bytes(), 1).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(text.as_bytes()).unwrap();
        let bz = bz.finish().unwrap();
        for (name, whole) in [("a.gz", gz), ("a.zst", zs), ("a.bz2", bz)] {
            let p = dir.path().join(name);
            std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
            let mut r = Source::File(p).open(None).unwrap();
            let mut buf = Vec::new();
            let mut n = 0;
            while read_line(&mut *r, &mut buf).unwrap() {
                n += 1;
            }
            assert!(n < 20_000, "{name}: {n}");
            assert!(!read_line(&mut *r, &mut buf).unwrap(), "{name}");
        }
    }

    /// Decompression runs on its own thread, in blocks: a text of many blocks comes through
    /// byte for byte, and readers dropped after one line (the peeks at a file's first stamps)
    /// neither hang nor disturb the next reader.
    #[test]
    fn decompresses_many_blocks_on_its_own_thread() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..400_000).map(|i| format!("line number {i}\n")).collect();
        assert!(text.len() > BLOCK * (BLOCKS_AHEAD + 2));
        let p = dir.path().join("big.log.gz");
        let mut e =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
        for _ in 0..3 {
            let mut r = Source::File(p.clone()).open(None).unwrap();
            let mut buf = Vec::new();
            assert!(read_line(&mut *r, &mut buf).unwrap());
            assert_eq!(buf, b"line number 0");
        }
        let mut r = Source::File(p).open(None).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert!(
            all == text.as_bytes(),
            "{} of {} bytes",
            all.len(),
            text.len()
        );
    }

    /// `append_lines` appends the bytes `append_line` would, over reader buffers of every
    /// small size (lines crossing the buffer's end), lines longer than `MAX_LINE` and of half
    /// of it (read one by one), a last line without `\n`, and targets that fall inside and
    /// between lines.
    #[test]
    fn append_lines_appends_what_append_line_would() {
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&"z".repeat(i * 37 % 101));
            text.push('\n');
        }
        text.push_str(&"y".repeat(MAX_LINE + 3));
        text.push_str("\n\nshort\n");
        text.push_str(&"v".repeat(MAX_LINE / 2 + 1));
        text.push_str("\nshort\n");
        text.push_str(&"w".repeat(MAX_LINE));
        text.push_str("\nlast");
        for cap in [1, 2, 7, 64, 100, 4096, MAX_LINE + 10, 1 << 20] {
            for until in [1, 50, 333, 5_000, MAX_LINE * 3, 1 << 20] {
                let mut one = std::io::BufReader::with_capacity(cap, text.as_bytes());
                let mut many = std::io::BufReader::with_capacity(cap, text.as_bytes());
                loop {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let mut expect = Appended::default();
                    while a.len() < until {
                        match append_line(&mut one, &mut a).unwrap() {
                            Some(n) => expect.bytes += n as u64 + 1,
                            None => {
                                expect.eof = true;
                                break;
                            }
                        }
                    }
                    let got = append_lines(&mut many, &mut b, until).unwrap();
                    assert_eq!(got, expect, "buffer {cap}, until {until}");
                    assert!(a == b, "buffer {cap}, until {until}");
                    if got.eof {
                        break;
                    }
                }
            }
        }
    }

    /// A block holds a line of `MAX_LINE` or more only where a span of half `MAX_LINE` has
    /// no `\n`.
    #[test]
    fn short_lines_are_told_by_their_spans() {
        let line = |n: usize| {
            let mut l = vec![b'a'; n];
            l.push(b'\n');
            l
        };
        assert!(lines_are_short(&[line(100), line(0), line(200)].concat()));
        assert!(lines_are_short(&line(SHORT_LINE_SPAN - 1)));
        assert!(!lines_are_short(&line(SHORT_LINE_SPAN)));
        assert!(!lines_are_short(&[line(10), line(MAX_LINE)].concat()));
        assert!(!lines_are_short(
            &[line(10), line(MAX_LINE + 7), line(3)].concat()
        ));
        // Every line shorter than MAX_LINE, placed anywhere among short ones: never a false
        // "short" for a long line.
        for long in [MAX_LINE, MAX_LINE + 1, 2 * MAX_LINE] {
            for before in [0, 1, 999, SHORT_LINE_SPAN - 1, SHORT_LINE_SPAN + 1] {
                let block = [line(before), line(long), line(5)].concat();
                assert!(!lines_are_short(&block), "{long} after {before}");
            }
        }
    }

    #[test]
    fn append_line_cuts_like_read_line() {
        let text = format!("{}\nnext\nlast", "y".repeat(MAX_LINE + 5));
        let mut r = std::io::Cursor::new(text.into_bytes());
        let mut out = b"keep".to_vec();
        assert_eq!(append_line(&mut r, &mut out).unwrap(), Some(MAX_LINE));
        assert_eq!(out.len(), 4 + MAX_LINE + 1);
        assert_eq!(append_line(&mut r, &mut out).unwrap(), Some(4));
        assert_eq!(append_line(&mut r, &mut out).unwrap(), Some(4));
        assert!(out.ends_with(b"\nnext\nlast\n"));
        assert_eq!(append_line(&mut r, &mut out).unwrap(), None);
    }
}
