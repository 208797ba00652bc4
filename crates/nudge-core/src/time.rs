//! Instants and durations as the engine counts them: milliseconds since the Unix epoch (UTC).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// A length of time in milliseconds, written in rules as `90s`, `2m`, `24h`, `7d`, `1h30m`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Duration(pub i64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub fn from_secs(s: i64) -> Self {
        Duration(s * 1000)
    }
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses `1d2h30m15s500ms`-style text; units: ms, s, m, h, d, w. Whitespace is not allowed.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(DurationError::Empty);
        }
        let bytes = t.as_bytes();
        let mut i = 0;
        let mut total: i64 = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(DurationError::Malformed(text.to_string()));
            }
            let n: i64 = t[start..i]
                .parse()
                .map_err(|_| DurationError::Malformed(text.to_string()))?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = match &t[ustart..i] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                "" if i == bytes.len() && start == 0 => {
                    return Err(DurationError::MissingUnit(text.to_string()))
                }
                _ => return Err(DurationError::Malformed(text.to_string())),
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
        }
        // Ten years is far beyond any onboarding journey; refuse what would overflow instants.
        if total > 10 * 366 * 86_400_000 {
            return Err(DurationError::TooLong(text.to_string()));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return write!(f, "0s");
        }
        for (unit, len) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= len {
                write!(f, "{}{}", ms / len, unit)?;
                ms %= len;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (write e.g. `30m`, `24h`, `7d`)")]
    Empty,
    #[error("`{0}` is not a duration (write e.g. `30m`, `24h`, `1h30m`; units ms, s, m, h, d, w)")]
    Malformed(String),
    #[error("`{0}` lacks a unit (write e.g. `{0}s` or `{0}m`)")]
    MissingUnit(String),
    #[error("`{0}` is longer than ten years")]
    TooLong(String),
}

/// Formats an instant as RFC 3339 UTC with whole seconds, as replay output writes it.
pub fn format_instant(at: Millis) -> String {
    // Civil date from days since the epoch (H. Hinnant's algorithm): this runs for every
    // send, and going through a time zone database costs far more.
    let secs = at.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return format!("@{at}ms");
    }
    // Digits written directly: `format!` machinery costs more than the date arithmetic.
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |pos: usize, width: usize, mut v: i64| {
        for k in (0..width).rev() {
            b[pos + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    String::from_utf8_lossy(&b).into_owned()
}

/// Parses an RFC 3339 instant (any offset) into milliseconds.
pub fn parse_instant(text: &str) -> Result<Millis, jiff::Error> {
    let ts: jiff::Timestamp = text.parse()?;
    Ok(ts.as_millisecond())
}

/// The IANA time zone `name` (case-insensitive), from the database compiled into the binary.
///
/// The bundled database rather than the host's: rules and events resolve zones the same way on
/// every host (a Lambda function, `nudge serve`, a replay), and the first lookup does not walk
/// the host's zoneinfo directory (~1,800 entries, about 0.7 ms, paid at every cold start).
pub fn time_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    // A handle on the bundled data (no allocation); parsed zones are cached inside jiff.
    jiff::tz::TimeZoneDatabase::bundled().get(name).ok()
}

/// Serde for a zone of the bundled database, by its IANA name (UTC for one without).
pub mod zone_by_name {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &jiff::tz::TimeZone, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.iana_name().unwrap_or("UTC"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::tz::TimeZone, D::Error> {
        let name = String::deserialize(d)?;
        super::time_zone(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown time zone `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_come_from_the_bundled_database() {
        for name in [
            "UTC",
            "Europe/Berlin",
            "america/new_york",
            "Etc/GMT-5",
            "US/Pacific",
        ] {
            assert!(time_zone(name).is_some(), "{name}");
        }
        let berlin = time_zone("Europe/Berlin").unwrap();
        let summer = jiff::Timestamp::from_second(1_782_000_000).unwrap(); // 2026-06-21
        assert_eq!(berlin.to_offset(summer).seconds(), 7_200);
        for name in ["Mars/Olympus", "", "localtime", "posixrules"] {
            assert!(time_zone(name).is_none(), "{name}");
        }
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration(5_400_000));
        assert_eq!(Duration::parse("7d").unwrap(), Duration(604_800_000));
        assert_eq!(Duration::parse("250ms").unwrap(), Duration(250));
        assert_eq!(Duration::parse("2m").unwrap().to_string(), "2m");
        assert_eq!(Duration::parse("1d1h").unwrap().to_string(), "1d1h");
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(matches!(
            Duration::parse("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            Duration::parse("ten minutes"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            Duration::parse("5y"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            Duration::parse("99999999999999d"),
            Err(DurationError::TooLong(_))
        ));
        assert_eq!(Duration::parse(""), Err(DurationError::Empty));
    }

    #[test]
    fn formatting_agrees_with_jiff_across_centuries() {
        for at in [
            0i64,
            951_782_400_000,
            1_772_400_000_123,
            4_102_444_799_000,
            -86_400_000,
            253_402_200_000_000,
        ] {
            let ts = jiff::Timestamp::from_millisecond(at.div_euclid(1000) * 1000).unwrap();
            assert_eq!(
                format_instant(at),
                ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "{at}"
            );
        }
    }

    #[test]
    fn formats_instants_to_the_second() {
        let at = parse_instant("2026-03-03T09:01:00.750+01:00").unwrap();
        assert_eq!(format_instant(at), "2026-03-03T08:01:00Z");
    }
}
