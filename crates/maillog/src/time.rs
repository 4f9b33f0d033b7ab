//! Event time.
//!
//! Every event carries the time its log line gives, converted to UTC microseconds since the Unix
//! epoch. Syslog's RFC 3164 stamp (`Nov 20 10:47:15`) has neither year nor zone: the caller gives
//! both ([`TimeContext`]), and a jump back from December to January moves to the next year.

use serde::{Deserialize, Serialize};

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Ts(pub i64);

/// Microseconds in one second.
pub const MICROS: i64 = 1_000_000;

/// Bytes of the longest usual [`Ts::rfc3339`] (`2026-11-20T10:47:15.123456Z`).
const DATE_TIME_CAPACITY: usize = 27;

/// `v` (0 ≤ v < 10^width) in `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, v: i64, width: u32) {
    for k in (0..width).rev() {
        let digit = (v / 10_i64.pow(k)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

impl Ts {
    /// From whole seconds since the epoch.
    pub const fn from_secs(s: i64) -> Ts {
        Ts(s * MICROS)
    }
    /// Whole seconds since the epoch (floor).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(MICROS)
    }
    /// This time plus `s` seconds (saturating at the ends of the range).
    pub const fn plus_secs(self, s: i64) -> Ts {
        Ts(self.0.saturating_add(s.saturating_mul(MICROS)))
    }
    /// RFC 3339 in UTC, `2026-11-20T10:47:15Z` (fraction only when non-zero).
    pub fn rfc3339(self) -> String {
        let micros = self.0.rem_euclid(MICROS);
        let mut out = self.date_time('T');
        if micros != 0 {
            out.push('.');
            push_digits(&mut out, micros, 6);
        }
        out.push('Z');
        out
    }
    /// `2026-11-20 10:47:15` in UTC, the form abuse reports use.
    pub fn display_utc(self) -> String {
        self.date_time(' ')
    }
    /// [`Ts::display_utc`] appended to `out`: for a caller that writes many into one buffer.
    pub fn push_display_utc(self, out: &mut String) {
        self.push_date_time(' ', out);
    }
    /// `2026-11-20<sep>10:47:15` in UTC. Written digit by digit: `format!` with six padded
    /// fields cost about 2,800 instructions a call, and every failing message's evidence sample
    /// carries one (docs/PERFORMANCE.md). Years outside 0-9999 (a forged stamp) are written as
    /// `format!`'s `{y:04}` writes them.
    fn date_time(self, sep: char) -> String {
        let mut out = String::with_capacity(DATE_TIME_CAPACITY);
        self.push_date_time(sep, &mut out);
        out
    }
    /// [`Ts::date_time`] appended to `out`.
    fn push_date_time(self, sep: char, out: &mut String) {
        let secs = self.secs();
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        if (0..=9999).contains(&y) {
            push_digits(out, y, 4);
        } else {
            out.push_str(&format!("{y:04}"));
        }
        for (lead, v) in [
            ('-', i64::from(mo)),
            ('-', i64::from(d)),
            (sep, sod / 3600),
            (':', (sod / 60) % 60),
            (':', sod % 60),
        ] {
            out.push(lead);
            push_digits(out, v, 2);
        }
    }
    /// Parse RFC 3339 (`2026-11-20T10:47:15Z`, `…15.123+01:00`).
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        crate::header::parse_iso(s.as_bytes()).map(|(t, _)| t)
    }
}

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How far after the reference time a year-less stamp may lie before it is taken to be from
/// the year before. A log line is never written in the future, but the reference (the reader's
/// clock, a file's modification time) and the writer's local wall clock differ by the zone
/// offset (up to 14 h) and by clock skew, and the stamp is compared by its date alone: one day
/// covers all of that. Our own idea.
pub const FUTURE_TOLERANCE_SECS: i64 = 86_400;

/// How local wall-clock stamps without a zone become UTC, and which year a stamp without a year
/// belongs to.
#[derive(Debug, Clone)]
pub struct TimeContext {
    year: i64,
    last_month: u32,
    /// Seconds since the epoch of "now" for the reader: a year-less date more than
    /// [`FUTURE_TOLERANCE_SECS`] after it belongs to the year before.
    reference: Option<i64>,
    tz: jiff::tz::TimeZone,
    /// Cache: local hour (as seconds since epoch, wall clock) -> offset seconds.
    cache_key: i64,
    cache_off: i64,
    /// The last RFC 3164 stamp read and what it gave ([`crate::header`]): most lines of a busy
    /// log share their second with the line before.
    pub(crate) last_stamp: Option<StampMemo>,
}

/// An RFC 3164 stamp (`Nov 20 10:47:15`) as [`crate::header::parse_header`] read it last: the
/// line's first [`STAMP_KEY_BYTES`] bytes, the fields read from them, and the time they gave in
/// the year then assumed (whole seconds: a fraction follows the key and is read from every
/// line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampMemo {
    /// The line's first [`STAMP_KEY_BYTES`] bytes.
    pub key: [u8; STAMP_KEY_BYTES],
    pub fields: StampFields,
    /// The year the time was computed in.
    pub year: i64,
    /// The time, whole seconds.
    pub ts: Ts,
}

/// The fields of an RFC 3164 stamp, and where it ends (before a fraction).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampFields {
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub end: usize,
}

/// How many bytes of a line [`StampMemo`] compares: `Nov 20 10:47:15` and the byte after it
/// (a space, or the `.` of a fraction, which is read again for every line).
pub(crate) const STAMP_KEY_BYTES: usize = 16;

impl TimeContext {
    /// Year for the first year-less stamp, and the zone of zone-less stamps.
    pub fn new(year: i64, tz: jiff::tz::TimeZone) -> Self {
        TimeContext {
            year,
            last_month: 0,
            reference: None,
            tz,
            cache_key: i64::MIN,
            cache_off: 0,
            last_stamp: None,
        }
    }
    /// UTC, year given.
    pub fn utc(year: i64) -> Self {
        Self::new(year, jiff::tz::TimeZone::UTC)
    }
    /// The year now assumed for year-less stamps.
    pub fn year(&self) -> i64 {
        self.year
    }
    /// Month of the last year-less stamp seen (0 before the first): with [`TimeContext::year`]
    /// the whole year-rollover state, so a parser that works on a slice of a file can be checked
    /// against the state the lines before it left.
    pub fn last_month(&self) -> u32 {
        self.last_month
    }
    /// Year for a year-less stamp of month `m`, moving to the next year on a December -> January
    /// jump (log files run forward in time).
    pub fn year_for_month(&mut self, m: u32) -> i64 {
        if self.last_month == 12 && m == 1 {
            self.year += 1;
        }
        self.last_month = m;
        self.year
    }
    /// Set (or move) the reference time: from now on a year-less date that would lie more than
    /// [`FUTURE_TOLERANCE_SECS`] after it is taken to be from the year before.
    pub fn set_reference(&mut self, now: Ts) {
        self.reference = Some(now.secs());
    }
    /// Year for a year-less stamp of month `m`, day `d`: [`TimeContext::year_for_month`], then,
    /// with a reference time, a date that would lie in the future moves the context back one
    /// year (so a December line read in January is last December's, and the January lines
    /// after it roll over into this year again).
    pub fn year_for_date(&mut self, m: u32, d: u32) -> i64 {
        let y = self.year_for_month(m);
        if let Some(r) = self.reference {
            if days_from_civil(y, m, d) * 86_400 > r + FUTURE_TOLERANCE_SECS {
                self.year = y - 1;
            }
        }
        self.year
    }
    /// Local wall-clock time to UTC.
    #[allow(clippy::too_many_arguments)] // the seven fields of a civil time, as parsed
    pub fn local_to_utc(
        &mut self,
        y: i64,
        mo: u32,
        d: u32,
        h: u32,
        mi: u32,
        s: u32,
        us: u32,
    ) -> Ts {
        let wall =
            days_from_civil(y, mo, d) * 86_400 + (h as i64) * 3600 + (mi as i64) * 60 + s as i64;
        let key = wall.div_euclid(3600);
        if key != self.cache_key {
            self.cache_key = key;
            self.cache_off = self.offset_for_wall(wall);
        }
        Ts((wall - self.cache_off) * MICROS + us as i64)
    }

    fn offset_for_wall(&self, wall: i64) -> i64 {
        if self.tz == jiff::tz::TimeZone::UTC {
            return 0;
        }
        let (y, mo, d) = civil_from_days(wall.div_euclid(86_400));
        let sod = wall.rem_euclid(86_400);
        let dt = jiff::civil::DateTime::new(
            y as i16,
            mo as i8,
            d as i8,
            (sod / 3600) as i8,
            ((sod / 60) % 60) as i8,
            0,
            0,
        );
        match dt {
            Ok(dt) => match self.tz.to_ambiguous_zoned(dt).compatible() {
                Ok(z) => z.offset().seconds() as i64,
                Err(_) => 0,
            },
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 17_000, 20_412, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    /// The digit-by-digit forms are what `format!` wrote, over the years a log can hold and
    /// the ones only a forged stamp gives (negative, past 9999), with and without a fraction.
    #[test]
    fn date_time_forms_are_format_s() {
        let old_display = |t: Ts| {
            let secs = t.secs();
            let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            let (h, mi, s) = (sod / 3600, (sod / 60) % 60, sod % 60);
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        };
        let old_rfc = |t: Ts| {
            let micros = t.0.rem_euclid(MICROS);
            let date = old_display(t).replace(' ', "T");
            if micros == 0 {
                format!("{date}Z")
            } else {
                format!("{date}.{micros:06}Z")
            }
        };
        let mut times = vec![
            i64::MIN / 2,
            -62_167_219_200 * MICROS - 1,
            -1,
            0,
            1,
            i64::MAX / 2,
        ];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(x % (200_000 * 365 * 86_400 * MICROS));
            times.push(1_700_000_000 * MICROS + x % (40 * 365 * 86_400 * MICROS));
        }
        for t in times.into_iter().map(Ts) {
            assert_eq!(t.display_utc(), old_display(t), "{}", t.0);
            assert_eq!(t.rfc3339(), old_rfc(t), "{}", t.0);
        }
    }

    #[test]
    fn rfc3339_format() {
        let t = Ts::from_secs(days_from_civil(2026, 11, 20) * 86_400 + 10 * 3600 + 47 * 60 + 15);
        assert_eq!(t.rfc3339(), "2026-11-20T10:47:15Z");
        assert_eq!(Ts(t.0 + 5).rfc3339(), "2026-11-20T10:47:15.000005Z");
        assert_eq!(Ts::parse_rfc3339("2026-11-20T11:47:15+01:00"), Some(t));
    }

    #[test]
    fn year_rollover() {
        let mut c = TimeContext::utc(2025);
        assert_eq!(c.year_for_month(12), 2025);
        assert_eq!(c.year_for_month(1), 2026);
        assert_eq!(c.year_for_month(1), 2026);
    }

    #[test]
    fn a_date_in_the_future_is_last_year() {
        // Read on 2027-01-01 12:00 UTC, with the year guessed from the clock.
        let now = Ts::from_secs(days_from_civil(2027, 1, 1) * 86_400 + 12 * 3600);
        let mut c = TimeContext::utc(2027);
        c.set_reference(now);
        // A backlog from December: last year's; then the new year rolls over as usual.
        assert_eq!(c.year_for_date(12, 31), 2026);
        assert_eq!(c.year_for_date(1, 1), 2027);
        assert_eq!(
            c.year_for_date(1, 2),
            2027,
            "tomorrow is within the tolerance"
        );
        // Without a reference nothing moves back (analyze with a year, the old behaviour).
        let mut c = TimeContext::utc(2027);
        assert_eq!(c.year_for_date(12, 31), 2027);
        // A date two days ahead is in the future.
        let mut c = TimeContext::utc(2027);
        c.set_reference(now);
        assert_eq!(c.year_for_date(1, 3), 2026);
    }

    #[test]
    fn zone_conversion() {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let mut c = TimeContext::new(2026, tz);
        let t = c.local_to_utc(2026, 7, 1, 12, 0, 0, 0);
        assert_eq!(t.rfc3339(), "2026-07-01T10:00:00Z");
        let t = c.local_to_utc(2026, 1, 1, 12, 0, 0, 0);
        assert_eq!(t.rfc3339(), "2026-01-01T11:00:00Z");
    }
}
