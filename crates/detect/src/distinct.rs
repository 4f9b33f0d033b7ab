//! Distinct counting with bounded memory: exact while small, a HyperLogLog sketch past a bound.

/// Values kept exactly before switching to the sketch.
pub const EXACT_MAX: usize = 64;
/// HyperLogLog registers (2^8): about 6.5% standard error, 256 bytes.
const REGS: usize = 256;

/// A distinct counter over 64-bit hashes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Distinct {
    /// Exact set (small).
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Sketch(#[serde(with = "registers")] Box<[u8; REGS]>),
}

/// The registers as one byte string (serde has no impls for arrays longer than 32).
mod registers {
    use super::REGS;

    pub fn serialize<S: serde::Serializer>(r: &[u8; REGS], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(r)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Box<[u8; REGS]>, D::Error> {
        let v: serde_bytes_buf::Buf = serde::Deserialize::deserialize(d)?;
        let regs: [u8; REGS] = v.0.try_into().map_err(|v: Vec<u8>| {
            serde::de::Error::invalid_length(v.len(), &"256 HyperLogLog registers")
        })?;
        Ok(Box::new(regs))
    }

    /// Accepts a byte string or a sequence of bytes.
    mod serde_bytes_buf {
        pub struct Buf(pub Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Buf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Buf;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Buf, E> {
                        Ok(Buf(b.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Buf, E> {
                        Ok(Buf(b))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<Buf, A::Error> {
                        let mut v = Vec::new();
                        while let Some(b) = a.next_element::<u8>()? {
                            if v.len() > super::REGS {
                                return Err(serde::de::Error::invalid_length(v.len(), &self));
                            }
                            v.push(b);
                        }
                        Ok(Buf(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(Vec::new())
    }
}

/// Spreads any 64-bit key over all bits (the sketch reads the top byte and the rest apart).
pub use maillog::hash::mix;

impl Distinct {
    /// Add a value (any 64-bit key; it is mixed here).
    pub fn insert(&mut self, v: u64) {
        match self {
            Distinct::Exact(set) => {
                if set.contains(&v) {
                    return;
                }
                if set.len() < EXACT_MAX {
                    crate::compact::push(set, v);
                    return;
                }
                let mut regs = Box::new([0u8; REGS]);
                for &x in set.iter() {
                    hll_add(&mut regs, x);
                }
                hll_add(&mut regs, v);
                *self = Distinct::Sketch(regs);
            }
            Distinct::Sketch(regs) => hll_add(regs, v),
        }
    }

    /// Whether `v` was added (exact mode only; always false once sketched).
    pub fn contains(&self, v: u64) -> bool {
        match self {
            Distinct::Exact(s) => s.contains(&v),
            Distinct::Sketch(_) => false,
        }
    }

    /// Estimated count (exact below [`EXACT_MAX`]).
    pub fn count(&self) -> u64 {
        match self {
            Distinct::Exact(s) => s.len() as u64,
            Distinct::Sketch(regs) => {
                let m = REGS as f64;
                let mut sum = 0.0;
                let mut zeros = 0;
                for &r in regs.iter() {
                    sum += 2f64.powi(-(r as i32));
                    if r == 0 {
                        zeros += 1;
                    }
                }
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let e = alpha * m * m / sum;
                let e = if e <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    e
                };
                e.round().max(EXACT_MAX as f64) as u64
            }
        }
    }

    /// Bytes of heap memory used.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Distinct::Exact(s) => s.capacity() * 8,
            Distinct::Sketch(_) => REGS,
        }
    }
}

fn hll_add(regs: &mut [u8; REGS], v: u64) {
    let h = mix(v);
    let idx = (h >> 56) as usize;
    let rest = h << 8 | 1 << 7;
    let rank = rest.leading_zeros() as u8 + 1;
    if rank > regs[idx] {
        regs[idx] = rank;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_estimate() {
        let mut d = Distinct::default();
        for i in 0..50u64 {
            d.insert(i);
            d.insert(i);
        }
        assert_eq!(d.count(), 50);
        for n in [1_000u64, 10_000, 100_000] {
            let mut d = Distinct::default();
            for i in 0..n {
                d.insert(i * 7919);
            }
            let c = d.count() as f64;
            let err = (c - n as f64).abs() / n as f64;
            assert!(err < 0.2, "n={n} got {c}");
            assert_eq!(d.heap_bytes(), 256);
        }
    }
}
