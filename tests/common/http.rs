//! GET on the admin endpoints in tests (the drill's admin client).

use std::net::SocketAddr;

/// `GET path`: (status code, body).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    get_with(addr, path, &[]).await
}

/// `GET /status` as JSON.
pub async fn status(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = get(addr, "/status").await.expect("/status answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("/status is JSON")
}

/// `GET path` with extra request header lines (`"Name: value"`).
pub async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[&str],
) -> anyhow::Result<(u16, String)> {
    Ok(mysql_zk_proxy_drill::admin::fetch(&addr.to_string(), path, headers).await?)
}

/// Poll /status until `last_reload` differs from `before`; return it.
pub async fn next_reload(addr: SocketAddr, before: &serde_json::Value) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = status(addr).await["last_reload"].clone();
        if !r.is_null() && r != *before {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "no reload recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Poll /ready until it answers 200; then the proxy's listen address from /status.
pub async fn ready_listen_addr(admin: SocketAddr) -> SocketAddr {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(admin, "/ready").await.map_or(0, |r| r.0) != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let st = status(admin).await;
    st["listen_address"]
        .as_str()
        .expect("listen_address in /status")
        .parse()
        .expect("listen_address is host:port")
}
