use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::support::{sample_log, TestServer, BIN, NAME};

/// Runs the command and asserts that it succeeded.
async fn run_ok(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let out = run(args, stdin).await;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn run(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn push_a_file_then_get_prints_it() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.txt");
    let log = sample_log(3_000);
    std::fs::write(&file, &log).unwrap();
    let url = server.url();
    let out = run_ok(
        &["push", NAME, file.to_str().unwrap(), "--server", &url],
        None,
    )
    .await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "stored {} bytes as {}\n",
            log.len(),
            NAME.replace("/logs/", "/records/")
        )
    );
    let out = run_ok(&["get", NAME, "--server", &url], None).await;
    assert_eq!(out.stdout, log);
}

#[tokio::test]
async fn push_reads_standard_input() {
    let server = TestServer::start().await;
    let url = server.url();
    run_ok(
        &["push", NAME, "-", "--server", &url],
        Some(b"from stdin\n"),
    )
    .await;
    assert_eq!(
        server.get_chunks(NAME).await.unwrap().concat(),
        b"from stdin\n"
    );
}

#[tokio::test]
async fn push_of_an_empty_input_stores_an_empty_log() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = run_ok(&["push", NAME, "-", "--server", &url], Some(b"")).await;
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("stored 0 bytes"));
    assert!(server.get_chunks(NAME).await.unwrap().is_empty());
}

#[tokio::test]
async fn get_of_an_unknown_log_fails_with_the_reason() {
    let server = TestServer::start().await;
    let out = run(&["get", NAME, "--server", &server.url()], None).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("NotFound") && stderr.contains("not found"),
        "{stderr}"
    );
    let out = run(&["get", "bad name", "--server", &server.url()], None).await;
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("InvalidArgument"));
}

#[tokio::test]
async fn push_of_a_missing_file_fails_before_connecting() {
    let out = run(
        &[
            "push",
            NAME,
            "/no/such/file",
            "--server",
            "http://127.0.0.1:1",
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("opening /no/such/file"));
}

#[tokio::test]
async fn check_reports_the_effective_config_and_a_usable_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run_ok(
        &[
            "check",
            "--data-dir",
            data.to_str().unwrap(),
            "--port",
            "9999",
        ],
        None,
    )
    .await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("9999"), "{stdout}");
    assert!(stdout.contains(data.to_str().unwrap()), "{stdout}");
    assert!(stdout.contains("ok: the local store is usable"), "{stdout}");
}

#[tokio::test]
async fn bad_config_stops_check_and_serve_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, "LOGGING_PLUGIN_QUERY_LIMIT=abc\n").unwrap();
    for command in ["check", "serve"] {
        let out = run(&[command, "--config", file.to_str().unwrap()], None).await;
        assert!(!out.status.success(), "{command}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("LOGGING_PLUGIN_QUERY_LIMIT=\"abc\""),
            "{command}: {stderr}"
        );
    }
    let out = run(&["serve", "--port", "http"], None).await;
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("SERVER_PORT=\"http\""));
}
