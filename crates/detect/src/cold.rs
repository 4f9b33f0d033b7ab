//! Per-entity state that is packed while its entity is quiet.
//!
//! An ISP's accounts are mostly quiet: one sends three messages a day, and between them its
//! detector state — windows, the day's hours and addresses, a baseline — sits in memory as live
//! structs, vectors and boxes (auth-hijack's account: about 600 bytes in six allocations). A
//! [`Cold`] holds such a state either **live** (`Hot`) or **packed** (`Frozen`): one exactly
//! sized byte string of the state's postcard encoding (positional: no field names or type
//! markers, integers as varints), written when
//! the owner's sweep finds the entity idle (`[detect.limits] pack_idle_after`, default
//! [`FREEZE_AFTER_SECS`]; four times that for an entity never packed or back after a short
//! pause, while its map has room: [`SPARE_IDLE_PERIODS`]) and decoded back the next
//! time the entity is written to. Nothing is lost either way: the packed form is the state's
//! whole serde form, so a state thawed is the state frozen (tested per type by re-encoding), and
//! detection cannot tell the difference — only memory and a decode per thaw can (issue 12;
//! docs/PERFORMANCE.md, "Memory per tracked account").
//!
//! Only for types whose serde shape is positional-safe (no `skip_serializing_if`, no
//! flattening: a skipped field would shift the ones after it). A snapshot holds a `Cold` as the
//! state itself, frozen or not, so snapshots are unchanged.

use std::cell::{Cell, RefCell};
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLock, Weak};

use maillog::Ts;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zstd::zstd_safe::{CCtx, CDict, CParameter, DCtx, DDict, ParamSwitch};

use crate::bounded::BoundedMap;

/// Default of `[detect.limits] pack_idle_after`: the event time an entity must have been idle
/// for before its state is packed (one idle period; an entity never packed, or back after a
/// short pause, waits [`SPARE_IDLE_PERIODS`] while its map has room). One hour, the driver's
/// sweep period, so an entity active within the hour stays live and most of the decodes are of
/// entities back after a quiet hour. Our own choice; the packed state is exactly the live one,
/// so this trades only CPU against memory.
pub const FREEZE_AFTER_SECS: i64 = 3_600;

/// Idle periods (`pack_idle_after`) an entity is kept live, instead of one, once it has come
/// back from a pack after a pause of less than that: an account that sends every two or three
/// hours is otherwise packed at every sweep only to be thawed soon after, which is most of
/// what packing costs on a busy population (a pack and a thaw are about 10 µs; on the
/// benchmark log packing took 22% of one thread's CPU: with it off the same alerts took
/// 9.4–9.7 CPU-s instead of 12.2–12.6). Judged by the pause that ended its last pack, at the
/// first sweep after it came back, and kept until it is packed again; so an account that sends
/// a few messages a day, hours apart (what `account_memory` measures), is packed after one
/// idle period as before. Our own idea.
pub const SPARE_IDLE_PERIODS: i64 = 4;

/// A map spares idle states ([`SPARE_IDLE_PERIODS`]) only while it holds less than this share
/// (1/n) of its cap: sparing is CPU saved with memory, and a map that fills up — a million
/// accounts against the default cap of 500,000, or a flood of invented names — packs after one
/// idle period as it did before (without this, `account_memory` at 1 M accounts kept every
/// state live: its entities were evicted before they were ever idle four hours, 1,894 bytes
/// per tracked account). Our own choice.
pub const SPARE_BELOW_CAP_SHARE: usize = 2;

/// The unit of a state's pack mark ([`Sweep`]): an hour of event time, the driver's sweep
/// period, kept modulo [`MARK_MODULUS`] in a byte.
const MARK_UNIT_MICROS: i64 = 3_600 * 1_000_000;

/// Marks are hours modulo this (about ten days), so that they fit in a byte beside
/// [`NO_MARK`]. A state packed for longer may look, in about [`SPARE_IDLE_PERIODS`] cases of
/// [`MARK_MODULUS`], as if it came back soon: it is then kept live a few hours longer, which
/// costs memory only.
const MARK_MODULUS: i64 = 255;

/// The mark of a state never packed.
const NO_MARK: u8 = 255;

/// One sweep's packing: which states are idle, and which of those it spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// States last touched before this are idle, and packed unless spared.
    pub before: Ts,
    /// An idle state that came back from its last pack after a short pause
    /// ([`Sweep::short_pause`]) is spared while it was touched since this
    /// ([`SPARE_IDLE_PERIODS`]).
    pub spare_since: Ts,
    /// Hours of pause that count as short.
    pub short_hours: u8,
}

impl Sweep {
    /// The sweep at event time `now` of an engine that packs states idle `idle_after_secs`.
    pub fn at(now: Ts, idle_after_secs: i64) -> Sweep {
        let period = idle_after_secs.max(0);
        let spare = period.saturating_mul(SPARE_IDLE_PERIODS);
        Sweep {
            before: now.plus_secs(-period),
            spare_since: now.plus_secs(-spare),
            // Whole hours (the marks' unit), at least one.
            short_hours: u8::try_from(
                (spare.saturating_mul(1_000_000) / MARK_UNIT_MICROS).clamp(1, MARK_MODULUS - 1),
            )
            .unwrap_or(u8::MAX),
        }
    }

    /// Whether a state whose last touch before its pack had mark `before_pack` and which was
    /// touched at `touched` since it came back (the sweep after, so within an hour or so of its
    /// return) paused for less than [`Sweep::short_hours`].
    fn short_pause(&self, before_pack: u8, touched: Ts) -> bool {
        if before_pack == NO_MARK {
            return false;
        }
        let pause = (i64::from(mark_of(touched)) - i64::from(before_pack)).rem_euclid(MARK_MODULUS);
        pause < i64::from(self.short_hours)
    }
}

impl From<Ts> for Sweep {
    /// A sweep that packs every state last touched before `before`, sparing none.
    fn from(before: Ts) -> Sweep {
        Sweep {
            before,
            spare_since: Ts(i64::MAX),
            short_hours: 0,
        }
    }
}

/// The mark of event time `ts`: its hour, modulo [`MARK_MODULUS`].
fn mark_of(ts: Ts) -> u8 {
    // In 0..MARK_MODULUS (254 at most), so never NO_MARK.
    u8::try_from(ts.0.div_euclid(MARK_UNIT_MICROS).rem_euclid(MARK_MODULUS)).unwrap_or(0)
}

/// Packed states a map holds, uncompressed, before it learns a compression dictionary from
/// them ([`ColdMap`]): enough that the dictionary sees what the population's states share
/// (domains, address and HELO shapes, the fields' layout) rather than a few accounts'. Our own
/// choice.
pub const TRAIN_MIN_STATES: usize = 1_000;

/// Packed states a dictionary is learned from, at most (the first the map yields). Training
/// is a one-time cost that grows with the samples, and on the benchmark's states 1,000 or
/// 2,000 samples gave dictionaries as good as 5,000 (hijack states 96.5, 95.9 and 96.3 bytes
/// compressed, measured with zstd's parameter search, before [`learn_dictionary`]).
pub const TRAIN_MAX_SAMPLES: usize = 2_000;

/// The segment size (FASTCOVER's `k`) dictionaries are learned with ([`learn_dictionary`]):
/// the size of the pieces of sample the trainer picks to fill the dictionary. zstd's own
/// search picked 1,024 to 1,998 on our states; 1,511 is the middle of its candidates and, on
/// `account_memory` at 100 k accounts, 982 bytes per tracked account against 987 for either
/// end and 984 for zstd's search.
pub const TRAIN_SEGMENT_BYTES: u32 = 1_511;

/// The d-mer size (FASTCOVER's `d`): the length of the byte strings the trainer counts; 8 is
/// what `ZDICT_trainFromBuffer` uses.
pub const TRAIN_DMER_BYTES: u32 = 8;

/// Log2 of the trainer's frequency table (FASTCOVER's `f`): zstd's default 20, a table of
/// 6 × 2^20 bytes while learning.
pub const TRAIN_FREQUENCY_LOG: u32 = 20;

/// FASTCOVER's `accel`: zstd's default 1 (the slowest and most accurate of 1–10).
pub const TRAIN_ACCELERATION: u32 = 1;

/// A learned dictionary's size, at most. zstd's trainer advises samples of 10 to 100 times
/// the dictionary's size; [`SAMPLE_BYTES_PER_DICTIONARY_BYTE`] keeps the first bound.
pub const DICTIONARY_MAX_BYTES: usize = 16 * 1024;

/// Sample bytes per dictionary byte, at least (zstd's `ZDICT_trainFromBuffer` documentation).
pub const SAMPLE_BYTES_PER_DICTIONARY_BYTE: usize = 10;

/// The zstd level packed states are compressed at. Level 1 rather than zstd's default 3:
/// measured on `account_memory` at 100 k accounts, level 3 packs states about 8 bytes smaller
/// but its prepared dictionaries take 1.87 MB against 0.43 MB for the four maps, a fixed cost
/// that outweighs the gain below some 60,000 accounts, and it takes more CPU.
pub const COMPRESSION_LEVEL: i32 = 1;

/// The share of its training samples' bytes (percent) a learned dictionary must save for its
/// map to compress with it; below, the map keeps packing its states uncompressed and learns no
/// more. Compressing a state is zstd's fixed work per frame (about 8,000–12,000 instructions
/// at each pack, 3,600 at each thaw, docs/PERFORMANCE.md), worth it for states a dictionary
/// shrinks by a third or more (auth-hijack's accounts, extrusion's entities: 40–49% on the
/// benchmark log) and not for states it barely touches (auth-bruteforce's accounts, 38 bytes
/// of which it saved 3%). Our own choice: when it was set (2026-12-06), any value from 5 to 25
/// made the same choice for each of the four maps on that log; by 2026-12-07 auth-bruteforce's
/// states saved 8–10% there and on held-out seeds (2–3 bytes a state), which
/// [`MIN_DICTIONARY_SAVING_BYTES`] decides.
pub const MIN_DICTIONARY_SAVING_PERCENT: u64 = 10;

/// The bytes a learned dictionary must save on an average training sample (one state) for its
/// map to compress with it, whatever the share: each compressed state costs zstd's work per
/// frame at every pack and thaw (about 18,400 instructions a pack and 4,800 a thaw on the
/// benchmark log, docs/PERFORMANCE.md, "A dictionary only where it saves bytes"), paid for
/// only where it saves tens of bytes a state. Measured per map (bytes saved a state, at
/// training): on the benchmark log and held-out simulated seeds 101 and 102, auth-hijack 140–145,
/// extrusion 107–113, helo-anomaly 22–26 (states of about 60 bytes), auth-bruteforce 2–3; on
/// `account_memory`'s accounts 116, 101, 87 (two HELO samples a state) and 0. Our own choice:
/// any value from 27 to 87 makes the same choice for every map of these runs; 48 is about
/// their geometric middle.
pub const MIN_DICTIONARY_SAVING_BYTES: u64 = 48;

/// The first byte of a packed state that is not compressed (otherwise the first bytes are the
/// dictionary's number, LEB128, from 1).
const UNCOMPRESSED: u8 = 0;

thread_local! {
    /// Set while this thread encodes or decodes a packed state.
    static PACKING: Cell<bool> = const { Cell::new(false) };
    /// This thread's zstd decompression contexts (one a dictionary, by number) and output
    /// buffer, made at their first use ([`Decompressor`]).
    static DECOMPRESSOR: RefCell<Decompressor> = const { RefCell::new(Decompressor::new()) };
}

/// A thread's zstd decompression contexts, one a dictionary number, and the output buffer
/// they share. A context remembers the dictionary it last decoded with: given another, zstd
/// takes the dictionary for cold and decodes with its prefetching decoder, which costs more
/// instructions on our small frames than the plain one. The thaws of a sweep interleave the
/// maps (an account's message thaws its auth-hijack, HELO and extrusion states in turn), so one
/// context shared by all switched dictionaries at almost every frame. A context is about
/// 96 KB of zstd's own memory (`DCtx::sizeof`), so a thread holds one per map that compresses
/// (three on the benchmark log) instead of one. Our own measurement (docs/PERFORMANCE.md,
/// "Steps of 2026-12-07, evening").
struct Decompressor {
    /// Contexts by dictionary number − 1 (numbers are small: one a live map).
    contexts: Vec<Option<DCtx<'static>>>,
    out: Vec<u8>,
}

impl Decompressor {
    const fn new() -> Self {
        Decompressor {
            contexts: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The context for dictionary `number` (made at its first use) and the output buffer.
    fn for_dictionary(&mut self, number: u32) -> (&mut DCtx<'static>, &mut Vec<u8>) {
        let i = number as usize - 1;
        if self.contexts.len() <= i {
            self.contexts.resize_with(i + 1, || None);
        }
        let dctx = self.contexts[i].get_or_insert_with(DCtx::create);
        (dctx, &mut self.out)
    }
}

/// The dictionaries of the maps alive in this process, by number − 1: a compressed state names
/// its dictionary by number, so decoding needs no access to the map that packed it. The map
/// ([`Packer`]) owns its dictionary; this table only refers to it, and a number whose map is
/// gone is given to the next map that learns, so the table holds at most one entry per live
/// map however many engines a process makes and drops (a cluster worker does, at each
/// rebalance). A state lives in its map, so its dictionary outlives it.
static DICTIONARIES: RwLock<Vec<Weak<DDict<'static>>>> = RwLock::new(Vec::new());

fn register_dictionary(d: &Arc<DDict<'static>>) -> u32 {
    let mut all = DICTIONARIES.write().unwrap_or_else(|e| e.into_inner());
    let i = match all.iter().position(|w| w.strong_count() == 0) {
        Some(i) => {
            all[i] = Arc::downgrade(d);
            i
        }
        None => {
            all.push(Arc::downgrade(d));
            all.len() - 1
        }
    };
    u32::try_from(i + 1).expect("fewer than 4 billion live maps")
}

fn dictionary(number: u32) -> Arc<DDict<'static>> {
    let all = DICTIONARIES.read().unwrap_or_else(|e| e.into_inner());
    all[number as usize - 1]
        .upgrade()
        .expect("a state's dictionary lives as long as its map")
}

/// Entries of the process's dictionary table (live or free), for tests.
#[cfg(test)]
fn dictionary_table_len() -> usize {
    DICTIONARIES.read().unwrap_or_else(|e| e.into_inner()).len()
}

fn write_leb128(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_leb128(bytes: &[u8]) -> (u32, &[u8]) {
    let mut n = 0u32;
    for (i, b) in bytes.iter().enumerate() {
        n |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (n, &bytes[i + 1..]);
        }
    }
    unreachable!("our own encoding ends its number")
}

/// Learn a dictionary of at most `capacity` bytes from `samples` (concatenated, lengths in
/// `sizes`) with zstd's FASTCOVER trainer at fixed parameters ([`TRAIN_SEGMENT_BYTES`],
/// [`TRAIN_DMER_BYTES`]), once over all the samples; None when zstd cannot.
///
/// zstd's `ZDICT_trainFromBuffer` (which `zstd-safe` wraps) searches the segment size
/// instead: it builds a dictionary for each of several sizes from three quarters of the
/// samples and compresses the rest with each, about four times the work (1.03 G of a
/// 14.0 G-instruction `analyze` of a 303 MB log, for four maps). On our states the size it
/// picked was 1,024–1,998 and, measured with `account_memory`, every fixed size in that range
/// packs as well (docs/PERFORMANCE.md). The fixed-parameter trainer is in zstd's
/// static-linking-only API, which `zstd-safe` does not wrap: hence the one FFI call here.
fn learn_dictionary(samples: &[u8], sizes: &[usize], capacity: usize) -> Option<Vec<u8>> {
    let count = u32::try_from(sizes.len()).ok()?;
    if sizes.iter().sum::<usize>() != samples.len() {
        return None;
    }
    let params = zstd_sys::ZDICT_fastCover_params_t {
        k: TRAIN_SEGMENT_BYTES,
        d: TRAIN_DMER_BYTES,
        f: TRAIN_FREQUENCY_LOG,
        steps: 0,
        nbThreads: 0,
        // 1.0: learn from every sample (no held-out share: nothing is being searched).
        splitPoint: 1.0,
        accel: TRAIN_ACCELERATION,
        shrinkDict: 0,
        shrinkDictMaxRegression: 0,
        zParams: zstd_sys::ZDICT_params_t {
            compressionLevel: COMPRESSION_LEVEL,
            notificationLevel: 0,
            dictID: 0,
        },
    };
    let mut dict: Vec<u8> = Vec::with_capacity(capacity);
    // SAFETY: the dictionary buffer is `dict`'s allocation of `capacity` bytes, which zstd
    // writes at most; the samples are `samples`, whose length is the sum of the `count`
    // entries of `sizes` (checked above); zstd keeps no pointer after it returns.
    let written = unsafe {
        zstd_sys::ZDICT_trainFromBuffer_fastCover(
            dict.as_mut_ptr().cast(),
            dict.capacity(),
            samples.as_ptr().cast(),
            sizes.as_ptr(),
            count,
            params,
        )
    };
    // SAFETY: a plain function of the returned code.
    if unsafe { zstd_sys::ZDICT_isError(written) } != 0 || written > dict.capacity() {
        return None;
    }
    // SAFETY: zstd wrote `written` (≤ capacity) bytes of dictionary from the start.
    unsafe { dict.set_len(written) };
    Some(dict)
}

/// A map's learned compression of its packed states (see [`ColdMap`]).
#[derive(Default)]
pub struct Packer {
    /// Shared with the [`PackWork`] handed to another thread to be compressed.
    trained: Option<Arc<Trained>>,
    /// The map's length when learning last failed; tried again at twice that.
    failed_at: Option<usize>,
    /// What the map's dictionary saved on its samples, when that was too little
    /// ([`Saving::worth_it`]): the map packs uncompressed and learns no more.
    not_worth_it: Option<Saving>,
}

struct Trained {
    number: u32,
    compress: CDict<'static>,
    decompress: Arc<DDict<'static>>,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("dictionary", &self.trained.as_ref().map(|t| t.number))
            .field("failed_at", &self.failed_at)
            .field("not_worth_it", &self.not_worth_it)
            .finish()
    }
}

impl Packer {
    fn should_train(&self, len: usize) -> bool {
        self.trained.is_none()
            && self.not_worth_it.is_none()
            && len >= TRAIN_MIN_STATES
            && self.failed_at.is_none_or(|at| len >= at.saturating_mul(2))
    }

    /// Learn from `samples` (concatenated, lengths in `sizes`); nothing when too few.
    fn train(&mut self, samples: &[u8], sizes: &[usize], len: usize) {
        if sizes.len() < TRAIN_MIN_STATES {
            return;
        }
        let capacity = DICTIONARY_MAX_BYTES.min(samples.len() / SAMPLE_BYTES_PER_DICTIONARY_BYTE);
        let prepared = learn_dictionary(samples, sizes, capacity).and_then(|dict| {
            let compress = CDict::try_create(&dict, COMPRESSION_LEVEL)?;
            let decompress = DDict::try_create(&dict)?;
            Some((compress, decompress))
        });
        match prepared {
            Some((compress, decompress)) => {
                let saved = saving(&compress, samples, sizes);
                if !saved.worth_it() {
                    self.not_worth_it = Some(saved);
                    return;
                }
                let decompress = Arc::new(decompress);
                self.trained = Some(Arc::new(Trained {
                    number: register_dictionary(&decompress),
                    compress,
                    decompress,
                }));
            }
            None => self.failed_at = Some(len),
        }
    }

    fn dictionary_bytes(&self) -> usize {
        self.trained
            .as_ref()
            .map_or(0, |t| t.compress.sizeof() + t.decompress.sizeof())
    }
}

/// What a dictionary saves on a map's training samples ([`saving`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Saving {
    /// Samples measured.
    states: u64,
    /// Their bytes as packed uncompressed.
    plain: u64,
    /// Their bytes as [`Compressor::pack`] would keep them.
    kept: u64,
}

impl Saving {
    /// The share (percent, rounded down) of the plain bytes saved.
    fn percent(&self) -> u64 {
        (self.saved() * 100).checked_div(self.plain).unwrap_or(0)
    }

    /// Bytes saved on an average sample (rounded down).
    fn bytes_per_state(&self) -> u64 {
        self.saved().checked_div(self.states).unwrap_or(0)
    }

    fn saved(&self) -> u64 {
        self.plain.saturating_sub(self.kept)
    }

    /// Whether compressing with the dictionary pays: it saves at least
    /// [`MIN_DICTIONARY_SAVING_PERCENT`] of the bytes and [`MIN_DICTIONARY_SAVING_BYTES`] a
    /// state.
    fn worth_it(&self) -> bool {
        self.percent() >= MIN_DICTIONARY_SAVING_PERCENT
            && self.bytes_per_state() >= MIN_DICTIONARY_SAVING_BYTES
    }
}

/// What compressing each of `samples` (concatenated, lengths in `sizes`: states' uncompressed
/// packed forms without their first byte) with `dict` saves, counted as [`Compressor::pack`]
/// keeps them (a state compressed only when that is shorter; the dictionary's number taken as
/// one byte, as it is for the first 127). Nothing saved when a size is out of range.
fn saving(dict: &CDict<'static>, samples: &[u8], sizes: &[usize]) -> Saving {
    let Some(mut cctx) = context(dict) else {
        return Saving::default();
    };
    let mut s = Saving::default();
    let mut frame = Vec::new();
    let mut at = 0;
    for &n in sizes {
        let Some(sample) = samples.get(at..at + n) else {
            return Saving::default();
        };
        at += n;
        let stored = n as u64 + 1;
        frame.clear();
        frame.reserve(zstd::zstd_safe::compress_bound(n));
        let packed = match cctx.compress2(&mut frame, sample) {
            Ok(_) => frame.len() as u64 + 1,
            Err(_) => stored,
        };
        s.states += 1;
        s.plain += stored;
        s.kept += packed.min(stored);
    }
    s
}

/// A compression context using the dictionary `dict`.
fn context<'a>(dict: &'a CDict<'_>) -> Option<CCtx<'a>> {
    let mut c = CCtx::try_create()?;
    c.ref_cdict(dict).ok()?;
    // The number in front says which dictionary; zstd's own id and checksum would only
    // repeat what our own encoding guarantees.
    c.set_parameter(CParameter::DictIdFlag(false)).ok()?;
    c.set_parameter(CParameter::ChecksumFlag(false)).ok()?;
    c.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
    // Literals (the bytes no dictionary match covers) are not Huffman-coded: a state is
    // one small frame, and coding its few literals meant building a Huffman table for each
    // frame when packing and decoding through one when thawing. Without it `analyze
    // --threads 1` of the benchmark log took about 2% less CPU (eight paired runs on the
    // whole log, from 0.4% more to 4.0% less; alerts identical), for 9–13 more bytes per
    // tracked account (`account_memory`: 978 against 965 at 100 k accounts, 965 against
    // 956 at 1 M; docs/PERFORMANCE.md, "Packed states' literals not Huffman-coded").
    c.set_parameter(CParameter::LiteralCompressionMode(ParamSwitch::Disable))
        .ok()?;
    Some(c)
}

impl Trained {
    /// A compression context using the dictionary.
    fn context(&self) -> Option<CCtx<'_>> {
        context(&self.compress)
    }
}

/// Buffers and the compression context reused across the states of one sweep.
#[derive(Default)]
struct Scratch<'a> {
    /// A state's uncompressed packed form ([`encode_plain`]).
    plain: Vec<u8>,
    compressor: Compressor<'a>,
}

/// Compresses packed states with a map's dictionary (see [`Compressor::pack`]).
#[derive(Default)]
struct Compressor<'a> {
    frame: Vec<u8>,
    packed: Vec<u8>,
    /// Made at the first state, when the packer has a dictionary.
    context: Option<Option<CCtx<'a>>>,
}

impl<'a> Compressor<'a> {
    /// `plain` (a state's uncompressed packed form, [`UNCOMPRESSED`] first, its mark last) as
    /// it is kept: compressed when the packer has a dictionary and that is shorter.
    fn pack(&mut self, packer: &'a Packer, plain: &[u8]) -> Box<[u8]> {
        self.compress(packer.trained.as_deref(), plain)
            .unwrap_or_else(|| Box::from(plain))
    }

    /// `plain` compressed with `trained`'s dictionary (its mark kept last), when there is one
    /// and that is shorter.
    fn compress(&mut self, trained: Option<&'a Trained>, plain: &[u8]) -> Option<Box<[u8]>> {
        let t = trained?;
        let (sealed, mark) = unseal(plain);
        let body = sealed.get(1..)?;
        let context = self.context.get_or_insert_with(|| t.context());
        let cctx = context.as_mut()?;
        // zstd writes from the buffer's start, so the frame goes to its own buffer.
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(body.len()));
        cctx.compress2(&mut self.frame, body).ok()?;
        self.packed.clear();
        write_leb128(&mut self.packed, t.number);
        self.packed.extend_from_slice(&self.frame);
        seal(&mut self.packed, mark);
        (self.packed.len() < plain.len()).then(|| Box::from(&self.packed[..]))
    }
}

/// States of one [`ColdMap`] packed uncompressed by [`ColdMap::freeze_idle_deferred`], to be
/// compressed on another thread ([`PackWork::compress`]) and put back in their map
/// ([`ColdMap::packed_back`]). Compressing is most of packing's cost (zstd's work per frame);
/// `analyze --threads 2` does it on the detectors' thread (docs/PERFORMANCE.md, "How
/// `analyze` uses more than one core").
pub struct PackWork<K> {
    trained: Arc<Trained>,
    items: Vec<PackItem<K>>,
}

/// One state of a [`PackWork`].
struct PackItem<K> {
    key: K,
    /// Its uncompressed packed form, as the map holds it meanwhile.
    plain: Box<[u8]>,
    /// Compressed, once done and when shorter.
    packed: Option<Box<[u8]>>,
}

impl<K> std::fmt::Debug for PackWork<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWork")
            .field("dictionary", &self.trained.number)
            .field("states", &self.items.len())
            .finish()
    }
}

impl<K> PackWork<K> {
    /// States to compress.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Compress every state with the map's dictionary (on any thread).
    pub fn compress(&mut self) {
        let PackWork { trained, items } = self;
        let mut compressor = Compressor::default();
        for it in items.iter_mut() {
            it.packed = compressor.compress(Some(trained), &it.plain);
        }
    }
}

/// Whether the value being serialized or deserialized on this thread is part of a packed
/// state (not of a snapshot): parts kept packed already ([`crate::packed::Packed`]) then write
/// their bytes as they are instead of their values, which a snapshot holds.
pub fn packing() -> bool {
    PACKING.with(Cell::get)
}

/// Run `f` with [`packing`] true (as it was again afterwards, even if `f` panics).
fn while_packing<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PACKING.with(|p| p.set(self.0));
        }
    }
    let _reset = Reset(PACKING.with(|p| p.replace(true)));
    f()
}

/// A state, live or packed (see the module docs).
pub enum Cold<T> {
    /// Live, for reading and writing.
    Hot(Box<Live<T>>),
    /// Packed: the state's postcard encoding (compressed once its map has a dictionary).
    Frozen(Box<[u8]>),
}

/// A live state, with what the sweeps know of its pauses ([`Sweep`]).
#[derive(Debug, Default)]
pub struct Live<T> {
    state: T,
    /// The mark of its last touch before it was last packed ([`NO_MARK`]: never packed).
    before_pack: u8,
    /// Whether the pause that ended its last pack was short ([`Sweep::short_pause`]): judged
    /// at the first sweep after it came back; then it is kept live until idle
    /// [`SPARE_IDLE_PERIODS`].
    short_pause: Option<bool>,
}

impl<T> Live<T> {
    fn new(state: T, before_pack: u8) -> Box<Live<T>> {
        Box::new(Live {
            state,
            before_pack,
            short_pause: None,
        })
    }
}

impl<T> Deref for Live<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.state
    }
}

impl<T> DerefMut for Live<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.state
    }
}

/// A state read through [`Cold::view`]: borrowed when live, decoded when packed.
pub enum View<'a, T> {
    /// The live state.
    Live(&'a T),
    /// A decoded copy of a packed state.
    Decoded(Box<T>),
}

impl<T> Deref for View<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            View::Live(t) => t,
            View::Decoded(t) => t,
        }
    }
}

impl<T: Default> Default for Cold<T> {
    fn default() -> Self {
        Cold::Hot(Live::new(T::default(), NO_MARK))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Cold<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cold::Hot(t) => t.state.fmt(f),
            Cold::Frozen(b) => f.debug_struct("Frozen").field("bytes", &b.len()).finish(),
        }
    }
}

/// A packed state's bytes and its mark: the mark is the last byte (written by [`seal`]).
fn unseal(packed: &[u8]) -> (&[u8], u8) {
    match packed.split_last() {
        Some((&mark, bytes)) => (bytes, mark),
        None => (packed, NO_MARK),
    }
}

/// End a packed state's bytes with its mark ([`unseal`]).
fn seal(bytes: &mut Vec<u8>, mark: u8) {
    bytes.push(mark);
}

/// Decode a packed state (its bytes without the mark, [`unseal`]). The bytes are our own
/// encoding of a `T` (never input), so a failure is a bug in `T`'s serde shape, which the
/// per-type round-trip tests rule out.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    let from_plain = |plain: &[u8]| {
        while_packing(|| {
            postcard::from_bytes(plain).expect("a packed state decodes (tested per type)")
        })
    };
    match bytes.split_first() {
        Some((&UNCOMPRESSED, plain)) => from_plain(plain),
        _ => {
            let (number, frame) = read_leb128(bytes);
            let dict = dictionary(number);
            DECOMPRESSOR.with(|d| {
                let mut d = d.borrow_mut();
                let (dctx, out) = d.for_dictionary(number);
                let size = zstd::zstd_safe::get_frame_content_size(frame)
                    .ok()
                    .flatten()
                    .expect("our frames record their size");
                out.clear();
                out.reserve(size as usize);
                dctx.decompress_using_ddict(out, frame, &dict)
                    .expect("a packed state decompresses with its dictionary");
                from_plain(out)
            })
        }
    }
}

impl<T: Serialize + DeserializeOwned> Cold<T> {
    /// A live state.
    pub fn new(t: T) -> Self {
        Cold::Hot(Live::new(t, NO_MARK))
    }

    /// The state for writing, decoded first when packed.
    pub fn thaw(&mut self) -> &mut T {
        if let Cold::Frozen(b) = self {
            let (bytes, mark) = unseal(b);
            *self = Cold::Hot(Live::new(decode(bytes), mark));
        }
        match self {
            Cold::Hot(t) => &mut t.state,
            Cold::Frozen(_) => unreachable!("thawed just above"),
        }
    }

    /// The state for reading, decoded into a copy when packed (it stays packed).
    pub fn view(&self) -> View<'_, T> {
        match self {
            Cold::Hot(t) => View::Live(&t.state),
            Cold::Frozen(b) => View::Decoded(Box::new(decode(unseal(b).0))),
        }
    }

    /// Pack a live state, uncompressed (no-op when packed already).
    pub fn freeze(&mut self) {
        if let Cold::Hot(t) = self {
            let mut plain = Vec::new();
            encode_plain(&mut plain, &t.state);
            seal(&mut plain, NO_MARK);
            *self = Cold::Frozen(plain.into_boxed_slice());
        }
    }

    /// Whether `sweep` packs this state, last touched at `touched`: when it is live and idle
    /// ([`Sweep::before`]), unless the pause that ended its last pack was short and it is not
    /// yet idle [`SPARE_IDLE_PERIODS`]. The pause is judged here, at the first sweep after
    /// the state came back.
    fn packed_by(&mut self, sweep: &Sweep, touched: Ts) -> bool {
        let Cold::Hot(live) = self else {
            return false;
        };
        if live.short_pause.is_none() && live.before_pack != NO_MARK {
            live.short_pause = Some(sweep.short_pause(live.before_pack, touched));
        }
        let spared = live.short_pause == Some(true) || live.before_pack == NO_MARK;
        touched < sweep.before && !(spared && touched >= sweep.spare_since)
    }

    /// Pack a live state with its map's packer (compressed once it has a dictionary), marked
    /// with its last touch's mark.
    fn freeze_into<'a>(&mut self, scratch: &mut Scratch<'a>, packer: &'a Packer, mark: u8) {
        if let Cold::Hot(t) = self {
            encode_plain(&mut scratch.plain, &t.state);
            seal(&mut scratch.plain, mark);
            *self = Cold::Frozen(scratch.compressor.pack(packer, &scratch.plain));
        }
    }

    /// Compress a state packed uncompressed, when the packer can (no-op otherwise).
    fn recompress<'a>(&mut self, compressor: &mut Compressor<'a>, packer: &'a Packer) {
        if let Cold::Frozen(plain) = self {
            if plain.first() == Some(&UNCOMPRESSED) {
                let packed = compressor.pack(packer, plain);
                *self = Cold::Frozen(packed);
            }
        }
    }

    /// The postcard encoding of a state packed uncompressed (without its mark).
    fn plain_form(&self) -> Option<&[u8]> {
        match self {
            Cold::Frozen(b) => match unseal(b).0.split_first() {
                Some((&UNCOMPRESSED, plain)) => Some(plain),
                _ => None,
            },
            Cold::Hot(_) => None,
        }
    }

    /// Whether the state is packed.
    pub fn is_frozen(&self) -> bool {
        matches!(self, Cold::Frozen(_))
    }

    /// Bytes of the packed form, when packed.
    pub fn frozen_bytes(&self) -> Option<usize> {
        match self {
            Cold::Hot(_) => None,
            Cold::Frozen(b) => Some(b.len()),
        }
    }
}

/// A [`BoundedMap`] of [`Cold`] states that learns, from its own packed states, a compression
/// dictionary for them (see [`Packer`]), and compresses with it when it saves enough
/// ([`MIN_DICTIONARY_SAVING_PERCENT`] and [`MIN_DICTIONARY_SAVING_BYTES`]). Reads and writes
/// as the map itself (`Deref`); a snapshot holds the map alone.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
#[serde(bound(
    serialize = "K: Serialize + Hash + Eq, T: Serialize + DeserializeOwned",
    deserialize = "K: Deserialize<'de> + Hash + Eq, T: Serialize + DeserializeOwned"
))]
pub struct ColdMap<K, T> {
    map: BoundedMap<K, Cold<T>>,
    #[serde(skip)]
    packer: Packer,
    /// States packed at the end of the last sweep ([`ColdMap::swept`]).
    #[serde(skip)]
    frozen_at_sweep: usize,
}

impl<K: Hash + Eq + Clone, T: Serialize + DeserializeOwned> ColdMap<K, T> {
    /// Empty, holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        ColdMap {
            map: BoundedMap::new(cap),
            packer: Packer::default(),
            frozen_at_sweep: 0,
        }
    }

    /// Pack the states not touched since `before`, compressed once a dictionary is learned;
    /// learn it when enough states are packed ([`TRAIN_MIN_STATES`]).
    /// A [`Ts`] packs every state touched before it; a [`Sweep`] spares those that came back
    /// soon after their last pack ([`Sweep::spares`]).
    pub fn freeze_idle(&mut self, sweep: impl Into<Sweep>) {
        let sweep = self.with_room(sweep.into());
        {
            let mut scratch = Scratch::default();
            let packer = &self.packer;
            let mut frozen = 0;
            // Every state, not only the idle ones: those that came back since the last sweep
            // have their pause judged.
            self.map.for_each_timed(|_, touched, c| {
                if c.packed_by(&sweep, touched) {
                    c.freeze_into(&mut scratch, packer, mark_of(touched));
                }
                frozen += usize::from(c.is_frozen());
            });
            self.frozen_at_sweep = frozen;
        }
        if self.packer.should_train(self.map.len()) {
            self.train();
        }
    }

    /// [`ColdMap::freeze_idle`] with the compressing left to the caller: the idle states are
    /// packed uncompressed now (the map holds them so, and they thaw as any packed state), and
    /// returned to be compressed elsewhere ([`PackWork::compress`]) and put back
    /// ([`ColdMap::packed_back`]). Until the map has learned its dictionary this is
    /// [`ColdMap::freeze_idle`] (which learns it) and returns nothing.
    pub fn freeze_idle_deferred(&mut self, sweep: impl Into<Sweep>) -> Option<PackWork<K>> {
        let sweep = self.with_room(sweep.into());
        let Some(trained) = self.packer.trained.clone() else {
            self.freeze_idle(sweep);
            return None;
        };
        let mut items = Vec::new();
        let mut plain = Vec::new();
        let mut frozen = 0;
        self.map.for_each_timed(|k, touched, c| {
            if !c.packed_by(&sweep, touched) {
                frozen += usize::from(c.is_frozen());
                return;
            }
            frozen += 1;
            if let Cold::Hot(t) = c {
                encode_plain(&mut plain, &t.state);
                seal(&mut plain, mark_of(touched));
                let packed: Box<[u8]> = Box::from(&plain[..]);
                items.push(PackItem {
                    key: k.clone(),
                    plain: packed.clone(),
                    packed: None,
                });
                *c = Cold::Frozen(packed);
            }
        });
        self.frozen_at_sweep = frozen;
        (!items.is_empty()).then_some(PackWork { trained, items })
    }

    /// `sweep`, sparing nothing when the map holds [`SPARE_BELOW_CAP_SHARE`] of its cap or more.
    fn with_room(&self, sweep: Sweep) -> Sweep {
        if self.map.len() < self.map.cap() / SPARE_BELOW_CAP_SHARE {
            sweep
        } else {
            Sweep {
                spare_since: Ts(i64::MAX),
                ..sweep
            }
        }
    }

    /// Put back the states of a [`PackWork`] compressed, those still packed as they were given
    /// (a state thawed since, or thawed and packed differently, is left as it is).
    pub fn packed_back(&mut self, work: PackWork<K>) {
        for it in work.items {
            let Some(packed) = it.packed else { continue };
            if let Some(Cold::Frozen(b)) = self.map.get_mut(&it.key) {
                if *b == it.plain {
                    *b = packed;
                }
            }
        }
    }

    /// Learn the dictionary from the states packed plain, then compress them with it.
    fn train(&mut self) {
        let mut samples = Vec::new();
        let mut sizes = Vec::new();
        for (_, c) in self.map.iter() {
            if sizes.len() >= TRAIN_MAX_SAMPLES {
                break;
            }
            if let Some(plain) = c.plain_form() {
                samples.extend_from_slice(plain);
                sizes.push(plain.len());
            }
        }
        self.packer.train(&samples, &sizes, self.map.len());
        if self.packer.trained.is_some() {
            let mut compressor = Compressor::default();
            let packer = &self.packer;
            self.map
                .for_each_idle(Ts(i64::MAX), |c| c.recompress(&mut compressor, packer));
        }
    }

    /// States packed now (walks the map).
    pub fn frozen(&self) -> usize {
        self.map.iter().filter(|(_, c)| c.is_frozen()).count()
    }

    /// Bytes the learned dictionary takes outside the Rust heap (zstd's prepared forms for
    /// compressing and decompressing; 0 until learned).
    pub fn dictionary_bytes(&self) -> usize {
        self.packer.dictionary_bytes()
    }

    /// The states packed at the end of the last sweep ([`ColdMap::freeze_idle`] or
    /// [`ColdMap::freeze_idle_deferred`]), counted in the sweep's own walk, and the
    /// dictionary's size: [`ColdMap::packing`]'s `frozen` right after the sweep, without a
    /// second walk of the map (learning a dictionary and putting compressed states back change
    /// no state's being packed).
    pub fn swept(&self) -> Swept {
        Swept {
            frozen: self.frozen_at_sweep,
            dictionary_bytes: self.dictionary_bytes(),
        }
    }

    /// What the map's packing holds now (walks the map).
    pub fn packing(&self) -> Packing {
        let (mut frozen, mut uncompressed) = (0, 0);
        for (_, c) in self.map.iter() {
            frozen += usize::from(c.is_frozen());
            uncompressed += usize::from(c.plain_form().is_some());
        }
        Packing {
            frozen,
            uncompressed,
            dictionary_bytes: self.dictionary_bytes(),
        }
    }

    /// Whether a dictionary has been learned.
    pub fn has_dictionary(&self) -> bool {
        self.packer.trained.is_some()
    }
}

/// A [`ColdMap`]'s packed states as its last sweep left them ([`ColdMap::swept`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// States packed.
    pub frozen: usize,
    /// Bytes of the dictionary they are compressed with (0 without one).
    pub dictionary_bytes: usize,
}

/// A [`ColdMap`]'s packing, for statistics ([`ColdMap::packing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packing {
    /// States packed.
    pub frozen: usize,
    /// Of them, those packed without compression (all of them before a dictionary is
    /// learned, and always in a map whose dictionary would save too little,
    /// [`MIN_DICTIONARY_SAVING_PERCENT`] and [`MIN_DICTIONARY_SAVING_BYTES`]; then those not shorter compressed, and those whose
    /// compressing is under way on another thread, [`ColdMap::freeze_idle_deferred`]).
    pub uncompressed: usize,
    /// Bytes of the learned dictionary, outside the Rust heap.
    pub dictionary_bytes: usize,
}

impl<K, T> Deref for ColdMap<K, T> {
    type Target = BoundedMap<K, Cold<T>>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<K, T> DerefMut for ColdMap<K, T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

/// `t`'s uncompressed packed form into `out`: [`UNCOMPRESSED`], then its postcard encoding.
///
/// postcard rather than MessagePack (which snapshots use): it writes no type markers, so the
/// states are smaller before compression, and decodes with less work per value
/// (docs/PERFORMANCE.md, "Packed states in postcard"). It needs every sequence's and map's
/// length up front (`serialize_seq(Some(n))`), which `rmp_serde` did not.
fn encode_plain<T: Serialize>(out: &mut Vec<u8>, t: &T) {
    out.clear();
    out.push(UNCOMPRESSED);
    while_packing(|| postcard::serialize_with_flavor(t, Append(out)))
        .expect("serializing to memory does not fail");
}

/// postcard's output written straight onto the end of a `Vec` (its `to_io` goes through
/// `io::Write` for every byte; its `to_allocvec` makes a new vector each time).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Cold<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Cold<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|t| Cold::Hot(Live::new(t, NO_MARK)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct S {
        a: u64,
        b: Vec<String>,
        c: Option<i32>,
    }

    #[test]
    fn a_frozen_state_thaws_to_itself_and_snapshots_the_same() {
        let s = S {
            a: 7,
            b: vec!["x".into(), "ÿ".into()],
            c: Some(-3),
        };
        let mut c = Cold::new(S {
            b: s.b.clone(),
            ..s
        });
        let live = rmp_serde::to_vec_named(&c).unwrap();
        c.freeze();
        assert!(c.is_frozen());
        assert!(c.frozen_bytes().unwrap() > 0);
        assert_eq!(
            *c.view(),
            S {
                b: s.b.clone(),
                ..s
            }
        );
        assert!(c.is_frozen(), "viewing leaves it packed");
        // A snapshot holds the state itself, packed or not.
        assert_eq!(rmp_serde::to_vec_named(&c).unwrap(), live);
        c.freeze();
        c.thaw().a += 1;
        assert!(!c.is_frozen());
        assert_eq!(c.view().a, 8);
        let back: Cold<S> = rmp_serde::from_slice(&live).unwrap();
        assert_eq!(back.view().a, 7);
    }

    /// A state of about 110 bytes packed, most of them shared with the others (an account, its
    /// recipients, its HELO): a dictionary saves tens of bytes of each.
    fn state(i: usize) -> S {
        let mut s = small_state(i);
        s.b.extend([
            format!("r{}@example.net", i * 17 % 991),
            format!("pc-{i}.dsl.example-isp.de"),
        ]);
        s
    }

    /// A state of about 47 bytes packed: a dictionary saves a third of it, under
    /// [`MIN_DICTIONARY_SAVING_BYTES`].
    fn small_state(i: usize) -> S {
        S {
            a: i as u64 * 7_919,
            b: vec![
                format!("user{i}@example-isp.de"),
                format!("r{}@example.org", i * 31 % 997),
            ],
            c: i.is_multiple_of(3).then_some(i as i32),
        }
    }

    fn filled(n: usize) -> ColdMap<String, S> {
        let mut m = ColdMap::new(n * 2);
        for i in 0..n {
            m.get_or_insert_with(&format!("k{i}"), Ts(i as i64), || Cold::new(state(i)));
        }
        m
    }

    #[test]
    fn a_map_learns_a_dictionary_and_its_compressed_states_thaw_to_themselves() {
        let n = TRAIN_MIN_STATES + 500;
        let mut m = filled(n);
        let live = rmp_serde::to_vec_named(&m).unwrap();
        m.freeze_idle(Ts(n as i64));
        assert!(m.has_dictionary());
        assert!(m.dictionary_bytes() > 0);
        assert_eq!(m.frozen(), n);
        let (mut packed, mut plain) = (0, 0);
        for (_, c) in m.iter() {
            let bytes = c.frozen_bytes().unwrap();
            packed += bytes;
            plain += 1 + postcard::to_allocvec(&*c.view()).unwrap().len();
            assert!(c.plain_form().is_none(), "compressed once learned");
        }
        assert!(packed * 10 < plain * 7, "{packed} of {plain} bytes");
        // A snapshot holds the states themselves: the same bytes as never packed.
        assert_eq!(rmp_serde::to_vec_named(&m).unwrap(), live);
        for i in 0..n {
            let c = m.get_mut(format!("k{i}").as_str()).unwrap();
            assert_eq!(*c.thaw(), state(i));
        }
        // States packed after learning are compressed too.
        m.freeze_idle(Ts(i64::MAX));
        assert!(m.iter().all(|(_, c)| c.plain_form().is_none()));
        assert_eq!(*m.get("k7").unwrap().view(), state(7));
        // A map restored from a snapshot decodes the same and learns anew.
        let back: ColdMap<String, S> = rmp_serde::from_slice(&live).unwrap();
        assert!(!back.has_dictionary());
        assert_eq!(*back.get("k9").unwrap().view(), state(9));
    }

    /// A map of `n` states made by `state`, every one packed at once, and what it measured its
    /// dictionary would save (which it must have found not worth it).
    fn packed_not_worth_it<T: Serialize + DeserializeOwned>(
        n: usize,
        state: impl Fn(usize) -> T,
    ) -> (ColdMap<String, T>, Saving) {
        let mut m = ColdMap::new(n * 4);
        for i in 0..n {
            m.get_or_insert_with(&format!("k{i}"), Ts(i as i64), || Cold::new(state(i)));
        }
        m.freeze_idle(Ts(n as i64));
        let saved = m
            .packer
            .not_worth_it
            .expect("measured and found not worth it");
        (m, saved)
    }

    /// States a dictionary cannot shrink (each a few pseudo-random numbers, as an account's
    /// counters and times are): the map measures what its dictionary would save, keeps packing
    /// them uncompressed, and does not try to learn again as it grows.
    #[test]
    fn a_map_whose_dictionary_would_save_little_packs_uncompressed() {
        let n = TRAIN_MIN_STATES + 500;
        let noise = |i: usize| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (0..3)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                })
                .collect::<Vec<u64>>()
        };
        let (mut m, saved) = packed_not_worth_it(n, noise);
        assert!(saved.percent() < MIN_DICTIONARY_SAVING_PERCENT, "{saved:?}");
        assert!(!m.has_dictionary());
        assert_eq!(m.dictionary_bytes(), 0);
        assert_eq!(m.packing().uncompressed, n);
        assert_eq!(*m.get("k5").unwrap().view(), noise(5));
        // Twice as many states: no second try.
        for i in n..3 * n {
            m.get_or_insert_with(&format!("k{i}"), Ts(i as i64), || Cold::new(noise(i)));
        }
        m.freeze_idle(Ts(3 * n as i64));
        assert!(!m.has_dictionary());
        assert_eq!(m.packing().uncompressed, 3 * n);
        // The states of `filled` share most of their bytes: their map learns (above), and
        // says what its dictionary saves.
        let text = filled(n);
        let mut samples = Vec::new();
        let mut sizes = Vec::new();
        for (_, c) in text.iter() {
            let mut plain = Vec::new();
            encode_plain(&mut plain, &*c.view());
            samples.extend_from_slice(&plain[1..]);
            sizes.push(plain.len() - 1);
        }
        let cap = DICTIONARY_MAX_BYTES.min(samples.len() / SAMPLE_BYTES_PER_DICTIONARY_BYTE);
        let dict = learn_dictionary(&samples, &sizes, cap).unwrap();
        let cdict = CDict::try_create(&dict, COMPRESSION_LEVEL).unwrap();
        let saved = saving(&cdict, &samples, &sizes);
        assert!(saved.worth_it(), "{saved:?}");
    }

    /// Small states that share most of their bytes: a dictionary saves a third of each, but
    /// under [`MIN_DICTIONARY_SAVING_BYTES`] a state, so the map packs them uncompressed (and
    /// a map of the larger states, `filled`, compresses: the test above).
    #[test]
    fn a_map_whose_dictionary_would_save_few_bytes_a_state_packs_uncompressed() {
        let n = TRAIN_MIN_STATES + 500;
        let (m, saved) = packed_not_worth_it(n, small_state);
        assert!(
            saved.percent() >= MIN_DICTIONARY_SAVING_PERCENT,
            "{saved:?}"
        );
        assert!(saved.bytes_per_state() > 0, "{saved:?}");
        assert!(
            saved.bytes_per_state() < MIN_DICTIONARY_SAVING_BYTES,
            "{saved:?}"
        );
        assert!(!m.has_dictionary());
        assert_eq!(m.dictionary_bytes(), 0);
        assert_eq!(m.packing().uncompressed, n);
        assert_eq!(*m.get("k5").unwrap().view(), small_state(5));
    }

    /// The two measures of a dictionary's saving, and the rule that needs both.
    #[test]
    fn a_saving_is_worth_it_when_both_its_share_and_its_bytes_a_state_are() {
        let s = |states, plain, kept| Saving {
            states,
            plain,
            kept,
        };
        // 100 states of 200 bytes kept in 100: half, 100 bytes each.
        assert_eq!(s(100, 20_000, 10_000).percent(), 50);
        assert_eq!(s(100, 20_000, 10_000).bytes_per_state(), 100);
        assert!(s(100, 20_000, 10_000).worth_it());
        // 40 bytes each of states of 1,000: 4%.
        assert!(!s(100, 100_000, 96_000).worth_it());
        // Half of states of 40 bytes: 20 bytes each.
        assert!(!s(100, 4_000, 2_000).worth_it());
        // Exactly at both bounds.
        let plain = MIN_DICTIONARY_SAVING_BYTES * 100 * 100 / MIN_DICTIONARY_SAVING_PERCENT;
        let at = s(100, plain, plain - MIN_DICTIONARY_SAVING_BYTES * 100);
        assert_eq!(at.percent(), MIN_DICTIONARY_SAVING_PERCENT);
        assert_eq!(at.bytes_per_state(), MIN_DICTIONARY_SAVING_BYTES);
        assert!(at.worth_it());
        // Nothing measured, or more kept than plain: nothing saved.
        assert_eq!(Saving::default().percent(), 0);
        assert!(!Saving::default().worth_it());
        assert_eq!(s(10, 100, 200).bytes_per_state(), 0);
    }

    /// Engines come and go (a cluster worker makes one per partition it takes over): the
    /// table of dictionaries reuses the numbers of maps dropped, so it does not grow with them.
    #[test]
    fn dropped_maps_give_their_dictionary_numbers_back() {
        let before = dictionary_table_len();
        for round in 0..6 {
            let mut m = filled(TRAIN_MIN_STATES);
            m.freeze_idle(Ts(i64::MAX));
            assert!(m.has_dictionary(), "round {round}");
            assert_eq!(*m.get("k5").unwrap().view(), state(5));
        }
        // At most one more: another test of this file may hold a learned map meanwhile.
        assert!(
            dictionary_table_len() <= before + 2,
            "{before} -> {}",
            dictionary_table_len()
        );
    }

    /// Packing with the compressing done elsewhere ends where packing in one go does, and a
    /// state written meanwhile keeps what was written.
    #[test]
    fn states_compressed_elsewhere_go_back_only_where_unchanged() {
        // Half packed first, enough to learn from.
        let n = 2 * TRAIN_MIN_STATES + 600;
        let mut m = filled(n);
        // Before a dictionary is learned there is nothing to defer: packed (and learned) here.
        assert!(m.freeze_idle_deferred(Ts(n as i64 / 2)).is_none());
        assert!(m.has_dictionary());
        assert_eq!(m.frozen(), n / 2);
        let mut at_once = filled(n);
        at_once.freeze_idle(Ts(n as i64 / 2));
        at_once.freeze_idle(Ts(i64::MAX));

        let mut work = m
            .freeze_idle_deferred(Ts(i64::MAX))
            .expect("states to compress");
        assert_eq!(work.len(), n - n / 2);
        assert_eq!(m.frozen(), n, "packed uncompressed meanwhile");
        assert!(m.get("k1400").unwrap().plain_form().is_some());
        // Meanwhile: k1400 is written (live again), k1401 written and packed again (different
        // bytes), k1402 only read.
        m.get_mut("k1400").unwrap().thaw().a = 1;
        m.get_mut("k1401").unwrap().thaw().a = 2;
        m.get_mut("k1401").unwrap().freeze();
        assert_eq!(*m.get("k1402").unwrap().view(), state(1402));
        std::thread::scope(|s| {
            s.spawn(|| work.compress());
        });
        m.packed_back(work);

        assert!(!m.get("k1400").unwrap().is_frozen());
        assert_eq!(m.get("k1400").unwrap().view().a, 1);
        assert_eq!(m.get("k1401").unwrap().view().a, 2);
        assert!(
            m.get("k1401").unwrap().plain_form().is_some(),
            "not overwritten"
        );
        for i in (n / 2..n).filter(|i| ![1400, 1401].contains(i)) {
            let k = format!("k{i}");
            let c = m.get(k.as_str()).unwrap();
            assert!(c.plain_form().is_none(), "{k} compressed");
            assert_eq!(
                c.frozen_bytes(),
                at_once.get(k.as_str()).unwrap().frozen_bytes()
            );
            assert_eq!(*c.view(), state(i));
        }
    }

    #[test]
    fn a_small_map_packs_without_compressing() {
        let mut m = filled(TRAIN_MIN_STATES - 1);
        m.freeze_idle(Ts(i64::MAX));
        assert!(!m.has_dictionary());
        assert_eq!(m.dictionary_bytes(), 0);
        assert!(m.iter().all(|(_, c)| c.plain_form().is_some()));
        assert_eq!(*m.get("k3").unwrap().view(), state(3));
    }

    #[test]
    fn learning_refuses_sizes_that_do_not_add_up_to_the_samples() {
        let states: Vec<Vec<u8>> = (0..TRAIN_MIN_STATES)
            .map(|i| {
                let mut plain = Vec::new();
                encode_plain(&mut plain, &state(i));
                plain
            })
            .collect();
        let samples = states.concat();
        let mut sizes: Vec<usize> = states.iter().map(Vec::len).collect();
        assert!(learn_dictionary(&samples, &sizes, DICTIONARY_MAX_BYTES).is_some());
        sizes[0] += 1;
        assert!(learn_dictionary(&samples, &sizes, DICTIONARY_MAX_BYTES).is_none());
    }

    #[test]
    fn dictionary_numbers_round_trip_in_leb128() {
        for n in [1u32, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = vec![];
            write_leb128(&mut out, n);
            out.push(0xAB);
            assert_eq!(read_leb128(&out), (n, &[0xAB][..]), "{n}");
        }
    }

    /// Event time `h` hours (and `m` minutes) into a day.
    fn hour(h: i64, m: i64) -> Ts {
        Ts((h * 3_600 + m * 60) * 1_000_000)
    }

    /// A one-entry map's sweeps, hourly at minute 5 from `from` to `to`, with the entity
    /// touched at the given times: whether it is packed after each sweep.
    fn packed_after_sweeps(touches: &[Ts], from: i64, to: i64) -> Vec<bool> {
        let mut m: ColdMap<String, S> = ColdMap::new(8);
        let mut touches = touches.iter().peekable();
        let mut out = Vec::new();
        for h in from..=to {
            let now = hour(h, 5);
            while let Some(t) = touches.next_if(|t| **t <= now) {
                m.get_or_insert_with("acct", *t, || Cold::new(state(1)))
                    .thaw()
                    .a += 1;
            }
            m.freeze_idle(Sweep::at(now, FREEZE_AFTER_SECS));
            out.push(m.get("acct").is_some_and(Cold::is_frozen));
        }
        out
    }

    #[test]
    fn an_entity_that_comes_back_after_short_pauses_stays_live() {
        // Never packed: kept live until idle SPARE_IDLE_PERIODS (4 h), then packed.
        let once = packed_after_sweeps(&[hour(1, 0)], 1, 7);
        assert_eq!(once, [false, false, false, false, true, true, true]);
        // Packed at 5:05, back at 7:00 after a pause of 6 h (long): packed again after an idle
        // hour, at 8:05.
        let long = packed_after_sweeps(&[hour(1, 0), hour(7, 0)], 1, 9);
        assert_eq!(long[6..], [false, true, true], "{long:?}");
        // Packed at 4:05; back at 4:30 after 4 h 30 (long): packed at 6:05 after an idle hour;
        // back at 7:00 after 2 h 30 (short): live while idle under 4 h (8:05 to 10:05), packed
        // at 11:05.
        let t = [hour(0, 0), hour(4, 30), hour(7, 0)];
        let short = packed_after_sweeps(&t, 0, 12);
        assert_eq!(
            short,
            [
                false, false, false, false, true, false, true, false, false, false, false, true,
                true
            ]
        );
    }

    #[test]
    fn a_sweep_by_time_alone_spares_nothing() {
        let mut m = filled(10);
        m.freeze_idle(Ts(i64::MAX));
        assert_eq!(m.frozen(), 10);
    }

    #[test]
    fn a_packed_state_keeps_its_mark_through_compression() {
        let n = TRAIN_MIN_STATES + 10;
        let mut m = filled(n);
        m.freeze_idle(Sweep::at(Ts(i64::MAX / 2), 0));
        assert!(m.has_dictionary());
        for (_, c) in m.iter() {
            let Cold::Frozen(b) = c else {
                panic!("not packed")
            };
            let (_, mark) = unseal(b);
            assert_ne!(mark, NO_MARK);
        }
        let c = m.get_mut("k3").unwrap();
        assert_eq!(*c.thaw(), state(3));
        let Cold::Hot(live) = c else {
            panic!("not thawed")
        };
        assert_eq!(live.before_pack, mark_of(Ts(3)));
    }

    #[test]
    fn live_and_packed_are_one_pointer_and_a_length() {
        assert_eq!(std::mem::size_of::<Cold<S>>(), 16);
    }
}
