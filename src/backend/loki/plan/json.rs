//! The `json` stage with parameters (`| json name="a.b", ...`), as Loki
//! runs it on a line: the rules below were read from Loki's source (its
//! `JSONExpressionParser`) and the JSON reader it uses (a fork of
//! `jsonparser`: `EachKey`, `Get`, `Unescape`). They are lenient where a JSON
//! parser would be strict, and the connector plan must give the same labels:
//!
//! - The line is scanned byte by byte for the first occurrence of each path,
//!   in document order; when every path has been found the scan stops, so
//!   whatever follows (a cut line, a broken tail) does not matter. Commas and
//!   colons between members are not checked, keys inside arrays are never
//!   seen, and most malformed text just ends the scan, with no error.
//! - A key at the top level or above it (after a stray `}`) is an error
//!   (`Malformed JSON error`), and so is an array opened above the top level
//!   (one at the top level is skipped like any other). A found value that
//!   cannot be read is an error too (an unterminated string, array or
//!   object, or a token that is not a number, `true`, `false` or `null`).
//! - A line whose first byte is not `"`, `{` or `[` is an error with no
//!   details and no fields; an empty line is left alone.
//! - Values: `null` is empty, an object is its text as written; a string,
//!   number, boolean or array is unescaped (a bad escape empties the whole
//!   value), then every U+FFFD becomes a space (Prometheus label values may
//!   not hold it).

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3};

/// The reader's error texts, as `__error_details__` shows them.
pub const MALFORMED_JSON: &str = "Malformed JSON error";
const MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
const MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
const MALFORMED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
const UNKNOWN_VALUE: &str = "Unknown value type";

/// The most paths one stage reads (they are tracked in a bit set).
pub const MAX_PATHS: usize = 64;

/// What the stage made of a line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The values read, each with its path's index, in the order the scan
    /// found them (Loki sets the labels in this order, so when two paths
    /// give labels of one name, the one found last wins).
    pub found: Vec<(usize, String)>,
    /// The error noted, if any: `Some(None)` for a line that does not start
    /// like JSON (Loki gives no details then), else the last error's text.
    pub error: Option<Option<&'static str>>,
}

/// The paths of a stage (each a list of keys), in the order it lists them.
#[derive(Debug)]
pub struct Paths {
    paths: Vec<Vec<String>>,
    deepest: usize,
}

impl Paths {
    /// The stage reading `paths` (at most [`MAX_PATHS`], none empty).
    pub fn new(paths: Vec<Vec<String>>) -> Self {
        debug_assert!(paths.len() <= MAX_PATHS && paths.iter().all(|p| !p.is_empty()));
        let deepest = paths.iter().map(Vec::len).max().unwrap_or(0);
        Self { paths, deepest }
    }

    /// Reads `line`'s fields; `None` for an empty line, which the stage
    /// leaves alone.
    pub fn read(&self, line: &str) -> Option<Fields> {
        let data = line.as_bytes();
        let first = *data.first()?;
        let mut fields = Fields::default();
        if !matches!(first, b'"' | b'{' | b'[') {
            fields.error = Some(None);
            return Some(fields);
        }
        if let Err(details) = self.scan(line, &mut fields.found) {
            fields.error = Some(Some(details));
        }
        Some(fields)
    }

    /// The scan: notes the values of the paths found, in order; `Err` holds
    /// the last error noted (a later one replaces the details of an earlier
    /// one).
    fn scan(&self, line: &str, found: &mut Vec<(usize, String)>) -> Result<(), &'static str> {
        let data = line.as_bytes();
        let all: u64 = if self.paths.len() == MAX_PATHS {
            u64::MAX
        } else {
            (1 << self.paths.len()) - 1
        };
        let mut done: u64 = 0;
        let mut error = None;
        // The last key seen at each level, up to the deepest path.
        let mut seen: Vec<Cow<'_, str>> = vec![Cow::Borrowed(""); self.deepest];
        let mut level: i64 = 0;
        let mut i = 0;
        while i < data.len() {
            match data[i] {
                b'"' => {
                    let Some((end, escaped)) = string_end(data, i + 1) else {
                        break;
                    };
                    let Some(next) = skip_space(data, end) else {
                        break;
                    };
                    if data[next] != b':' {
                        // A string value: go on from what follows it.
                        i = next;
                        continue;
                    }
                    let raw = &line[i + 1..end - 1];
                    let key = if escaped {
                        match unescape(raw) {
                            Some(key) => Cow::Owned(key),
                            None => break,
                        }
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if level <= self.deepest as i64 {
                        if level < 1 {
                            error = Some(MALFORMED_JSON);
                            break;
                        }
                        let depth = level as usize;
                        seen[depth - 1] = key;
                        for (p, path) in self.paths.iter().enumerate() {
                            if done & (1 << p) != 0
                                || path.len() != depth
                                || !path.iter().zip(&seen).all(|(k, s)| k == s)
                            {
                                continue;
                            }
                            done |= 1 << p;
                            match value(line, next + 1) {
                                Ok(v) => found.push((p, v)),
                                Err(details) => error = Some(details),
                            }
                        }
                        if done == all {
                            break;
                        }
                    }
                    // On into the value, whatever it is.
                    i = next + 1;
                    continue;
                }
                b'{' => level += 1,
                b'}' | b']' => level -= 1,
                b'[' => {
                    if level < 0 {
                        error = Some(MALFORMED_JSON);
                        break;
                    }
                    // Keys inside arrays are never looked at.
                    match block_end(data, i, b'[', b']') {
                        Some(end) => {
                            i = end;
                            continue;
                        }
                        None => break,
                    }
                }
                _ => {}
            }
            i += 1;
        }
        error.map_or(Ok(()), Err)
    }
}

/// Whether `b` is JSON white space.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The index of the first byte at or after `from` that is not JSON white
/// space, if any.
fn skip_space(data: &[u8], from: usize) -> Option<usize> {
    data[from..]
        .iter()
        .position(|&b| !is_space(b))
        .map(|at| from + at)
}

/// The end of a string whose text starts at `from` (after its opening
/// quote): the index after its closing quote (a quote not escaped by a
/// backslash), and whether a backslash occurred in it.
fn string_end(data: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    let mut escaped = false;
    loop {
        let at = i + memchr2(b'"', b'\\', data.get(i..)?)?;
        if data[at] == b'"' {
            return Some((at + 1, escaped));
        }
        escaped = true;
        // The byte after a backslash cannot end the string.
        i = at + 2;
    }
}

/// The index after the bracket closing the one at `start`, counting only
/// `open` and `close` and skipping strings.
fn block_end(data: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    loop {
        let at = i + memchr3(open, close, b'"', data.get(i..)?)?;
        match data[at] {
            b'"' => {
                i = string_end(data, at + 1)?.0;
                continue;
            }
            b if b == open => depth += 1,
            _ => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(at + 1);
                }
            }
        }
        i = at + 1;
    }
}

/// The label value of the JSON value after a found key's colon (at `from`).
fn value(line: &str, from: usize) -> Result<String, &'static str> {
    let data = line.as_bytes();
    let start = skip_space(data, from).ok_or(MALFORMED_JSON)?;
    match data[start] {
        b'"' => {
            let (end, _) = string_end(data, start + 1).ok_or(MALFORMED_STRING)?;
            Ok(label_text(&line[start + 1..end - 1]))
        }
        b'[' => {
            let end = block_end(data, start, b'[', b']').ok_or(MALFORMED_ARRAY)?;
            Ok(label_text(&line[start..end]))
        }
        b'{' => {
            let end = block_end(data, start, b'{', b'}').ok_or(MALFORMED_OBJECT)?;
            // An object is kept as written.
            Ok(line[start..end].to_owned())
        }
        first => {
            let end = data[start..]
                .iter()
                .position(|&b| is_space(b) || matches!(b, b',' | b'}' | b']'))
                .map_or(data.len(), |at| start + at);
            let token = &line[start..end];
            match first {
                b't' | b'f' if token == "true" || token == "false" => Ok(token.to_owned()),
                b'n' | b'u' if token == "null" => Ok(String::new()),
                b'0'..=b'9' | b'-' => Ok(label_text(token)),
                _ => Err(UNKNOWN_VALUE),
            }
        }
    }
}

/// What Loki makes of a value's text: unescaped (empty when an escape is
/// bad), with each U+FFFD turned into a space.
fn label_text(raw: &str) -> String {
    let text = if memchr(b'\\', raw.as_bytes()).is_some() {
        match unescape(raw) {
            Some(text) => text,
            None => return String::new(),
        }
    } else {
        raw.to_owned()
    };
    if text.contains('\u{FFFD}') {
        text.replace('\u{FFFD}', " ")
    } else {
        text
    }
}

/// Unescapes JSON string text as the reader does; `None` for a bad escape.
///
/// A `\u` escape of a UTF-16 surrogate takes the next escape's four hex
/// digits as the low half (without checking that they follow `\u`, and
/// accepting any value from DC00 up), and a pair beyond U+10FFFF gives
/// U+FFFD; a lone surrogate is a bad escape.
pub fn unescape(raw: &str) -> Option<String> {
    let data = raw.as_bytes();
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(at) = memchr(b'\\', &data[i..]) {
        out.extend_from_slice(&data[i..i + at]);
        i += at;
        let byte = match *data.get(i + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let first = hex4(data.get(i + 2..i + 6)?)?;
                let (c, used) = if (0xD800..=0xDFFF).contains(&first) {
                    let second = hex4(data.get(i + 8..i + 12)?)?;
                    if second < 0xDC00 {
                        return None;
                    }
                    let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                } else {
                    (char::from_u32(first)?, 6)
                };
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += used;
                continue;
            }
            _ => return None,
        };
        out.push(byte);
        i += 2;
    }
    out.extend_from_slice(&data[i..]);
    // The two bytes skipped between a surrogate and its low half are whole
    // characters (the hex digits around them are ASCII), so this is UTF-8.
    String::from_utf8(out).ok()
}

/// Four hex digits (either case) as a number.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(n << 4 | v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `line` for `paths` (dotted), giving each value and the error.
    fn read(paths: &[&str], line: &str) -> (Vec<Option<String>>, Option<Option<&'static str>>) {
        let paths = Paths::new(
            paths
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect(),
        );
        let fields = paths.read(line).expect("not empty");
        let mut values = vec![None; paths.paths.len()];
        for (p, value) in fields.found {
            values[p] = Some(value);
        }
        (values, fields.error)
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some((*v).to_owned())).collect()
    }

    #[test]
    fn the_first_of_duplicate_keys_wins_path_by_path() {
        let (values, error) = read(
            &["k.a", "k.b", "m"],
            r#"{"m":"1","k":{"a":"x"},"k":{"a":"y","b":"z"},"m":"2"}"#,
        );
        assert_eq!((values, error), (some(&["x", "z", "1"]), None));
    }

    #[test]
    fn values_are_read_as_loki_reads_them() {
        let line = r#"{"s":"say \"hi\" \u00e9 \ud83d\ude80","n":-12abc,"t":true,"z":null,"o":{"a": [1, "\u0041"]},"a":["a\"b", "\u00e9"],"f":"bad \ufffd �"}"#;
        let (values, error) = read(&["s", "n", "t", "z", "o", "a", "f"], line);
        assert_eq!(error, None);
        assert_eq!(
            values,
            some(&[
                "say \"hi\" é 🚀",
                "-12abc",
                "true",
                "",
                r#"{"a": [1, "\u0041"]}"#,
                r#"["a"b", "é"]"#,
                "bad    ",
            ])
        );
    }

    #[test]
    fn a_bad_escape_empties_the_value() {
        for raw in [r"\x", r"\u12", r"\ud83d", r"\ud83d\u0041", r"end\"] {
            let line = format!(r#"{{"m":"{raw}"}}"#);
            let (values, _) = read(&["m"], &line);
            // `end\` leaves the string open instead: no value, an error.
            if raw == r"end\" {
                assert_eq!(values, vec![None], "{raw}");
            } else {
                assert_eq!(values, some(&[""]), "{raw}");
            }
        }
        // The low half's `\u` is not checked, and a pair past U+10FFFF is
        // U+FFFD, a space.
        let (values, _) = read(&["m", "n"], r#"{"m":"\ud83dxxde80","n":"\udc00\udc00"}"#);
        assert_eq!(values, some(&["🚀", " "]));
    }

    #[test]
    fn keys_are_matched_unescaped_and_not_inside_arrays() {
        let (values, _) = read(
            &["message", "k.x"],
            r#"{"list":[{"message":"no"}],"k":{"x":"1"} "mess\u0061ge":"yes"}"#,
        );
        assert_eq!(values, some(&["yes", "1"]));
    }

    #[test]
    fn arrays_are_skipped_and_text_before_an_object_is_scanned() {
        let uid = ["kubernetes.labels.tekton_dev_taskRunUID"];
        for line in [
            r#"{"kubernetes":[{"labels":{"tekton_dev_taskRunUID":"U"}}]}"#,
            r#"[{"kubernetes":{"labels":{"tekton_dev_taskRunUID":"U"}}}]"#,
        ] {
            assert_eq!(read(&uid, line), (vec![None], None), "{line}");
        }
        // An array or a string first, then an object: the object is read.
        for line in [
            r#"[x] {"a":"v"}"#,
            r#""s" {"a":"v"}"#,
            r#"[{"a":"in"}] {"a":"v"}"#,
        ] {
            assert_eq!(read(&["a"], line), (some(&["v"]), None), "{line}");
        }
    }

    #[test]
    fn a_key_that_cannot_be_unescaped_ends_the_scan_quietly() {
        assert_eq!(
            read(&["a"], r#"{"b":{"\q":1},"a":"v"}"#),
            (vec![None], None)
        );
    }

    #[test]
    fn the_last_error_noted_gives_the_details() {
        let (values, error) = read(&["a", "b"], r#"{"a":tru,"b":"open"#);
        assert_eq!(
            (values, error),
            (vec![None, None], Some(Some(MALFORMED_STRING)))
        );
    }

    #[test]
    fn carriage_returns_are_white_space() {
        assert_eq!(
            read(&["a", "b"], "{\r\"a\"\r:\r\"v\"\r,\"b\":\r1\r}"),
            (some(&["v", "1"]), None)
        );
    }

    #[test]
    fn a_low_half_above_the_surrogates_still_pairs() {
        // The reader only checks that the low half is at least DC00.
        assert_eq!(
            read(&["m"], r#"{"m":"\ud83d\ue000"}"#),
            (some(&["\u{1F800}"]), None)
        );
    }

    #[test]
    fn values_are_found_in_line_order() {
        let paths = Paths::new(vec![vec!["a".into()], vec!["b".into()]]);
        let fields = paths.read(r#"{"b":"2","a":"1"}"#).unwrap();
        assert_eq!(fields.found, vec![(1, "2".into()), (0, "1".into())]);
    }

    #[test]
    fn the_scan_ends_without_error_once_every_path_is_found() {
        let (values, error) = read(&["a", "b"], r#"{"a":"1","b":2,"c":"cut here"#);
        assert_eq!(
            (values, error),
            (vec![Some("1".into()), Some("2".into())], None)
        );
        // Cut before a path: what was found, no error.
        let (values, error) = read(&["a", "b"], r#"{"a":"1","c":"cut he"#);
        assert_eq!((values, error), (vec![Some("1".into()), None], None));
    }

    #[test]
    fn errors_are_noted_as_loki_notes_them() {
        let cases: [(&str, Option<Option<&str>>); 7] = [
            (r#" {"a":"1"}"#, Some(None)),
            (r#"x{"a":"1"}"#, Some(None)),
            (r#"{"b":1}}"a":"1"}"#, Some(Some(MALFORMED_JSON))),
            (r#"{"b":1}}["#, Some(Some(MALFORMED_JSON))),
            (r#"{"a":"open"#, Some(Some(MALFORMED_STRING))),
            (r#"{"a":[1,"#, Some(Some(MALFORMED_ARRAY))),
            (r#"{"a":{"b":1"#, Some(Some(MALFORMED_OBJECT))),
        ];
        for (line, want) in cases {
            let (values, error) = read(&["a"], line);
            assert_eq!(error, want, "{line}");
            assert_eq!(values, vec![None], "{line}");
        }
        let (values, error) = read(&["a", "b"], r#"{"a": nul, "b": "x"}"#);
        assert_eq!(
            (values, error),
            (vec![None, Some("x".into())], Some(Some(UNKNOWN_VALUE)))
        );
        let (_, error) = read(&["a"], r#"{"a":   "#);
        assert_eq!(error, Some(Some(MALFORMED_JSON)));
    }
}
