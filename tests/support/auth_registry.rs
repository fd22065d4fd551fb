//! A second real registry (Debian's `docker-registry`), started by the test itself, that
//! demands a username and password (htpasswd, bcrypt). Stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct AuthRegistry {
    /// `127.0.0.1:PORT`
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    pub fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash(password, 5).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  inmemory: {{}}\nhttp:\n  addr: {host}\nauth:\n  htpasswd:\n    realm: archway-test\n    path: {}\n",
            dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (scripts/lab-up installs it)");
        let started = Instant::now();
        loop {
            let code = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{host}/v2/")])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&code.stdout) == "401" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the auth registry did not start on {host}");
            std::thread::sleep(Duration::from_millis(100));
        }
        AuthRegistry { host, child, _dir: dir }
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
