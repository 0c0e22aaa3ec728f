//! `mysql-zk-proxy publish --replica` against a real ZooKeeper: the
//! replica record is written beside the primary record at the primary's
//! epoch (or `--epoch`), the optional fields only when set; a name that is
//! not a znode name and a missing primary epoch are refused.

use mysql_zk_proxy_core::discovery::replica_record::{parse_replica, ReplicaState};
use mysql_zk_proxy_sandbox::{zk_read, zk_write, ZkServer};

use crate::common::binary::run_json;

const PRIMARY: &str = "/mysql/clusters/p/primary";
const DB9: &str = "/mysql/clusters/p/replicas/db9";

async fn publish(zk: &ZkServer, extra: &[&str]) -> (i32, serde_json::Value) {
    let connect = zk.connect_string();
    let mut args = vec![
        "publish",
        "--json",
        "--zk",
        &connect,
        "--primary-path",
        PRIMARY,
    ];
    args.extend_from_slice(extra);
    let (code, doc, _) = run_json(&args, &[]).await;
    (code, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_replica_writes_the_record_at_the_primary_epoch() {
    let zk = ZkServer::start_async().await.expect("zookeeper starts");
    let db9 = ["--replica", "db9", "--host", "10.0.0.9", "--port", "3306"];
    let (code, doc) = publish(&zk, &db9).await;
    assert_eq!(code, 1, "no primary record, no --epoch: {doc}");
    assert!(zk_read(&zk.connect_string(), DB9).await.unwrap().is_none());

    let primary = br#"{"host":"10.0.0.5","port":3306,"epoch":7}"#;
    zk_write(&zk.connect_string(), PRIMARY, primary)
        .await
        .unwrap();
    let (code, doc) = publish(&zk, &db9).await;
    assert_eq!(
        (code, doc["outcome"].as_str()),
        (0, Some("published")),
        "{doc}"
    );
    assert_eq!(doc["epoch"], 7);
    let (data, _) = zk_read(&zk.connect_string(), DB9).await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&data),
        r#"{"epoch":7,"host":"10.0.0.9","port":3306}"#
    );

    let more = [
        &db9[..],
        &["--epoch", "9", "--weight", "3", "--state", "draining"],
    ]
    .concat();
    let (code, doc) = publish(&zk, &more).await;
    assert_eq!(code, 0, "{doc}");
    let (data, _) = zk_read(&zk.connect_string(), DB9).await.unwrap().unwrap();
    let rec = parse_replica("db9", &data).unwrap();
    assert_eq!(
        (rec.epoch, rec.weight, rec.state),
        (9, 3, ReplicaState::Draining)
    );

    let (code, doc) = publish(&zk, &["--replica", "..", "--host", "h", "--port", "1"]).await;
    assert_eq!(code, 1, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("znode name"),
        "{doc}"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mysql-zk-proxy"))
        .args(["publish", "--zk", "127.0.0.1:1", "--primary-path", PRIMARY])
        .args([&db9[..], &["--weight", "0"]].concat())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "weight 0 is a bad argument");
}
