//! A fresh Tekton Results database per test: the upstream schema
//! (`migrations/0001_results_records.sql`) and the fixture runs
//! (`tests/fixtures/results.sql`) in a new database on the PostgreSQL server
//! named by `TEST_DATABASE_URL`. `bash .ci/test` starts a throw-away server
//! and sets it (see `.ci/postgres.sh`).

// Not every test binary that declares this module uses every item.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// The upstream schema.
pub const SCHEMA: &str = include_str!("../migrations/0001_results_records.sql");
/// The fixture data: the runs of the upstream captures, in namespace
/// `results-cap`.
pub const FIXTURES: &str = include_str!("fixtures/results.sql");

/// One test's database, already holding the schema and the fixtures.
pub struct TestDb {
    /// `postgres://` URL of this database.
    pub url: String,
    /// Its name, `trl_test_<pid>_<n>`.
    pub name: String,
    /// A connection to it (its connection task runs on the test's runtime).
    pub client: Client,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `TEST_DATABASE_URL`; a test that needs the database fails without it
/// rather than skipping.
pub fn server_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "TEST_DATABASE_URL is not set: this test needs a PostgreSQL server. \
             Run the tests with `bash .ci/test` (it starts a throw-away PostgreSQL \
             and sets TEST_DATABASE_URL), or set TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB \
             to a server where USER may create databases."
        ),
    }
}

/// Creates a uniquely named database on the `TEST_DATABASE_URL` server,
/// applies the schema and the fixtures to it, and returns a connection.
pub async fn fresh_database() -> TestDb {
    let server = server_url();
    let name = format!(
        "trl_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );

    let admin = connect(&server).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("creating database {name} on {server}: {}", describe(&e)));
    drop(admin);

    let url = with_dbname(&server, &name);
    let client = connect(&url).await;
    client.batch_execute(SCHEMA).await.unwrap_or_else(|e| {
        panic!(
            "applying migrations/0001_results_records.sql to {name}: {}",
            describe(&e)
        )
    });
    client.batch_execute(FIXTURES).await.unwrap_or_else(|e| {
        panic!(
            "loading tests/fixtures/results.sql into {name}: {}",
            describe(&e)
        )
    });
    TestDb { url, name, client }
}

/// The upstream configuration keys (`DB_*`) for the database at `url`, as
/// the Results API server reads them: host, port, database, user, password
/// (empty: the test server trusts every local connection) and
/// `DB_SSLMODE=disable`.
pub fn db_env(url: &str) -> Vec<(String, String)> {
    let config =
        Config::from_str(url).unwrap_or_else(|e| panic!("cannot parse database URL {url:?}: {e}"));
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    [
        ("DB_HOST", host),
        ("DB_PORT", port.to_string()),
        (
            "DB_NAME",
            config.get_dbname().unwrap_or("postgres").to_owned(),
        ),
        (
            "DB_USER",
            config.get_user().unwrap_or("postgres").to_owned(),
        ),
        ("DB_PASSWORD", password),
        ("DB_SSLMODE", "disable".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to {url}: {} (is the server of `bash .ci/test` running?)",
                describe(&e)
            )
        });
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("test database connection: {e}");
        }
    });
    client
}

/// `url` with its database (the path) replaced by `dbname`; the query
/// string, if any, is kept.
fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .map(|i| i + 3)
        .unwrap_or_else(|| panic!("TEST_DATABASE_URL must be a postgres:// URL, got {url:?}"));
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{dbname}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// An error with the server's message, detail and position when it has them.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            if let Some(where_) = db.where_() {
                s.push_str(&format!(" [{where_}]"));
            }
            s
        }
        None => e.to_string(),
    }
}
