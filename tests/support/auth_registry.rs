//! A second real registry (Debian's `docker-registry`), started by the test itself: one that
//! demands a username and password (htpasswd, bcrypt), kept in memory ([`AuthRegistry::start`]),
//! or an open one that keeps its blobs in files under a directory of the test's
//! ([`AuthRegistry::on_disk`]), for blobs of gigabytes that the lab's in-memory registry should
//! not hold. Stopped (by its pid) when dropped; the directory goes with it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct AuthRegistry {
    /// `127.0.0.1:PORT`
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    /// In memory, behind htpasswd with this one user.
    pub fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let hash = bcrypt::hash(password, 5).unwrap();
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
        let config = format!(
            "storage:\n  inmemory: {{}}\nauth:\n  htpasswd:\n    realm: archway-test\n    path: {}\n",
            htpasswd.display()
        );
        Self::serve(dir, &config, "401")
    }

    /// Without authentication, blobs in files (the filesystem driver) under a temporary
    /// directory in `under`.
    pub fn on_disk(under: &std::path::Path) -> AuthRegistry {
        let dir = tempfile::tempdir_in(under).unwrap();
        let config = format!("storage:\n  filesystem:\n    rootdirectory: {}\n", dir.path().join("data").display());
        Self::serve(dir, &config, "200")
    }

    /// Runs `docker-registry` with `storage` (and any `auth`) on a free port, and waits until
    /// `GET /v2/` answers `ready`.
    fn serve(dir: tempfile::TempDir, storage: &str, ready: &str) -> AuthRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let config = format!("version: 0.1\nlog:\n  level: warn\nhttp:\n  addr: {host}\n{storage}");
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
            if String::from_utf8_lossy(&code.stdout) == ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the test registry did not start on {host}");
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
