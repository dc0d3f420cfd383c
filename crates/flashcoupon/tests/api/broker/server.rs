//! A private RabbitMQ node for the tests that stop and restart the broker
//! (the shared one on 5672 serves every other test, and must stay up).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::scaleout::servers::free_port;

pub struct RabbitServer {
    node: String,
    port: u16,
    dir: PathBuf,
}

impl RabbitServer {
    /// Start a node on free ports with its own data dir; wait until it
    /// listens (a few seconds: it is an Erlang VM).
    pub fn start() -> Self {
        let port = free_port();
        let node = format!("fctest{}@localhost", port);
        let dir = std::env::temp_dir().join(format!("flashcoupon-rabbit-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        // The server script drops to the `rabbitmq` user when run as root.
        let _ = Command::new("chown")
            .arg("-R")
            .arg("rabbitmq:")
            .arg(&dir)
            .status();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", dir.join("feature_flags"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .status()
            .expect("rabbitmq-server is installed (scripts/services.sh)");
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        let server = Self { node, port, dir };
        server.wait_listening();
        server
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn wait_listening(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private RabbitMQ did not start; see {}",
                self.dir.join("log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ctl(&self, command: &str) {
        let status = Command::new("rabbitmqctl")
            .args(["-n", &self.node, command])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmqctl {command}: {status}");
    }

    /// Stop the broker (every connection closes; durable queues and
    /// persistent messages stay on disk), the Erlang VM still up.
    pub fn stop_app(&self) {
        self.ctl("stop_app");
    }

    /// Start it again, and wait until it listens.
    pub fn start_app(&self) {
        self.ctl("start_app");
        self.wait_listening();
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
