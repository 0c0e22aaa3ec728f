//! Integration tests of the sandbox harness: real ZooKeeper and MariaDB processes.

use mysql_zk_proxy::sandbox::{process::pid_alive, zk_delete, zk_read, zk_write, ZkServer};
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
