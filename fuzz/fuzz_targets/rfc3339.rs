//! RFC 3339 times (`since`, `until`, run records' start and completion) and
//! HTTP-dates (`Retry-After`): every time formatted parses back to itself,
//! and every text accepted is a time that formats and parses back to the
//! same nanosecond.
//!
//! Input: the text of a time; its first 8 bytes are also a time to format.

#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::timestamp::{format_rfc3339_ns, parse_http_date, parse_rfc3339_ns};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.get(..8) {
        let ns = i64::from_be_bytes(bytes.try_into().unwrap());
        let text = format_rfc3339_ns(ns);
        assert_eq!(text.len(), 30, "{text}");
        assert_eq!(parse_rfc3339_ns(&text), Some(ns), "{text}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ns) = parse_rfc3339_ns(text) {
        let formatted = format_rfc3339_ns(ns);
        assert_eq!(
            parse_rfc3339_ns(&formatted),
            Some(ns),
            "{text:?} -> {formatted}"
        );
        // The date and time of a `Z` time with nine fraction digits are
        // written back as they were given (but for a leap second, which is
        // read as second 59).
        let bytes = text.as_bytes();
        if text.len() == 30 && text.ends_with('Z') && bytes[10] == b'T' && bytes[17..19] != *b"60" {
            assert_eq!(formatted, text);
        }
    }
    if let Some(time) = parse_http_date(text) {
        check_http_date(text, time);
    }
});

/// An accepted HTTP-date is the time its fields say.
fn check_http_date(text: &str, time: SystemTime) {
    let fields: Vec<&str> = text.split_once(", ").unwrap().1.split(' ').collect();
    let number = |s: &str| s.parse::<i64>().unwrap();
    let clock: Vec<i64> = fields[3].split(':').take(3).map(number).collect();
    if clock[2] == 60 {
        // A leap second reads as the first second of the next minute.
        return;
    }
    let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let ns = i64::try_from(seconds).unwrap().checked_mul(1_000_000_000);
    let Some(ns) = ns else {
        return;
    };
    let formatted = format_rfc3339_ns(ns);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == fields[1]).unwrap() + 1;
    let expected = format!(
        "{:04}-{month:02}-{:02}T{:02}:{:02}:{:02}",
        number(fields[2]),
        number(fields[0]),
        clock[0],
        clock[1],
        clock[2]
    );
    assert_eq!(formatted[..19], expected, "{text:?}");
}
