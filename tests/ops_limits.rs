//! Limits and the PROXY protocol against real servers: error 1040 at
//! `listen.max_connections` (and the slot frees), slow or silent clients
//! dropped at `listen.handshake_timeout` while others are served, the idle
//! timeout, and v1/v2 headers from trusted and untrusted sources.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::config::{ListenConfig, ProxyProtocol};
use mysql_zk_proxy_core::metrics::{CommandKind, ConnOutcome, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::raw::RawConn;
use common::{APP_PASS, APP_USER};

/// Poll `cond` every 20 ms until it holds, failing after `secs`.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A proxy (no replica) with its listener set up by `listen`, and its stats.
async fn proxy_listening(listen: impl FnOnce(&mut ListenConfig)) -> (common::Env, Arc<Stats>) {
    let env = common::start_with(false, |c| listen(&mut c.listen)).await;
    let stats = env.proxy.stats().clone();
    (env, stats)
}

fn outcome(stats: &Stats, o: ConnOutcome) -> u64 {
    stats.connections_with_outcome(o)
}

/// Read until the peer closes; Err if it is still open after `secs`.
async fn closed_within(s: &mut TcpStream, secs: u64) -> Result<(), &'static str> {
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), read_all)
        .await
        .map_err(|_| "still open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_clients_get_1040_and_a_freed_slot_is_reused() {
    let (env, stats) = proxy_listening(|l| l.max_connections = 2).await;
    let mut a = Conn::new(env.via_proxy()).await.unwrap();
    let b = Conn::new(env.via_proxy()).await.unwrap();
    let e = Conn::new(env.via_proxy()).await.unwrap_err();
    match &e {
        mysql_async::Error::Server(s) => {
            assert_eq!(s.code, 1040, "{e}");
            assert!(s.message.contains("Too many connections"), "{e}");
        }
        other => panic!("expected error 1040, got {other:?}"),
    }
    assert_eq!(outcome(&stats, ConnOutcome::TooManyConnections), 1);
    let _: Option<i64> = a.query_first("SELECT 1").await.unwrap();
    b.disconnect().await.unwrap();
    // the slot frees when the session task ends
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match Conn::new(env.via_proxy()).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "slot never freed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    // commands by type and the latency histograms saw these sessions
    assert!(stats.ops.commands(CommandKind::Query) >= 2);
    assert!(stats.ops.handshake.count() >= 3);
    assert!(stats.ops.backend_connect.count() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_dropped_while_others_are_served() {
    let (env, stats) = proxy_listening(|l| l.handshake_timeout = Duration::from_secs(1)).await;
    let addr = env.proxy_addr();
    // silent: reads the greeting, never answers
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // slowloris: a few bytes of a handshake response, then nothing
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let mut greeting = [0u8; 4];
    slow.read_exact(&mut greeting).await.unwrap();
    slow.write_all(&[0x50, 0x00]).await.unwrap();
    let t0 = Instant::now();
    // a normal client meanwhile
    let mut ok = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = ok.query_first("SELECT 1").await.unwrap();
    closed_within(&mut silent, 15)
        .await
        .expect("silent client dropped");
    closed_within(&mut slow, 15)
        .await
        .expect("slow client dropped");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "not before the timeout"
    );
    until(5, "two handshake timeouts counted", || {
        outcome(&stats, ConnOutcome::HandshakeTimeout) == 2
    })
    .await;
    let _: Option<i64> = ok.query_first("SELECT 2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_sessions_at_rest_only() {
    let (env, stats) = proxy_listening(|l| l.idle_timeout = Duration::from_millis(700)).await;
    let mut idle = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = idle.query_first("SELECT 1").await.unwrap();
    let mut busy = Conn::new(env.via_proxy()).await.unwrap();
    let slept: Option<i64> = busy.query_first("SELECT SLEEP(1.5)").await.unwrap();
    assert_eq!(
        slept,
        Some(0),
        "a statement running past the idle timeout completes"
    );
    until(10, "idle session closed", || {
        outcome(&stats, ConnOutcome::IdleTimeout) >= 1
    })
    .await;
    assert!(
        idle.query_drop("SELECT 1").await.is_err(),
        "idle session closed"
    );
}

/// A listener that requires a PROXY header and trusts `trusted` to send one.
fn pp_listen(trusted: &str) -> impl FnOnce(&mut ListenConfig) + '_ {
    move |l| {
        l.proxy_protocol = ProxyProtocol::Required;
        l.trusted_proxies = vec![trusted.to_string()];
        l.handshake_timeout = Duration::from_secs(2);
    }
}

fn v2_tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 5]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&6033u16.to_be_bytes());
    h.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]); // a TLV, skipped
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_from_a_trusted_source_set_the_client_address() {
    let (env, stats) = proxy_listening(pp_listen("127.0.0.1/32")).await;
    let admin = env.proxy.admin_addr().unwrap();
    let addr = env.proxy_addr();
    let mut s1 = TcpStream::connect(&addr).await.unwrap();
    s1.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 6033\r\n")
        .await
        .unwrap();
    let mut v1 = RawConn::login_on(s1, APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    let mut s2 = TcpStream::connect(&addr).await.unwrap();
    s2.write_all(&v2_tcp4([198, 51, 100, 9], 40000))
        .await
        .unwrap();
    let mut v2 = RawConn::login_on(s2, APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    v1.command(b"\x03SELECT 1").await.unwrap();
    v2.command(b"\x03SELECT 1").await.unwrap();
    let st = common::http::status(admin).await;
    let clients: Vec<&str> = st["sessions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["client"].as_str().unwrap())
        .collect();
    assert!(clients.contains(&"192.0.2.7:51000"), "{st}");
    assert!(clients.contains(&"198.51.100.9:40000"), "{st}");
    let via = st["sessions_list"][0]["via"].as_str().unwrap();
    assert!(via.starts_with("127.0.0.1:"), "{st}");

    // trusted but no header: a MySQL client waits for a greeting that never comes
    let mut bare = TcpStream::connect(&addr).await.unwrap();
    closed_within(&mut bare, 15)
        .await
        .expect("closed without a header");
    assert_eq!(outcome(&stats, ConnOutcome::HandshakeTimeout), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_from_untrusted_sources_are_refused() {
    let (env, stats) = proxy_listening(pp_listen("10.0.0.0/8")).await;
    let addr = env.proxy_addr();
    // a direct client from an untrusted source is served as usual
    let mut direct = Conn::new(env.via_proxy()).await.unwrap();
    let _: Option<i64> = direct.query_first("SELECT 1").await.unwrap();
    for header in [
        b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 6033\r\n".to_vec(),
        v2_tcp4([192, 0, 2, 7], 51000),
    ] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&header).await.unwrap();
        let e = RawConn::login_on(s, APP_USER, APP_PASS, "app").await;
        assert!(e.is_err(), "a header from an untrusted source was accepted");
    }
    until(10, "both refusals counted", || {
        outcome(&stats, ConnOutcome::ProxyProtocol) == 2
    })
    .await;
}
