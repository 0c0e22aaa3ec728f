//! `admin.token` against a running proxy (real ZooKeeper): /status needs
//! `Authorization: Bearer <token>`; /live, /ready and /metrics stay open;
//! the default admin address is loopback; a reload rotates the token.

mod common;

use common::http::get_with;
use mysql_zk_proxy_core::config::{Config, Secret};
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_sandbox::ZkServer;

const TOKEN: &str = "adm-tok-3f9c2a71d0b84e65";

async fn proxy(zk: &ZkServer, token: &str) -> Proxy {
    let mut cfg = Config::default();
    cfg.listen.address = "127.0.0.1:0".into();
    cfg.admin.address = "127.0.0.1:0".into();
    cfg.admin.token = Secret::new(token);
    cfg.zookeeper.connect = zk.connect_string();
    Proxy::start(cfg).await.expect("proxy starts")
}

#[test]
fn default_admin_address_is_loopback() {
    let addr: std::net::SocketAddr = Config::default().admin.address.parse().unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_needs_the_bearer_token_and_the_probes_do_not() {
    let zk = ZkServer::start_async().await.expect("zookeeper starts");
    let p = proxy(&zk, TOKEN).await;
    let admin = p.admin_addr().unwrap();
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let wrong = format!("Authorization: Bearer {TOKEN}x");
    let basic = format!("Authorization: Basic {TOKEN}");

    for headers in [vec![], vec![wrong.as_str()], vec![basic.as_str()]] {
        let (code, body) = get_with(admin, "/status", &headers).await.unwrap();
        assert_eq!(code, 401, "{headers:?}: {body}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    let (code, body) = get_with(admin, "/status", &[&bearer]).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.is_object(), "{body}");
    assert!(!body.contains(TOKEN), "token shown in /status: {body}");

    for path in ["/live", "/metrics"] {
        let (code, body) = get_with(admin, path, &[]).await.unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.contains(TOKEN));
    }
    let (code, _) = get_with(admin, "/ready", &[]).await.unwrap();
    assert_ne!(code, 401, "/ready stays open for load balancers");

    // A reload rotates the token at once.
    let mut next = (*p.config()).clone();
    next.admin.token = Secret::new("adm-tok-rotated-00000000");
    p.reload(Ok(next));
    let (code, _) = get_with(admin, "/status", &[&bearer]).await.unwrap();
    assert_eq!(code, 401, "old token refused after reload");
    let rotated = "Authorization: Bearer adm-tok-rotated-00000000";
    let (code, _) = get_with(admin, "/status", &[rotated]).await.unwrap();
    assert_eq!(code, 200);
    p.stop().await;
}
