//! Private Redis and PostgreSQL servers for the failure tests: real servers
//! on free ports, that a test may kill and restart without disturbing the
//! shared ones every other test is using.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// `redis-server` without persistence: a restart starts empty, as a
/// production Redis without AOF/RDB would after a crash.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    cluster: bool,
    /// Speaks TLS only (a self-signed certificate made for the test).
    tls: bool,
}

impl RedisServer {
    /// A TLS-only server (`rediss://`), with a certificate made now.
    pub fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success(), "openssl made a certificate");
        let mut s = RedisServer {
            port: free_port(),
            dir,
            child: None,
            cluster: false,
            tls: true,
        };
        s.restart();
        s
    }

    pub fn start() -> Self {
        Self::start_with(false)
    }

    pub fn start_cluster_node() -> Self {
        Self::start_with(true)
    }

    fn start_with(cluster: bool) -> Self {
        let mut s = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            cluster,
            tls: false,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        if self.tls {
            // `#insecure`: the test's self-signed certificate is not checked.
            return format!("rediss://127.0.0.1:{}/#insecure", self.port);
        }
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: everything in memory is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_for_port(self.port, false);
    }

    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        if self.tls {
            let (cert, key) = (
                self.dir.path().join("cert.pem"),
                self.dir.path().join("key.pem"),
            );
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(&cert)
                .args(["--tls-auth-clients", "no", "--bind", "127.0.0.1"]);
        } else {
            cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
        }
        cmd.args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
        wait_for_port(self.port, true);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Form a Redis Cluster of three masters with `redis-cli --cluster create`.
pub fn create_cluster(nodes: &[RedisServer]) {
    let mut cmd = Command::new("redis-cli");
    cmd.arg("--cluster").arg("create");
    for n in nodes {
        cmd.arg(format!("127.0.0.1:{}", n.port));
    }
    let out = cmd
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Wait until every node agrees the cluster is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in nodes {
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &n.port.to_string(), "cluster", "info"])
                .output()
                .expect("redis-cli cluster info");
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A PostgreSQL cluster of its own (`initdb` in a temp dir), so a test can
/// stop it mid-storm. Runs as the `postgres` user when the tests run as root,
/// because PostgreSQL refuses to run as root.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    _holder: tempfile::TempDir,
}

fn bin(name: &str) -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<_> = std::fs::read_dir(root)
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name)
}

fn as_postgres(program: PathBuf) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    pub fn start() -> Self {
        let holder = tempfile::Builder::new()
            .prefix("flashcoupon-pg")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let dir = holder.path().join("data");
        std::fs::create_dir(&dir).expect("data dir");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(holder.path())
            .status();
        let out = as_postgres(bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&dir)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = PgServer {
            port: free_port(),
            dir,
            _holder: holder,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn restart(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = as_postgres(bin("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for_port(self.port, true);
    }

    /// Stop at once, like a crash: connections are cut, no checkpoint.
    pub fn stop(&self) {
        let _ = as_postgres(bin("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        wait_for_port(self.port, false);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
