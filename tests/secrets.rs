//! No secret leaks: the real binary runs with debug logging through every
//! path that handles one — logins (right and wrong password), a failover
//! that migrates a session (derived credential), users from ZooKeeper
//! (`users_path`, behind a digest ACL) and from `[[users]]`, ZooKeeper digest
//! auth (password from the environment), the admin token (from a file), the
//! monitor password, `check-config` — then its stdout/stderr, /status,
//! /metrics, the check-config output and the client-visible errors are
//! scanned for every secret string in every form.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{Running, BIN};
use common::http::get_with;
use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::native_password::StoredHash;
use mysql_zk_proxy_sandbox::Cluster;
use sha1::{Digest, Sha1};
use zookeeper_client::{Acls, Client, CreateMode};

const DB_USER: &str = "secuser";
const DB_PW: &str = "Db-Pw-7c1e44a9";
const WRONG_PW: &str = "Wrong-Pw-55e1d0";
const CFG_PW: &str = "Cfg-Pw-0b9d3e12";
const FENCE_PW: &str = "Fence-Pw-a4410c";
const ZK_PW: &str = "Zk-Pw-93ad7f20";
const TOKEN: &str = "Adm-Tok-6e0f1b2c3d4a5968";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Every form a secret could leak in: plaintext, `*HEX` hashes, their hex
/// (both cases), the derived credential SHA1(password) in hex.
fn forbidden() -> Vec<String> {
    let mut out: Vec<String> = [DB_PW, WRONG_PW, CFG_PW, FENCE_PW, ZK_PW, TOKEN]
        .map(String::from)
        .to_vec();
    for pw in [DB_PW, CFG_PW] {
        let stored = hex(StoredHash::of_password(pw.as_bytes()).as_bytes());
        let derived = hex(&Sha1::digest(pw.as_bytes()));
        for h in [stored, derived] {
            out.push(h.to_lowercase());
            out.push(h);
        }
    }
    out
}

fn scan(what: &str, text: &str) {
    assert!(!text.is_empty(), "{what}: nothing to scan");
    for s in forbidden() {
        assert!(
            !text.contains(&s),
            "{what} contains a secret ({s}):\n{text}"
        );
    }
}

fn stored_hash(pw: &str) -> String {
    format!(
        "*{}",
        hex(StoredHash::of_password(pw.as_bytes()).as_bytes())
    )
}

/// The users znode, readable only with the proxy's digest identity.
async fn protected_users(connect: &str) {
    let owner = Client::connector()
        .with_auth("digest", format!("proxy:{ZK_PW}").as_bytes())
        .connect(connect)
        .await
        .unwrap();
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    owner.mkdir("/sec", &open).await.unwrap();
    let closed = CreateMode::Persistent.with_acls(Acls::creator_all());
    owner.create("/sec/users", b"", &closed).await.unwrap();
    let data = format!(r#"{{"mysql_native_password":"{}"}}"#, stored_hash(DB_PW));
    let path = format!("/sec/users/{DB_USER}");
    owner.create(&path, data.as_bytes(), &closed).await.unwrap();
}

fn config_text(cluster: &Cluster, token_file: &std::path::Path) -> String {
    format!(
        r#"[listen]
address = "127.0.0.1:0"
[zookeeper]
connect = "{zk}"
primary_path = "{path}"
session_timeout = "4s"
users_path = "/sec/users"
[zookeeper.auth]
user = "proxy"
password_env = "SEC_TEST_ZK_PASSWORD"
[failover]
hold_timeout = "5s"
drain_timeout = "2s"
[monitor]
user = "fence"
password = "{FENCE_PW}"
verify_writable = false
[admin]
address = "127.0.0.1:0"
token_file = "{token}"
[log]
level = "debug"
[[users]]
name = "cfguser"
mysql_native_password = "{cfg_hash}"
"#,
        zk = cluster.zk_connect(),
        path = cluster.primary_path(),
        token = token_file.display(),
        cfg_hash = stored_hash(CFG_PW),
    )
}

fn opts(port: u16, pw: &str) -> mysql_async::OptsBuilder {
    common::app_opts(port).user(Some(DB_USER)).pass(Some(pw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_status_metrics_config_or_errors() {
    let cluster = Cluster::builder().start().await.expect("cluster starts");
    let create = format!(
        "SET sql_log_bin = 0; CREATE USER '{DB_USER}'@'%' IDENTIFIED BY '{DB_PW}'; \
         GRANT ALL ON app.* TO '{DB_USER}'@'%'"
    );
    cluster.primary().sql_async(&create).await.unwrap();
    cluster.replica().unwrap().sql_async(&create).await.unwrap();
    protected_users(&cluster.zk_connect()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config_text(&cluster, &token_file)).unwrap();
    let path = path.to_str().unwrap();
    let mut seen = Vec::new();

    let check = Command::new(BIN)
        .args(["check-config", "--config", path])
        .env("SEC_TEST_ZK_PASSWORD", ZK_PW)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{check:?}");
    assert!(
        printed.contains("<redacted>") && printed.contains("cfguser"),
        "{printed}"
    );
    scan("check-config output", &printed);
    scan(
        "check-config stderr",
        &format!("-{}", String::from_utf8_lossy(&check.stderr)),
    );

    let env = [("RUST_LOG", "debug"), ("SEC_TEST_ZK_PASSWORD", ZK_PW)];
    let run = Running::start_with_env(&["run", "--config", path], &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = run.admin_addr(deadline);
    run.wait_for_line(&["users reloaded from ZooKeeper", "users=1"], deadline);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let status = loop {
        let (code, body) = get_with(admin, "/status", &[&bearer]).await.unwrap();
        assert_eq!(code, 200, "{body}");
        if body.contains("\"primary\": {") {
            break body;
        }
        assert!(Instant::now() < deadline, "no primary: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let port: std::net::SocketAddr = v["listen_address"].as_str().unwrap().parse().unwrap();
    let port = port.port();

    // Logins: wrong password (client-visible error), right password.
    let e = Conn::new(opts(port, WRONG_PW)).await.unwrap_err();
    seen.push(("wrong-password error", e.to_string()));
    let mut c = Conn::new(opts(port, DB_PW)).await.unwrap();
    c.query_drop("SET @kept = 'yes'").await.unwrap();

    // Failover by record: the idle session is migrated (derived credential).
    let replica = cluster.replica().unwrap().port();
    cluster.publish_json(replica, 2).await.unwrap();
    run.wait_for_line(
        &["session migrated"],
        Instant::now() + Duration::from_secs(20),
    );
    let row: Option<(u16, String)> = c.query_first("SELECT @@port, @kept").await.unwrap();
    assert_eq!(
        row,
        Some((replica, "yes".into())),
        "migrated with its state"
    );
    c.disconnect().await.unwrap();

    let (code, body) = get_with(admin, "/status", &[]).await.unwrap();
    assert_eq!(code, 401);
    seen.push(("/status without token", body));
    let (_, status) = get_with(admin, "/status", &[&bearer]).await.unwrap();
    seen.push(("/status", status));
    let (_, metrics) = get_with(admin, "/metrics", &[]).await.unwrap();
    assert!(
        metrics.contains("mysql_zk_proxy_sessions_migrated_total 1"),
        "{metrics}"
    );
    seen.push(("/metrics", metrics));

    run.signal(libc::SIGTERM);
    let mut run = run;
    let exited = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        run.child.try_wait().unwrap().is_some()
    });
    assert!(exited, "the proxy stops on SIGTERM");
    let log = run.log_so_far();
    assert!(
        log.contains("DEBUG") && log.contains("logged in"),
        "debug log captured"
    );
    seen.push(("stdout/stderr log", log));
    for (what, text) in &seen {
        scan(what, text);
    }
}
