//! Hostile input against a running proxy with a real MariaDB behind it (and,
//! for the backend side, a tiny misbehaving TCP server published in the real
//! ZooKeeper): each case must end in an error packet or a close — no panic,
//! no allocation sized by what a peer announces — and the proxy must go on
//! serving a normal client, with no session left behind.

mod common;
#[path = "hostile/peers.rs"]
mod peers;

use std::time::Duration;

use common::raw::RawConn;
use common::{Env, APP_PASS, APP_USER};
use mysql_async::prelude::Queryable;
use peers::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Peak memory growth allowed across a case that announces or sends tens
/// of MiB: a proxy that buffered a whole announced packet would exceed it.
const RSS_SLACK_KIB: u64 = 24 * 1024;

/// A normal client still works and every hostile session is gone.
async fn still_healthy(env: &Env, after: &str) {
    let mut c = mysql_async::Conn::new(common::conn_opts(env.via_proxy()))
        .await
        .unwrap_or_else(|e| panic!("after {after}: a normal client cannot connect: {e}"));
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "after {after}");
    c.disconnect().await.unwrap();
    let stats = env.proxy.stats().clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.connections_active() != 0 {
        assert!(
            Instant::now() < deadline,
            "after {after}: {} sessions left",
            stats.connections_active()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connected to the proxy, greeting read.
async fn greeted(env: &Env) -> TcpStream {
    let mut s = TcpStream::connect(env.proxy_addr()).await.unwrap();
    let (_, g) = read_packet(&mut s).await.expect("greeting");
    assert_eq!(g.first(), Some(&10), "a greeting");
    s
}

async fn logged_in(env: &Env) -> TcpStream {
    RawConn::login(&env.proxy_addr(), APP_USER, APP_PASS, "app")
        .await
        .expect("login")
        .into_stream()
}

/// Write `bytes` in 1 MiB pieces while reading the reply; the peer may
/// close early (then the rest is not sent).
async fn flood(
    s: TcpStream,
    header_then: impl Fn(usize) -> Vec<u8> + Send + 'static,
    pieces: usize,
) -> Ending {
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..pieces {
            if w.write_all(&header_then(i)).await.is_err() {
                return;
            }
        }
    });
    let end = ending(&mut r, 0).await;
    writer.abort();
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_hostile_input_ends_cleanly() {
    let env = common::start(false).await;
    let rss_before = peak_rss_kib();

    // 1. A login packet announcing 16 MiB (the login limit is 64 KiB).
    let mut s = greeted(&env).await;
    let _ = s.write_all(&[0xff, 0xff, 0xff, 1, 0x85, 0xa6]).await;
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Closed, "oversized login packet");
    still_healthy(&env, "oversized login packet").await;

    // 2. A command over max_allowed_packet (16 MiB): three full packets.
    let s = logged_in(&env).await;
    let mib = vec![b'x'; 1 << 20];
    let end = flood(
        s,
        move |i| {
            let mut piece = Vec::with_capacity(mib.len() + 5);
            if i % 16 == 0 {
                piece.extend_from_slice(&[0xff, 0xff, 0xff, (i / 16) as u8]);
                if i == 0 {
                    piece.push(0x03);
                }
            }
            piece.extend_from_slice(&mib[..mib.len() - piece.len().min(5)]);
            piece
        },
        48,
    )
    .await;
    assert!(
        // MariaDB's 1153, or a close when the server's reset overtakes its
        // error (direct clients see both)
        matches!(end, Ending::Error(1153) | Ending::Closed),
        "over max_allowed_packet: {end:?}"
    );
    still_healthy(&env, "packet over max_allowed_packet").await;

    // 3. A truncated packet, then the client's write side closes.
    let mut s = logged_in(&env).await;
    s.write_all(&[100, 0, 0, 0, 0x03, b'S', b'E'])
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Closed, "truncated packet");
    still_healthy(&env, "truncated packet").await;

    // 4. Wrong sequence ids: a command with seq 7, a login with seq 9.
    let mut s = logged_in(&env).await;
    s.write_all(&frame(7, b"\x03SELECT 1")).await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(
        end,
        Ending::Error(1156),
        "the server's 'Got packets out of order'"
    );
    drop(s);
    let mut s = greeted(&env).await;
    let mut hr = (0x0000_8200u32 | 0x0008_0000).to_le_bytes().to_vec();
    hr.extend_from_slice(&[0, 0, 0, 1, 45]);
    hr.extend_from_slice(&[0; 23]);
    hr.extend_from_slice(b"app\0\0");
    s.write_all(&frame(9, &hr)).await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Error(1156), "login with a wrong sequence id");
    still_healthy(&env, "wrong sequence ids").await;

    // 5. A garbage handshake response (protocol 4.1 flag set, rest noise).
    let mut s = greeted(&env).await;
    let mut junk = vec![0x00, 0x02, 0xff, 0xff, 0xfe, 0xff];
    junk.extend((0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    s.write_all(&frame(1, &junk)).await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Closed, "garbage handshake response");
    still_healthy(&env, "garbage handshake response").await;

    // 6. An unknown command: the server's ERR, and the session goes on.
    let mut c = RawConn::login(&env.proxy_addr(), APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    let reply = c.command(&[0xee, 1, 2, 3]).await.unwrap();
    assert_eq!(
        reply.last().and_then(|p| p.first()),
        Some(&0xff),
        "{reply:?}"
    );
    let reply = c.command(b"\x03SELECT 1").await.unwrap();
    assert!(reply.len() >= 3, "{reply:?}");
    drop(c);
    still_healthy(&env, "unknown command").await;

    // 7. A client that talks before the greeting.
    let mut s = TcpStream::connect(env.proxy_addr()).await.unwrap();
    s.write_all(&frame(0, b"\x03SELECT @@version"))
        .await
        .unwrap();
    let end = ending(&mut s, 1).await;
    assert_eq!(end, Ending::Closed, "client talking before the greeting");
    still_healthy(&env, "client talking before the greeting").await;

    // 8. The backend closes an idle session (KILL) while the route stays:
    // the session waits for a new primary without spinning, then ends with
    // an error instead of relaying on a dead socket.
    backend_closes_an_idle_session(&env).await;
    still_healthy(&env, "backend closing an idle session").await;

    let grown = peak_rss_kib().saturating_sub(rss_before);
    assert!(grown < RSS_SLACK_KIB, "peak RSS grew by {grown} KiB");
}

async fn backend_closes_an_idle_session(env: &Env) {
    let c = RawConn::login(&env.proxy_addr(), APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    let thread = c.connection_id;
    let mut s = c.into_stream();
    let mut direct = mysql_async::Conn::new(common::conn_opts(env.direct()))
        .await
        .unwrap();
    direct.query_drop(format!("KILL {thread}")).await.unwrap();
    direct.disconnect().await.unwrap();
    // The client stays idle for a measured second: a session relaying on
    // its dead backend in a loop burns a whole core meanwhile.
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (used, took) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    assert!(used < 0.5 * took, "{used:.2}s CPU in {took:.2}s: spinning");
    s.write_all(&frame(0, b"\x03SELECT 1")).await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Closed, "closed as the server closed it");
}

/// Route to a fake backend behaving as `how` (epoch `epoch`).
async fn route_to_fake(env: &Env, how: Misbehaviour, epoch: u64) -> u16 {
    let port = fake_backend(how).await;
    env.cluster.publish_json(port, epoch).await.unwrap();
    env.wait_for_primary_port(port).await;
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_backends_end_cleanly() {
    let env = common::start(false).await;
    let real = env.cluster.primary().port();
    let rss_before = peak_rss_kib();
    let mut epoch = 1;
    for how in [
        Misbehaviour::GarbageGreeting,
        Misbehaviour::HugeGreetingHeader,
    ] {
        epoch += 1;
        route_to_fake(&env, how, epoch).await;
        let mut s = TcpStream::connect(env.proxy_addr()).await.unwrap();
        let end = ending(&mut s, 0).await;
        assert_eq!(end, Ending::Error(9002), "{how:?}: backend unreachable");
    }

    epoch += 1;
    route_to_fake(&env, Misbehaviour::GarbageMidResult, epoch).await;
    let mut s = logged_in(&env).await;
    s.write_all(&frame(0, b"\x03SELECT 1")).await.unwrap();
    let end = ending(&mut s, 0).await;
    assert_eq!(end, Ending::Closed, "garbage from the backend mid-result");

    epoch += 1;
    route_to_fake(&env, Misbehaviour::StallMidResult, epoch).await;
    let mut stalled = logged_in(&env).await;
    stalled.write_all(&frame(0, b"\x03SELECT 1")).await.unwrap();
    let (_, count) = read_packet(&mut stalled).await.unwrap();
    assert_eq!(count, vec![1], "column count, then the backend stalls");
    // Another client is not held up by the stalled one.
    let other = tokio::time::timeout(Duration::from_secs(5), logged_in(&env)).await;
    assert!(
        other.is_ok(),
        "a second client logs in while one is stalled"
    );
    drop(other);
    // The stalled client gives up: its session ends.
    drop(stalled);

    epoch += 1;
    env.cluster.publish_json(real, epoch).await.unwrap();
    env.wait_for_primary_port(real).await;
    still_healthy(&env, "misbehaving backends").await;
    let grown = peak_rss_kib().saturating_sub(rss_before);
    assert!(grown < RSS_SLACK_KIB, "peak RSS grew by {grown} KiB");
}
