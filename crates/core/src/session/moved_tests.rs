//! Unit tests of the failover outcomes a session gets when its route moves
//! (docs/failover.md), over in-memory streams: no server, no ZooKeeper.
//! What needs a new primary to log in to (a move itself) is covered by the
//! integration tests.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::*;
use crate::config::Config;
use crate::discovery::{DiscoveryHandle, DiscoveryStatus};
use crate::failover::credentials::CredentialStore;
use crate::failover::timeline::Timeline;
use crate::metrics::Stats;
use crate::reload::LiveConfig;
use crate::routing::{RecordState, Route, RouteTable};
use crate::session::buffers::BufferPool;
use crate::session::state::CarriedState;
use crate::tls::TlsState;
use mysql_zk_proxy_protocol::packet_io::frame;
use mysql_zk_proxy_protocol::{caps, status};

fn primary(port: u16, epoch: u64) -> Primary {
    Primary {
        host: "127.0.0.1".into(),
        port,
        epoch,
        server_id: None,
        server_uuid: None,
    }
}

/// A session environment with short waits and the route naming `route`.
fn env(route: Option<Primary>) -> Env {
    let mut config = Config::default();
    config.failover.hold_timeout = Duration::from_millis(200);
    config.failover.drain_timeout = Duration::from_millis(200);
    config.listen.idle_timeout = Duration::from_secs(5);
    let stats = Stats::new();
    let table = Arc::new(RouteTable::new());
    table.publish(|r| Route {
        primary: route,
        state: RecordState::Serving,
        ..r.clone()
    });
    Env {
        tls: Arc::new(TlsState::from_config(config.tls()).unwrap()),
        config: Arc::new(LiveConfig::new(config)),
        table,
        stats: stats.clone(),
        discovery: DiscoveryHandle {
            status: watch::channel(DiscoveryStatus::starting()).1,
        },
        credentials: Arc::new(CredentialStore::from_config(&[]).unwrap()),
        timeline: Timeline::new(stats),
        cancel: Default::default(),
        drain: Default::default(),
        kills: Default::default(),
        buffers: BufferPool::for_relays(),
        before_read: None,
    }
}

fn record() -> LoginRecord {
    LoginRecord {
        user: "app".into(),
        db: Some("app".into()),
        client_caps: caps::CLIENT_PROTOCOL_41,
        client_mariadb_caps: 0,
        collation: 45,
        max_packet: 1 << 24,
        connect_attrs: None,
        plugin: "mysql_native_password".into(),
        scramble: vec![1; 20],
        auth_response: vec![2; 20],
        status: status::AUTOCOMMIT,
    }
}

/// A session on `from` whose last reply left `flags`, and its backend's
/// far end (kept open: the old primary is alive).
fn live<'a>(env: &'a Env, from: &Primary, flags: u16) -> (Live<'a>, DuplexStream) {
    let (server, backend) = tokio::io::duplex(64 * 1024);
    let live = Live {
        backend: Stream::Boxed(Box::new(backend)),
        primary: from.clone(),
        tracker: Tracker::logged_in(caps::CLIENT_PROTOCOL_41, 0, flags),
        state: CarriedState::new("app", Some("app".into())),
        early: (Vec::new(), Vec::new()),
        timers: None,
        held_since: None,
        kill: env.kills.register(7, &from.address()),
    };
    (live, server)
}

/// The client's next command, and the error it gets: (code, message).
async fn next_command_error(app: &mut DuplexStream) -> (u16, String) {
    app.write_all(&frame(0, b"\x03SELECT 1")).await.unwrap();
    let mut header = [0u8; 4];
    app.read_exact(&mut header).await.unwrap();
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut p = vec![0u8; len];
    app.read_exact(&mut p).await.unwrap();
    assert_eq!(p[0], 0xff, "an error packet: {p:?}");
    let code = u16::from_le_bytes([p[1], p[2]]);
    let message = String::from_utf8_lossy(&p[9..]).into_owned();
    (code, message)
}

/// Run `failover` for a session on `from` with `flags` (after `prepare`),
/// the client sending its next command: what the client was told and the
/// session's outcome (`None`: it relays on).
async fn outcome(
    env: &Env,
    from: &Primary,
    flags: u16,
    prepare: impl FnOnce(&mut Live<'_>),
) -> (u16, String, Option<ConnOutcome>) {
    let (mut live, _server) = live(env, from, flags);
    prepare(&mut live);
    let (mut app, client_end) = tokio::io::duplex(64 * 1024);
    let mut client = Stream::Boxed(Box::new(client_end));
    let rec = record();
    let session = failover(&mut client, &mut live, &rec, env);
    let told = next_command_error(&mut app);
    let (next, (code, msg)) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(session, told)
    })
    .await
    .expect("the session ends, nothing hangs");
    let done = match next {
        Next::Done(o) => Some(o),
        Next::Relay => None,
    };
    (code, msg, done)
}

#[tokio::test]
async fn a_transaction_open_when_the_record_names_another_server_gets_9006() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let env = env(Some(new));
    let in_trans = status::AUTOCOMMIT | status::IN_TRANS;
    let (code, msg, done) = outcome(&env, &old, in_trans, |_| {}).await;
    assert_eq!(code, 9006, "{msg}");
    assert!(msg.contains("transaction aborted by failover"), "{msg}");
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

#[tokio::test]
async fn an_open_cursor_gets_9005() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let env = env(Some(new));
    let cursor = status::AUTOCOMMIT | status::CURSOR_EXISTS;
    let (code, msg, done) = outcome(&env, &old, cursor, |_| {}).await;
    assert_eq!(code, 9005, "{msg}");
    assert!(msg.contains("cursor"), "{msg}");
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

#[tokio::test]
async fn no_primary_within_the_hold_timeout_gets_9005() {
    let env = env(None);
    let (code, msg, done) = outcome(&env, &primary(3306, 1), status::AUTOCOMMIT, |_| {}).await;
    assert_eq!(code, 9005, "{msg}");
    assert!(msg.contains("no primary known"), "{msg}");
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

#[tokio::test]
async fn state_that_cannot_move_gets_9005_naming_it() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let env = env(Some(new));
    let (code, msg, done) = outcome(&env, &old, status::AUTOCOMMIT, |live| {
        live.state.next_transaction_set = true;
    })
    .await;
    assert_eq!(code, 9005, "{msg}");
    assert!(
        msg.contains("SET TRANSACTION for the next transaction"),
        "{msg}"
    );
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

#[tokio::test]
async fn a_user_without_a_stored_credential_gets_9005() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let env = env(Some(new));
    let (code, msg, done) = outcome(&env, &old, status::AUTOCOMMIT, |_| {}).await;
    assert_eq!(code, 9005, "{msg}");
    assert!(msg.contains("not in the credential store"), "{msg}");
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

#[tokio::test]
async fn the_same_server_under_a_new_epoch_keeps_the_backend() {
    let old = primary(3306, 1);
    let env = env(Some(primary(3306, 2)));
    let (mut live, _server) = live(&env, &old, status::AUTOCOMMIT);
    let (_, app_end) = tokio::io::duplex(1024);
    let mut client = Stream::Boxed(Box::new(app_end));
    let next = failover(&mut client, &mut live, &record(), &env).await;
    assert!(matches!(next, Next::Relay), "relays on");
    assert_eq!(live.primary.epoch, 2, "the session follows the new epoch");
    assert_eq!(
        env.stats
            .sessions_migrated
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
