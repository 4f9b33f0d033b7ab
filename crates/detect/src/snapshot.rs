//! Helpers for the engine snapshot's serde impls.

/// Fixed-size arrays of any length as sequences (serde's own impls stop at 32 elements).
pub(crate) mod array {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize, const N: usize>(
        a: &[T; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        a.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
        d: D,
    ) -> Result<[T; N], D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        let n = v.len();
        v.try_into()
            .map_err(|_| D::Error::invalid_length(n, &"an array of the expected length"))
    }
}

use std::io::Read;

/// Version of the snapshot format: bump it whenever a serialized state type changes shape (a
/// field added, removed, renamed or retyped in any detector's state). A snapshot of another
/// version is refused whole and the engine starts fresh: a half-understood state could raise or
/// hide alerts, a fresh start only delays them.
pub const VERSION: u32 = 6;

/// First bytes of every snapshot.
pub const MAGIC: &[u8; 4] = b"SSES";

/// Most bytes a snapshot may decompress to (a corrupt or foreign blob must not exhaust memory).
/// The engine's state is bounded by its caps; a 20,000-user ISP's is a few MiB (see
/// docs/PERFORMANCE.md), so 4 GiB only stops garbage.
pub const MAX_DECODED: u64 = 4 << 30;

/// zstd level: 3 (zstd's default) compresses a snapshot about as well as 9 at a fraction of the
/// time, which matters on the engine thread.
const ZSTD_LEVEL: i32 = 3;

/// Why a snapshot was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not a snapshot (too short, or another magic).
    NotASnapshot,
    /// A snapshot of another format version.
    Version {
        /// Version in the snapshot.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// The compressed body is corrupt or larger than [`MAX_DECODED`].
    Decompress(String),
    /// The body does not decode as this version's state.
    Decode(String),
    /// Serializing failed (a bug).
    Encode(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::NotASnapshot => f.write_str("not an engine snapshot (bad header)"),
            SnapshotError::Version { found, expected } => write!(
                f,
                "engine snapshot format version {found}, this build reads version {expected}"
            ),
            SnapshotError::Decompress(e) => write!(f, "engine snapshot does not decompress: {e}"),
            SnapshotError::Decode(e) => write!(f, "engine snapshot does not decode: {e}"),
            SnapshotError::Encode(e) => write!(f, "engine snapshot could not be written: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// A snapshot serialized but not yet compressed: the state as MessagePack with field names
/// (self-describing, so `skip_serializing_if` fields round-trip). Serializing needs the state
/// and so runs where the state lives (the engine thread); [`Raw::compress`] needs only these
/// bytes and can run on another thread, so the engine is paused only for the serializing.
#[derive(Debug, Clone)]
pub struct Raw(Vec<u8>);

impl Raw {
    /// Bytes before compression.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty (never, for a real state).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The snapshot as [`crate::Engine::restore`] reads it: `MAGIC`, the version (u32
    /// little-endian), then these bytes zstd-compressed.
    pub fn compress(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::with_capacity(self.0.len() / 4 + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let mut z = zstd::stream::Encoder::new(out, ZSTD_LEVEL)
            .map_err(|e| SnapshotError::Encode(e.to_string()))?;
        std::io::Write::write_all(&mut z, &self.0)
            .map_err(|e| SnapshotError::Encode(e.to_string()))?;
        z.finish().map_err(|e| SnapshotError::Encode(e.to_string()))
    }
}

/// Serialize a state (see [`Raw`]).
pub(crate) fn serialize<T: serde::Serialize>(state: &T) -> Result<Raw, SnapshotError> {
    let mut out = Vec::with_capacity(1 << 16);
    let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
    state
        .serialize(&mut ser)
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    Ok(Raw(out))
}

/// `MAGIC`, the version (u32 little-endian), then the state as MessagePack with field names,
/// zstd-compressed ([`serialize`], then [`Raw::compress`]).
#[cfg(test)]
pub(crate) fn encode<T: serde::Serialize>(state: &T) -> Result<Vec<u8>, SnapshotError> {
    serialize(state)?.compress()
}

/// The version a snapshot says it has, if it is one.
pub fn version_of(bytes: &[u8]) -> Option<u32> {
    let head = bytes.get(..8)?;
    (&head[..4] == MAGIC).then(|| u32::from_le_bytes([head[4], head[5], head[6], head[7]]))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    let found = version_of(bytes).ok_or(SnapshotError::NotASnapshot)?;
    if found != VERSION {
        return Err(SnapshotError::Version {
            found,
            expected: VERSION,
        });
    }
    let z = zstd::stream::Decoder::new(&bytes[8..])
        .map_err(|e| SnapshotError::Decompress(e.to_string()))?;
    let mut raw = Vec::new();
    z.take(MAX_DECODED + 1)
        .read_to_end(&mut raw)
        .map_err(|e| SnapshotError::Decompress(e.to_string()))?;
    if raw.len() as u64 > MAX_DECODED {
        return Err(SnapshotError::Decompress(format!(
            "more than {MAX_DECODED} bytes"
        )));
    }
    rmp_serde::from_slice(&raw).map_err(|e| SnapshotError::Decode(e.to_string()))
}
