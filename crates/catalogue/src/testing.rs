//! A real PostgreSQL for tests: Debian's `postgresql` package (`scripts/ci-install.sh`
//! installs it), initialised into a temporary directory and run as the `postgres` user (it
//! refuses to run as root), on a free loopback port. Without the package a test is skipped
//! with a message — except under `CI`, where a missing environment is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL with one database, `kinsight`.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgServer {
    /// Starts a fresh server; `None` (after saying why) when PostgreSQL is not installed and
    /// `CI` is not set.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = find_bin() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is not installed (apt-get install postgresql); CI needs it");
            }
            eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("kinsight-pg")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        run("chmod", &["755", &root.display().to_string()]);
        run("chown", &["postgres", &root.display().to_string()]);
        let port = free_port();
        let server = PgServer { bin, dir, port };
        server.as_postgres(&format!(
            "{} -D {} -A trust -U postgres --no-sync >{}/initdb.log 2>&1",
            server.bin.join("initdb").display(),
            server.data().display(),
            root.display()
        ));
        server.resume();
        server.as_postgres(&format!(
            "{} -h 127.0.0.1 -p {} -U postgres -q -c 'create database kinsight'",
            which("psql")
                .unwrap_or_else(|| server.bin.join("psql"))
                .display(),
            port
        ));
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The catalogue URL of the `kinsight` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/kinsight", self.port)
    }

    /// Creates another database on this server; returns its catalogue URL.
    pub fn create_database(&self, name: &str) -> String {
        self.as_postgres(&format!(
            "{} -h 127.0.0.1 -p {} -U postgres -q -c 'create database {name}'",
            which("psql")
                .unwrap_or_else(|| self.bin.join("psql"))
                .display(),
            self.port
        ));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server the way a crash would (`-m immediate`: no shutdown checkpoint).
    pub fn crash(&self) {
        self.pg_ctl("-m immediate stop");
    }

    /// Starts the server again (after [`PgServer::crash`]) and waits until it accepts.
    pub fn resume(&self) {
        self.pg_ctl(&format!(
            "-l {}/server.log -o '-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off' -w start",
            self.dir.path().display(),
            self.port,
            self.dir.path().display()
        ));
    }

    fn pg_ctl(&self, args: &str) {
        self.as_postgres(&format!(
            "{} -D {} {args} >>{}/pg_ctl.log 2>&1",
            self.bin.join("pg_ctl").display(),
            self.data().display(),
            self.dir.path().display()
        ));
    }

    fn as_postgres(&self, cmd: &str) {
        let out = Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", cmd])
            .output()
            .expect("run su");
        if !out.status.success() {
            let logs: String = ["initdb.log", "pg_ctl.log", "server.log"]
                .iter()
                .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
                .collect();
            panic!(
                "`{cmd}` failed: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                logs
            );
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "{} -D {} -m immediate stop >/dev/null 2>&1",
                    self.bin.join("pg_ctl").display(),
                    self.data().display()
                ),
            ])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().expect(cmd);
    assert!(st.success(), "{cmd} {args:?} failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Debian's server binaries: `/usr/lib/postgresql/<version>/bin`, the newest version.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p: &PathBuf| Path::is_file(p))
    })
}
