//! Line-oriented CSV input: the ASN range files and the override files.
//!
//! Only what these two formats need: comma-separated fields, a field may be
//! double-quoted (then it may hold commas, and `""` stands for one quote), no
//! line breaks inside fields. Lines are read with a length cap so a file
//! without newlines cannot make us buffer it whole.

use std::io::BufRead;
use std::net::IpAddr;

use crate::error::{GeoError, LineError};
use crate::ranges::Range;
use crate::MAX_LINE_BYTES;

/// Reads lines with a length cap; yields `(line_number, Result<text>)`.
pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The next line without its line ending, or `None` at the end.
    pub(crate) fn next_line(&mut self) -> Option<(u64, Result<&str, LineErrorOrIo>)> {
        use std::io::Read;
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 2;
        let n = match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(n) => n,
            Err(e) => {
                self.line += 1;
                return Some((self.line, Err(LineErrorOrIo::Io(e))));
            }
        };
        if n == 0 {
            return None;
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if n as u64 == limit {
            return Some((self.line, Err(LineErrorOrIo::Line(LineError::TooLong))));
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Some((self.line, Err(LineErrorOrIo::Line(LineError::TooLong))));
        }
        match std::str::from_utf8(&self.buf) {
            // A byte order mark, as some editors write, is not part of the data.
            Ok(s) if self.line == 1 => {
                Some((self.line, Ok(s.strip_prefix('\u{feff}').unwrap_or(s))))
            }
            Ok(s) => Some((self.line, Ok(s))),
            Err(_) => Some((self.line, Err(LineErrorOrIo::Line(LineError::NotUtf8)))),
        }
    }
}

/// A line problem or a read error.
#[derive(Debug)]
pub(crate) enum LineErrorOrIo {
    Line(LineError),
    Io(std::io::Error),
}

/// Splits one CSV line into at most `max` fields (unquoted and trimmed).
pub(crate) fn split_fields(line: &str, max: usize) -> Result<Vec<String>, LineError> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // Skip leading blanks of a field.
        while matches!(chars.peek(), Some(' ') | Some('\t')) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(LineError::UnterminatedQuote),
                    Some('"') => {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            break;
                        }
                    }
                    Some(c) => field.push(c),
                }
            }
            // The quoted text is kept verbatim; anything between the closing
            // quote and the comma is appended with blanks trimmed.
            let mut ended = true;
            let mut after = String::new();
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                after.push(c);
            }
            field.push_str(after.trim());
            fields.push(field);
            if fields.len() > max {
                return Err(LineError::TooManyFields {
                    found: fields.len(),
                    max,
                });
            }
            if ended {
                return Ok(fields);
            }
            continue;
        }
        let mut ended = true;
        for c in chars.by_ref() {
            if c == ',' {
                ended = false;
                break;
            }
            field.push(c);
        }
        fields.push(field.trim().to_string());
        if fields.len() > max {
            return Err(LineError::TooManyFields {
                found: fields.len(),
                max,
            });
        }
        if ended {
            return Ok(fields);
        }
    }
}

/// One parsed ASN range row: family (true = IPv6), range, ASN, organisation.
pub(crate) struct AsnRow {
    pub v6: bool,
    pub range: Range<(u32, String)>,
}

/// Parses an `first_ip,last_ip,asn,organisation` line.
pub(crate) fn parse_asn_row(line: &str) -> Result<Option<AsnRow>, LineError> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let f = split_fields(line, 4)?;
    let get = |i: usize, name: &'static str| -> Result<&str, LineError> {
        f.get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(LineError::MissingField(name))
    };
    let first: IpAddr = get(0, "first_ip")?
        .parse()
        .map_err(|_| LineError::BadIp(f[0].clone()))?;
    let last: IpAddr = get(1, "last_ip")?
        .parse()
        .map_err(|_| LineError::BadIp(f[1].clone()))?;
    let asn_text = get(2, "asn")?;
    let asn = parse_asn(asn_text)?;
    // Organisation names are compared and shown trimmed ("FRIT " is "FRIT").
    let org = f.get(3).map(|o| o.trim().to_string()).unwrap_or_default();
    let (v6, start, end) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (false, u32::from(a) as u128, u32::from(b) as u128),
        (IpAddr::V6(a), IpAddr::V6(b)) => (true, u128::from(a), u128::from(b)),
        _ => return Err(LineError::BadRange),
    };
    if end < start {
        return Err(LineError::BadRange);
    }
    Ok(Some(AsnRow {
        v6,
        range: Range {
            start,
            end,
            val: (asn, org),
        },
    }))
}

/// Parses `64500` or `AS64500`.
pub(crate) fn parse_asn(s: &str) -> Result<u32, LineError> {
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::BadAsn(s.to_string()));
    }
    digits
        .parse::<u32>()
        .map_err(|_| LineError::BadAsn(s.to_string()))
}

/// Reads a whole ASN CSV into per-family range lists.
pub(crate) fn read_asn_csv<R: BufRead>(
    reader: R,
    source_name: &str,
    v4: &mut Vec<Range<(u32, String)>>,
    v6: &mut Vec<Range<(u32, String)>>,
) -> Result<(), GeoError> {
    let mut lines = Lines::new(reader);
    while let Some((line_no, res)) = lines.next_line() {
        let err = |kind| GeoError::Line {
            source_name: source_name.to_string(),
            line: line_no,
            kind,
        };
        let text = match res {
            Ok(t) => t,
            Err(LineErrorOrIo::Line(k)) => return Err(err(k)),
            Err(LineErrorOrIo::Io(e)) => {
                return Err(GeoError::Io {
                    path: source_name.into(),
                    source: e,
                })
            }
        };
        match parse_asn_row(text).map_err(err)? {
            None => {}
            Some(row) if row.v6 => v6.push(row.range),
            Some(row) => v4.push(row.range),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(split_fields("a,b,,d", 4).unwrap(), vec!["a", "b", "", "d"]);
        assert_eq!(
            split_fields(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#, 4).unwrap(),
            vec!["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        assert_eq!(
            split_fields(r#"x,"LLC ""SPUTNIK""""#, 4).unwrap(),
            vec!["x", r#"LLC "SPUTNIK""#]
        );
        assert_eq!(split_fields(r#""a,b","#, 4).unwrap(), vec!["a,b", ""]);
        assert_eq!(
            split_fields(r#"x, "b " ,y"#, 4).unwrap(),
            vec!["x", "b ", "y"]
        );
        assert_eq!(split_fields("a", 4).unwrap(), vec!["a"]);
        assert_eq!(split_fields("a,", 4).unwrap(), vec!["a", ""]);
        assert_eq!(
            split_fields(r#"a,"b"#, 4),
            Err(LineError::UnterminatedQuote)
        );
        assert_eq!(
            split_fields("a,b,c,d,e", 4),
            Err(LineError::TooManyFields { found: 5, max: 4 })
        );
    }

    #[test]
    fn asn_rows() {
        let r = parse_asn_row(r#"8.8.8.0,8.8.8.255,15169,Google LLC"#)
            .unwrap()
            .unwrap();
        assert!(!r.v6);
        assert_eq!((r.range.start, r.range.end), (0x0808_0800, 0x0808_08ff));
        assert_eq!(r.range.val, (15169, "Google LLC".to_string()));
        let r = parse_asn_row("2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,112,DNS-OARC")
            .unwrap()
            .unwrap();
        assert!(r.v6);
        assert!(parse_asn_row("").unwrap().is_none());
        assert_eq!(
            parse_asn_row("1.0.0.0,::1,5,x").err(),
            Some(LineError::BadRange)
        );
        assert_eq!(
            parse_asn_row("1.0.0.9,1.0.0.1,5,x").err(),
            Some(LineError::BadRange)
        );
        assert_eq!(
            parse_asn_row("1.0.0.0,1.0.0.1,x5,x").err(),
            Some(LineError::BadAsn("x5".into()))
        );
        assert_eq!(
            parse_asn_row("1.0.0.300,1.0.0.1,5,x").err(),
            Some(LineError::BadIp("1.0.0.300".into()))
        );
        assert_eq!(parse_asn("AS64500"), Ok(64500));
        assert!(parse_asn("4294967296").is_err());
    }

    #[test]
    fn long_lines_and_line_numbers() {
        let mut text = b"\xef\xbb\xbfa\r\nb\n".to_vec();
        text.extend(vec![b'x'; MAX_LINE_BYTES + 10]);
        text.extend_from_slice(b"\nc\n\xff\n");
        let mut lines = Lines::new(&text[..]);
        assert_eq!(
            lines.next_line().map(|(n, r)| (n, r.unwrap().to_string())),
            Some((1, "a".into()))
        );
        assert_eq!(
            lines.next_line().map(|(n, r)| (n, r.unwrap().to_string())),
            Some((2, "b".into()))
        );
        let (n, r) = lines.next_line().unwrap();
        assert_eq!(n, 3);
        assert!(matches!(r, Err(LineErrorOrIo::Line(LineError::TooLong))));
    }
}
