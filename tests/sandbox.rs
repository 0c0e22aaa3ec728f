//! Integration tests of the sandbox harness: real ZooKeeper and MariaDB processes.

use mysql_zk_proxy_sandbox::cli::{self, SandboxCommand};
use mysql_zk_proxy_sandbox::persistent::{self, UpOutcome};
use mysql_zk_proxy_sandbox::state::SandboxState;
use mysql_zk_proxy_sandbox::{
    process::{holds_fd_on, is_unreaped_child, pid_alive, poll_until, session_id},
    zk_delete, zk_read, zk_write, Cluster, MariaDb, ZkServer, DEFAULT_PRIMARY_PATH,
};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_restart_keeps_data_and_drop_kills() {
    // An fd without CLOEXEC (as a careless library might leave) must not
    // leak into the server.
    let marker = tempfile::NamedTempFile::new().unwrap();
    // SAFETY: dup of a valid fd; closed below.
    let stray = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(marker.as_file())) };
    assert!(stray >= 0);
    let t0 = Instant::now();
    let zk = ZkServer::start_async().await;
    // SAFETY: closing the fd we dup'ed above.
    unsafe { libc::close(stray) };
    let mut zk = zk.unwrap();
    assert!(
        !holds_fd_on(zk.pid().unwrap(), marker.path()),
        "stray fd inherited"
    );
    eprintln!("zookeeper up in {:?}", t0.elapsed());
    let connect = zk.connect_string();
    let dir = zk.dir().to_owned();
    zk_write(&connect, "/a/b/c", b"hello").await.unwrap();
    zk_write(&connect, "/a/b/c", b"again").await.unwrap();
    let (data, version) = zk_read(&connect, "/a/b/c").await.unwrap().unwrap();
    assert_eq!((data.as_slice(), version), (&b"again"[..], 1));

    let (old_pid, port) = (zk.pid().unwrap(), zk.port());
    zk = tokio::task::spawn_blocking(move || zk.restart().map(|()| zk))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(zk.port(), port);
    assert!(!pid_alive(old_pid));
    let (data, _) = zk_read(&connect, "/a/b/c").await.unwrap().unwrap();
    assert_eq!(data, b"again");
    zk_delete(&connect, "/a/b/c").await.unwrap();
    assert!(zk_read(&connect, "/a/b/c").await.unwrap().is_none());

    // A pause longer than the session timeout expires the session.
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(1))
        .connect(&connect)
        .await
        .unwrap();
    let mut state = client.state_watcher();
    zk.pause_for(Duration::from_millis(1500)).await.unwrap();
    let expired = tokio::time::timeout(Duration::from_secs(10), state.changed()).await;
    assert_eq!(expired.unwrap(), zookeeper_client::SessionState::Expired);
    zk.pause().unwrap(); // Drop must SIGCONT + kill a paused server too
    let pid = zk.pid().unwrap();
    drop(zk);
    assert!(!pid_alive(pid), "zookeeper pid {pid} survived drop");
    assert!(!is_unreaped_child(pid), "zookeeper pid {pid} not reaped");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

/// This test binary running only the ignored helper test `name`, with `key=val`.
fn helper_process(name: &str, key: &str, val: &std::ffi::OsStr) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--ignored", "--nocapture"])
        .env(key, val);
    cmd
}

/// Helper run in a child test process by `sweep_kills_servers_of_a_dead_owner`:
/// starts ZooKeeper, reports it, then waits to be SIGKILLed (no Drop runs).
#[test]
#[ignore = "helper process for sweep_kills_servers_of_a_dead_owner"]
fn helper_hold_zookeeper() {
    if std::env::var_os("MZP_SANDBOX_HELPER").is_none() {
        return;
    }
    let zk = ZkServer::start().unwrap();
    println!("HELPER {} {}", zk.pid().unwrap(), zk.dir().display());
    std::thread::sleep(Duration::from_secs(60)); // bounded: killed long before
}

#[test]
fn sweep_kills_servers_of_a_dead_owner() {
    use mysql_zk_proxy_sandbox::instance::{sandbox_root, sweep_stale};
    use std::io::BufRead;
    let mut helper = helper_process("helper_hold_zookeeper", "MZP_SANDBOX_HELPER", "1".as_ref())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(helper.stdout.take().unwrap());
    let line = out
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HELPER "))
        .expect("helper reports its zookeeper");
    let mut it = line.split_whitespace().skip(1);
    let zk_pid: u32 = it.next().unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(it.next().unwrap());
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert!(pid_alive(zk_pid), "orphaned zookeeper should still run");
    sweep_stale(&sandbox_root());
    poll_until("orphan to be killed", Duration::from_secs(10), || {
        Ok((!pid_alive(zk_pid)).then_some(()))
    })
    .unwrap();
    assert!(!dir.exists(), "{} not swept", dir.display());
}

/// Root SQL on `db`, panicking with the server's error.
async fn q(db: &MariaDb, sql: &str) -> String {
    db.sql_async(sql).await.unwrap()
}

/// The published record, parsed.
async fn published(c: &Cluster) -> serde_json::Value {
    let (data, _) = c.published().await.unwrap().expect("primary znode present");
    serde_json::from_slice(&data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_replicates_switches_over_and_cleans_up() {
    let t0 = Instant::now();
    let mut c = Cluster::start().await.unwrap();
    eprintln!("cluster up in {:?}", t0.elapsed());
    assert_eq!(c.primary_path(), DEFAULT_PRIMARY_PATH);
    let rec = published(&c).await;
    assert_eq!(rec["port"], c.primary().port());
    assert_eq!(rec["epoch"], 1);
    let replica = c.replica().unwrap();
    assert_eq!(
        q(replica, "SELECT v FROM app.kv WHERE k = 'hello'").await,
        "world"
    );
    assert!(replica.read_only().await.unwrap());
    assert!(!c.primary().read_only().await.unwrap());

    // A write on the primary reaches the replica.
    q(
        c.primary(),
        "INSERT INTO app.kv (k, v) VALUES ('t1', 'one')",
    )
    .await;
    let pos = c.primary().gtid_binlog_pos().await.unwrap();
    assert!(replica.wait_gtid(&pos, 10).await.unwrap());
    assert_eq!(
        q(replica, "SELECT v FROM app.kv WHERE k = 't1'").await,
        "one"
    );

    // Planned switchover: roles swap, draining epoch 2, serving epoch 3, new primary writable, old one replicates.
    let (old_port, new_port) = (c.primary().port(), replica.port());
    let report = c.switchover().await.unwrap();
    eprintln!("{report}");
    assert_eq!(
        (report.old_port, report.new_port, report.new_epoch),
        (old_port, new_port, 3)
    );
    assert_eq!(c.primary().port(), new_port);
    let rec = published(&c).await;
    assert_eq!(
        (rec["port"].as_u64(), rec["epoch"].as_u64()),
        (Some(new_port.into()), Some(3))
    );
    assert!(!c.primary().read_only().await.unwrap());
    let demoted = c.replica().unwrap();
    assert!(demoted.read_only().await.unwrap());
    q(
        c.primary(),
        "INSERT INTO app.kv (k, v) VALUES ('t2', 'two')",
    )
    .await;
    let pos = c.primary().gtid_binlog_pos().await.unwrap();
    assert!(demoted.wait_gtid(&pos, 10).await.unwrap());

    // Unplanned: kill the primary, promote the replica, publish epoch 4.
    c.primary_mut().kill().unwrap();
    let port = c.promote_replica_after_crash().await.unwrap();
    assert_eq!(port, old_port);
    c.publish_json(port, 4).await.unwrap();
    assert_eq!(c.published_epoch().await.unwrap(), Some(4));
    q(
        c.primary(),
        "INSERT INTO app.kv (k, v) VALUES ('t3', 'three')",
    )
    .await;

    // Drop kills every process and removes every dir.
    let pids = c.pids();
    let dirs = c.dirs();
    assert_eq!(pids.len(), 2, "zk + surviving db");
    drop(c);
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived drop");
        assert!(!is_unreaped_child(pid), "pid {pid} not reaped");
    }
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?} not removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_cluster_without_publishing() {
    let t0 = Instant::now();
    let c = Cluster::builder()
        .without_replica()
        .primary_path("/x/primary")
        .publish(false)
        .start()
        .await
        .unwrap();
    eprintln!("single-server cluster up in {:?}", t0.elapsed());
    assert!(c.replica().is_none());
    assert!(c.published().await.unwrap().is_none());
    c.publish_raw(format!("127.0.0.1:{}", c.primary().port()).as_bytes())
        .await
        .unwrap();
    assert!(c.published().await.unwrap().is_some());
    c.unpublish().await.unwrap();
    assert!(c.published().await.unwrap().is_none());
    // the app user logs in over TCP with its password
    let out = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-uapp",
            "-papp",
            "-N",
            "-B",
            "app",
        ])
        .arg(format!("-P{}", c.primary().port()))
        .args(["-e", "SELECT CURRENT_USER()"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "app@%",
        "{out:?}"
    );

    // crash + restart on the same port and datadir keeps committed data
    let mut c = c;
    let (port, old_pid) = (c.primary().port(), c.primary().pid().unwrap());
    q(c.primary(), "INSERT INTO app.kv VALUES ('k', 'v', NOW())").await;
    c.primary_mut().kill().unwrap();
    assert!(!pid_alive(old_pid) && !is_unreaped_child(old_pid));
    assert!(c.primary().sql_async("SELECT 1").await.is_err());
    let t0 = Instant::now();
    c.primary_mut().start_again().unwrap();
    eprintln!("mariadb restart after SIGKILL in {:?}", t0.elapsed());
    assert_eq!(c.primary().port(), port);
    assert_eq!(
        q(c.primary(), "SELECT v FROM app.kv WHERE k = 'k'").await,
        "v"
    );
    // pause/resume; a paused server is still cleaned up by Drop
    c.primary().pause().unwrap();
    c.primary().resume().unwrap();
    assert_eq!(q(c.primary(), "SELECT 1").await, "1");
    c.primary().pause().unwrap();
    let pid = c.primary().pid().unwrap();
    drop(c);
    assert!(
        !pid_alive(pid) && !is_unreaped_child(pid),
        "paused mariadbd survived drop"
    );
}

/// Runs `sandbox down --wipe` for a persistent sandbox even if the test panics.
struct WipeOnDrop(std::path::PathBuf);
impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = persistent::down(&self.0, true);
        }
    }
}

#[derive(clap::Parser)]
struct SandboxCli {
    #[command(subcommand)]
    cmd: SandboxCommand,
}

async fn sandbox_cli(args: &[&str]) {
    let argv = std::iter::once("sandbox").chain(args.iter().copied());
    let cli = <SandboxCli as clap::Parser>::try_parse_from(argv).unwrap();
    cli::run(cli.cmd).await.unwrap();
}

async fn znode_json(st: &SandboxState) -> serde_json::Value {
    let read = zk_read(&st.zk_connect, &st.primary_path).await.unwrap();
    serde_json::from_slice(&read.expect("znode present").0).unwrap()
}

fn all_pids(st: &SandboxState) -> Vec<u32> {
    let mut v: Vec<u32> = st.dbs.iter().filter_map(|d| d.pid).collect();
    v.extend(st.zk_pid);
    v
}

/// Helper for `persistent_sandbox_cli_lifecycle`: `sandbox up`, then exit.
#[tokio::test]
#[ignore = "helper process for persistent_sandbox_cli_lifecycle"]
async fn helper_sandbox_up() {
    let Some(dir) = std::env::var_os("MZP_SANDBOX_UP_DIR") else {
        return;
    };
    sandbox_cli(&["up", "--dir", dir.to_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sandbox_cli_lifecycle() {
    let dir = tempfile::tempdir().unwrap().keep();
    let _wipe = WipeOnDrop(dir.clone());
    let d = dir.to_str().unwrap();
    // `up` in a separate process that then exits: the servers must survive
    // it, each in its own session (immune to the terminal's Ctrl-C).
    let t0 = Instant::now();
    let status = helper_process("helper_sandbox_up", "MZP_SANDBOX_UP_DIR", dir.as_ref())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    eprintln!("sandbox up (cold, child process) in {:?}", t0.elapsed());
    let st = SandboxState::load(&dir).unwrap().unwrap();
    let pids = all_pids(&st);
    assert_eq!(pids.len(), 3);
    for &pid in &pids {
        assert!(pid_alive(pid), "pid {pid} died with the CLI process");
        assert_eq!(session_id(pid), Some(pid), "pid {pid} leads no session");
    }
    let (_, _, outcome) = persistent::up(&dir).await.unwrap();
    assert_eq!(outcome, UpOutcome::AlreadyUp);

    sandbox_cli(&["switchover", "--dir", d]).await;
    let st = SandboxState::load(&dir).unwrap().unwrap();
    assert_eq!(st.primary, "db2");
    let rec = znode_json(&st).await;
    assert_eq!(
        (rec["port"].as_u64(), rec["epoch"].as_u64()),
        (Some(st.db("db2").unwrap().port.into()), Some(3))
    );
    sandbox_cli(&["status", "--dir", d]).await;
    sandbox_cli(&["status", "--json", "--dir", d]).await;
    sandbox_cli(&["env", "--dir", d]).await;
    let target = format!("127.0.0.1:{}", st.db("db2").unwrap().port);
    sandbox_cli(&["publish", "--dir", d, &target, "--epoch", "7"]).await;
    assert_eq!(znode_json(&st).await["epoch"], 7);

    // down keeps the data; up restarts with the same ports and roles.
    sandbox_cli(&["down", "--dir", d]).await;
    assert!(pids.iter().all(|&p| !pid_alive(p)), "down left a process");
    let t0 = Instant::now();
    sandbox_cli(&["up", "--dir", d]).await;
    eprintln!("sandbox up (restart) in {:?}", t0.elapsed());
    let st2 = SandboxState::load(&dir).unwrap().unwrap();
    assert_eq!((st2.primary.as_str(), st2.zk_port), ("db2", st.zk_port));
    let (c, _) = persistent::attach(&dir).unwrap();
    assert!(!c.primary().read_only().await.unwrap());
    assert!(c.replica().unwrap().read_only().await.unwrap());
    assert_eq!(c.published_epoch().await.unwrap(), Some(7));
    let pids = all_pids(&st2);
    sandbox_cli(&["down", "--wipe", "--dir", d]).await;
    assert!(
        pids.iter().all(|&p| !pid_alive(p)),
        "down --wipe left a process"
    );
    assert!(!dir.exists());
}

/// An adopted server is known by its start time once adopted, not by its
/// cmdline: the cmdline reads empty while a process exits, before /proc shows
/// it as a zombie, and `sandbox down` once returned with ZooKeeper still
/// exiting. Here the process rewrites its own cmdline instead, which it can do
/// on demand, so the check is deterministic.
#[test]
fn an_adopted_server_is_tracked_by_start_time_not_cmdline() {
    use mysql_zk_proxy_sandbox::process::{cmdline_mentions, ServerProc};
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // perl is Debian-essential; `$0 = ...` overwrites the whole argv area.
    let script = "until (-e $ARGV[0]) { select(undef, undef, undef, 0.01) } \
                  $0 = 'renamed'; sleep 600";
    let child = std::process::Command::new("perl")
        .args(["-e", script, go.to_str().unwrap()])
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    // until the child has exec'd perl, its cmdline is still this test's
    poll_until("perl started", Duration::from_secs(10), || {
        Ok(cmdline_mentions(pid, dir.path()).then_some(()))
    })
    .unwrap();
    let mut adopted = ServerProc::adopt("renamer", pid, dir.path()).expect("adopt by marker");
    std::fs::write(&go, b"").unwrap();
    poll_until("cmdline rewritten", Duration::from_secs(10), || {
        Ok((!cmdline_mentions(pid, dir.path())).then_some(()))
    })
    .unwrap();
    assert!(adopted.alive(), "a rewritten cmdline was taken for an exit");
    assert!(!adopted.exited());
    adopted.terminate(Duration::from_secs(10)).unwrap();
    assert!(
        !pid_alive(pid),
        "terminate returned before the process exited"
    );
    child.0.wait().unwrap();
}

/// Kills and reaps a test's own child process, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_taken_fixed_port_is_reported_not_waited_for() {
    use mysql_zk_proxy_sandbox::{process::PortChoice, DbSpec, SandboxError};
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let zk = ZkServer::start_persistent(&dir.path().join("zk"), PortChoice::Fixed(port));
    let msg = format!("{:?}", zk.as_ref().err());
    assert!(matches!(zk, Err(SandboxError::Start { .. })), "{msg}");
    assert!(msg.contains("already in use"), "{msg}");
    eprintln!("zookeeper port clash reported in {:?}", t0.elapsed());
    let spec = DbSpec {
        name: "db9".into(),
        server_id: 9,
        read_only: false,
    };
    let t0 = Instant::now();
    let db = MariaDb::start_persistent(&dir.path().join("db9"), spec, PortChoice::Fixed(port));
    let msg = format!("{:?}", db.as_ref().err());
    assert!(msg.contains("already in use"), "{msg}");
    eprintln!("mariadb port clash reported in {:?}", t0.elapsed());
}
