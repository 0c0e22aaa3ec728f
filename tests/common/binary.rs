//! The built `mysql-zk-proxy` binary as a child process for tests: its
//! stderr lines on a channel (stdout and stderr also kept for scanning),
//! signals, and kill + reap on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_mysql-zk-proxy");

pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stderr line so far (also those consumed from `lines`).
    all: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    /// Run the binary with `args` (RUST_LOG=info, stderr captured).
    pub fn start(args: &[&str]) -> Running {
        Self::start_with_env(args, &[("RUST_LOG", "info")])
    }

    /// Run the binary with `args` and extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (tx, lines) = mpsc::channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let kept = all.clone();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let out_kept = all.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                out_kept.lock().unwrap().push(line);
            }
        });
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Running { child, lines, all }
    }

    /// Everything the child wrote to stderr so far.
    pub fn log_so_far(&self) -> String {
        self.all.lock().unwrap().join("\n")
    }

    /// Wait until a stderr line contains every one of `parts`.
    pub fn wait_for_line(&self, parts: &[&str], deadline: Instant) -> String {
        while Instant::now() < deadline {
            let found = self
                .all
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no line with {parts:?}; stderr:\n{}", self.log_so_far());
    }

    /// The admin address from the "proxy started" log line (`admin=IP:PORT`).
    pub fn admin_addr(&self, deadline: Instant) -> SocketAddr {
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("admin=")?.parse().ok());
            if let Some(addr) = addr {
                return addr;
            }
            seen.push(line);
        }
        panic!(
            "no admin address logged; stderr so far:\n{}",
            seen.join("\n")
        );
    }

    /// Send `sig` to the child (which this test spawned and still owns).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}

/// Run the binary to its end with `args` and extra environment variables:
/// (exit code, stdout as one JSON document, stdout + stderr).
pub async fn run_json(args: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the binary runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {all}"));
    (out.status.code().expect("exited"), doc, all)
}

/// A [`run_json`] result of an operator command refused by the ZooKeeper
/// ACL of `path`: exit 1 with `outcome`, the error naming the denial and
/// the flag that gives credentials.
pub fn assert_acl_denied(run: &(i32, serde_json::Value, String), outcome: &str, path: &str) {
    let (code, doc, all) = run;
    assert_eq!(
        (*code, doc["outcome"].as_str()),
        (1, Some(outcome)),
        "{all}"
    );
    let e = doc["error"].as_str().unwrap_or_default();
    assert!(e.contains(&format!("ACL denies get of {path}")), "{all}");
    assert!(e.contains("--zk-auth-user"), "{all}");
}
