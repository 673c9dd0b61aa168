//! Loki's answers to a refused push (plain-text bodies of 400, 429 and 5xx):
//! every reason is a non-empty piece of the body, as the body has it; an
//! empty body has none, any other has at least one (or the count of ignored
//! entries); the answer is retryable exactly for 429 and 5xx other than a
//! too-large request; the ignored count, when stated, is what the body says.
//!
//! Input: the status (first byte, as an index into the statuses Loki
//! sends), then the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::backend::loki::push::parse_rejection;

const STATUSES: [u16; 6] = [400, 413, 429, 500, 502, 503];

fuzz_target!(|data: &[u8]| {
    let [status, body @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let body = String::from_utf8_lossy(body);
    let rejection = parse_rejection(status, &body);
    assert_eq!(rejection.status, status);
    let too_large = body.contains("grpc: received message larger than max");
    let retryable = (status == 429 || status >= 500) && !too_large;
    assert_eq!(rejection.retryable, retryable, "{body:?}");
    if body.trim().is_empty() {
        assert!(rejection.reasons.is_empty());
    } else {
        // A body listing only the ignored count has no reason to give.
        assert!(
            !rejection.reasons.is_empty() || rejection.ignored.is_some(),
            "{body:?}"
        );
    }
    for reason in &rejection.reasons {
        assert!(!reason.trim().is_empty(), "{body:?}: {reason:?}");
        assert!(body.contains(reason.as_str()), "{body:?}: {reason:?}");
    }
    if let Some(counts) = rejection.ignored {
        let stated: Vec<&str> = body.split("', total ignored: ").skip(1).collect();
        assert!(!stated.is_empty(), "{body:?}");
        if let [one] = stated[..] {
            let (n, rest) = one.split_once(" out of ").unwrap();
            let m = rest.split_once(" for stream: ").unwrap().0;
            assert_eq!(counts, (n.parse().unwrap(), m.parse().unwrap()), "{body:?}");
        }
    }
});
