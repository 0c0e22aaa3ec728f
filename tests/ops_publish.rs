//! `mysql-zk-proxy publish` against a real ZooKeeper: epochs follow the
//! current one, never go backwards, and every write is a compare-and-set
//! (a record changed since it was read is not overwritten); exit codes and
//! the `--json` document.

mod common;

use std::process::Output;

use common::outcome::{assert_failed, assert_outcome};

use mysql_zk_proxy_core::discovery::record::parse_record;
use mysql_zk_proxy_sandbox::{zk_read, zk_write, ZkServer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mysql-zk-proxy");
const PATH: &str = "/mysql/clusters/t/primary";

async fn zk() -> ZkServer {
    ZkServer::start_async().await.expect("zookeeper starts")
}

/// Run `publish` with `extra` args; (exit code, JSON document).
async fn publish(zk: &ZkServer, extra: &[&str]) -> (i32, Value) {
    let out = run(zk, &[&["--json"], extra].concat()).await;
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), doc)
}

async fn run(zk: &ZkServer, extra: &[&str]) -> Output {
    let connect = zk.connect_string();
    let mut args = vec!["publish", "--zk", &connect, "--primary-path", PATH];
    args.extend_from_slice(extra);
    tokio::process::Command::new(BIN)
        .args(&args)
        .output()
        .await
        .expect("the binary runs")
}

/// The record now in ZooKeeper and its data version.
async fn current(zk: &ZkServer) -> (mysql_zk_proxy_core::discovery::record::Record, i32) {
    let (data, version) = zk_read(&zk.connect_string(), PATH).await.unwrap().unwrap();
    (parse_record(&data).unwrap(), version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_follow_the_current_record_and_never_go_back() {
    let zk = zk().await;
    let (code, doc) = publish(&zk, &["--host", "10.0.0.5", "--port", "3306"]).await;
    assert_outcome(code, &doc, 0, "published", &doc);
    assert_eq!(
        (doc["epoch"].as_u64(), doc["previous_epoch"].as_u64()),
        (Some(1), None)
    );
    let (code, doc) = publish(
        &zk,
        &["--host", "10.0.0.6", "--port", "3307", "--server-id", "2"],
    )
    .await;
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        (doc["epoch"].as_u64(), doc["previous_epoch"].as_u64()),
        (Some(2), Some(1))
    );
    let (rec, version) = current(&zk).await;
    assert_eq!(
        (rec.host.as_str(), rec.port, rec.epoch, rec.server_id),
        ("10.0.0.6", 3307, Some(2), Some(2))
    );
    assert_eq!(doc["version"].as_i64(), Some(version.into()));

    for back in ["2", "1"] {
        let (code, doc) = publish(
            &zk,
            &["--host", "10.0.0.5", "--port", "3306", "--epoch", back],
        )
        .await;
        assert_failed(code, &doc, "refused", "backwards", &doc);
    }
    assert_eq!(
        current(&zk).await,
        (rec, version),
        "a refusal writes nothing"
    );
    let (code, doc) = publish(
        &zk,
        &["--host", "10.0.0.5", "--port", "3306", "--epoch", "10"],
    )
    .await;
    assert_eq!((code, doc["epoch"].as_u64()), (0, Some(10)), "{doc}");
    let out = run(&zk, &["--host", "10.0.0.6", "--port", "3306"]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("epoch 11") && text.contains("previous epoch 10"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_changed_since_it_was_read_is_not_overwritten() {
    let zk = zk().await;
    let (code, _) = publish(
        &zk,
        &["--host", "db1", "--port", "3306", "--expect-version", "-1"],
    )
    .await;
    assert_eq!(code, 0, "created because it was absent");
    let (_, read_version) = current(&zk).await;
    // another publisher writes after our script read the version
    let theirs = br#"{"host":"db3","port":3306,"epoch":5}"#;
    zk_write(&zk.connect_string(), PATH, theirs).await.unwrap();
    let v = read_version.to_string();
    let (code, doc) = publish(
        &zk,
        &["--host", "db2", "--port", "3306", "--expect-version", &v],
    )
    .await;
    assert_outcome(code, &doc, 1, "conflict", &doc);
    let (rec, _) = current(&zk).await;
    assert_eq!(
        (rec.host.as_str(), rec.epoch),
        ("db3", Some(5)),
        "the other write stands"
    );
    let (code, doc) = publish(
        &zk,
        &["--host", "db2", "--port", "3306", "--expect-version", "-1"],
    )
    .await;
    assert_outcome(code, &doc, 1, "conflict", &doc);
    // with the version it holds now, it goes through, after the other epoch
    let (_, now) = current(&zk).await;
    let v = now.to_string();
    let (code, doc) = publish(
        &zk,
        &["--host", "db2", "--port", "3306", "--expect-version", &v],
    )
    .await;
    assert_eq!((code, doc["epoch"].as_u64()), (0, Some(6)), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_never_both_win_the_same_version() {
    let zk = zk().await;
    publish(&zk, &["--host", "db1", "--port", "3306"]).await;
    let (_, v) = current(&zk).await;
    let v = v.to_string();
    let args_a = ["--host", "db2", "--port", "3306", "--expect-version", &v];
    let args_b = ["--host", "db3", "--port", "3306", "--expect-version", &v];
    let (a, b) = (publish(&zk, &args_a), publish(&zk, &args_b));
    let ((ca, da), (cb, db)) = tokio::join!(a, b);
    let mut codes = [ca, cb];
    codes.sort_unstable();
    assert_eq!(codes, [0, 1], "exactly one wins: {da} {db}");
    let (rec, _) = current(&zk).await;
    let winner = if ca == 0 { "db2" } else { "db3" };
    assert_eq!((rec.host.as_str(), rec.epoch), (winner, Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_record_needs_an_explicit_epoch_and_bad_arguments_exit_2() {
    let zk = zk().await;
    zk_write(&zk.connect_string(), PATH, b"not a record")
        .await
        .unwrap();
    let (code, doc) = publish(&zk, &["--host", "db1", "--port", "3306"]).await;
    assert_failed(code, &doc, "refused", "--epoch", &doc);
    let (code, doc) = publish(&zk, &["--host", "db1", "--port", "3306", "--epoch", "7"]).await;
    assert_eq!((code, doc["epoch"].as_u64()), (0, Some(7)), "{doc}");
    for bad in [
        &["--host", "db1", "--port", "0"][..],
        &["--port", "3306"],
        &["--host", "db1", "--port", "1", "--epoch", "-3"],
    ] {
        let out = run(&zk, bad).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::process::Command::new(BIN)
        .args([
            "publish",
            "--zk",
            "127.0.0.1:1",
            "--primary-path",
            PATH,
            "--host",
            "a",
            "--port",
            "1",
            "--zk-timeout",
            "1s",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no ZooKeeper: failed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ZooKeeper"));
}
