//! ZooKeeper digest auth against a real ZooKeeper: a record protected by an
//! ACL is read with `zookeeper.auth`; without it (or with a wrong password)
//! the denial is explained in the status, the route is kept and the read is
//! retried at the backoff pace, not in a loop. The operator command
//! `publish` and the drill's read of the final record authenticate with
//! `--zk-auth-*` the same way.

mod common;
#[path = "discovery/support.rs"]
mod support;

use std::time::Duration;

use mysql_zk_proxy_core::config::{Secret, ZkAuth};
use mysql_zk_proxy_core::discovery::record::{parse_record, Record};
use mysql_zk_proxy_drill::verify::{final_primary, VerifyTarget};
use mysql_zk_proxy_sandbox::{zk_connect_as, zk_read, ZkServer};
use serde_json::Value;
use support::*;
use tokio::time::Instant;
use zookeeper_client::{Acls, Client, CreateMode};

const USER: &str = "proxy";
const PASSWORD: &str = "zk-Secret-4711";

fn auth(password: &str) -> ZkAuth {
    ZkAuth::digest(USER, Secret::new(password))
}

/// A session authenticated as `proxy` (the ACL owner).
async fn owner(connect: &str) -> Client {
    zk_connect_as(connect, Some(&auth(PASSWORD)))
        .await
        .expect("owner session")
}

/// Create `path` (parents open) with the creator-only ACL of `client`, or
/// open to anyone when `open`.
async fn create(client: &Client, path: &str, data: &[u8], open: bool) {
    let parent = &path[..path.rfind('/').unwrap()];
    let anyone = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(parent, &anyone).await.expect("mkdir");
    let acls = if open {
        Acls::anyone_all()
    } else {
        Acls::creator_all()
    };
    let opts = CreateMode::Persistent.with_acls(acls);
    client.create(path, data, &opts).await.expect("create");
}

/// A ZooKeeper server holding a record at `path` (10.0.0.5:3306, epoch 7)
/// that only `proxy` may read; the server and its connect string.
async fn owner_only_record(path: &str) -> (ZkServer, String) {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    create(
        &owner(&connect).await,
        path,
        &json("10.0.0.5", 3306, 7),
        false,
    )
    .await;
    (zk, connect)
}

/// ZooKeeper's received-packet counter (`mntr`).
async fn packets_received(zk: &ZkServer) -> u64 {
    let mntr = zk.four_letter("mntr").expect("mntr");
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_packets_received\t"))
        .and_then(|v| v.trim().parse().ok())
        .expect("zk_packets_received in mntr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_reads_a_record_only_its_owner_may_read() {
    let path = "/acl/ok/primary";
    let (_zk, connect) = owner_only_record(path).await; // the server lives to the end

    let mut c = cfg(&connect, path, Duration::from_secs(4));
    c.auth = Some(auth(PASSWORD));
    let d = Disco::start(c);
    let r = d.route("protected record", |r| r.primary.is_some()).await;
    assert_eq!(port_of(&r), Some(3306));
    assert!(d.status.borrow().zk_error.is_none());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denial_is_explained_keeps_the_route_and_does_not_spin() {
    let zk = zk_server().await;
    let connect = zk.connect_string();
    let path = "/acl/denied/primary";
    let owner = owner(&connect).await;
    create(&owner, path, &json("10.0.0.5", 3306, 7), true).await;

    // Wrong password: digest auth itself succeeds in ZooKeeper, the ACL then refuses.
    let mut c = cfg(&connect, path, Duration::from_secs(4));
    c.auth = Some(auth("wrong-password"));
    let d = Disco::start(c);
    d.route("open record", |r| port_of(r) == Some(3306)).await;

    // Lock the znode to its owner and move the primary (ZooKeeper does not
    // notify a watcher that may no longer read), then make the proxy re-read:
    // a stalled server costs it the connection.
    owner
        .set_acl(path, &Acls::creator_all(), None)
        .await
        .expect("set_acl");
    owner
        .set_data(path, &json("10.0.0.6", 3307, 8), None)
        .await
        .expect("set_data");
    drop(owner);
    zk.pause_for(Duration::from_secs(3))
        .await
        .expect("pause zookeeper");
    let s = d
        .status("ACL denial shown", |s| {
            s.zk_error
                .as_deref()
                .is_some_and(|e| e.contains("ACL denies"))
        })
        .await;
    let e = s.zk_error.unwrap();
    assert!(e.contains(&format!("read of {path}")), "{e}");
    assert!(e.contains("zookeeper.auth"), "{e}");
    assert!(!e.contains("wrong-password"), "secret in the error: {e}");
    assert_eq!(port_of(&d.table.current()), Some(3306), "route kept");

    // Retried at `retry_backoff` (100 ms here): a handful of requests a
    // second, not thousands.
    let before = packets_received(&zk).await;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = packets_received(&zk).await - before;
    let per_sec = sent as f64 / window.elapsed().as_secs_f64();
    assert!(per_sec < 60.0, "{sent} packets in {:?}", window.elapsed());
    assert_eq!(port_of(&d.table.current()), Some(3306), "route still kept");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_at_all_names_the_missing_setting() {
    let path = "/acl/none/primary";
    let (_zk, connect) = owner_only_record(path).await; // the server lives to the end

    let d = Disco::start(cfg(&connect, path, Duration::from_secs(4)));
    let s = d.status("ACL denial shown", |s| s.zk_error.is_some()).await;
    let e = s.zk_error.unwrap();
    assert!(e.contains("ACL denies read of /acl/none/primary"), "{e}");
    assert!(e.contains("set zookeeper.auth"), "{e}");
    assert!(d.table.current().primary.is_none());
    d.stop().await;
}

/// `publish --json` of 10.0.0.6:`port` with `extra` flags and `env`:
/// (exit code, JSON, all output).
async fn publish(
    connect: &str,
    path: &str,
    port: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, Value, String) {
    let mut args = vec!["publish", "--json", "--zk", connect, "--primary-path", path];
    args.extend(["--host", "10.0.0.6", "--port", port, "--zk-timeout", "5s"]);
    args.extend_from_slice(extra);
    common::binary::run_json(&args, env).await
}

/// The record as its owner reads it.
async fn owned_record(connect: &str, path: &str) -> Record {
    let (data, _) = owner(connect)
        .await
        .get_data(path)
        .await
        .expect("owner reads");
    parse_record(&data).expect("a record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_authenticate_to_an_owner_only_record() {
    let path = "/acl/ops/primary";
    let (_zk, connect) = owner_only_record(path).await; // the server lives to the end
    let as_user = ["--zk-auth-user", USER];
    let secret_env = |password| [("MYSQL_ZK_PROXY_ZK_PASSWORD", password)];

    // Without credentials, or with a wrong password: refused by the ACL,
    // said so, nothing written.
    for (extra, env) in [(&[][..], &[][..]), (&as_user, &secret_env("wrong-pw"))] {
        let failed = publish(&connect, path, "3307", extra, env).await;
        common::binary::assert_acl_denied(&failed, "failed", path);
        assert!(
            !failed.2.contains("wrong-pw"),
            "secret printed: {}",
            failed.2
        );
    }
    let rec = owned_record(&connect, path).await;
    assert_eq!((rec.port, rec.epoch), (3306, Some(7)), "nothing written");

    // The password from the environment.
    let (code, doc, all) = publish(&connect, path, "3307", &as_user, &secret_env(PASSWORD)).await;
    assert_eq!((code, doc["epoch"].as_u64()), (0, Some(8)), "{all}");
    assert!(!all.contains(PASSWORD), "secret printed: {all}");
    let rec = owned_record(&connect, path).await;
    assert_eq!(
        (rec.host.as_str(), rec.port, rec.epoch),
        ("10.0.0.6", 3307, Some(8))
    );
    let plain = zk_read(&connect, path).await;
    assert!(plain.is_err(), "the ACL stays owner-only: {plain:?}");

    // The password from a file (first line).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zk-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let file = file.to_str().unwrap();
    let from_file = [&as_user[..], &["--zk-auth-password-file", file]].concat();
    let (code, doc, all) = publish(&connect, path, "3308", &from_file, &[]).await;
    assert_eq!((code, doc["epoch"].as_u64()), (0, Some(9)), "{all}");
    assert_eq!(owned_record(&connect, path).await.port, 3308);

    // The drill's read of the final record, with and without the credential.
    let target = |auth: Option<ZkAuth>| VerifyTarget {
        zk: connect.clone(),
        primary_path: path.into(),
        tls: None,
        auth,
        user: String::new(),
        password: String::new(),
        database: String::new(),
    };
    let primary = final_primary(&target(Some(auth(PASSWORD)))).await;
    assert_eq!(primary.unwrap(), ("10.0.0.6".into(), 3308));
    let e = final_primary(&target(None)).await.unwrap_err().to_string();
    assert!(e.contains(&format!("ACL denies get of {path}")), "{e}");
}
