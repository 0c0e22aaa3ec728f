//! Integration tests of the sandbox harness: real ZooKeeper and MariaDB processes.

use mysql_zk_proxy::sandbox::cli::{self, SandboxCommand};
use mysql_zk_proxy::sandbox::persistent::{self, UpOutcome};
use mysql_zk_proxy::sandbox::state::SandboxState;
use mysql_zk_proxy::sandbox::{
    process::pid_alive, zk_delete, zk_read, zk_write, Cluster, ZkServer, DEFAULT_PRIMARY_PATH,
};
use std::time::{Duration, Instant};

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_restart_keeps_data_and_drop_kills() {
    let t0 = Instant::now();
    let mut zk = tokio::task::spawn_blocking(ZkServer::start)
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "zookeeper up in {:?} on {}",
        t0.elapsed(),
        zk.connect_string()
    );
    let connect = zk.connect_string();
    let dir = zk.dir().to_owned();
    zk_write(&connect, "/a/b/c", b"hello").await.unwrap();
    zk_write(&connect, "/a/b/c", b"again").await.unwrap();
    let (data, version) = zk_read(&connect, "/a/b/c").await.unwrap().unwrap();
    assert_eq!((data.as_slice(), version), (&b"again"[..], 1));

    let old_pid = zk.pid().unwrap();
    let port = zk.port();
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

    zk.pause().unwrap();
    zk.resume().unwrap();
    zk.pause().unwrap(); // Drop must SIGCONT + kill a paused server too
    let pid = zk.pid().unwrap();
    drop(zk);
    assert!(!pid_alive(pid), "zookeeper pid {pid} survived drop");
    assert!(!dir.exists(), "{} not removed", dir.display());
    eventually("nothing to remain", Duration::from_secs(1), || {
        !pid_alive(pid)
    });
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
        replica
            .sql_async("SELECT v FROM app.kv WHERE k = 'hello'")
            .await
            .unwrap(),
        "world"
    );
    assert!(replica.read_only().await.unwrap());
    assert!(!c.primary().read_only().await.unwrap());

    // A write on the primary reaches the replica.
    c.primary()
        .sql_async("INSERT INTO app.kv (k, v) VALUES ('t1', 'one')")
        .await
        .unwrap();
    let pos = c.primary().gtid_binlog_pos().await.unwrap();
    assert!(replica.wait_gtid(&pos, 10).await.unwrap());
    assert_eq!(
        replica
            .sql_async("SELECT v FROM app.kv WHERE k = 't1'")
            .await
            .unwrap(),
        "one"
    );

    // Planned switchover: roles swap, epoch + 1, new primary writable, old one replicates.
    let (old_port, new_port) = (c.primary().port(), replica.port());
    let report = c.switchover().await.unwrap();
    eprintln!("{report}");
    assert_eq!(
        (report.old_port, report.new_port, report.new_epoch),
        (old_port, new_port, 2)
    );
    assert_eq!(c.primary().port(), new_port);
    let rec = published(&c).await;
    assert_eq!(
        (rec["port"].as_u64(), rec["epoch"].as_u64()),
        (Some(new_port.into()), Some(2))
    );
    assert!(!c.primary().read_only().await.unwrap());
    let demoted = c.replica().unwrap();
    assert!(demoted.read_only().await.unwrap());
    c.primary()
        .sql_async("INSERT INTO app.kv (k, v) VALUES ('t2', 'two')")
        .await
        .unwrap();
    let pos = c.primary().gtid_binlog_pos().await.unwrap();
    assert!(demoted.wait_gtid(&pos, 10).await.unwrap());

    // Unplanned: kill the primary, promote the replica, publish epoch 3.
    c.primary_mut().kill().unwrap();
    let port = c.promote_replica_after_crash().await.unwrap();
    assert_eq!(port, old_port);
    c.publish_json(port, 3).await.unwrap();
    assert_eq!(c.published_epoch().await.unwrap(), Some(3));
    c.primary()
        .sql_async("INSERT INTO app.kv (k, v) VALUES ('t3', 'three')")
        .await
        .unwrap();

    // Drop kills every process and removes every dir.
    let pids = c.pids();
    let dirs = c.dirs();
    assert_eq!(pids.len(), 2, "zk + surviving db");
    drop(c);
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived drop");
    }
    for d in dirs {
        assert!(!d.exists(), "{} not removed", d.display());
    }
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

fn all_pids(st: &SandboxState) -> Vec<u32> {
    let mut v: Vec<u32> = st.dbs.iter().filter_map(|d| d.pid).collect();
    v.extend(st.zk_pid);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sandbox_cli_lifecycle() {
    let dir = tempfile::Builder::new()
        .prefix("mzp-cli-")
        .tempdir()
        .unwrap()
        .keep();
    let _wipe = WipeOnDrop(dir.clone());
    let d = dir.to_str().unwrap();
    let t0 = Instant::now();
    sandbox_cli(&["up", "--dir", d]).await;
    eprintln!("sandbox up (cold) in {:?}", t0.elapsed());
    let st = SandboxState::load(&dir).unwrap().unwrap();
    let pids = all_pids(&st);
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    let (_, _, outcome) = persistent::up(&dir).await.unwrap();
    assert_eq!(outcome, UpOutcome::AlreadyUp);

    sandbox_cli(&["switchover", "--dir", d]).await;
    let st = SandboxState::load(&dir).unwrap().unwrap();
    assert_eq!(st.primary, "db2");
    let (data, _) = zk_read(&st.zk_connect, &st.primary_path)
        .await
        .unwrap()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        (rec["port"].as_u64(), rec["epoch"].as_u64()),
        (Some(st.db("db2").unwrap().port.into()), Some(2))
    );
    sandbox_cli(&["status", "--dir", d]).await;
    sandbox_cli(&["status", "--json", "--dir", d]).await;
    sandbox_cli(&["env", "--dir", d]).await;
    let target = format!("127.0.0.1:{}", st.db("db2").unwrap().port);
    sandbox_cli(&["publish", "--dir", d, &target, "--epoch", "7"]).await;
    let (data, _) = zk_read(&st.zk_connect, &st.primary_path)
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&data).contains("\"epoch\":7"));

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
