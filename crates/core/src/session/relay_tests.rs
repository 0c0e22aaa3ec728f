//! The relay over in-memory streams: what a client and a backend see of
//! it, byte for byte, and where it stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::metrics::Stats;
use mysql_zk_proxy_protocol::packet_io::frame;
use mysql_zk_proxy_protocol::{caps, command, status};

/// How long a test waits for bytes that must arrive.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test waits to be sure bytes do not arrive.
const QUIET: Duration = Duration::from_millis(100);

const CAPS: u32 = caps::CLIENT_PROTOCOL_41
    | caps::CLIENT_TRANSACTIONS
    | caps::CLIENT_SECURE_CONNECTION
    | caps::CLIENT_PLUGIN_AUTH
    | caps::CLIENT_DEPRECATE_EOF;

/// What a relay borrows, owned by the test.
struct Parts {
    client: Stream,
    backend: Stream,
    tracker: Tracker,
    state: CarriedState,
    stats: Arc<Stats>,
    gauge: SessionGauge,
    pool: BufferPool,
}

impl Parts {
    fn relay(&mut self) -> Relay<'_> {
        Relay::new(
            &mut self.client,
            &mut self.backend,
            &mut self.tracker,
            &mut self.state,
            &self.stats,
            &mut self.gauge,
            &self.pool,
        )
    }
}

/// A logged-in session at rest; returns the client application's end and
/// the backend server's end of the two legs.
fn session() -> (Parts, DuplexStream, DuplexStream) {
    let (app, client) = tokio::io::duplex(64 * 1024);
    let (server, backend) = tokio::io::duplex(64 * 1024);
    let stats = Stats::new();
    let parts = Parts {
        client: Stream::Boxed(Box::new(client)),
        backend: Stream::Boxed(Box::new(backend)),
        tracker: Tracker::logged_in(CAPS, 0, status::AUTOCOMMIT),
        state: CarriedState::new("app", None),
        gauge: stats.session(SessionState::Idle),
        stats,
        pool: BufferPool::new(&[UP_BUF, DOWN_BUF], 4),
    };
    (parts, app, server)
}

fn query(seq: u8, sql: &str) -> Vec<u8> {
    frame(seq, &[&[command::QUERY][..], sql.as_bytes()].concat())
}

/// `SELECT 1` and an OK reply to it, outside a transaction.
fn select_one() -> (Vec<u8>, Vec<u8>) {
    (query(0, "SELECT 1"), ok(1, status::AUTOCOMMIT))
}

/// An OK packet with `status` flags.
fn ok(seq: u8, status: u16) -> Vec<u8> {
    let s = status.to_le_bytes();
    frame(seq, &[0x00, 0, 0, s[0], s[1], 0, 0])
}

/// Read exactly `n` bytes (they must arrive).
async fn read_n(s: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut got))
        .await
        .expect("bytes arrive in time")
        .expect("read");
    got
}

/// `bytes` arrive, exactly.
async fn arrives(s: &mut DuplexStream, bytes: &[u8]) {
    assert_eq!(read_n(s, bytes.len()).await, bytes);
}

/// The server sends `reply` and the application receives it unchanged.
async fn answer(server: &mut DuplexStream, app: &mut DuplexStream, reply: &[u8]) {
    server.write_all(reply).await.unwrap();
    arrives(app, reply).await;
}

/// The application sends `command` and the backend receives it unchanged.
async fn forwarded(app: &mut DuplexStream, server: &mut DuplexStream, command: &[u8]) {
    app.write_all(command).await.unwrap();
    arrives(server, command).await;
}

/// The application writes `commands` in one write (pipelined).
async fn send(app: &mut DuplexStream, commands: &[&[u8]]) {
    app.write_all(&commands.concat()).await.unwrap();
}

/// The relay ended by stopping at `point`.
fn stopped_at(end: &RelayEnd, point: StopPoint) {
    assert!(
        matches!(end, RelayEnd::Stopped(p) if *p == point),
        "expected a stop at {point:?}, got {end:?}"
    );
}

/// Once the session's legs are dropped, the backend received nothing more.
async fn backend_got_no_more(server: &mut DuplexStream, why: &str) {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, server.read_to_end(&mut got))
        .await
        .expect("the proxy's end closes in time")
        .expect("read");
    assert_eq!(got, b"", "{why}");
}

/// Nothing arrives for a while.
async fn nothing_arrives(s: &mut DuplexStream) {
    let mut byte = [0u8; 1];
    if let Ok(r) = tokio::time::timeout(QUIET, s.read(&mut byte)).await {
        panic!("expected silence, read {r:?} (byte {:#04x})", byte[0]);
    }
}

/// Run the relay alongside `script` (the client and the backend); both
/// must finish in time.
async fn drive<F: Future<Output = ()>>(
    relay: &mut Relay<'_>,
    stop: &StopSignals,
    script: F,
) -> RelayEnd {
    let (end, ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(relay.run(stop), script) })
        .await
        .expect("relay and script finish in time");
    end
}

#[tokio::test]
async fn a_command_and_its_reply_pass_through_byte_for_byte() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let (q, reply) = select_one();
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        forwarded(&mut app, &mut server, &q).await;
        answer(&mut server, &mut app, &reply).await;
        stop.at_rest.cancel();
    })
    .await;
    stopped_at(&end, StopPoint::AtRest);
    drop(relay);
    assert!(parts.tracker.at_rest());
    assert_eq!(
        parts.stats.bytes_client_to_backend.load(Relaxed),
        q.len() as u64
    );
    assert_eq!(
        parts.stats.bytes_backend_to_client.load(Relaxed),
        reply.len() as u64
    );
}

#[tokio::test]
async fn a_pipelined_command_leaves_only_after_the_reply_before_it_ends() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let (q1, q2) = (query(0, "SELECT 1"), query(0, "SELECT 2"));
    let (r1, r2) = (ok(1, status::AUTOCOMMIT), ok(1, status::AUTOCOMMIT));
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        send(&mut app, &[&q1, &q2]).await;
        arrives(&mut server, &q1).await;
        nothing_arrives(&mut server).await;
        // half the reply: still outstanding
        server.write_all(&r1[..3]).await.unwrap();
        nothing_arrives(&mut server).await;
        server.write_all(&r1[3..]).await.unwrap();
        arrives(&mut server, &q2).await;
        server.write_all(&r2).await.unwrap();
        assert_eq!(
            read_n(&mut app, r1.len() + r2.len()).await,
            [r1.clone(), r2.clone()].concat()
        );
        stop.at_rest.cancel();
    })
    .await;
    stopped_at(&end, StopPoint::AtRest);
}

/// A fence that holds, with `hold`, every command whose packet contains
/// `marker` (the fence is shown the bytes from the command on, which may
/// include commands pipelined after it).
fn holding(
    marker: &'static [u8],
    hold: Hold,
) -> impl Fn(&[u8], bool) -> Option<Hold> + Send + Sync {
    move |bytes: &[u8], _at_rest: bool| {
        let end = bytes.len().min(4 + payload_len(&bytes[..4]));
        bytes[4..end]
            .windows(marker.len())
            .any(|w| w == marker)
            .then_some(hold)
    }
}

#[tokio::test]
async fn a_moved_route_stops_at_rest_with_the_command_unsent() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let fence = holding(b"SELECT", Hold::Moved);
    let q = query(0, "SELECT 1");
    let mut relay = parts.relay().with_fence(&fence);
    let end = drive(&mut relay, &stop, async {
        app.write_all(&q).await.unwrap();
    })
    .await;
    stopped_at(&end, StopPoint::AtRest);
    assert_eq!(relay.unsent_client_bytes(), q);
    drop(relay);
    assert_eq!(parts.tracker.outstanding(), 0);
    drop(parts);
    backend_got_no_more(&mut server, "the backend received nothing").await;
}

/// The application pipelines `first` and `second`; `first` and its `reply`
/// pass, the fence holds `second` with `hold`. Checks that `second` stays
/// unsent and the backend receives nothing more; returns how the relay
/// ended and whether the session was at rest.
async fn second_held(hold: Hold, first: &[u8], reply: &[u8], second: &[u8]) -> (RelayEnd, bool) {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let held = second.to_vec();
    let fence = move |bytes: &[u8], _at_rest: bool| bytes.starts_with(&held).then_some(hold);
    let mut relay = parts.relay().with_fence(&fence);
    let end = drive(&mut relay, &stop, async {
        send(&mut app, &[first, second]).await;
        arrives(&mut server, first).await;
        answer(&mut server, &mut app, reply).await;
    })
    .await;
    assert_eq!(relay.unsent_client_bytes(), second);
    drop(relay);
    let at_rest = parts.tracker.at_rest();
    drop(parts);
    backend_got_no_more(&mut server, "the held command did not leave").await;
    (end, at_rest)
}

#[tokio::test]
async fn a_moved_route_inside_a_transaction_stops_idle_after_the_transactions_commands() {
    let began = ok(1, status::AUTOCOMMIT | status::IN_TRANS);
    let (begin, q) = (query(0, "BEGIN"), query(0, "SELECT 1"));
    let (end, at_rest) = second_held(Hold::Moved, &begin, &began, &q).await;
    stopped_at(&end, StopPoint::Idle);
    assert!(!at_rest, "the transaction is open");
}

#[tokio::test]
async fn a_command_to_rewrite_ends_the_relay_held_and_unsent() {
    let (q1, kill) = (query(0, "SELECT 1"), query(0, "KILL 7"));
    let r1 = ok(1, status::AUTOCOMMIT);
    let (end, at_rest) = second_held(Hold::Rewrite, &q1, &r1, &kill).await;
    assert!(matches!(end, RelayEnd::Held), "{end:?}");
    assert!(at_rest);
}

#[tokio::test]
async fn stopping_at_rest_waits_for_the_statement_in_flight_and_the_transaction_to_end() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let (begin, commit) = (query(0, "BEGIN"), query(0, "COMMIT"));
    let began = ok(1, status::AUTOCOMMIT | status::IN_TRANS);
    let committed = ok(1, status::AUTOCOMMIT);
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        forwarded(&mut app, &mut server, &begin).await;
        stop.at_rest.cancel();
        answer(&mut server, &mut app, &began).await;
        // still relaying inside the transaction
        forwarded(&mut app, &mut server, &commit).await;
        answer(&mut server, &mut app, &committed).await;
    })
    .await;
    stopped_at(&end, StopPoint::AtRest);
    drop(relay);
    assert!(parts.tracker.at_rest());
}

#[tokio::test]
async fn stopping_when_idle_waits_for_the_reply_but_not_for_the_transaction() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let begin = query(0, "BEGIN");
    let began = ok(1, status::AUTOCOMMIT | status::IN_TRANS);
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        forwarded(&mut app, &mut server, &begin).await;
        stop.when_idle.cancel();
        // half the reply: the statement is still in flight
        server.write_all(&began[..5]).await.unwrap();
        assert_eq!(read_n(&mut app, 5).await, &began[..5]);
        server.write_all(&began[5..]).await.unwrap();
        assert_eq!(read_n(&mut app, began.len() - 5).await, &began[5..]);
    })
    .await;
    stopped_at(&end, StopPoint::Idle);
    drop(relay);
    assert_eq!(parts.tracker.outstanding(), 0);
    assert!(!parts.tracker.at_rest(), "the transaction is still open");
}

#[tokio::test]
async fn a_closing_backend_ends_the_relay_after_its_last_bytes_are_delivered() {
    let (q, reply) = select_one();
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        forwarded(&mut app, &mut server, &q).await;
        server.write_all(&reply).await.unwrap();
        server.shutdown().await.unwrap();
    })
    .await;
    assert!(matches!(end, RelayEnd::BackendClosed), "{end:?}");
    arrives(&mut app, &reply).await;
}

#[tokio::test]
async fn a_closing_client_ends_the_relay_after_its_quit_is_sent() {
    let (mut parts, mut app, mut server) = session();
    let stop = StopSignals::default();
    let quit = frame(0, &[command::QUIT]);
    let mut relay = parts.relay();
    let end = drive(&mut relay, &stop, async {
        app.write_all(&quit).await.unwrap();
        app.shutdown().await.unwrap();
    })
    .await;
    assert!(matches!(end, RelayEnd::ClientClosed), "{end:?}");
    arrives(&mut server, &quit).await;
}
