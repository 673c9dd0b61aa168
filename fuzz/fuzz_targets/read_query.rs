//! The query parameters of the REST log routes, as `get_log` reads them for
//! an NDJSON read and for an event stream: a refused query gets a 400 whose
//! message names the parameter, and accepted options say exactly what the
//! parameters said (checked against the query's own form decoding).
//!
//! Input: a query string, as it follows `?` in a request's URI.

#![no_main]

use std::collections::HashMap;

use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use tekton_results_logs::api::http::read_options_of_query;
use tekton_results_logs::api::status::ErrorCode;
use tekton_results_logs::api::ReadOptions;
use tekton_results_logs::timestamp::{format_rfc3339_ns, parse_rfc3339_ns};

/// What a refused query's message starts with: the parameter at fault.
const REFUSALS: &[&str] = &[
    "invalid query string: ",
    "follow=",
    "since=",
    "until=",
    "tail=",
];

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    // Only what a request line can carry reaches the handler.
    let Ok(uri) = format!("/?{query}").parse::<Uri>() else {
        return;
    };
    let query = uri.query().unwrap_or_default();
    let params = form_pairs(query);
    for follow in [false, true] {
        match read_options_of_query(&uri, follow) {
            Ok(options) => check_accepted(&options, params.as_ref(), follow, query),
            Err(error) => {
                assert_eq!(error.code, ErrorCode::InvalidArgument);
                assert!(
                    REFUSALS.iter().any(|p| error.message.starts_with(p)),
                    "{query:?}: {}",
                    error.message
                );
            }
        }
    }
});

/// The known parameters of a query, each at most once (`None` when one
/// repeats, which is refused).
fn form_pairs(query: &str) -> Option<HashMap<String, String>> {
    const KNOWN: &[&str] = &[
        "follow",
        "cursor",
        "steps",
        "since",
        "until",
        "tail",
        "page_size",
        "page_token",
        "timestamps",
    ];
    let mut params = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if KNOWN.contains(&key.as_ref())
            && params
                .insert(key.into_owned(), value.into_owned())
                .is_some()
        {
            return None;
        }
    }
    Some(params)
}

fn check_accepted(
    options: &ReadOptions,
    params: Option<&HashMap<String, String>>,
    default_follow: bool,
    query: &str,
) {
    let params = params.unwrap_or_else(|| panic!("{query:?}: a repeated parameter was accepted"));
    let get = |key: &str| params.get(key).map(String::as_str);
    let follow = match get("follow") {
        None => default_follow,
        Some("" | "true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => panic!("{query:?}: follow={other:?} was accepted"),
    };
    assert_eq!(options.follow, follow, "{query:?}");
    assert_eq!(
        options.cursor.as_deref(),
        get("cursor").filter(|c| !c.is_empty()),
        "{query:?}"
    );
    assert_eq!(
        options.tail,
        get("tail").map(|t| t.parse::<usize>().unwrap()),
        "{query:?}"
    );
    for (key, ns) in [("since", options.since_ns), ("until", options.until_ns)] {
        assert_eq!(
            ns,
            get(key).map(|t| parse_rfc3339_ns(t).unwrap()),
            "{query:?}"
        );
        if let Some(ns) = ns {
            assert_eq!(parse_rfc3339_ns(&format_rfc3339_ns(ns)), Some(ns));
        }
    }
    let steps = get("steps").unwrap_or("");
    for step in &options.steps {
        assert!(!step.is_empty() && step.trim() == step && !step.contains(','));
    }
    let listed: Vec<&str> = steps
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(options.steps, listed, "{query:?}");
}
