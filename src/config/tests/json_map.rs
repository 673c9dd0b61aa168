//! Tests of the strict flat JSON object parser of `LOGGING_PLUGIN_JSON_MAP`.

use super::*;

fn json_map(text: &str) -> Result<Vec<(String, String)>> {
    Config::from_raw(&raw(&[(keys::LOGGING_PLUGIN_JSON_MAP, text)])).map(|c| c.plugin.json_map)
}

fn json_map_error(text: &str) -> String {
    match json_map(text) {
        Ok(map) => panic!("expected an error for {text:?}, got {map:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn json_map_accepts_strict_flat_objects() {
    let map = json_map(
        " { \"pod\" : \"kubernetes.pod_name\",\n\t\"esc\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\",\
         \"u\":\"\\u00e9\\uD83D\\uDE00\", \"_e\": \"\" } ",
    )
    .expect("valid JSON map");
    assert_eq!(
        map,
        pairs(&[
            ("pod", "kubernetes.pod_name"),
            ("esc", "q\" b\\ s/ \u{8}\u{c}\n\r\t"),
            ("u", "é😀"),
            ("_e", ""),
        ])
    );
    assert_eq!(json_map("{}").expect("empty object"), Vec::new());
    assert_eq!(json_map("").expect("unset"), Vec::new());
}

#[test]
fn json_map_keys_must_be_label_names_and_not_the_run_filter() {
    // A key is written into LogQL as a label name: nothing else may pass.
    for key in [
        "",
        "ü",
        "a b",
        "a=\\\"x\\\" | line_format \\\"y\\\" | b",
        "1a",
    ] {
        let text = format!("{{\"{key}\": \"message\"}}");
        assert!(
            json_map_error(&text).contains("is not a label name"),
            "{key:?}"
        );
    }
    assert!(json_map_error("{\"uid\": \"kubernetes.pod_name\"}")
        .contains("reserved for the run filter"));
}

#[test]
fn json_map_rejects_everything_else() {
    let reason = |text: &str| {
        let shown = json_map_error(text);
        let prefix =
            format!("LOGGING_PLUGIN_JSON_MAP={text:?}: not a flat JSON object of strings: ");
        match shown.strip_prefix(&prefix) {
            Some(rest) => rest.to_owned(),
            None => panic!("unexpected message {shown:?}"),
        }
    };
    assert_eq!(
        reason("{\"a\":\"b\"} x"),
        "unexpected text after the object at byte 10"
    );
    assert_eq!(
        reason("{\"a\":\"b\"}{}"),
        "unexpected text after the object at byte 9"
    );
    assert_eq!(reason("{\"a\":1}"), "expected a string value at byte 5");
    assert_eq!(reason("{\"a\":null}"), "expected a string value at byte 5");
    assert_eq!(
        reason("{\"a\":{\"b\":\"c\"}}"),
        "expected a string value at byte 5"
    );
    assert_eq!(
        reason("{\"a\":[\"b\"]}"),
        "expected a string value at byte 5"
    );
    assert_eq!(
        reason("{\"a\":\"1\",\"a\":\"2\"}"),
        "duplicate key \"a\" at byte 9"
    );
    assert_eq!(reason("{\"a\":\"b\",}"), "expected a string key at byte 9");
    assert_eq!(reason("{'a':'b'}"), "expected a string key at byte 1");
    assert_eq!(reason("{a:\"b\"}"), "expected a string key at byte 1");
    assert_eq!(reason("{\"a\" \"b\"}"), "expected `:` at byte 5");
    assert_eq!(
        reason("{\"a\":\"b\" \"c\":\"d\"}"),
        "expected `,` or `}` at byte 9"
    );
    assert_eq!(reason("{\"a\":\"b"), "unterminated string at byte 7");
    assert_eq!(reason("{\"a\":\"b\""), "expected `,` or `}` at byte 8");
    assert_eq!(reason("{\"a\":\"\\x\"}"), "invalid escape at byte 6");
    assert_eq!(
        reason("{\"a\":\"\\u12\"}"),
        "expected 4 hex digits after \\u at byte 8"
    );
    assert_eq!(
        reason("{\"a\":\"\\uD83D\"}"),
        "unpaired surrogate in \\u escape at byte 6"
    );
    assert_eq!(
        reason("{\"a\":\"\\uDE00\"}"),
        "unpaired surrogate in \\u escape at byte 6"
    );
    assert_eq!(
        reason("{\"a\":\"\\uD83D\\u0041\"}"),
        "unpaired surrogate in \\u escape at byte 6"
    );
    assert_eq!(
        reason("{\"a\":\"x\ny\"}"),
        "unescaped control character at byte 7"
    );
    assert_eq!(reason("   "), "expected `{` at byte 3");
}
