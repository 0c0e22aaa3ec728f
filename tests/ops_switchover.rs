//! `mysql-zk-proxy switchover` against real ZooKeeper and MariaDB with a
//! proxy in this process: the happy path through the binary (`--json`, exit
//! code, no secret printed), the refusals (target not a replica,
//! replication stopped, record changed under it), the roll-back when the
//! target cannot catch up and when a proxy does not acknowledge the drain.

mod common;
#[path = "ops/support.rs"]
mod support;

use std::time::Duration;

use common::outcome::{assert_failed, assert_outcome};
use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::routing::RecordState;
use mysql_zk_proxy_ops::report::{Outcome, Report};
use serde_json::Value;
use support::*;

/// Run the binary's `switchover --json` to `target`; (exit code, JSON, all output).
async fn switchover_bin(env: &common::Env, target: u16, extra: &[&str]) -> (i32, Value, String) {
    let (zk, to) = (env.cluster.zk_connect(), format!("127.0.0.1:{target}"));
    let mut args = vec!["switchover", "--json", "--zk", &zk, "--primary-path"];
    args.extend([env.cluster.primary_path(), "--to", &to, "--user", OP_USER]);
    args.extend(["--repl-user", "repl"]);
    args.extend_from_slice(extra);
    let passwords = [
        ("MYSQL_ZK_PROXY_PASSWORD", OP_PASS),
        ("MYSQL_ZK_PROXY_REPL_PASSWORD", "repl"),
    ];
    common::binary::run_json(&args, &passwords).await
}

async fn env_with_proxy(id: &str) -> common::Env {
    let env = env_registered(id, Duration::from_secs(5)).await;
    create_operator(&env.cluster).await;
    env
}

/// A cluster and a proxy registered as `id`, with a drain of `drain`.
async fn env_registered(id: &str, drain: Duration) -> common::Env {
    let env = common::start_with(true, |c| proxy_config(c, id, drain)).await;
    wait_registered(&env.cluster, &[id]).await;
    env
}

/// A transaction open through the proxy: it holds the proxy's acknowledgement
/// of a drain back until it ends.
async fn open_transaction(env: &common::Env) -> Conn {
    let mut tx = Conn::new(env.via_proxy()).await.unwrap();
    begin_and_hold(&mut tx).await;
    tx
}

/// Begin a transaction on `tx` and make it touch the server, so that it is
/// in progress (and blocks a drain) until it ends.
async fn begin_and_hold(tx: &mut Conn) {
    tx.query_drop("BEGIN").await.unwrap();
    tx.query_drop("SELECT 1").await.unwrap();
}

/// The switchover ended with `outcome` and an error naming `needle`,
/// before it made the old primary read-only.
#[track_caller]
fn ended_before_read_only(report: &Report, outcome: Outcome, needle: &str) {
    assert_eq!(report.outcome, outcome, "{report}");
    let error = report.error.as_deref().unwrap_or_default();
    assert!(error.contains(needle), "{report}");
    assert!(
        report.phases.read_only.is_none(),
        "made read-only: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_moves_the_primary_and_the_sessions() {
    let env = env_with_proxy("px-1").await;
    let (old, new) = primary_and_replica(&env.cluster);
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("CREATE TABLE app.s (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO app.s VALUES (1)").await.unwrap();
    c.query_drop("SET @kept = 'yes'").await.unwrap();

    let (code, doc, all) = switchover_bin(&env, new, &[]).await;
    assert_outcome(code, &doc, 0, "switched", &all);
    assert!(!all.contains(OP_PASS), "the password was printed: {all}");
    let epochs = &doc["epochs"];
    let got = [&epochs["before"], &epochs["draining"], &epochs["serving"]].map(Value::as_u64);
    assert_eq!(got, [Some(1), Some(2), Some(3)], "{doc}");
    for phase in [
        "check",
        "drain",
        "read_only",
        "catch_up",
        "promote",
        "repoint",
        "publish",
    ] {
        assert!(
            doc["phases"][phase].as_f64().is_some(),
            "{phase} not timed: {doc}"
        );
    }
    assert!(doc["phases"]["rollback"].is_null(), "{doc}");
    assert!(doc["write_blocked_ms"].as_f64().unwrap() <= doc["total_ms"].as_f64().unwrap());
    assert_eq!(doc["proxies"][0]["id"], "px-1");
    assert_eq!(doc["proxies"][0]["acked"], true, "{doc}");

    let rec = record(&env.cluster).await;
    assert_eq!(
        (rec.port, rec.epoch, rec.state),
        (new, Some(3), RecordState::Serving)
    );
    assert_eq!(
        rec.server_id,
        Some(2),
        "the new primary's server_id is published"
    );
    assert!(!read_only(new).await && read_only(old).await);
    env.wait_for_primary_port(new).await;
    let row: (u16, String) = c
        .query_first("SELECT @@port, @kept")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, (new, "yes".into()), "the session moved with its state");
    c.query_drop("INSERT INTO app.s VALUES (2)").await.unwrap();
    // the old primary now replicates from the new one
    wait_for(
        "the write replicated to the demoted primary",
        || async move { count(old, "app.s").await == 2 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_target_that_is_not_a_healthy_replica() {
    let mut env = env_with_proxy("px-1").await;
    let (old, new) = primary_and_replica(&env.cluster);
    let mut replica = admin(new).await;
    replica.query_drop("STOP SLAVE IO_THREAD").await.unwrap();
    let (code, doc, all) = switchover_bin(&env, new, &[]).await;
    assert_failed(code, &doc, "refused", "IO thread No", &all);

    replica
        .query_drop("STOP SLAVE; RESET SLAVE ALL")
        .await
        .unwrap();
    let (code, doc, _) = switchover_bin(&env, new, &[]).await;
    assert_eq!(code, 1);
    assert!(
        doc["error"].as_str().unwrap().contains("not a replica"),
        "{doc}"
    );

    let (code, doc, _) = switchover_bin(&env, old, &[]).await;
    assert_eq!(code, 1);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("already the published primary"),
        "{doc}"
    );

    // nothing was touched by any refusal
    let rec = record(&env.cluster).await;
    assert_eq!(
        (rec.port, rec.epoch, rec.state),
        (old, Some(1), RecordState::Serving)
    );
    assert!(!read_only(old).await);
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("CREATE TABLE app.still_writable (x INT)")
        .await
        .unwrap();
    let plan = env.cluster.switchover_plan().unwrap();
    let report = env.cluster.switchover_with(&plan).await.unwrap();
    assert_eq!(report.outcome, Outcome::Refused, "{report}");
}

/// A switchover run in this process while `during` acts on the cluster.
async fn switchover_while(
    env: &mut common::Env,
    drain: Duration,
    catch_up: Duration,
    during: impl std::future::Future<Output = ()>,
) -> Report {
    let mut plan = env.cluster.switchover_plan().unwrap();
    (plan.drain_timeout, plan.catch_up_timeout) = (drain, catch_up);
    let (report, ()) = tokio::join!(env.cluster.switchover_with(&plan), during);
    report.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_when_the_record_changes_under_it() {
    let mut env = env_registered("px-1", Duration::from_secs(30)).await;
    let old = env.cluster.primary().port();
    let mut tx = open_transaction(&env).await;
    let cluster_zk = env.cluster.zk_connect();
    let path = env.cluster.primary_path().to_owned();
    let table = env.proxy.route_table().clone();
    let other_writer = async move {
        wait_for("the draining record", || {
            let t = table.clone();
            async move { !t.current().serving() }
        })
        .await;
        // another tool takes over meanwhile: its own draining record, epoch 5
        let theirs = format!(r#"{{"host":"127.0.0.1","port":{old},"epoch":5,"state":"draining"}}"#);
        mysql_zk_proxy_sandbox::zk_write(&cluster_zk, &path, theirs.as_bytes())
            .await
            .unwrap();
        tx.query_drop("COMMIT").await.unwrap();
    };
    let report = switchover_while(
        &mut env,
        Duration::from_secs(20),
        Duration::from_secs(10),
        other_writer,
    )
    .await;
    ended_before_read_only(&report, Outcome::Failed, "changed under");
    let rec = record(&env.cluster).await;
    assert_eq!(
        (rec.epoch, rec.state),
        (Some(5), RecordState::Draining),
        "their record stands"
    );
    assert!(
        !read_only(old).await,
        "the old primary was not made read-only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_when_the_target_cannot_catch_up() {
    let mut env = env_with_proxy("px-1").await;
    let (old, new) = primary_and_replica(&env.cluster);
    // the replica's SQL thread keeps running but cannot apply: a global read lock
    let mut lock = admin(new).await;
    lock.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .unwrap();
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    c.query_drop("CREATE TABLE app.lag (x INT)").await.unwrap();
    let (code, doc, all) = switchover_bin(&env, new, &["--catch-up-timeout", "1s"]).await;
    assert_failed(code, &doc, "rolled_back", "did not apply", &all);
    assert!(
        doc["phases"]["catch_up"].as_f64().unwrap() >= 1000.0,
        "{doc}"
    );
    assert!(doc["phases"]["promote"].is_null(), "{doc}");
    let epochs = &doc["epochs"];
    assert_eq!(
        (epochs["draining"].as_u64(), epochs["serving"].as_u64()),
        (Some(2), Some(3))
    );
    let rec = record(&env.cluster).await;
    assert_eq!(
        (rec.port, rec.epoch, rec.state),
        (old, Some(3), RecordState::Serving)
    );
    assert!(!read_only(old).await, "the old primary is writable again");
    assert!(read_only(new).await, "the target was not promoted");
    // writes through the proxy keep going to the old primary
    c.query_drop("INSERT INTO app.lag VALUES (1)")
        .await
        .unwrap();
    let port: u16 = c.query_first("SELECT @@port").await.unwrap().unwrap();
    assert_eq!(port, old);
    lock.query_drop("UNLOCK TABLES").await.unwrap();
    // and a later switchover goes through
    let report = switchover_while(
        &mut env,
        Duration::from_secs(10),
        Duration::from_secs(10),
        async {},
    )
    .await;
    assert_eq!(report.outcome, Outcome::Switched, "{report}");
    assert_eq!(report.epochs.serving, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_back_when_a_proxy_does_not_acknowledge_unless_forced() {
    let mut env = env_registered("px-1", Duration::from_secs(60)).await;
    let old = env.cluster.primary().port();
    let mut tx = open_transaction(&env).await;
    let short = Duration::from_millis(500);
    let report = switchover_while(&mut env, short, Duration::from_secs(10), async {}).await;
    ended_before_read_only(&report, Outcome::RolledBack, "px-1");
    assert_eq!(report.proxies.len(), 1);
    assert!(!report.proxies[0].acked);
    let rec = record(&env.cluster).await;
    assert_eq!(
        (rec.port, rec.epoch, rec.state),
        (old, Some(3), RecordState::Serving)
    );
    env.wait_for_primary_port(old).await;
    wait_for("the proxy serving again", || {
        let t = env.proxy.route_table().clone();
        async move { t.current().serving() }
    })
    .await;
    tx.query_drop("COMMIT")
        .await
        .expect("the transaction survives the roll-back");

    begin_and_hold(&mut tx).await;
    let mut plan = env.cluster.switchover_plan().unwrap();
    (plan.drain_timeout, plan.force) = (short, true);
    let report = env.cluster.switchover_with(&plan).await.unwrap();
    assert_eq!(report.outcome, Outcome::Switched, "{report}");
    assert!(
        report.warnings.iter().any(|w| w.contains("--force")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_authenticates_to_an_owner_only_record() {
    use mysql_zk_proxy_core::config::{Secret, ZkAuth};
    use mysql_zk_proxy_core::discovery::record::parse_record;
    use mysql_zk_proxy_sandbox::zk_connect_as;
    use zookeeper_client::Acls;

    const ZK_PASS: &str = "zk-0p-S3cret-71";
    let digest = ZkAuth::digest("operator", Secret::new(ZK_PASS));
    let auth = digest.clone();
    let env = common::start_with(true, move |c| {
        proxy_config(c, "px-1", Duration::from_secs(5));
        c.zookeeper.auth = Some(auth);
    })
    .await;
    create_operator(&env.cluster).await;
    wait_registered(&env.cluster, &["px-1"]).await;
    let (old, new) = primary_and_replica(&env.cluster);
    // Only the digest user may read or write the record from now on.
    let (connect, path) = (env.cluster.zk_connect(), env.cluster.primary_path());
    let owner = zk_connect_as(&connect, Some(&digest)).await.unwrap();
    owner
        .set_acl(path, &Acls::creator_all(), None)
        .await
        .unwrap();
    let record = || async {
        let (data, _) = owner.get_data(path).await.expect("the owner reads");
        parse_record(&data).unwrap()
    };

    let refused = switchover_bin(&env, new, &[]).await;
    common::binary::assert_acl_denied(&refused, "refused", path);
    let rec = record().await;
    assert_eq!((rec.port, rec.epoch), (old, Some(1)), "nothing written");
    assert!(!read_only(old).await, "the primary was not touched");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zk-password");
    std::fs::write(&file, ZK_PASS).unwrap();
    let file = file.to_str().unwrap();
    let creds = [
        "--zk-auth-user",
        "operator",
        "--zk-auth-password-file",
        file,
    ];
    let (code, doc, all) = switchover_bin(&env, new, &creds).await;
    assert_outcome(code, &doc, 0, "switched", &all);
    assert_eq!(doc["proxies"][0]["acked"], true, "{doc}");
    assert!(!all.contains(ZK_PASS), "secret printed: {all}");
    let rec = record().await;
    assert_eq!(
        (rec.port, rec.epoch, rec.state),
        (new, Some(3), RecordState::Serving)
    );
    env.wait_for_primary_port(new).await;
}
