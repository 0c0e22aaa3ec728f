//! The middleboxes netbench measures, as child processes it owns: HAProxy in
//! TCP mode (benches/haproxy.cfg) and the release proxy binary; plus reading
//! a process's RSS and CPU time from /proc. Children are killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_zk_proxy_sandbox::process::free_port;

/// A child process stopped (SIGKILL, reaped) when dropped.
pub struct Owned {
    pub child: Child,
    pub port: u16,
}

impl Owned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// HAProxy (nbthread `threads`) on a free port in front of `primary_port`.
pub fn haproxy(primary_port: u16, threads: u32, log: &Path) -> Owned {
    let port = free_port().expect("free port");
    let bin = which("haproxy").unwrap_or_else(|| "/usr/sbin/haproxy".into());
    let child = Command::new(bin)
        .args(["-db", "-f"])
        .arg(root().join("benches/haproxy.cfg"))
        .env("HAPROXY_PORT", port.to_string())
        .env("PRIMARY_PORT", primary_port.to_string())
        .env("HAPROXY_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("haproxy log"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("haproxy log"))
        .spawn()
        .expect("start haproxy (scripts/install-deps.sh installs it)");
    Owned { child, port }
}

/// target/release/mysql-zk-proxy (or NB_PROXY_BIN, e.g. an older build to
/// compare with) with `config` (a TOML text) routing via
/// ZooKeeper at `zk` / `path`.
pub fn proxy(zk: &str, path: &str, config: &str, dir: &Path) -> Owned {
    let bin = std::env::var_os("NB_PROXY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/mysql-zk-proxy"));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release",
        bin.display()
    );
    let cfg = dir.join("proxy.toml");
    std::fs::write(&cfg, config).expect("write proxy config");
    let port = free_port().expect("free port");
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--admin", ""])
        .args(["--zk", zk, "--primary-path", path])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("proxy.log")).expect("proxy log"))
        .spawn()
        .expect("start the proxy");
    Owned { child, port }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reset VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`).
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// utime + stime of a process in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|x| x.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Poll `f` every 50 ms until it is true or `limit` passes.
pub async fn wait_for<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut f: F) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
