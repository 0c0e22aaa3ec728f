//! An idle session whose backend connection dies (`live.rs`), against
//! scripted fake servers: when the server still greets new connections it
//! closed this session only, and the client's connection closes at once;
//! when the server is gone the session waits for a new primary and moves
//! there with the state known from its login (an unplanned failover), or
//! is refused as docs/failover.md says.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

use super::fake_server::{FakeServer, Login, Script, USER};
use super::switchover_kit::{busy, BUSY_CARRIED};
use super::testkit::{
    ask, ask_ok, attached, closed, command, env_with, error_of, gone_primary, publish, run_session,
    wait_until, PATIENCE,
};
use crate::metrics::{ConnOutcome, SessionState};
use crate::routing::RecordState;
use crate::session::Env;
use mysql_zk_proxy_protocol::status;

/// Close the session's backend connection from the server's side, then
/// wait until the session waits for a new primary.
async fn lose_backend(env: &Env, conn: JoinHandle<()>) {
    conn.abort();
    waiting_for_primary(env).await;
}

async fn waiting_for_primary(env: &Env) {
    let waiting = || env.stats.sessions_in(SessionState::WaitingForPrimary) == 1;
    wait_until("the session waits for a new primary", waiting).await;
}

#[tokio::test]
async fn a_backend_that_closes_an_idle_session_while_its_server_greets_closes_the_client_at_once() {
    let server = FakeServer::listen(Script::default()).await;
    // a hold far beyond the test's patience: the close does not wait for it
    let env = env_with(Some(server.primary(1)), |c| {
        c.failover.hold_timeout = Duration::from_secs(3600);
    });
    let (live, conn) = attached(
        &env,
        &server,
        &server.primary(1),
        server.session(Some("app")),
    );
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        ask_ok(&mut app, "SELECT 1").await;
        conn.abort(); // e.g. wait_timeout or KILL on the server
        closed(&mut app).await;
    })
    .await;
    assert_eq!(outcome, ConnOutcome::BackendLost);
}

/// A session on a primary that is gone (nothing listens at its address;
/// `server` serves the session's connection until `lose_backend`), with
/// status `flags`, after the application sent the command `before` (if
/// any, answered with an OK); once the
/// session waits, the route names `new` and the application sends
/// `SELECT 2`: its reply and the session's outcome.
async fn after_crash(
    flags: u16,
    before: Option<&[u8]>,
    new: Option<&FakeServer>,
) -> (Vec<u8>, ConnOutcome) {
    let server = FakeServer::listen(Script::default()).await;
    let gone = gone_primary(1);
    let env = env_with(Some(gone.clone()), |c| {
        c.failover.hold_timeout = if new.is_some() {
            PATIENCE
        } else {
            Duration::from_millis(200)
        };
    });
    let mut state = server.session(Some("app"));
    state.status = flags;
    let (live, conn) = attached(&env, &server, &gone, state);
    let (e, to) = (&env, new.map(|n| n.primary(2)));
    let (outcome, reply) = run_session(&env, live, |mut app: DuplexStream| async move {
        if let Some(payload) = before {
            assert_eq!(command(&mut app, payload).await[0], 0x00, "an OK");
        }
        lose_backend(e, conn).await;
        if let Some(to) = to {
            publish(e, Some(to), RecordState::Serving);
        }
        ask(&mut app, "SELECT 2").await
    })
    .await;
    assert!(
        !server.received("SELECT 2"),
        "nothing reached the dead backend"
    );
    (reply, outcome)
}

#[tokio::test]
async fn a_session_whose_primary_is_gone_moves_with_its_login_state_when_a_new_one_is_published() {
    let new = FakeServer::listen(Script::default()).await;
    let (reply, outcome) =
        after_crash(status::AUTOCOMMIT, Some(b"\x03SHOW TABLES"), Some(&new)).await;
    assert_eq!(reply.first(), Some(&0x00), "{reply:?}");
    assert_eq!(new.logins().0.len(), 1, "logged in on the new primary");
    let queries = new.queries();
    assert_eq!(
        queries.last().map(String::as_str),
        Some("SELECT 2"),
        "{queries:#?}"
    );
    assert!(
        queries
            .iter()
            .all(|q| !q.starts_with("SET ") || q.starts_with("SET STATEMENT")),
        "a fresh login's state: nothing to carry: {queries:#?}"
    );
    assert_eq!(outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn a_session_whose_primary_is_gone_gets_9006_inside_a_transaction() {
    let new = FakeServer::listen(Script::default()).await;
    let in_trans = status::AUTOCOMMIT | status::IN_TRANS;
    let (reply, outcome) = after_crash(in_trans, None, Some(&new)).await;
    let (code, msg) = error_of(&reply);
    assert_eq!(code, 9006, "{msg}");
    assert!(msg.contains("transaction aborted by failover"), "{msg}");
    assert!(msg.contains("the connection to it was lost"), "{msg}");
    assert_eq!(new.logins().0, [], "no login on the new primary");
    assert_eq!(outcome, ConnOutcome::FailoverClosed);
}

#[tokio::test]
async fn a_session_whose_primary_is_gone_after_a_statement_that_changes_state_gets_9005() {
    let new = FakeServer::listen(Script::default()).await;
    let (reply, outcome) = after_crash(
        status::AUTOCOMMIT,
        Some(b"\x03UPDATE t SET x = 1"),
        Some(&new),
    )
    .await;
    let (code, msg) = error_of(&reply);
    assert_eq!(code, 9005, "{msg}");
    assert!(msg.contains("its state cannot be read on"), "{msg}");
    assert!(
        msg.contains("and it ran statements since its state was last known"),
        "{msg}"
    );
    assert_eq!(new.logins().0, [], "no login on the new primary");
    assert_eq!(outcome, ConnOutcome::FailoverClosed);
}

#[tokio::test]
async fn a_session_whose_primary_is_gone_and_never_replaced_gets_9005_after_the_hold() {
    let (reply, outcome) = after_crash(status::AUTOCOMMIT, None, None).await;
    let (code, msg) = error_of(&reply);
    assert_eq!(code, 9005, "{msg}");
    assert!(
        msg.contains("closed the connection and no new primary was published within 200ms"),
        "{msg}"
    );
    assert_eq!(outcome, ConnOutcome::BackendLost);
}

#[tokio::test]
async fn a_session_whose_primary_is_gone_moves_into_the_schema_its_init_db_chose() {
    let new = FakeServer::listen(Script::default()).await;
    let (reply, _) = after_crash(status::AUTOCOMMIT, Some(b"\x02db2"), Some(&new)).await;
    assert_eq!(reply.first(), Some(&0x00), "{reply:?}");
    let login = Login {
        user: USER.into(),
        schema: Some("db2".into()),
    };
    assert_eq!(new.logins(), (vec![login], 0));
}

#[tokio::test]
async fn a_crash_after_a_move_carries_the_state_read_at_that_move() {
    let a = FakeServer::listen(Script::default()).await;
    let b = FakeServer::listen(Script::default()).await;
    let c = FakeServer::listen(Script::default()).await;
    let env = env_with(Some(a.primary(1)), |cfg| {
        cfg.failover.hold_timeout = PATIENCE
    });
    let mut state = a.session(Some("app"));
    busy(&mut state);
    let (live, _conn) = attached(&env, &a, &a.primary(1), state);
    let (e, to_b, to_c, crashing) = (&env, b.primary(2), c.primary(3), &b);
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        publish(e, Some(to_b), RecordState::Serving);
        ask_ok(&mut app, "SHOW TABLES").await; // changes nothing: still known
        crashing.crash();
        waiting_for_primary(e).await;
        publish(e, Some(to_c), RecordState::Serving);
        ask_ok(&mut app, "SHOW DATABASES").await;
    })
    .await;
    assert_eq!(
        b.queries()[..BUSY_CARRIED.len()],
        BUSY_CARRIED,
        "carried to B"
    );
    assert!(b.received("SHOW TABLES"));
    let on_c = c.queries();
    assert_eq!(
        on_c[..BUSY_CARRIED.len()],
        BUSY_CARRIED,
        "the same values to C: {on_c:#?}"
    );
    assert_eq!(on_c.last().map(String::as_str), Some("SHOW DATABASES"));
    assert_eq!(env.stats.sessions_migrated.load(Relaxed), 2);
    assert_eq!(outcome, ConnOutcome::Closed);
}
