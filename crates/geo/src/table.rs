//! The compiled lookup table and its binary file format.
//!
//! Per address family the table is a gap-free segment list: `starts` (sorted,
//! first is 0) and a parallel `vals` array of packed values (ASN, country and
//! an index into one shared value table holding organisation and label, see
//! [`pack`]). A lookup finds the last start `<= ip`, in three steps chosen to
//! keep it to about two cache misses:
//! 1. `index[h]` is the first segment whose start is `>= h << (bits - 16)`:
//!    only segments starting inside the address's /16 can hold it.
//! 2. A block with more than [`DENSE_BLOCK`] segments (IPv6 /16s such as
//!    2a00::/16 hold thousands) has a sub-index on the next 8 bits, which
//!    narrows the search to one /24 the same way.
//! 3. A small (sub-)block is searched directly. In a still large one the
//!    search runs first over `samples`, every 16th start, and then over the
//!    16 starts between two samples.
//! 4. `lookup_fast` reads country and ASN from the packed value itself.
//!
//! Binary format (all integers little-endian, LEB128 for varints), the whole
//! thing zstd-compressed:
//! ```text
//! magic "SSGEOTBL", u32 version
//! varint n_strings, then n_strings × (varint len, UTF-8 bytes)
//! varint n_vals, then n_vals × (2 bytes country, varint asn, varint org+1, varint label+1)
//! varint n_v4, then n_v4 × varint start-delta, then n_v4 × varint value index
//! varint n_v6, likewise with u128 deltas
//! ```
//! Starts are delta-coded (the first delta is from 0 and must be 0; the
//! others must be > 0), which makes the file small and lets the loader check
//! that starts are strictly increasing.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::GeoError;
use crate::ranges::Segments;
use crate::Country;

/// Sentinel for "no string" in [`Val::org`] and [`Val::label`].
pub(crate) const NO_STR: u32 = u32::MAX;

/// Magic bytes at the start of a (decompressed) table file.
const MAGIC: &[u8; 8] = b"SSGEOTBL";
/// Version of the table format; bump on any change of layout.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Cap on the decompressed size of a table file, against decompression bombs.
/// The shipped table decompresses to well under a tenth of this.
const MAX_TABLE_BYTES: u64 = 512 << 20;
/// Cap on one string (organisation or label) in a table file.
const MAX_STRING_BYTES: u64 = 4096;
/// zstd level used when writing a table: higher is smaller and only slower
/// to write; reading speed does not depend on it.
const ZSTD_LEVEL: i32 = 19;
/// Distance between the starts copied into [`Family::samples`].
const SAMPLE_STRIDE: usize = 16;
/// Number of leading address bits used by the first-level index.
const INDEX_BITS: u32 = 16;
/// Bits after those used by the sub-index of a dense block.
const SUB_BITS: u32 = 8;
/// A first-level block with more segments than this gets a sub-index on the
/// next [`SUB_BITS`] bits (257 entries, 1 KiB): IPv6 /16s such as 2a00::/16
/// hold thousands of segments, which would otherwise take a dozen search
/// steps.
const DENSE_BLOCK: usize = 64;
/// Marks a block without sub-index in [`Family::sub_at`].
const NO_SUB: u32 = u32::MAX;
/// Varints of at most this many bytes (63 bits) are gathered in a `u64` ([`Reader::varint`]).
const SHORT_VARINT_BYTES: usize = 9;
/// The longest varint: 19 bytes of 7 bits hold a `u128`.
const MAX_VARINT_BYTES: usize = 19;

/// One distinct (country, ASN, organisation, label) combination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Val {
    /// `[0, 0]` = unknown.
    pub country: [u8; 2],
    /// 0 = unknown (AS 0 means "no AS", RFC 7607).
    pub asn: u32,
    /// Index into the string table or [`NO_STR`].
    pub org: u32,
    /// Index into the string table or [`NO_STR`].
    pub label: u32,
}

impl Val {
    pub(crate) const NONE: Val = Val {
        country: [0, 0],
        asn: 0,
        org: NO_STR,
        label: NO_STR,
    };
}

/// Bits of a packed segment value holding the value index.
const IDX_BITS: u32 = 22;
/// Value index meaning "beyond the packable range": country and ASN are
/// still right, organisation and label are not available. Real tables have
/// about 130,000 values; 4 million would need every AS in every country.
pub(crate) const IDX_NONE: u32 = (1 << IDX_BITS) - 1;

/// Packs what [`crate::GeoDb::lookup_fast`] needs into the segment array
/// itself, so it costs no further memory access: ASN in bits 32..64, the
/// country as two 5-bit letters in bits 22..32, the value index in 0..22.
pub(crate) fn pack(v: &Val, idx: u32) -> u64 {
    let letter = |b: u8| (b.wrapping_sub(b'A').wrapping_add(1) & 0x1f) as u64;
    let country = if v.country == [0, 0] {
        0
    } else {
        (letter(v.country[0]) << 5) | letter(v.country[1])
    };
    ((v.asn as u64) << 32) | (country << IDX_BITS) | idx.min(IDX_NONE) as u64
}

/// The value index of a packed value.
#[inline(always)]
pub(crate) fn packed_idx(p: u64) -> u32 {
    (p as u32) & IDX_NONE
}

/// The country of a packed value.
#[inline(always)]
pub(crate) fn packed_country(p: u64) -> Option<Country> {
    let c = ((p >> IDX_BITS) & 0x3ff) as u16;
    if c == 0 {
        return None;
    }
    let a = (c >> 5) as u8;
    let b = (c & 0x1f) as u8;
    Some(Country([
        a.wrapping_add(b'A' - 1),
        b.wrapping_add(b'A' - 1),
    ]))
}

/// The ASN of a packed value (0 = none).
#[inline(always)]
pub(crate) fn packed_asn(p: u64) -> u32 {
    (p >> 32) as u32
}

/// Interns strings and values while a table is built.
#[derive(Default)]
pub(crate) struct Interner {
    pub strings: Vec<Arc<str>>,
    string_ids: HashMap<Arc<str>, u32>,
    pub vals: Vec<Val>,
    val_ids: HashMap<Val, u32>,
}

impl Interner {
    /// Starts with an existing string table (indexes stay valid).
    pub(crate) fn with_strings(strings: Vec<Arc<str>>) -> Interner {
        let string_ids = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Interner {
            strings,
            string_ids,
            ..Interner::default()
        }
    }

    pub(crate) fn string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let arc: Arc<str> = Arc::from(s);
        self.strings.push(arc.clone());
        self.string_ids.insert(arc, id);
        id
    }

    pub(crate) fn val(&mut self, v: Val) -> u32 {
        if let Some(&id) = self.val_ids.get(&v) {
            return id;
        }
        let id = self.vals.len() as u32;
        self.vals.push(v);
        self.val_ids.insert(v, id);
        id
    }
}

/// A key type of one address family.
pub(crate) trait Key: Copy + Ord + Default {
    const BITS: u32;
    fn from_u128(x: u128) -> Self;
    fn to_u128(self) -> u128;
    fn top(self) -> usize;
    /// The 8 bits after the top [`INDEX_BITS`].
    fn sub(self) -> usize;
}

impl Key for u32 {
    const BITS: u32 = 32;
    fn from_u128(x: u128) -> Self {
        x as u32
    }
    fn to_u128(self) -> u128 {
        self as u128
    }
    #[inline(always)]
    fn top(self) -> usize {
        (self >> (32 - INDEX_BITS)) as usize
    }
    #[inline(always)]
    fn sub(self) -> usize {
        ((self >> (32 - INDEX_BITS - SUB_BITS)) & 0xff) as usize
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    fn from_u128(x: u128) -> Self {
        x
    }
    fn to_u128(self) -> u128 {
        self
    }
    #[inline(always)]
    fn top(self) -> usize {
        (self >> (128 - INDEX_BITS)) as usize
    }
    #[inline(always)]
    fn sub(self) -> usize {
        ((self >> (128 - INDEX_BITS - SUB_BITS)) & 0xff) as usize
    }
}

/// The segments of one address family.
#[derive(Clone, Debug)]
pub(crate) struct Family<K> {
    pub starts: Vec<K>,
    /// Packed values, see [`pack`].
    pub vals: Vec<u64>,
    index: Vec<u32>,
    /// Every [`SAMPLE_STRIDE`]th start: a small second level that stays in
    /// cache, so a dense block (IPv6 /16s hold thousands of segments) costs
    /// one search in cache plus one over a few cache lines.
    samples: Vec<K>,
    /// Per first-level block: offset of its sub-index in `sub`, or [`NO_SUB`].
    sub_at: Vec<u32>,
    /// Sub-indexes of dense blocks, 257 entries each: entry `j` is the first
    /// segment of the block whose start's next 8 bits are `>= j`.
    sub: Vec<u32>,
}

impl<K: Key> Family<K> {
    /// An all-unknown family; `none` is the value index of [`Val::NONE`].
    pub(crate) fn single(none: u64) -> Self {
        Self::new(vec![K::default()], vec![none])
    }

    /// `starts` must be sorted, start with 0 and be as long as `vals`.
    pub(crate) fn new(starts: Vec<K>, vals: Vec<u64>) -> Self {
        let mut index = Vec::with_capacity((1 << INDEX_BITS) + 1);
        let mut i = 0usize;
        for h in 0..(1usize << INDEX_BITS) {
            while i < starts.len() && starts[i].top() < h {
                i += 1;
            }
            index.push(i as u32);
        }
        index.push(starts.len() as u32);
        let samples = starts.iter().step_by(SAMPLE_STRIDE).copied().collect();
        let mut sub_at = vec![NO_SUB; 1 << INDEX_BITS];
        let mut sub = Vec::new();
        for h in 0..(1usize << INDEX_BITS) {
            let (lo, hi) = (index[h] as usize, index[h + 1] as usize);
            if hi - lo <= DENSE_BLOCK {
                continue;
            }
            sub_at[h] = sub.len() as u32;
            let mut i = lo;
            for j in 0..(1usize << SUB_BITS) {
                while i < hi && starts[i].sub() < j {
                    i += 1;
                }
                sub.push(i as u32);
            }
            sub.push(hi as u32);
        }
        Family {
            starts,
            vals,
            index,
            samples,
            sub_at,
            sub,
        }
    }

    pub(crate) fn from_segments(segs: &[(u128, u64)]) -> Self {
        Self::new(
            segs.iter().map(|s| K::from_u128(s.0)).collect(),
            segs.iter().map(|s| s.1).collect(),
        )
    }

    pub(crate) fn to_segments(&self, vals: &[Val]) -> Segments<Val> {
        self.starts
            .iter()
            .zip(&self.vals)
            .map(|(s, v)| {
                (
                    s.to_u128(),
                    vals.get(packed_idx(*v) as usize)
                        .copied()
                        .unwrap_or(Val::NONE),
                )
            })
            .collect()
    }

    /// The value index of the segment holding `ip`.
    #[inline]
    pub(crate) fn find(&self, ip: K) -> u64 {
        let h = ip.top();
        // `index` has 2^INDEX_BITS + 1 entries and h < 2^INDEX_BITS; a
        // sub-index has 2^SUB_BITS + 1 entries and ip.sub() < 2^SUB_BITS.
        let (lo, hi) = match self.sub_at[h] {
            NO_SUB => (self.index[h] as usize, self.index[h + 1] as usize),
            off => {
                let j = off as usize + ip.sub();
                (self.sub[j] as usize, self.sub[j + 1] as usize)
            }
        };
        // Segments lo..hi start inside this (sub-)block; the one holding `ip`
        // is the last of them whose start <= ip, or segment lo-1 if none is.
        if hi - lo <= SAMPLE_STRIDE * 2 {
            let n = branchless_upper_bound(&self.starts[lo..hi], ip);
            return self.vals[(lo + n).saturating_sub(1)];
        }
        // Samples whose segment lies in lo..hi: s_lo..s_hi.
        let s_lo = lo.div_ceil(SAMPLE_STRIDE);
        let s_hi = hi.div_ceil(SAMPLE_STRIDE);
        let k = branchless_upper_bound(&self.samples[s_lo..s_hi], ip);
        // The answer lies between the last sample <= ip and the next one.
        let start = if k == 0 {
            lo
        } else {
            (s_lo + k - 1) * SAMPLE_STRIDE
        };
        let end = if s_lo + k < s_hi {
            (s_lo + k) * SAMPLE_STRIDE
        } else {
            hi
        };
        let n = branchless_upper_bound(&self.starts[start..end], ip);
        self.vals[(start + n).saturating_sub(1)]
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<K>()
            + self.vals.capacity() * 8
            + self.index.capacity() * 4
            + self.samples.capacity() * std::mem::size_of::<K>()
            + (self.sub_at.capacity() + self.sub.capacity()) * 4
    }

    /// Iterates `(first, last, packed value)` over all segments.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u128, u128, u64)> + '_ {
        let max: u128 = if K::BITS == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        (0..self.starts.len()).map(move |i| {
            let first = self.starts[i].to_u128();
            let last = self
                .starts
                .get(i + 1)
                .map(|s| s.to_u128() - 1)
                .unwrap_or(max);
            (first, last, self.vals[i])
        })
    }
}

/// Number of elements `<= x` in sorted `a`, without unpredictable branches.
#[inline(always)]
fn branchless_upper_bound<K: Key>(a: &[K], x: K) -> usize {
    let mut base = 0usize;
    let mut len = a.len();
    while len > 1 {
        let half = len / 2;
        // base + half < base + len <= a.len()
        // The step is computed, not branched on: which half holds `x` is
        // unpredictable, and a mispredicted branch per step costs more than
        // the arithmetic.
        let mask = ((a[base + half] <= x) as usize).wrapping_neg();
        base += half & std::hint::black_box(mask);
        len -= half;
    }
    base + (len == 1 && a[base] <= x) as usize
}

/// The whole compiled table.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub strings: Vec<Arc<str>>,
    pub vals: Vec<Val>,
    /// Per value: organisation and label, resolved, so that
    /// [`crate::GeoDb::lookup`] reads one entry instead of three.
    texts: Vec<[Option<Arc<str>>; 2]>,
    pub v4: Family<u32>,
    pub v6: Family<u128>,
}

impl Table {
    pub(crate) fn empty() -> Table {
        Table::assemble(
            Vec::new(),
            vec![Val::NONE],
            Family::single(0),
            Family::single(0),
        )
    }

    fn assemble(
        strings: Vec<Arc<str>>,
        vals: Vec<Val>,
        v4: Family<u32>,
        v6: Family<u128>,
    ) -> Table {
        let get = |id: u32| strings.get(id as usize).cloned();
        let texts = vals.iter().map(|v| [get(v.org), get(v.label)]).collect();
        Table {
            strings,
            vals,
            texts,
            v4,
            v6,
        }
    }

    /// Builds from per-family segment lists of values.
    pub(crate) fn from_segments(
        mut interner: Interner,
        v4: &Segments<Val>,
        v6: &Segments<Val>,
    ) -> Table {
        interner.val(Val::NONE);
        let mut packed = |segs: &Segments<Val>| -> Vec<(u128, u64)> {
            segs.iter()
                .map(|(s, v)| (*s, pack(v, interner.val(*v))))
                .collect()
        };
        let (v4, v6) = (packed(v4), packed(v6));
        Table::assemble(
            interner.strings,
            interner.vals,
            Family::from_segments(&v4),
            Family::from_segments(&v6),
        )
    }

    /// Organisation and label of a packed value.
    #[inline]
    pub(crate) fn texts(&self, packed: u64) -> Option<&[Option<Arc<str>>; 2]> {
        match packed_idx(packed) {
            IDX_NONE => None,
            i => self.texts.get(i as usize),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let strings: usize = self.strings.iter().map(|s| s.len() + 16 + 16).sum();
        strings
            + self.vals.capacity() * std::mem::size_of::<Val>()
            + self.texts.capacity() * 16
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
    }

    /// Serialises into the compressed binary format.
    pub(crate) fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        put_varint(&mut b, self.strings.len() as u128);
        for s in &self.strings {
            put_varint(&mut b, s.len() as u128);
            b.extend_from_slice(s.as_bytes());
        }
        put_varint(&mut b, self.vals.len() as u128);
        for v in &self.vals {
            b.extend_from_slice(&v.country);
            put_varint(&mut b, v.asn as u128);
            put_varint(&mut b, v.org.wrapping_add(1) as u128);
            put_varint(&mut b, v.label.wrapping_add(1) as u128);
        }
        put_family(&mut b, &self.v4);
        put_family(&mut b, &self.v6);
        let mut enc = zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
        // The frame checksum lets the loader detect any damaged byte.
        enc.include_checksum(true)?;
        enc.set_pledged_src_size(Some(b.len() as u64))?;
        std::io::Write::write_all(&mut enc, &b)?;
        enc.finish()
    }

    /// Parses and validates the compressed binary format.
    pub(crate) fn from_bytes(compressed: &[u8]) -> Result<Table, GeoError> {
        let bad = |problem| GeoError::Table { problem };
        let raw = decompress(compressed)?;
        if raw.len() as u64 > MAX_TABLE_BYTES {
            return Err(bad("decompressed table too large"));
        }
        let mut r = Reader { buf: &raw, pos: 0 };
        if r.bytes(8)? != MAGIC {
            return Err(bad("wrong magic (not a smtpscope geo table)"));
        }
        let version = u32::from_le_bytes(r.array4()?);
        if version != FORMAT_VERSION {
            return Err(bad("unsupported table format version"));
        }
        let n_strings = r.count(1)?;
        let mut strings = Vec::with_capacity(n_strings);
        for _ in 0..n_strings {
            let len = r.varint()?;
            if len > MAX_STRING_BYTES as u128 {
                return Err(bad("string too long"));
            }
            let s =
                std::str::from_utf8(r.bytes(len as usize)?).map_err(|_| bad("string not UTF-8"))?;
            strings.push(Arc::from(s));
        }
        let n_vals = r.count(5)?;
        if n_vals == 0 || n_vals >= IDX_NONE as usize {
            return Err(bad("no values, or too many"));
        }
        let mut vals = Vec::with_capacity(n_vals);
        for _ in 0..n_vals {
            let c = r.bytes(2)?;
            let country = [c[0], c[1]];
            if country != [0, 0]
                && Country::parse(std::str::from_utf8(&country).unwrap_or("")).map(|c| c.0)
                    != Some(country)
            {
                return Err(bad("invalid country code"));
            }
            let asn = r.varint_u32()?;
            let org = r.varint_u32()?.wrapping_sub(1);
            let label = r.varint_u32()?.wrapping_sub(1);
            for s in [org, label] {
                if s != NO_STR && s as usize >= strings.len() {
                    return Err(bad("string index out of range"));
                }
            }
            vals.push(Val {
                country,
                asn,
                org,
                label,
            });
        }
        let v4 = get_family::<u32>(&mut r, &vals)?;
        let v6 = get_family::<u128>(&mut r, &vals)?;
        if r.pos != raw.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Table::assemble(strings, vals, v4, v6))
    }
}

/// The table's bytes, decompressed (at most [`MAX_TABLE_BYTES`] + 1 of them). A frame that
/// names its size (as [`Table::to_bytes`] writes it) is decompressed in one call into a buffer
/// of that size; anything else, or a frame whose data disagrees with its size, goes through
/// the stream decoder, which grows its buffer as it reads and copies through its window (that
/// was 10% of the decoding's instructions).
fn decompress(compressed: &[u8]) -> Result<Vec<u8>, GeoError> {
    use std::io::Read;
    let bad = |problem| GeoError::Table { problem };
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(compressed) {
        if size <= MAX_TABLE_BYTES {
            if let Ok(raw) = zstd::bulk::decompress(compressed, size as usize) {
                return Ok(raw);
            }
        }
    }
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(|_| bad("not zstd data"))?;
    let mut raw = Vec::new();
    decoder
        .take(MAX_TABLE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|_| bad("corrupt zstd data"))?;
    Ok(raw)
}

fn put_varint(b: &mut Vec<u8>, mut x: u128) {
    loop {
        let byte = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            b.push(byte);
            return;
        }
        b.push(byte | 0x80);
    }
}

fn put_family<K: Key>(b: &mut Vec<u8>, f: &Family<K>) {
    put_varint(b, f.starts.len() as u128);
    let mut prev = 0u128;
    for s in &f.starts {
        put_varint(b, s.to_u128() - prev);
        prev = s.to_u128();
    }
    for v in &f.vals {
        put_varint(b, packed_idx(*v) as u128);
    }
}

fn get_family<K: Key>(r: &mut Reader<'_>, all_vals: &[Val]) -> Result<Family<K>, GeoError> {
    let bad = |problem| GeoError::Table { problem };
    let n = r.count(2)?;
    if n == 0 {
        return Err(bad("empty segment list"));
    }
    let max: u128 = if K::BITS == 32 {
        u32::MAX as u128
    } else {
        u128::MAX
    };
    let mut starts = Vec::with_capacity(n);
    let mut prev = 0u128;
    for i in 0..n {
        let d = r.varint()?;
        if (i == 0) != (d == 0) {
            return Err(bad("segment starts not strictly increasing from 0"));
        }
        prev = prev
            .checked_add(d)
            .filter(|x| *x <= max)
            .ok_or_else(|| bad("segment start out of range"))?;
        starts.push(K::from_u128(prev));
    }
    let mut vals = Vec::with_capacity(n);
    for _ in 0..n {
        let v = r.varint_u32()?;
        let val = all_vals
            .get(v as usize)
            .ok_or_else(|| bad("value index out of range"))?;
        vals.push(pack(val, v));
    }
    Ok(Family::new(starts, vals))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], GeoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(GeoError::Table {
                problem: "truncated",
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array4(&mut self) -> Result<[u8; 4], GeoError> {
        let b = self.bytes(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// A LEB128 varint of up to [`MAX_VARINT_BYTES`] bytes (128 bits; bits past 128 refused),
    /// read from the bytes in place: the first [`SHORT_VARINT_BYTES`] (every IPv4 delta and
    /// value index) gathered in a `u64`, the rest of a longer one (IPv6 deltas) in a `u128`.
    /// Reading a byte at a time through [`Reader::bytes`], with its bounds check and `Result`
    /// per byte, made start-up's decoding of the built-in table 564 M instructions (501 M so).
    fn varint(&mut self) -> Result<u128, GeoError> {
        let buf = self.buf;
        let start = self.pos;
        let mut p = start;
        let short_end = buf.len().min(start + SHORT_VARINT_BYTES);
        let (mut low, mut shift) = (0u64, 0u32);
        while p < short_end {
            let b = buf[p];
            p += 1;
            low |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                self.pos = p;
                return Ok(u128::from(low));
            }
            shift += 7;
        }
        let mut x = u128::from(low);
        let end = buf.len().min(start + MAX_VARINT_BYTES);
        while p < end {
            let b = buf[p];
            p += 1;
            let part = u128::from(b & 0x7f);
            // From shift 122 on, fewer than 7 bits of a u128 are left.
            if shift > 121 && part >> (128 - shift) != 0 {
                return Err(GeoError::Table {
                    problem: "varint overflow",
                });
            }
            x |= part << shift;
            if b & 0x80 == 0 {
                self.pos = p;
                return Ok(x);
            }
            shift += 7;
        }
        Err(GeoError::Table {
            problem: if end - start < MAX_VARINT_BYTES {
                "truncated"
            } else {
                "varint too long"
            },
        })
    }

    #[inline]
    fn varint_u32(&mut self) -> Result<u32, GeoError> {
        u32::try_from(self.varint()?).map_err(|_| GeoError::Table {
            problem: "value out of range",
        })
    }

    /// A count of items each at least `min_bytes` long, checked against what is left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, GeoError> {
        let n = self.varint()?;
        let left = (self.buf.len() - self.pos) as u128;
        if n.saturating_mul(min_bytes as u128) > left {
            return Err(GeoError::Table {
                problem: "count larger than the data",
            });
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing() {
        let v = Val {
            country: *b"ZA",
            asn: u32::MAX,
            org: 1,
            label: 2,
        };
        let p = pack(&v, 12345);
        assert_eq!(
            (packed_country(p), packed_asn(p), packed_idx(p)),
            (Country::parse("ZA"), u32::MAX, 12345)
        );
        let p = pack(&Val::NONE, u32::MAX);
        assert_eq!(
            (packed_country(p), packed_asn(p), packed_idx(p)),
            (None, 0, IDX_NONE)
        );
    }

    #[test]
    fn upper_bound() {
        let a = [0u32, 10, 20, 30];
        assert_eq!(branchless_upper_bound(&a, 0), 1);
        assert_eq!(branchless_upper_bound(&a, 9), 1);
        assert_eq!(branchless_upper_bound(&a, 10), 2);
        assert_eq!(branchless_upper_bound(&a, 35), 4);
        assert_eq!(branchless_upper_bound::<u32>(&[], 35), 0);
        assert_eq!(branchless_upper_bound(&[5u32], 4), 0);
    }

    #[test]
    fn family_find_across_blocks() {
        let f = Family::<u32>::new(
            vec![0, 0x0001_0005, 0x0003_0000, 0xffff_fff0],
            vec![0, 1, 2, 3],
        );
        assert_eq!(f.find(0), 0);
        assert_eq!(f.find(0x0001_0004), 0);
        assert_eq!(f.find(0x0001_0005), 1);
        assert_eq!(f.find(0x0002_1234), 1);
        assert_eq!(f.find(0x0003_0000), 2);
        assert_eq!(f.find(0x8000_0000), 2);
        assert_eq!(f.find(u32::MAX), 3);
        let g = Family::<u128>::new(vec![0, 1 << 100, u128::MAX], vec![0, 1, 2]);
        assert_eq!(g.find(5), 0);
        assert_eq!(g.find((1 << 100) + 7), 1);
        assert_eq!(g.find(u128::MAX), 2);
    }

    #[test]
    fn family_find_dense_block_matches_plain_search() {
        // 1000 segments inside one /16 block, plus a few outside.
        let mut starts: Vec<u32> = vec![0, 5];
        starts.extend((0..1000u32).map(|i| 0x0a00_0000 + i * 37 + (i % 5)));
        // 200 segments inside one /24 of that /16: sub-index plus samples.
        starts.extend((0..200u32).map(|i| 0x0a00_f000 + i));
        starts.push(0x0a01_0000);
        starts.push(0x0b00_0000);
        let vals: Vec<u64> = (0..starts.len() as u64).collect();
        let f = Family::<u32>::new(starts.clone(), vals);
        let plain = |ip: u32| (starts.partition_point(|s| *s <= ip) - 1) as u64;
        for ip in (0x09ff_ff00u32..0x0a01_0010)
            .step_by(3)
            .chain([0, 4, 5, 6, u32::MAX])
        {
            assert_eq!(f.find(ip), plain(ip), "{ip:#x}");
        }
    }

    #[test]
    fn varint_round_trip() {
        for x in [
            0u128,
            1,
            127,
            128,
            300,
            u32::MAX as u128,
            u128::MAX,
            u128::MAX - 1,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, x);
            let mut r = Reader { buf: &b, pos: 0 };
            assert_eq!(r.varint().unwrap(), x);
            assert_eq!(r.pos, b.len());
        }
        // Every length from 1 to 19 bytes, at both ends of its range, read back whole and
        // refused when cut short.
        for bits in (0..=126u32).step_by(7) {
            let low = if bits == 0 { 0 } else { 1u128 << bits };
            let high = 1u128.checked_shl(bits + 7).map_or(u128::MAX, |h| h - 1);
            for x in [low, low + 1, high] {
                let mut b = Vec::new();
                put_varint(&mut b, x);
                b.push(0x55);
                let mut r = Reader { buf: &b, pos: 0 };
                assert_eq!(r.varint().unwrap(), x, "{x:#x}");
                assert_eq!(r.pos, b.len() - 1, "{x:#x}");
                for cut in 0..b.len() - 1 {
                    let mut r = Reader {
                        buf: &b[..cut],
                        pos: 0,
                    };
                    assert!(r.varint().is_err(), "{x:#x} cut to {cut} bytes");
                }
            }
        }
        // Random bytes read the same as one byte at a time (`reference`), values, lengths and
        // errors alike, from every position.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            // Mostly continuation bytes, so that long varints and all their ends occur.
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    (r as u8 & 0x7f) | if r % 8 == 0 { 0 } else { 0x80 }
                })
                .collect();
            for start in 0..=b.len() {
                let mut fast = Reader {
                    buf: &b,
                    pos: start,
                };
                let got = fast.varint().map(|x| (x, fast.pos));
                assert_eq!(
                    got.map_err(|e| e.to_string()),
                    reference(&b, start),
                    "{b:02x?} at {start}"
                );
            }
        }
        // 19 bytes of 0xff then 0x7f would be > 128 bits.
        let mut b = vec![0xffu8; 18];
        b.push(0x7f);
        let mut r = Reader { buf: &b, pos: 0 };
        assert!(r.varint().is_err());
    }

    /// A varint read a byte at a time with every check (the decoder before the word path).
    fn reference(b: &[u8], start: usize) -> Result<(u128, usize), String> {
        let err = |problem| Err(GeoError::Table { problem }.to_string());
        let mut x = 0u128;
        for i in 0..19u32 {
            let Some(&byte) = b.get(start + i as usize) else {
                return err("truncated");
            };
            let (shift, part) = (i * 7, u128::from(byte & 0x7f));
            if shift > 121 && part >> (128 - shift) != 0 {
                return err("varint overflow");
            }
            x |= part << shift;
            if byte & 0x80 == 0 {
                return Ok((x, start + i as usize + 1));
            }
        }
        err("varint too long")
    }

    /// A table of a few segments in both families, with texts.
    fn small_table() -> Table {
        let mut i = Interner::default();
        let org = i.string("Example Org");
        let label = i.string("dial-up");
        let v = |c: &[u8; 2], asn: u32| Val {
            country: *c,
            asn,
            org,
            label,
        };
        let v4 = vec![
            (0, Val::NONE),
            (0x0a00_0000, v(b"DE", 3320)),
            (0x0a01_0000, Val::NONE),
            (0xc000_0200, v(b"FR", 0)),
        ];
        let v6 = vec![(0, Val::NONE), (0x2001_0db8 << 96, v(b"NL", 1136))];
        Table::from_segments(i, &v4, &v6)
    }

    /// What a table holds, comparable.
    fn contents(t: &Table) -> impl PartialEq + std::fmt::Debug {
        (
            t.strings.clone(),
            t.vals
                .iter()
                .map(|v| (v.country, v.asn, v.org, v.label))
                .collect::<Vec<_>>(),
            (t.v4.starts.clone(), t.v4.vals.clone()),
            (t.v6.starts.clone(), t.v6.vals.clone()),
        )
    }

    #[test]
    fn tables_load_alike_however_zstd_frames_them() {
        let t = small_table();
        let written = t.to_bytes().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&written),
            Ok(Some(_))
        ));
        let raw = zstd::decode_all(&written[..]).unwrap();
        // A frame without its size (streamed), and two frames whose first names only its own
        // size: both go through the stream decoder.
        let unsized_frame = {
            let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            std::io::Write::write_all(&mut e, &raw).unwrap();
            e.finish().unwrap()
        };
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&unsized_frame),
            Ok(None)
        ));
        let (a, b) = raw.split_at(raw.len() / 2);
        let mut two_frames = zstd::bulk::compress(a, 3).unwrap();
        two_frames.extend(zstd::bulk::compress(b, 3).unwrap());
        for bytes in [&written, &unsized_frame, &two_frames] {
            let back = Table::from_bytes(bytes).unwrap();
            assert_eq!(contents(&back), contents(&t));
        }
        // Damaged in the middle: refused whichever way it is read.
        let mut damaged = written.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0x40;
        assert!(Table::from_bytes(&damaged).is_err());
    }
}
