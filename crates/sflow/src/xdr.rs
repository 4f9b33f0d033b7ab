//! A bounds-checked XDR cursor that keeps absolute offsets.
//!
//! Sub-readers share the whole buffer and only narrow `end`, so every offset reported in an
//! [`Error`] is relative to the start of the datagram, whatever the nesting depth.

use crate::error::{Context, Error};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// XDR aligns every item to this many bytes.
const XDR_ALIGN: usize = 4;

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn truncated(&self, context: Context, needed: usize) -> Error {
        Error::Truncated {
            context,
            offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize, context: Context) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.truncated(context, n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u32(&mut self, context: Context) -> Result<u32, Error> {
        let b = self.bytes(4, context)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, context: Context) -> Result<u64, Error> {
        let b = self.bytes(8, context)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Skips `n` bytes, or to the end when fewer are left (used for lenient padding).
    pub(crate) fn skip_lenient(&mut self, n: usize) {
        self.pos += n.min(self.remaining());
    }

    /// A variable-length opaque/string: u32 length, bytes, padding to 4. A missing final
    /// padding is tolerated (some agents omit it on the last item of a record).
    pub(crate) fn opaque(&mut self, context: Context) -> Result<&'a [u8], Error> {
        let len_off = self.pos;
        let len = self.u32(context)? as usize;
        if len > self.remaining() {
            return Err(Error::LengthOverrun {
                context,
                declared: len as u32,
                available: self.remaining(),
                offset: len_off,
            });
        }
        let s = self.bytes(len, context)?;
        self.skip_lenient(pad(len));
        Ok(s)
    }

    /// A fixed-length opaque of `n` bytes followed by its XDR padding (MAC addresses).
    pub(crate) fn fixed_opaque(&mut self, n: usize, context: Context) -> Result<&'a [u8], Error> {
        let s = self.bytes(n, context)?;
        self.skip_lenient(pad(n));
        Ok(s)
    }

    /// An sFlow `address`: u32 type (0 unknown, 1 IPv4, 2 IPv6) then the address bytes.
    pub(crate) fn address(&mut self, context: Context) -> Result<Option<IpAddr>, Error> {
        let off = self.pos;
        match self.u32(context)? {
            0 => Ok(None),
            1 => Ok(Some(IpAddr::V4(self.ipv4(context)?))),
            2 => Ok(Some(IpAddr::V6(self.ipv6(context)?))),
            value => Err(Error::BadAddressType {
                context,
                value,
                offset: off,
            }),
        }
    }

    pub(crate) fn ipv4(&mut self, context: Context) -> Result<Ipv4Addr, Error> {
        let b = self.bytes(4, context)?;
        Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    pub(crate) fn ipv6(&mut self, context: Context) -> Result<Ipv6Addr, Error> {
        let b = self.bytes(16, context)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Ipv6Addr::from(a))
    }

    /// Reads a (format, length) envelope and returns the format, the declared length, a
    /// reader over the body, and advances `self` past the body.
    ///
    /// When the declared length overruns the container, the body is clamped to what is
    /// left and the overrun is returned as the fourth item, so the caller can decode what
    /// is there and then report the error.
    pub(crate) fn envelope(
        &mut self,
        context: Context,
    ) -> Result<(u32, u32, Reader<'a>, Option<Error>), Error> {
        let format = self.u32(context)?;
        let len_off = self.pos;
        let len = self.u32(context)?;
        let overrun = (len as usize > self.remaining()).then(|| Error::LengthOverrun {
            context,
            declared: len,
            available: self.remaining(),
            offset: len_off,
        });
        let body_len = (len as usize).min(self.remaining());
        let body = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + body_len,
        };
        self.pos += body_len;
        Ok((format, len, body, overrun))
    }
}

/// XDR padding after `len` bytes.
pub(crate) fn pad(len: usize) -> usize {
    (XDR_ALIGN - len % XDR_ALIGN) % XDR_ALIGN
}

/// Capacity to reserve for `declared` items of at least `min_size` bytes each when only
/// `remaining` bytes are left: never trusts the wire count beyond what could possibly fit.
pub(crate) fn bounded_capacity(declared: u32, remaining: usize, min_size: usize) -> usize {
    (declared as usize).min(remaining / min_size.max(1))
}
