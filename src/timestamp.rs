//! Parsing the two timestamp forms the service reads from others: RFC 3339
//! (Kubernetes objects in run records, e.g. `status.startTime`) and the
//! IMF-fixdate form of HTTP-dates (`Retry-After`); writing RFC 3339 with
//! nanoseconds (structured log records). Written out here rather than
//! pulling in a date-time library for two parsers and one formatter.

use std::time::{Duration, SystemTime};

/// Nanoseconds since the epoch, now (`i64::MAX` past 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(i64::MAX)
}

/// Nanoseconds since the epoch as RFC 3339 in UTC with nine fraction
/// digits, `2026-11-25T10:04:38.000000000Z` (proleptic Gregorian calendar;
/// an `i64` of nanoseconds spans the years 1677 to 2262).
pub fn format_rfc3339_ns(ns: i64) -> String {
    let seconds = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a date, counting in 400-year eras that start
    // on 0000-03-01 (so a leap day ends each era's year).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an RFC 3339 date-time (`2026-11-25T10:04:38Z`,
/// `2026-11-25T10:04:38.123456789+01:00`) into nanoseconds since the epoch.
pub fn parse_rfc3339_ns(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = fraction[..digits].parse::<i64>().ok()? * 10i64.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?;
            let digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
            if tz.len() != 5 || tz.as_bytes()[2] != b':' || !digits(&tz[..2]) || !digits(&tz[3..]) {
                return None;
            }
            let (h, m): (i64, i64) = (tz[..2].parse().ok()?, tz[3..].parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_seconds;
    // i128: in the first second of the range (1677-09-21T00:12:43.145224192Z
    // and after) the seconds alone overflow i64 although the sum fits.
    i64::try_from(i128::from(seconds) * 1_000_000_000 + i128::from(nanos)).ok()
}

/// Parses the IMF-fixdate form of an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// the one servers must send.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let rest = value.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = parts.next()?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT"
        || !(1..=days_in_month(year, month)).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #[test]
    fn formatted_times_parse_back() {
        for ns in [
            0,
            1_795_601_078_123_456_789,
            -1,
            951_782_400_000_000_000,
            4_107_542_399_999_999_999,
            -9_000_000_000_000_000_000,
            i64::MAX,
        ] {
            let text = super::format_rfc3339_ns(ns);
            assert_eq!(super::parse_rfc3339_ns(&text), Some(ns), "{text}");
        }
        assert_eq!(
            super::format_rfc3339_ns(1_795_601_078_000_000_001),
            "2026-11-25T10:04:38.000000001Z"
        );
        assert_eq!(
            super::format_rfc3339_ns(i64::MIN),
            "1677-09-21T00:12:43.145224192Z"
        );
    }

    use super::*;

    #[test]
    fn the_earliest_nanosecond_parses_back() {
        // Found by the rfc3339 fuzz target: the seconds overflowed before
        // the fraction was added.
        let text = format_rfc3339_ns(i64::MIN);
        assert_eq!(parse_rfc3339_ns(&text), Some(i64::MIN));
        assert_eq!(
            parse_rfc3339_ns("1677-09-21T00:12:43.9Z"),
            Some(i64::MIN + 754_775_808)
        );
        assert_eq!(parse_rfc3339_ns("1677-09-21T00:12:43.145224191Z"), None);
        assert_eq!(parse_rfc3339_ns("2262-04-11T23:47:16.854775808Z"), None);
    }

    #[test]
    fn rfc3339_forms() {
        // B = 2026-11-25T10:10:00Z in the Loki captures.
        assert_eq!(
            parse_rfc3339_ns("2026-11-25T10:10:00Z"),
            Some(1_795_601_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-25T10:10:00.5Z"),
            Some(1_795_601_400_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-25T10:10:00.000000001Z"),
            Some(1_795_601_400_000_000_001)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-25T11:10:00+01:00"),
            Some(1_795_601_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-25T09:40:00-00:30"),
            Some(1_795_601_400_000_000_000)
        );
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "2026-11-25T10:10:00",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:10:00.Z",
            "2026-11-25T10:10:00.1234567890Z",
            "2026-11-25T10:10:00+1:00",
            "2026-11-25T10:10:00+-1:00",
            "2026-11-25T10:10:00Zjunk",
            "+026-11-25T10:10:00Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Wed, 25 Nov 2026 10:35:53 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_602_953))
        );
        for bad in [
            "",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 99999999999999999 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
