use proptest::prelude::*;

use super::*;

const GOOD: &str = "results-cap/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/logs/00267d8d-3638-4ee0-ba4b-585665422ee1";

fn reason(name: &str) -> String {
    LogName::parse(name).unwrap_err().reason
}

#[test]
fn parses_an_upstream_name_and_round_trips() {
    let name = LogName::parse(GOOD).unwrap();
    assert_eq!(name.parent(), "results-cap");
    assert_eq!(name.result(), "632c7746-5b0d-45ed-ad1d-08540d75fd83");
    assert_eq!(name.log(), "00267d8d-3638-4ee0-ba4b-585665422ee1");
    assert_eq!(name.to_string(), GOOD);
    assert_eq!(
        name.record_name(),
        "results-cap/results/632c7746-5b0d-45ed-ad1d-08540d75fd83/records/00267d8d-3638-4ee0-ba4b-585665422ee1"
    );
}

#[test]
fn accepts_what_the_upstream_regex_accepts() {
    // A 63-byte part and an underscore pass upstream's check (capture 05.5, 05.13).
    let long = "a".repeat(63);
    assert!(LogName::parse(&format!("my_ns/results/r/logs/{long}")).is_ok());
    assert!(LogName::parse("-/results/_/logs/0").is_ok());
}

#[test]
fn refuses_every_malformed_shape_with_a_precise_reason() {
    assert!(reason("").starts_with("empty"));
    assert_eq!(
        reason("Results-Cap/results/r/logs/l"),
        "the namespace part \"Results-Cap\" has the character 'R'; only lowercase letters, digits, '-' and '_' are allowed"
    );
    assert_eq!(
        reason(&format!("ns/results/r/logs/{}", "a".repeat(64))),
        "the log part is 64 bytes long; at most 63 are allowed"
    );
    assert!(reason("ns/results/../logs/l").contains("the result part \"..\" has the character '.'"));
    assert!(reason("ns/results/r/logs/l/extra").contains("found 6"));
    assert!(reason("ns/results/r/logs/l/").contains("found 6"));
    assert!(reason("/ns/results/r/logs/l").contains("found 6"));
    assert_eq!(reason("ns/results/r/logs/"), "the log part is empty");
    assert_eq!(reason("ns/results//logs/l"), "the result part is empty");
    assert!(reason("ns/results/r/records/l").contains("replace \"records\" with \"logs\""));
    assert!(reason("ns/result/r/logs/l").contains("the second part must be \"results\""));
    assert!(reason("my.ns/results/r/logs/l").contains("'.'"));
    assert!(reason("ns/results/r/logs/a\0b").contains("'\\0'"));
    assert!(reason("ns/results/r/logs/é").contains("'é'"));
}

#[test]
fn long_refused_names_are_shortened_in_messages() {
    let name = format!("ns/results/r/logs/{}", "x".repeat(10_000));
    let err = LogName::parse(&name).unwrap_err();
    assert!(err.name.chars().count() <= 121, "{}", err.name.len());
    assert!(err.to_string().len() < 400);
}

fn part() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,63}"
}

proptest! {
    #[test]
    fn valid_names_round_trip(p in part(), r in part(), l in part()) {
        let text = format!("{p}/results/{r}/logs/{l}");
        let name = LogName::parse(&text).unwrap();
        prop_assert_eq!(name.to_string(), text);
        prop_assert_eq!(LogName::from_parts(&p, &r, &l).unwrap(), name);
    }

    #[test]
    fn arbitrary_strings_never_panic_and_accepted_ones_are_safe_as_paths(s in "\\PC{0,80}") {
        if let Ok(name) = LogName::parse(&s) {
            for part in [name.parent(), name.result(), name.log()] {
                prop_assert!(!part.is_empty() && part.len() <= 63);
                prop_assert!(!part.contains('/') && !part.contains('.') && !part.contains('\0'));
            }
        }
    }
}
