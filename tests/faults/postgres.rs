//! A PostgreSQL server of one test's own, which the test may stop and start
//! again: the shared server of `TEST_DATABASE_URL` serves other tests at the
//! same time and must never go down. Made with the PostgreSQL binaries the CI
//! script uses (the newest `/usr/lib/postgresql/<version>/bin`, else `initdb`
//! on `PATH`): a cluster in a temporary directory, trust authentication,
//! listening on 127.0.0.1 only, on a free port it keeps across restarts.
//! PostgreSQL refuses to run as root; as root, it runs as the `postgres` OS
//! user, as the CI script does.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A running private cluster; stopped and removed when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The OS user that owns and runs the cluster, when not this process's.
    owner: Option<&'static str>,
    port: u16,
}

impl PrivatePostgres {
    /// Makes a cluster and starts it.
    pub async fn start() -> Self {
        let bin = bin_dir();
        let root = output("id", &["-u"]) == "0";
        let base = if root {
            // The postgres user must be able to reach the directory.
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("trl-faults-pg")
            .tempdir_in(base)
            .unwrap();
        let owner = root.then_some("postgres");
        if let Some(user) = owner {
            let id = |flag| output("id", &[flag, user]).parse::<u32>().ok();
            std::os::unix::fs::chown(dir.path(), id("-u"), id("-g")).unwrap_or_else(|e| {
                panic!("running as root, the cluster must belong to the {user:?} OS user: {e}")
            });
        }
        let mut pg = Self {
            dir,
            bin,
            owner,
            port: 0,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        .await;
        // A port can be taken between choosing and binding it.
        for _ in 0..5 {
            pg.port = free_port();
            if pg.try_start().await {
                return pg;
            }
        }
        panic!("the private PostgreSQL did not start:\n{}", pg.log());
    }

    /// `postgres://` URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it as an operator or a failover does: the open connections are
    /// ended (`-m fast`).
    pub async fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
        )
        .await;
    }

    /// Starts it again, on the same port.
    pub async fn start_again(&self) {
        assert!(
            self.try_start().await,
            "the private PostgreSQL did not start again on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    async fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.log_path());
        let args = [
            "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
        ];
        self.command("pg_ctl", &args)
            .status()
            .await
            .is_ok_and(|s| s.success())
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_path(&self) -> String {
        self.dir.path().join("postgres.log").display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A PostgreSQL program, run as the cluster's owner from its directory.
    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let program = self.bin.join(program);
        let mut command = match self.owner {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program, args).output().await.unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if !Path::new(&self.data()).join("postmaster.pid").exists() {
            return;
        }
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let mut command = match self.owner {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => std::process::Command::new(&program),
        };
        let _ = command
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, else the
/// directory of `initdb` on `PATH`.
fn bin_dir() -> PathBuf {
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = versioned {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists())
        .expect(
            "this test starts a PostgreSQL server of its own, to restart it, and found no \
             initdb (under /usr/lib/postgresql/<version>/bin or on PATH); install the \
             PostgreSQL server (Debian/Ubuntu: apt-get install postgresql)",
        )
}

fn output(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
