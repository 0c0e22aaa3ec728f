//! A tiny HTTP/1.1 GET for the admin endpoints in tests.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let mut s = TcpStream::connect(addr).await?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let code = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {out:?}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
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
