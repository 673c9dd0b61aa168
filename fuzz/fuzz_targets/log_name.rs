//! Log names: `LogName::parse` and `LogName::from_parts` agree, an accepted
//! name prints back to the text it was parsed from and is safe as a path,
//! and a refused one says why in a bounded message.
//!
//! Input: the text of a name. Its first three lines are also tried as the
//! namespace, result and log parts of `from_parts`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tekton_results_logs::run::LogName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_parse(text);
    let mut parts = text.splitn(3, '\n');
    let (Some(parent), Some(result), Some(log)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let joined = format!("{parent}/results/{result}/logs/{log}");
    match (
        LogName::from_parts(parent, result, log),
        LogName::parse(&joined),
    ) {
        (Ok(built), Ok(parsed)) => {
            assert_eq!(built, parsed);
            assert_eq!(built.to_string(), joined);
        }
        (Err(built), Err(parsed)) => {
            assert!(!built.reason.is_empty());
            assert!(!parsed.reason.is_empty());
        }
        (built, parsed) => {
            panic!("from_parts and parse disagree on {joined:?}: {built:?} vs {parsed:?}")
        }
    }
});

fn check_parse(text: &str) {
    match LogName::parse(text) {
        Ok(name) => {
            assert_eq!(name.to_string(), text, "a name prints as it was parsed");
            assert_eq!(text.parse::<LogName>().as_ref(), Ok(&name));
            for part in [name.parent(), name.result(), name.log()] {
                assert!((1..=63).contains(&part.len()), "{part:?}");
                assert!(
                    part.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')),
                    "{part:?} is not safe in a path"
                );
            }
            let again = LogName::from_parts(name.parent(), name.result(), name.log());
            assert_eq!(again.as_ref(), Ok(&name));
            // The record form is not a log name, and the refusal says how to
            // make it one.
            let record = LogName::parse(&name.record_name()).unwrap_err();
            assert!(record.reason.contains("replace \"records\" with \"logs\""));
        }
        Err(error) => {
            assert!(!error.reason.is_empty());
            let message = error.to_string();
            assert!(message.starts_with("invalid log name "), "{message}");
            // A long refused name is shortened: the echo stays bounded.
            assert!(error.name.chars().count() <= 121, "{}", error.name);
        }
    }
}
