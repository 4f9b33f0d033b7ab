//! IP addresses as logs write them, parsed into [`IpAddr`]s.
//!
//! Nearly every client a log names is an IPv4 address in its plain dotted-quad form
//! (`192.0.2.7`), and the engine parses one for most connection, login and queue lines. The
//! standard library's parser is general (both families, every form), and took about 200
//! instructions an address, 1% of `analyze`'s instructions and 2.5% of the engine thread's with
//! two threads (docs/PERFORMANCE.md, "Steps of 2026-12-05 afternoon"). [`parse`] reads the
//! plain dotted quad itself, in one pass, and hands anything else to the standard library, so
//! it accepts exactly what `str::parse::<IpAddr>` accepts, with the same value (tested against
//! it): why this is ours and not a crate's.

use std::net::{IpAddr, Ipv4Addr};

/// Digits of one octet at most (`255`).
const OCTET_DIGITS: usize = 3;
/// The shortest (`0.0.0.0`) and longest (`255.255.255.255`) dotted quads, in bytes.
const QUAD_BYTES: std::ops::RangeInclusive<usize> = 7..=15;
/// The copy [`dotted_quad`] reads: the longest quad and room to look two bytes past the start
/// of its last octet.
const PADDED_BYTES: usize = 16;

/// `s` as an IP address, exactly as `s.parse::<IpAddr>().ok()` would give it.
#[inline]
pub fn parse(s: &str) -> Option<IpAddr> {
    match dotted_quad(s.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => s.parse().ok(),
    }
}

/// An address as logs write it: [`parse`] of `s` without the `IPv6:` prefix that address
/// literals (`[IPv6:2001:db8::1]`) and some MTAs' client fields put before an IPv6 address.
#[inline]
pub fn parse_logged(s: &str) -> Option<IpAddr> {
    parse(s.strip_prefix("IPv6:").unwrap_or(s))
}

/// `b` as an IPv4 address when it is four decimal octets of one to three digits, each at most
/// 255 and without a leading zero, joined by dots: the form the standard library accepts for
/// IPv4. None for anything else, which may still be an address ([`parse`] asks the standard
/// library then).
///
/// Read from a copy padded with zeros to [`PADDED_BYTES`], so that the up to three digits of an
/// octet are looked at without a length check each (a zero is no digit), and an octet's value
/// is taken from how many digits it has rather than by a loop.
fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    if !QUAD_BYTES.contains(&b.len()) {
        return None;
    }
    let mut buf = [0u8; PADDED_BYTES];
    buf[..b.len()].copy_from_slice(b);
    // A byte's value as a digit, or more than 9 when it is none.
    let digit = |i: usize| buf[i].wrapping_sub(b'0');
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if buf[i] != b'.' {
                return None;
            }
            i += 1;
        }
        let (d0, d1, d2) = (digit(i), digit(i + 1), digit(i + 2));
        let (value, digits) = match (d0 <= 9, d1 <= 9, d2 <= 9) {
            (false, _, _) => return None,
            (true, false, _) => (u32::from(d0), 1),
            // A leading zero is refused, as the standard library refuses it.
            _ if d0 == 0 => return None,
            (true, true, false) => (u32::from(d0) * 10 + u32::from(d1), 2),
            (true, true, true) => (
                u32::from(d0) * 100 + u32::from(d1) * 10 + u32::from(d2),
                OCTET_DIGITS,
            ),
        };
        *octet = u8::try_from(value).ok()?;
        i += digits;
    }
    (i == b.len()).then(|| Ipv4Addr::from(octets))
}

/// `ip` as text: `ip.to_string()`, with an IPv4 address's four octets written digit by digit
/// rather than through the formatting machinery (about 1,200 instructions an address; the
/// engine names a client entity by its address for most messages).
pub fn text(ip: IpAddr) -> String {
    let mut s = String::with_capacity(*QUAD_BYTES.end());
    push_text(&mut s, ip);
    s
}

/// [`text`] of `ip` appended to `out`. IPv6 goes through the standard library's formatting.
pub fn push_text(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` writes what `to_string` writes: every octet value in every place, and IPv6.
    #[test]
    fn text_is_to_string() {
        for o in 0..=255u8 {
            for v4 in [
                Ipv4Addr::new(o, 0, 255, 9),
                Ipv4Addr::new(10, o, 100, 99),
                Ipv4Addr::new(1, 2, o, 3),
                Ipv4Addr::new(255, 10, 1, o),
            ] {
                assert_eq!(text(IpAddr::V4(v4)), v4.to_string());
                let mut out = String::from("x ");
                push_text(&mut out, IpAddr::V4(v4));
                assert_eq!(out, format!("x {v4}"));
            }
        }
        for s in ["::1", "2001:db8::7", "::ffff:192.0.2.1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(text(ip), ip.to_string());
        }
    }

    fn std_parse(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    /// The forms at the edges of the dotted quad, and what is not one.
    #[test]
    fn agrees_with_the_standard_library_at_the_edges() {
        for s in [
            "0.0.0.0",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "1.1.1.256",
            "192.0.2.7",
            "10.0.0.255",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.00",
            "0.0.0.00",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1234.1.1.1",
            "1.1.1.1234",
            "999.999.999.999",
            "+1.2.3.4",
            "1.2.3.-4",
            "1.2.3.4\n",
            "0x1.2.3.4",
            "١.٢.٣.٤",
            "::1",
            "::",
            "2001:db8::7",
            "::ffff:192.0.2.7",
            "2001:db8::192.0.2.7",
            "fe80::1%eth0",
            "IPv6:2001:db8::7",
            "",
            "localhost",
            "unknown",
        ] {
            assert_eq!(parse(s), std_parse(s), "{s:?}");
        }
        assert_eq!(parse("192.0.2.7"), Some(IpAddr::from([192, 0, 2, 7])));
        assert_eq!(dotted_quad(b"01.2.3.4"), None);
        assert_eq!(dotted_quad(b"::1"), None);
    }

    /// The `IPv6:` prefix of address literals is dropped before parsing, and only it.
    #[test]
    fn logged_addresses_may_carry_the_ipv6_prefix() {
        let v6: IpAddr = "2001:db8::7".parse().expect("an address");
        assert_eq!(parse_logged("IPv6:2001:db8::7"), Some(v6));
        assert_eq!(parse_logged("2001:db8::7"), Some(v6));
        assert_eq!(parse_logged("192.0.2.7"), parse("192.0.2.7"));
        assert_eq!(parse_logged("ipv6:2001:db8::7"), None);
        assert_eq!(parse_logged("IPv6:"), None);
    }

    /// Every quad of octets from a set that crosses each boundary (one, two and three digits,
    /// leading zeros, 255/256, four digits), and strings of address characters at random.
    #[test]
    fn agrees_with_the_standard_library_on_every_shape() {
        let parts = [
            "0", "00", "000", "1", "01", "9", "10", "99", "100", "199", "249", "250", "255", "256",
            "299", "300", "999", "1000", "",
        ];
        for a in parts {
            for b in ["0", "255", "07", "", "256"] {
                for c in parts {
                    for d in parts {
                        let s = format!("{a}.{b}.{c}.{d}");
                        assert_eq!(parse(&s), std_parse(&s), "{s:?}");
                    }
                }
            }
        }
        // A fixed linear congruential sequence: the same strings on every run.
        let alphabet = b"0123456789.....:abcdef ";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as usize
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = next() % 18;
            let s: String = (0..len)
                .map(|_| char::from(alphabet[next() % alphabet.len()]))
                .collect();
            let got = parse(&s);
            assert_eq!(got, std_parse(&s), "{s:?}");
            accepted += usize::from(got.is_some());
        }
        // The sequence reaches addresses, not only refusals.
        assert!(accepted > 100, "{accepted}");
    }
}
