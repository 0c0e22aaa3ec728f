//! `[zookeeper.tls]` against a real ZooKeeper serving a TLS client port:
//! discovery and a route change over TLS with clients reaching the primary;
//! a wrong CA, a wrong name or a plain port explained in the status (no
//! route, retried, a fixed CA file picked up at SIGHUP), a certificate
//! revoked by a CRL in the CA file; mutual TLS with
//! `ssl.clientAuth=need` served with a client certificate, refused without.

mod common;
#[path = "discovery/support.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::Running;
use common::pki::{self, s, Pki};
use mysql_async::prelude::*;
use mysql_zk_proxy_core::config::{Config, ZookeeperConfig};
use mysql_zk_proxy_core::discovery::ZkState;
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_sandbox::{zk_write, ClientAuth, Cluster, ZkServer, ZkTlsSpec};
use support::{json, port_of, Disco};

const PATH: &str = "/tls/main/primary";

/// A ZooKeeper with a TLS client port presenting `spec`'s certificate.
async fn zk_tls(spec: ZkTlsSpec) -> ZkServer {
    tokio::task::spawn_blocking(move || ZkServer::start_tls(spec))
        .await
        .unwrap()
        .expect("zookeeper with TLS starts")
}

/// Discovery over TLS to `zk`'s secure port, trusting `ca`.
fn tls_cfg(zk: &ZkServer, ca: &Path) -> ZookeeperConfig {
    let connect = zk.secure_connect_string().expect("secure port");
    let mut c = support::cfg(&connect, PATH, Duration::from_secs(4));
    c.tls.enabled = true;
    c.tls.ca = s(ca);
    c
}

/// Publish a record through the plain port (the harness's own client).
async fn publish(zk: &ZkServer, port: u16, epoch: u64) {
    zk_write(&zk.connect_string(), PATH, &json("127.0.0.1", port, epoch))
        .await
        .expect("record written");
}

/// Discovery is refused with an error containing every one of `words`,
/// routes nothing and keeps trying; the error is returned.
async fn refused(cfg: ZookeeperConfig, words: &[&str]) -> String {
    let d = Disco::start(cfg);
    let st = d
        .status("TLS failure explained", |s| {
            s.zk_error
                .as_deref()
                .is_some_and(|e| words.iter().all(|w| e.contains(w)))
        })
        .await;
    assert_eq!(st.state, ZkState::Connecting, "{st:?}");
    assert!(d.table.current().primary.is_none(), "no route");
    d.stop().await;
    st.zk_error.unwrap()
}

async fn routes(cfg: ZookeeperConfig, port: u16) {
    let d = Disco::start(cfg);
    d.route("record read over TLS", |r| port_of(r) == Some(port))
        .await;
    assert!(d.status.borrow().zk_error.is_none());
    d.stop().await;
}

/// The port of the server a session through `addr` lands on.
async fn served_by(addr: std::net::SocketAddr) -> u16 {
    let mut c = mysql_async::Conn::new(common::app_opts(addr.port()))
        .await
        .expect("client through the proxy");
    let port: u16 = c.query_first("SELECT @@port").await.unwrap().unwrap();
    c.disconnect().await.unwrap();
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_a_route_change_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let zk = pki::issue(dir.path(), "zk", &["127.0.0.1"]);
    let cluster = Cluster::builder()
        .primary_path(PATH)
        .zk_tls(ZkTlsSpec::new(&zk.cert, &zk.key))
        .start()
        .await
        .expect("cluster with a TLS ZooKeeper starts");
    let mut cfg = common::test_config(&cluster);
    cfg.zookeeper.connect = cluster.zk().secure_connect_string().unwrap();
    cfg.zookeeper.tls.enabled = true;
    cfg.zookeeper.tls.ca = s(&zk.ca);
    cfg.validate().expect("valid config");
    let proxy = Proxy::start(cfg).await.expect("proxy starts");
    let mut env = common::Env { cluster, proxy };
    let first = env.cluster.primary().port();
    env.wait_for_primary_port(first).await;
    let st = common::http::status(env.proxy.admin_addr().unwrap()).await;
    assert_eq!(st["zookeeper"]["state"], "connected", "{st}");
    assert!(st["zookeeper"]["zk_error"].is_null(), "{st}");
    assert_eq!(st["zookeeper"]["tls"], true, "{st}");
    assert_eq!(served_by(env.proxy.listen_addr()).await, first);

    // The record moves (written through the plain port); the watch over TLS follows.
    env.cluster.switchover().await.expect("switchover");
    let second = env.cluster.primary().port();
    assert_ne!(first, second);
    env.wait_for_primary_port(second).await;
    assert_eq!(served_by(env.proxy.listen_addr()).await, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_shown_in_status_and_a_fixed_file_applies_at_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let right = pki::issue(dir.path(), "zk", &["127.0.0.1"]);
    let wrong = pki::issue(dir.path(), "other", &["127.0.0.1"]);
    let zk = zk_tls(ZkTlsSpec::new(&right.cert, &right.key)).await;
    publish(&zk, 3306, 1).await;
    let ca = dir.path().join("zk-trust.pem");
    std::fs::copy(&wrong.ca, &ca).unwrap();

    let mut cfg = Config::default();
    cfg.listen.address = "127.0.0.1:0".into();
    cfg.admin.address = "127.0.0.1:0".into();
    cfg.zookeeper = tls_cfg(&zk, &ca);
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, toml::to_string(&cfg).unwrap()).unwrap();
    let run = Running::start(&["run", "--config", file.to_str().unwrap()]);
    let admin = run.admin_addr(Instant::now() + Duration::from_secs(30));

    let st = status_until(admin, "the CA problem", |st| {
        st["zookeeper"]["zk_error"]
            .as_str()
            .is_some_and(|e| e.contains("zookeeper.tls.ca"))
    })
    .await;
    let e = st["zookeeper"]["zk_error"].as_str().unwrap();
    assert!(e.contains("over TLS") && e.contains("UnknownIssuer"), "{e}");
    assert!(st["primary"].is_null(), "no route: {st}");
    assert_eq!(common::http::get(admin, "/ready").await.unwrap().0, 503);
    let logged = run.log_so_far();
    assert!(
        logged.contains("no ZooKeeper session") && logged.contains("UnknownIssuer"),
        "{logged}"
    );

    // The right CA over the same file, then SIGHUP: the next attempt uses it.
    std::fs::copy(&right.ca, &ca).unwrap();
    run.signal(libc::SIGHUP);
    let st = status_until(admin, "routing after the reload", |st| {
        st["primary"]["port"] == 3306
    })
    .await;
    assert_eq!(st["last_reload"]["ok"], true, "{st}");
    assert_eq!(st["zookeeper"]["state"], "connected", "{st}");
    assert!(st["zookeeper"]["zk_error"].is_null(), "{st}");
}

/// Poll /status until `pred` holds (bounded); the status that satisfied it.
async fn status_until(
    admin: std::net::SocketAddr,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = common::http::status(admin).await;
        if pred(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "never {what}: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_name_or_a_plain_port_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let named: Pki = pki::issue(dir.path(), "zk", &["zk.example"]);
    let zk = zk_tls(ZkTlsSpec::new(&named.cert, &named.key)).await;
    publish(&zk, 3307, 1).await;

    let e = refused(tls_cfg(&zk, &named.ca), &["not valid for name"]).await;
    assert!(e.contains("zookeeper.tls.verify_hostname"), "{e}");
    let mut any_name = tls_cfg(&zk, &named.ca);
    any_name.tls.verify_hostname = false;
    routes(any_name, 3307).await;

    let mut plain = tls_cfg(&zk, &named.ca);
    plain.connect = zk.connect_string();
    let e = refused(plain, &["TLS handshake failed"]).await;
    assert!(e.contains("secureClientPort"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_revoked_by_a_crl_in_the_ca_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = pki::issue_revoked(dir.path(), "zk", &["127.0.0.1"]);
    let zk = zk_tls(ZkTlsSpec::new(&revoked.cert, &revoked.key)).await;
    publish(&zk, 3310, 1).await;
    let e = refused(tls_cfg(&zk, &revoked.ca), &["Revoked"]).await;
    assert!(e.contains("revoked by a CRL in zookeeper.tls.ca"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki::issue(dir.path(), "zk", &["127.0.0.1"]);
    let client = pki::issue(dir.path(), "proxy", &["proxy.example"]);
    let spec = ZkTlsSpec::new(&server.cert, &server.key).client_auth(ClientAuth::Need, &client.ca);
    let zk = zk_tls(spec).await;
    publish(&zk, 3308, 1).await;

    let mut with_cert = tls_cfg(&zk, &server.ca);
    with_cert.tls.cert = s(&client.cert);
    with_cert.tls.key = s(&client.key);
    routes(with_cert, 3308).await;

    let e = refused(tls_cfg(&zk, &server.ca), &["client certificate"]).await;
    assert!(e.contains("zookeeper.tls.cert"), "{e}");

    // A certificate from a CA the server does not trust is refused too.
    let stranger = pki::issue(dir.path(), "stranger", &["proxy.example"]);
    let mut untrusted = tls_cfg(&zk, &server.ca);
    untrusted.tls.cert = s(&stranger.cert);
    untrusted.tls.key = s(&stranger.key);
    refused(untrusted, &["client certificate"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_reach_zookeeper_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = pki::issue(dir.path(), "zk", &["127.0.0.1"]);
    let operator = pki::issue(dir.path(), "operator", &["operator.example"]);
    let spec =
        ZkTlsSpec::new(&server.cert, &server.key).client_auth(ClientAuth::Need, &operator.ca);
    let zk = zk_tls(spec).await;
    let secure = zk.secure_connect_string().unwrap();
    let publish = |tls: Vec<String>| {
        tokio::process::Command::new(common::binary::BIN)
            .args(["publish", "--json", "--zk", &secure, "--primary-path", PATH])
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "3309",
                "--zk-timeout",
                "5s",
            ])
            .args(tls)
            .output()
    };
    let ca = vec!["--zk-tls-ca".to_owned(), s(&server.ca)];
    let identity = vec![
        "--zk-tls-cert".to_owned(),
        s(&operator.cert),
        "--zk-tls-key".to_owned(),
        s(&operator.key),
    ];
    let out = publish([ca.clone(), identity].concat()).await.unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{doc}");
    assert!(doc.contains("\"published\""), "{doc}");
    let (data, _) = mysql_zk_proxy_sandbox::zk_read(&zk.connect_string(), PATH)
        .await
        .unwrap()
        .expect("record written over TLS");
    assert!(String::from_utf8_lossy(&data).contains("3309"));

    // The drill's final read of the record goes over the same TLS.
    let target = |cert: &str, key: &str| mysql_zk_proxy_drill::verify::VerifyTarget {
        zk: secure.clone(),
        primary_path: PATH.into(),
        tls: Some(mysql_zk_proxy_core::config::ZkTlsConfig {
            enabled: true,
            ca: s(&server.ca),
            verify_hostname: true,
            cert: cert.into(),
            key: key.into(),
        }),
        auth: None,
        user: String::new(),
        password: String::new(),
        database: String::new(),
    };
    let t = target(&s(&operator.cert), &s(&operator.key));
    let (host, port) = mysql_zk_proxy_drill::verify::final_primary(&t)
        .await
        .expect("drill reads the record over TLS");
    assert_eq!((host.as_str(), port), ("127.0.0.1", 3309));
    let e = mysql_zk_proxy_drill::verify::final_primary(&target("", ""))
        .await
        .expect_err("no client certificate: refused");
    assert!(e.to_string().contains("client certificate"), "{e}");

    // Without the client certificate: refused, and the reason is given.
    let out = publish(ca).await.unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{doc}");
    assert!(
        doc.contains("over TLS") && doc.contains("client certificate"),
        "{doc}"
    );
}
