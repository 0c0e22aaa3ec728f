//! What the session tests share: an environment with short waits and the
//! fake server's user in the credential store, a login record whose
//! mysql_native_password exchange is real, a logged-in session over an
//! in-memory backend, and the application's side of the client connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fake_server::{FakeServer, FakeSession, PASSWORD, USER};
use super::live::{serve_logged_in, Live};
use super::login::LoginRecord;
use super::state::CarriedState;
use super::stream::Stream;
use super::Env;
use crate::config::{Config, Secret, UserConfig};
use crate::credentials::CredentialStore;
use crate::discovery::{DiscoveryHandle, DiscoveryStatus};
use crate::metrics::{ConnOutcome, SessionState, Stats};
use crate::reload::LiveConfig;
use crate::routing::{Primary, RecordState, Route, RouteTable};
use crate::session::buffers::BufferPool;
use crate::timeline::Timeline;
use crate::tls::TlsState;
use mysql_common::scramble::scramble_native;
use mysql_zk_proxy_protocol::packet_io::frame;
use mysql_zk_proxy_protocol::{caps, status, Tracker};

/// How long a test waits for what must happen.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);

/// The client's capabilities (and so the session's).
pub(super) const CAPS: u32 = caps::CLIENT_PROTOCOL_41
    | caps::CLIENT_CONNECT_WITH_DB
    | caps::CLIENT_TRANSACTIONS
    | caps::CLIENT_SECURE_CONNECTION
    | caps::CLIENT_PLUGIN_AUTH
    | caps::CLIENT_DEPRECATE_EOF;

/// The scramble of the client's own login, which the proxy saw.
const LOGIN_SCRAMBLE: &[u8; 20] = b"proxy-login-scramble";

/// `*` + the hex of SHA1(SHA1(password)), as mysql.user stores it.
fn stored_hash(password: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let hash = Sha1::digest(Sha1::digest(password));
    let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

/// A session environment with short waits, the route naming `route`
/// (serving), and [`USER`]'s hash in the credential store; `tweak` changes
/// the config first.
pub(super) fn env_with(route: Option<Primary>, tweak: impl FnOnce(&mut Config)) -> Env {
    let mut config = Config::default();
    config.failover.hold_timeout = Duration::from_millis(200);
    config.failover.drain_timeout = Duration::from_millis(200);
    config.listen.idle_timeout = Duration::from_secs(5);
    tweak(&mut config);
    let stats = Stats::new();
    let table = Arc::new(RouteTable::new());
    let user = UserConfig {
        name: USER.into(),
        mysql_native_password: Secret::new(stored_hash(PASSWORD)),
    };
    let env = Env {
        tls: Arc::new(TlsState::from_config(config.tls()).unwrap()),
        config: Arc::new(LiveConfig::new(config)),
        table,
        stats: stats.clone(),
        discovery: DiscoveryHandle {
            status: watch::channel(DiscoveryStatus::starting()).1,
        },
        credentials: Arc::new(CredentialStore::from_config(&[user]).unwrap()),
        timeline: Timeline::new(stats),
        cancel: Default::default(),
        drain: Default::default(),
        kills: Default::default(),
        buffers: BufferPool::for_relays(),
        before_read: None,
        on_replica: false,
        ledger: crate::acknowledged::Ledger::new(10, None).0,
    };
    publish(&env, route, RecordState::Serving);
    env
}

/// [`env_with`] the default test config.
pub(super) fn env(route: Option<Primary>) -> Env {
    env_with(route, |_| {})
}

/// Publish a route naming `primary` in `state`.
pub(super) fn publish(env: &Env, primary: Option<Primary>, state: RecordState) {
    env.table.publish(|r| Route {
        primary,
        state,
        ..r.clone()
    });
}

/// The login the proxy saw: [`USER`] into `app`, answering
/// [`LOGIN_SCRAMBLE`] with the right mysql_native_password response.
pub(super) fn record() -> LoginRecord {
    record_with(CAPS)
}

/// [`record`] of a client with capabilities `caps`.
pub(super) fn record_with(caps: u32) -> LoginRecord {
    LoginRecord {
        user: USER.into(),
        db: Some("app".into()),
        client_caps: caps,
        client_mariadb_caps: 0,
        collation: 45,
        max_packet: 1 << 24,
        connect_attrs: None,
        plugin: "mysql_native_password".into(),
        scramble: LOGIN_SCRAMBLE.to_vec(),
        auth_response: scramble_native(LOGIN_SCRAMBLE, PASSWORD).unwrap().to_vec(),
        status: status::AUTOCOMMIT,
        tracking: Default::default(),
    }
}

/// A session on `from` whose last reply left `flags`, and its backend's
/// far end.
pub(super) fn live<'a>(env: &'a Env, from: &Primary, flags: u16) -> (Live<'a>, DuplexStream) {
    live_with(env, from, flags, CAPS)
}

/// [`live`] for a client with capabilities `caps`.
pub(super) fn live_with<'a>(
    env: &'a Env,
    from: &Primary,
    flags: u16,
    caps: u32,
) -> (Live<'a>, DuplexStream) {
    let (server, backend) = tokio::io::duplex(64 * 1024);
    let live = Live {
        backend: Stream::Boxed(Box::new(backend)),
        primary: from.clone(),
        tracker: Tracker::logged_in(caps, 0, flags),
        state: CarriedState::new(USER, Some("app".into())),
        early: (Vec::new(), Vec::new()),
        timers: None,
        held_since: None,
        kill: env.kills.register(7, &from.address()),
        acks: crate::session::live::Acks {
            session: 1,
            user: Arc::from("app"),
            tracking: Default::default(),
        },
    };
    (live, server)
}

/// A session on `from` whose backend connection `server` serves as
/// `session`; abort the handle to close it from the server's side.
pub(super) fn attached<'a>(
    env: &'a Env,
    server: &FakeServer,
    from: &Primary,
    session: FakeSession,
) -> (Live<'a>, JoinHandle<()>) {
    let (live, far) = live(env, from, session.status);
    (live, server.attach(far, session, true))
}

/// [`attached`]: an `app` session in schema `app` on `server` (epoch 1)
/// whose last reply left status `flags`.
pub(super) fn attached_at<'a>(
    env: &'a Env,
    server: &FakeServer,
    flags: u16,
) -> (Live<'a>, JoinHandle<()>) {
    let mut state = server.session(Some("app"));
    state.status = flags;
    attached(env, server, &server.primary(1), state)
}

/// Serve `live` as the proxy does after a login while `app` plays the
/// application on the client connection's other end; the client
/// connection closes when the session ends. Both must end in time.
pub(super) async fn run_session<T, F>(
    env: &Env,
    live: Live<'_>,
    app: impl FnOnce(DuplexStream) -> F,
) -> (ConnOutcome, T)
where
    F: Future<Output = T>,
{
    run_session_as(env, live, &record(), app).await
}

/// [`run_session`] of a client that logged in as `rec` says.
pub(super) async fn run_session_as<T, F>(
    env: &Env,
    mut live: Live<'_>,
    rec: &LoginRecord,
    app: impl FnOnce(DuplexStream) -> F,
) -> (ConnOutcome, T)
where
    F: Future<Output = T>,
{
    let (app_end, client_end) = tokio::io::duplex(64 * 1024);
    let session = async {
        let mut client = Stream::Boxed(Box::new(client_end));
        let mut gauge = env.stats.session(SessionState::Idle);
        serve_logged_in(&mut client, &mut live, rec, env, &mut gauge).await
    };
    tokio::time::timeout(PATIENCE, async { tokio::join!(session, app(app_end)) })
        .await
        .expect("the session and the application end in time")
}

/// Send the query `sql`, not waiting for its reply.
pub(super) async fn send(app: &mut DuplexStream, sql: &str) {
    pipeline(app, &[sql]).await;
}

/// Send the queries `sqls` in one write (pipelined), not waiting for replies.
pub(super) async fn pipeline(app: &mut DuplexStream, sqls: &[&str]) {
    let bytes: Vec<u8> = sqls
        .iter()
        .flat_map(|sql| frame(0, &[b"\x03", sql.as_bytes()].concat()))
        .collect();
    app.write_all(&bytes).await.unwrap();
}

/// Send the query `sql`; the payload of the one-packet reply.
pub(super) async fn ask(app: &mut DuplexStream, sql: &str) -> Vec<u8> {
    send(app, sql).await;
    read_payload(app).await
}

/// Send the command `payload`; the payload of the one-packet reply.
pub(super) async fn command(app: &mut DuplexStream, payload: &[u8]) -> Vec<u8> {
    app.write_all(&frame(0, payload)).await.unwrap();
    read_payload(app).await
}

/// The payload of the next packet.
pub(super) async fn read_payload(app: &mut DuplexStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    app.read_exact(&mut header).await.expect("a reply");
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut p = vec![0u8; len];
    app.read_exact(&mut p).await.unwrap();
    p
}

/// `sql` is answered with an OK.
pub(super) async fn ask_ok(app: &mut DuplexStream, sql: &str) {
    let reply = ask(app, sql).await;
    assert_eq!(reply.first(), Some(&0x00), "an OK for {sql}: {reply:?}");
}

/// `sql` is answered with an error: (code, message).
pub(super) async fn ask_error(app: &mut DuplexStream, sql: &str) -> (u16, String) {
    error_of(&ask(app, sql).await)
}

/// The (code, message) of an error packet's payload.
pub(super) fn error_of(p: &[u8]) -> (u16, String) {
    assert_eq!(p.first(), Some(&0xff), "an error packet: {p:?}");
    let code = u16::from_le_bytes([p[1], p[2]]);
    (code, String::from_utf8_lossy(&p[9..]).into_owned())
}

/// The connection was closed with nothing more sent.
pub(super) async fn closed(app: &mut DuplexStream) {
    let mut rest = Vec::new();
    app.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"", "closed with nothing more");
}

/// Wait (bounded, within a session's [`PATIENCE`]) until `cond` holds.
pub(super) async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE / 2;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A loopback address where nothing listens: a primary that is gone.
pub(super) fn gone_primary(epoch: u64) -> Primary {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    Primary::local(port, epoch)
}

/// A MariaDB 10.11 greeting offering no capabilities, with a fixed scramble.
pub(super) fn greeting() -> mysql_zk_proxy_protocol::handshake::Greeting {
    mysql_zk_proxy_protocol::handshake::Greeting {
        server_version: "10.11".into(),
        connection_id: 1,
        caps: 0,
        mariadb_caps: 0,
        auth_plugin: Some("mysql_native_password".into()),
        scramble: vec![3; 20],
        backend_ssl: false,
    }
}
