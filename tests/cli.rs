//! The built binary: check-config exit codes and messages, --help, and
//! `run` with flags only (admin answers, SIGTERM exits 0).

mod common;

use common::binary::Running;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::binary::BIN;

fn proxy(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn check_config(path: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["check-config", "--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    proxy(&args)
}

fn config_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect()
}

#[test]
fn check_config_accepts_the_shipped_files_and_prints_toml() {
    let files = config_files();
    assert!(!files.is_empty());
    for path in files {
        let out = check_config(&path, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let cfg = mysql_zk_proxy_core::config::Config::from_toml(&printed, &path).unwrap();
        cfg.validate().unwrap();
    }
}

#[test]
fn check_config_applies_overrides() {
    let f = temp_config("");
    let out = check_config(f.path(), &["--zk", "10.1.2.3:2181/chroot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains("connect = \"10.1.2.3:2181/chroot\""),
        "{printed}"
    );
}

#[test]
fn unknown_key_exits_2_naming_the_key() {
    let f = temp_config("[zookeeper]\nprimary_pth = \"/x\"\n");
    let out = check_config(f.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("primary_pth"), "{}", stderr(&out));
}

#[test]
fn bad_values_exit_2_naming_the_key() {
    let f = temp_config("[zookeeper]\nprimary_path = \"relative\"\n");
    let out = check_config(f.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("zookeeper.primary_path"),
        "{}",
        stderr(&out)
    );

    let f = temp_config("[failover]\nhold_timeout = \"soon\"\n");
    let out = check_config(f.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hold_timeout"), "{}", stderr(&out));

    let out = proxy(&["run", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("listen.address"), "{}", stderr(&out));
}

#[test]
fn unreadable_file_exits_2() {
    let out = check_config(Path::new("/nonexistent/mysql-zk-proxy.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/"), "{}", stderr(&out));
}

#[test]
fn other_fatal_errors_exit_1() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = proxy(&["run", "--listen", &addr, "--admin", ""]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&addr), "{}", stderr(&out));
}

#[test]
fn help_lists_the_commands() {
    let out = proxy(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["run", "check-config", "publish", "switchover"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
    // the drill and the sandbox are binaries of their own
    for other in ["drill", "sandbox"] {
        assert!(
            !text.contains(other),
            "{other} in the deployed binary:\n{text}"
        );
    }
    let out = proxy(&["run", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--config", "--listen", "--zk", "--primary-path", "--admin"] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

/// Status code of `GET path`, or `None` if the request failed (or took
/// over 2 s).
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let get =
        async { tokio::time::timeout(Duration::from_secs(2), common::http::get(addr, path)).await };
    Some(rt.block_on(get).ok()?.ok()?.0)
}

#[test]
fn run_with_flags_serves_admin_and_exits_0_on_sigterm() {
    let mut run = Running::start(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--zk",
        "127.0.0.1:1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = run.admin_addr(deadline);
    loop {
        let (live, ready) = (http_status(admin, "/live"), http_status(admin, "/ready"));
        if live == Some(200) && ready == Some(503) {
            break;
        }
        assert!(Instant::now() < deadline, "live={live:?} ready={ready:?}");
        std::thread::sleep(Duration::from_millis(25));
    }

    let pid = run.child.id() as libc::pid_t;
    // SAFETY: kill(2) on the PID of the child this test spawned and still owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}
