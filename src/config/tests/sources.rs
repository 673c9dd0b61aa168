//! Tests of where raw values come from: the environment, the env-format
//! config file and its parsing errors, and the file < env < set precedence.

use super::*;

fn parse_file(text: &str) -> Result<RawConfig> {
    RawConfig::parse_file_text(Path::new("/etc/logs.env"), text)
}

fn file_error(text: &str) -> String {
    match parse_file(text) {
        Ok(raw) => panic!("expected an error, got {raw:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn from_env_keeps_unknown_keys_and_they_are_ignored() {
    let raw = RawConfig::from_env(env(&[("PATH", "/bin"), ("SERVER_PORT", "9000")]));
    assert_eq!(raw.get("PATH"), Some("/bin"));
    assert_eq!(raw.get("MISSING"), None);
    let c = Config::from_raw(&raw).map_err(|e| e.to_string());
    assert_eq!(c.map(|c| c.server.port), Ok(9000));
}

#[test]
fn precedence_is_file_then_env_then_set() {
    let dir = std::env::temp_dir().join(format!("cfgtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("logs.env");
    let text = "SERVER_PORT=1\nLOGS_TYPE=Loki\nLOGGING_PLUGIN_QUERY_LIMIT=10\n";
    std::fs::write(&file, text).expect("write config file");
    let loaded = RawConfig::load(
        Some(&file),
        env(&[("SERVER_PORT", "2"), ("LOGS_TYPE", "Blob")]),
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let mut raw = loaded.expect("load");
    assert_eq!(raw.get("SERVER_PORT"), Some("2"));
    raw.set(keys::SERVER_PORT, "3");
    let c = Config::from_raw(&raw).expect("valid");
    assert_eq!(c.server.port, 3);
    assert_eq!(c.logs.provider, Provider::Blob);
    assert_eq!(c.plugin.query_limit, 10);

    let only_env = RawConfig::load(None, env(&[("SERVER_PORT", "4")])).expect("load");
    assert_eq!(only_env.get("SERVER_PORT"), Some("4"));
}

#[test]
fn unreadable_file_is_a_read_error() {
    let path = Path::new("/nonexistent/dir/logs.env");
    match RawConfig::load(Some(path), Vec::new()) {
        Err(e @ Error::Read { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with("config file \"/nonexistent/dir/logs.env\": "),
                "{shown}"
            );
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn file_comments_quotes_and_export() {
    let text = "\u{feff}# a comment\n\
                \n\
                \x20  # indented comment\n\
                export SERVER_PORT=9090\n\
                \tLOGS_TYPE = Loki \r\n\
                A=\"double quoted # not a comment\"\n\
                B='single \"quoted\"'\n\
                C=x=y\n\
                D=\n\
                E=\"\"\n\
                F=unquoted # kept\n\
                exported=1\n\
                A=\"  later wins  \"\n";
    let raw = parse_file(text).expect("valid file");
    assert_eq!(raw.get("SERVER_PORT"), Some("9090"));
    assert_eq!(raw.get("LOGS_TYPE"), Some("Loki"));
    assert_eq!(raw.get("A"), Some("  later wins  "));
    assert_eq!(raw.get("B"), Some("single \"quoted\""));
    assert_eq!(raw.get("C"), Some("x=y"));
    assert_eq!(raw.get("D"), Some(""));
    assert_eq!(raw.get("E"), Some(""));
    assert_eq!(raw.get("F"), Some("unquoted # kept"));
    assert_eq!(raw.get("exported"), Some("1"));
}

#[test]
fn file_quoted_value_may_span_lines() {
    let text = format!("X=1\nLOGGING_PLUGIN_CA_CERT=\"{CERT}\"\nY=2\n");
    let raw = parse_file(&text).expect("valid file");
    assert_eq!(raw.get(keys::LOGGING_PLUGIN_CA_CERT), Some(CERT));
    assert_eq!(raw.get("Y"), Some("2"));
}

#[test]
fn file_bad_lines_name_the_line() {
    assert_eq!(
        file_error("# ok\nA=1\nnot a pair\n"),
        "config file \"/etc/logs.env\", line 3: expected KEY=VALUE"
    );
    assert_eq!(
        file_error("A=1\n =2\n"),
        "config file \"/etc/logs.env\", line 2: empty key"
    );
    assert_eq!(
        file_error("1ABC=x"),
        "config file \"/etc/logs.env\", line 1: invalid key \"1ABC\": expected [A-Za-z_][A-Za-z0-9_]*"
    );
    assert_eq!(
        file_error("\n\nFOO-BAR=x"),
        "config file \"/etc/logs.env\", line 3: invalid key \"FOO-BAR\": expected [A-Za-z_][A-Za-z0-9_]*"
    );
    assert_eq!(
        file_error("export FOO\n"),
        "config file \"/etc/logs.env\", line 1: expected KEY=VALUE"
    );
    assert_eq!(
        file_error("A=1\nB=\"x\" y\n"),
        "config file \"/etc/logs.env\", line 2: unexpected text after the closing \" quote"
    );
    assert_eq!(
        file_error("A=1\nB='open\nmore\n"),
        "config file \"/etc/logs.env\", line 2: the ' quote opened here is never closed"
    );
    assert_eq!(
        file_error("B=\"open\nC=\"x\"\n"),
        "config file \"/etc/logs.env\", line 1: the \" quote opened here closes on line 2, \
         followed by unexpected text"
    );
}
