//! TLS against real MariaDB and ZooKeeper: the proxy terminates client TLS
//! and speaks TLS to backends (either leg alone or both), verifies the
//! backend's CA and name, requires TLS when told to, keeps migrating
//! sessions on failover, reads certificates again at a reload, and refuses
//! readable-password authentication unless both legs are TLS.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::Running;
use common::pki::{self, s, Pki};
use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder, ServerError, SslOpts};
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_sandbox::mariadb::tls_args;
use mysql_zk_proxy_sandbox::Cluster;

/// Certificates for the servers (db) and for the proxy's own listener.
fn pkis() -> (tempfile::TempDir, Pki, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let db = pki::issue(dir.path(), "db", &["127.0.0.1", "localhost"]);
    let proxy = pki::issue(dir.path(), "proxy", &["127.0.0.1", "localhost"]);
    (dir, db, proxy)
}

/// A cluster whose servers serve TLS with `db`'s certificate.
async fn cluster(replica: bool, db: &Pki, more: &[&str]) -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let mut b = Cluster::builder()
        .server_args(tls_args(&db.cert, &db.key, &db.ca))
        .server_args(more.iter().map(|a| a.to_string()).collect());
    if !replica {
        b = b.without_replica();
    }
    b.start().await.expect("cluster starts")
}

/// A proxy for `cluster`, once it routes to the primary.
async fn proxy(cluster: &Cluster, tweak: impl FnOnce(&mut Config)) -> Proxy {
    let mut cfg = common::test_config(cluster);
    tweak(&mut cfg);
    let p = Proxy::start(cfg).await.expect("proxy starts");
    wait_for_port(&p, cluster.primary().port()).await;
    p
}

async fn wait_for_port(p: &Proxy, port: u16) {
    let table = p.route_table().clone();
    let mut rx = table.subscribe();
    tokio::time::timeout(Duration::from_secs(20), async {
        while table.current().primary.as_ref().map(|p| p.port) != Some(port) {
            rx.changed().await.expect("route table alive");
        }
    })
    .await
    .expect("the proxy routes to the primary");
}

fn listen_tls(c: &mut Config, p: &Pki) {
    c.listen.tls.cert = s(&p.cert);
    c.listen.tls.key = s(&p.key);
}

fn backend_tls(c: &mut Config, db: &Pki) {
    c.backend.tls.enabled = true;
    c.backend.tls.ca = s(&db.ca);
}

/// The app user over TLS, trusting only `ca`.
fn tls_client(port: u16, ca: &Path) -> OptsBuilder {
    let ssl = SslOpts::default()
        .with_root_certs(vec![ca.to_path_buf().into()])
        .with_disable_built_in_roots(true);
    common::app_opts(port).ssl_opts(ssl)
}

async fn connect(opts: OptsBuilder) -> Result<Conn, mysql_async::Error> {
    tokio::time::timeout(Duration::from_secs(15), Conn::new(opts))
        .await
        .expect("the login ends in time, no hang")
}

fn server_error(r: Result<Conn, mysql_async::Error>) -> ServerError {
    match r {
        Err(mysql_async::Error::Server(e)) => e,
        Err(other) => panic!("expected a server error, got {other:?}"),
        Ok(_) => panic!("expected a server error, the login succeeded"),
    }
}

/// The cipher of the backend connection serving `c` ("" = plain).
async fn backend_cipher(c: &mut Conn) -> String {
    let row: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    row.expect("Ssl_cipher row").1
}

/// Large replies and a large command cross the TLS relay intact.
async fn round_trips_bulk(c: &mut Conn) {
    let n: Option<usize> = c
        .query_first("SELECT LENGTH(REPEAT('x', 3000000))")
        .await
        .unwrap();
    assert_eq!(n, Some(3_000_000));
    let big: Option<String> = c.query_first("SELECT REPEAT('y', 2000000)").await.unwrap();
    assert_eq!(big.map(|b| b.len()), Some(2_000_000));
    let up = "z".repeat(1_500_000);
    let len: Option<usize> = c
        .query_first(format!("SELECT LENGTH('{up}')"))
        .await
        .unwrap();
    assert_eq!(len, Some(1_500_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_the_client_leg_the_backend_leg_or_both() {
    let (_dir, db, px) = pkis();
    let cluster = cluster(false, &db, &[]).await;
    let mut direct = connect(tls_client(cluster.primary().port(), &db.ca))
        .await
        .expect("the server itself serves TLS");
    assert!(!backend_cipher(&mut direct).await.is_empty());

    // client TLS, backend plain: ids shift down between the legs
    let a = proxy(&cluster, |c| listen_tls(c, &px)).await;
    let port = a.listen_addr().port();
    let mut c = connect(tls_client(port, &px.ca)).await.expect("TLS client");
    assert_eq!(backend_cipher(&mut c).await, "", "the backend leg is plain");
    round_trips_bulk(&mut c).await;
    let mut plain = connect(common::app_opts(port)).await.expect("plain client");
    assert_eq!(plain.query_first("SELECT 7").await.unwrap(), Some(7));
    let wrong_ca = connect(tls_client(port, &db.ca)).await;
    assert!(
        wrong_ca.is_err(),
        "a client trusting another CA refuses the proxy"
    );

    // plain client, backend TLS: ids shift up
    let b = proxy(&cluster, |c| backend_tls(c, &db)).await;
    let mut c = connect(common::app_opts(b.listen_addr().port()))
        .await
        .expect("plain client, TLS backend");
    assert!(
        !backend_cipher(&mut c).await.is_empty(),
        "backend leg is TLS"
    );
    round_trips_bulk(&mut c).await;

    // both legs, and TLS required of clients
    let both = proxy(&cluster, |c| {
        listen_tls(c, &px);
        c.listen.tls.require = true;
        backend_tls(c, &db);
    })
    .await;
    let port = both.listen_addr().port();
    let mut c = connect(tls_client(port, &px.ca))
        .await
        .expect("TLS both legs");
    assert!(!backend_cipher(&mut c).await.is_empty());
    round_trips_bulk(&mut c).await;
    let e = server_error(connect(common::app_opts(port)).await);
    assert_eq!(e.code, 9008, "{e:?}");
    assert!(e.message.contains("requires TLS"), "{}", e.message);
    // the mariadb command-line client (OpenSSL) verifying the proxy
    let out = mariadb_cli(port, &px.ca, "SELECT CONCAT('sum=', 20+22)").await;
    assert!(out.contains("sum=42"), "{out}");
}

/// Run `sql` with the mariadb CLI over TLS, verifying the server against `ca`.
async fn mariadb_cli(port: u16, ca: &Path, sql: &str) -> String {
    let mut cmd = tokio::process::Command::new("mariadb");
    cmd.args(["--no-defaults", "-h127.0.0.1", "-uapp", "-papp", "--batch"])
        .arg(format!("-P{port}"))
        .args(["--ssl", "--ssl-verify-server-cert"])
        .arg(format!("--ssl-ca={}", ca.display()))
        .args(["-e", sql]);
    let out = tokio::time::timeout(Duration::from_secs(15), cmd.output())
        .await
        .expect("the CLI ends in time")
        .expect("the mariadb CLI runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_verifies_the_ca_and_the_name() {
    let (dir, db, _) = pkis();
    let other = pki::issue(dir.path(), "other", &["127.0.0.1"]);
    let cluster = cluster(false, &db, &[]).await;

    let p = proxy(&cluster, |c| backend_tls(c, &other)).await;
    let e = server_error(connect(common::app_opts(p.listen_addr().port())).await);
    assert_eq!(e.code, 9002, "{e:?}");
    assert!(
        e.message.contains("TLS handshake with primary"),
        "{}",
        e.message
    );
    assert!(e.message.contains("certificate"), "{}", e.message);

    let p = proxy(&cluster, |c| {
        backend_tls(c, &db);
        c.backend.tls.server_name = "db.example.invalid".into();
    })
    .await;
    let e = server_error(connect(common::app_opts(p.listen_addr().port())).await);
    assert_eq!(e.code, 9002, "{e:?}");
    assert!(e.message.contains("certificate"), "{}", e.message);

    let p = proxy(&cluster, |c| {
        backend_tls(c, &db);
        c.backend.tls.server_name = "localhost".into();
    })
    .await;
    let mut c = connect(common::app_opts(p.listen_addr().port()))
        .await
        .expect("the name in the certificate verifies");
    assert!(!backend_cipher(&mut c).await.is_empty());

    // a file that is not there is named by its key
    let mut cfg = common::test_config(&cluster);
    cfg.backend.tls.enabled = true;
    cfg.backend.tls.ca = s(&dir.path().join("missing.pem"));
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("backend.tls.ca"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_without_tls_is_refused_when_backend_tls_is_on() {
    let (_dir, db, _) = pkis();
    let env = common::start_with(false, |c| backend_tls(c, &db)).await;
    let e = server_error(connect(env.via_proxy()).await);
    assert_eq!(e.code, 9002, "{e:?}");
    assert!(e.message.contains("does not offer TLS"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_migrates_with_tls_on_both_legs() {
    let (_dir, db, px) = pkis();
    let mut cluster = cluster(true, &db, &[]).await;
    let p = proxy(&cluster, |c| {
        listen_tls(c, &px);
        backend_tls(c, &db);
        common::with_app_user(c);
    })
    .await;
    let mut c = connect(tls_client(p.listen_addr().port(), &px.ca))
        .await
        .unwrap();
    c.query_drop("SET @v = 42").await.unwrap();
    assert!(!backend_cipher(&mut c).await.is_empty());
    let report = cluster.switchover().await.unwrap();
    wait_for_port(&p, report.new_port).await;
    let row: Option<(u16, i64)> = c.query_first("SELECT @@port, @v").await.unwrap();
    assert_eq!(row, Some((report.new_port, 42)), "moved with its state");
    assert!(
        !backend_cipher(&mut c).await.is_empty(),
        "the new backend leg is TLS too"
    );
    let migrated = p
        .stats()
        .sessions_migrated
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(migrated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_certificate_again_and_keeps_it_on_a_bad_file() {
    let (dir, db, one) = pkis();
    let cluster = cluster(false, &db, &[]).await;
    let mut cfg = common::test_config(&cluster);
    listen_tls(&mut cfg, &one);
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let run = Running::start(&["run", "--config", path.to_str().unwrap()]);
    let admin = run.admin_addr(Instant::now() + Duration::from_secs(30));
    let port = common::http::ready_listen_addr(admin).await.port();
    connect(tls_client(port, &one.ca))
        .await
        .expect("first certificate");

    // a certificate from another CA written over the same files, then SIGHUP
    let two = pki::issue(dir.path(), "two", &["127.0.0.1"]);
    std::fs::copy(&two.cert, &one.cert).unwrap();
    std::fs::copy(&two.key, &one.key).unwrap();
    run.signal(libc::SIGHUP);
    let r = common::http::next_reload(admin, &serde_json::Value::Null).await;
    assert_eq!(r["ok"], true, "{r}");
    connect(tls_client(port, &two.ca))
        .await
        .expect("new certificate served");
    assert!(
        connect(tls_client(port, &one.ca)).await.is_err(),
        "old one gone"
    );

    // a broken file is rejected, naming the key; the running one stays
    std::fs::write(&one.cert, "not a certificate").unwrap();
    run.signal(libc::SIGHUP);
    let bad = common::http::next_reload(admin, &r).await;
    assert_eq!(bad["ok"], false, "{bad}");
    let err = bad["error"].as_str().unwrap_or_default();
    assert!(err.contains("listen.tls.cert"), "{bad}");
    connect(tls_client(port, &two.ca))
        .await
        .expect("still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_password_needs_tls_on_both_legs() {
    let (_dir, db, px) = pkis();
    let pam = [
        "--plugin-load-add=auth_pam.so",
        "--pam-use-cleartext-plugin=ON",
    ];
    let cluster = cluster(false, &db, &pam).await;
    let admin = OptsBuilder::from_opts(common::app_opts(cluster.primary().port()))
        .user(Some("admin"))
        .pass(Some("admin"));
    let mut admin = connect(admin).await.unwrap();
    let on: Option<i64> = admin
        .query_first("SELECT @@pam_use_cleartext_plugin")
        .await
        .unwrap();
    assert_eq!(
        on,
        Some(1),
        "the server asks PAM users for mysql_clear_password"
    );
    admin
        .query_drop("CREATE USER 'pamuser'@'%' IDENTIFIED VIA pam USING 'mzp-test'")
        .await
        .unwrap();
    admin
        .query_drop("GRANT ALL ON app.* TO 'pamuser'@'%'")
        .await
        .unwrap();
    let pam_user = |b: OptsBuilder| {
        b.user(Some("pamuser"))
            .pass(Some("secret"))
            .enable_cleartext_plugin(true)
    };

    let plain = proxy(&cluster, |_| {}).await;
    let e = server_error(connect(pam_user(common::app_opts(plain.listen_addr().port()))).await);
    assert_eq!(e.code, 9007, "{e:?}");
    assert!(e.message.contains("mysql_clear_password"), "{}", e.message);
    assert!(e.message.contains("neither"), "{}", e.message);

    let client_only = proxy(&cluster, |c| listen_tls(c, &px)).await;
    let port = client_only.listen_addr().port();
    let e = server_error(connect(pam_user(tls_client(port, &px.ca))).await);
    assert_eq!(e.code, 9007, "{e:?}");
    assert!(
        e.message.contains("backend connection is not TLS"),
        "{}",
        e.message
    );

    // both legs TLS: the exchange goes through and the server decides
    // (PAM has no service "mzp-test" here, so it denies the password)
    let both = proxy(&cluster, |c| {
        listen_tls(c, &px);
        backend_tls(c, &db);
    })
    .await;
    let port = both.listen_addr().port();
    let e = server_error(connect(pam_user(tls_client(port, &px.ca))).await);
    assert_eq!(e.code, 1045, "the server's own answer: {e:?}");
    // and a mysql_native_password user is unaffected
    connect(tls_client(port, &px.ca))
        .await
        .expect("app user logs in");
}
