//! The fence's route table (docs/failover.md, "The fence"), through the
//! session's whole loop against scripted fake servers: where each command
//! goes, or what the client gets, as the route serves, drains, names
//! another server or names none.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::fake_server::{FakeServer, Script};
use super::switchover_kit::Planned;
use super::testkit::{
    ask_error, ask_ok, attached, attached_at, env_with, pipeline, publish, read_payload,
    run_session, wait_until, PATIENCE,
};
use crate::metrics::ConnOutcome;
use crate::routing::RecordState;
use crate::session::Env;
use mysql_zk_proxy_protocol::status;

/// Which route the session finds.
#[derive(Clone, Copy)]
enum To {
    /// The new primary, serving.
    New,
    /// No primary at all.
    Nobody,
}

/// An old and a new primary, both alive, and an environment whose route
/// names the old one, waiting `hold` for a primary and `drain` for a
/// transaction to end on a draining one.
async fn two_primaries(hold: Duration, drain: Duration) -> (FakeServer, FakeServer, Env) {
    let old = FakeServer::listen(Script::default()).await;
    let new = FakeServer::listen(Script::default()).await;
    let env = env_with(Some(old.primary(1)), |c| {
        c.failover.hold_timeout = hold;
        c.failover.drain_timeout = drain;
    });
    (old, new, env)
}

/// A session on the old primary with status `flags`; the route moves `to`
/// and the application sends `SELECT 2`: the error it got, and the
/// session's outcome. The command never reached either server.
async fn refused_after_move(flags: u16, to: To) -> (u16, String, ConnOutcome) {
    let (old, new, env) = two_primaries(Duration::from_millis(200), PATIENCE).await;
    let (live, _conn) = attached_at(&env, &old, flags);
    let route = match to {
        To::New => Some(new.primary(2)),
        To::Nobody => None,
    };
    let e = &env;
    let (outcome, (code, msg)) = run_session(&env, live, |mut app| async move {
        publish(e, route, RecordState::Serving);
        ask_error(&mut app, "SELECT 2").await
    })
    .await;
    assert!(
        !old.received("SELECT 2"),
        "no byte of it reached the old primary"
    );
    assert!(!new.received("SELECT 2"), "nor the new one");
    (code, msg, outcome)
}

/// Error `code` naming `why`, and the session closed by the failover.
fn closed_with(code: u16, why: &str, (got, msg, outcome): (u16, String, ConnOutcome)) {
    assert_eq!(got, code, "{msg}");
    assert!(msg.contains(why), "{why:?} in {msg:?}");
    assert_eq!(outcome, ConnOutcome::FailoverClosed);
}

const IN_TRANS: u16 = status::AUTOCOMMIT | status::IN_TRANS;

#[tokio::test]
async fn a_serving_route_naming_the_backend_lets_the_command_leave() {
    let (old, new, env) = two_primaries(PATIENCE, PATIENCE).await;
    let (live, _conn) = attached(&env, &old, &old.primary(1), old.session(Some("app")));
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        ask_ok(&mut app, "SELECT 1").await;
    })
    .await;
    assert_eq!(
        old.queries(),
        ["SELECT 1"],
        "it ran on the backend, nothing else did"
    );
    assert_eq!(new.logins().0, [], "the new primary saw no login");
    assert_eq!(outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn a_draining_route_lets_a_transaction_finish_then_holds_the_next_command_for_the_new_primary(
) {
    let (old, new, env) = two_primaries(PATIENCE, PATIENCE).await;
    let (live, _conn) = attached_at(&env, &old, IN_TRANS);
    let (e, from, to) = (&env, old.primary(1), new.primary(2));
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        publish(e, Some(from), RecordState::Draining);
        ask_ok(&mut app, "UPDATE t SET x = 1").await;
        // pipelined: SELECT 2 is already read when COMMIT's reply ends the
        // transaction, and must not follow it to the draining primary
        pipeline(&mut app, &["COMMIT", "SELECT 2"]).await;
        assert_eq!(read_payload(&mut app).await[0], 0x00, "COMMIT's OK");
        publish(e, Some(to), RecordState::Serving);
        assert_eq!(read_payload(&mut app).await[0], 0x00, "SELECT 2's OK");
    })
    .await;
    let on_old = old.queries();
    assert_eq!(
        on_old[..2],
        ["UPDATE t SET x = 1", "COMMIT"],
        "the transaction ran to its end there"
    );
    assert!(!old.received("SELECT 2"));
    assert!(
        new.queries().contains(&"SELECT 2".to_string()),
        "the next command ran on the new primary"
    );
    assert_eq!(env.stats.sessions_migrated.load(Relaxed), 1);
    assert_eq!(outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn on_a_replica_a_transaction_finishes_where_it_is_when_the_route_moves() {
    let (old, new, mut env) = two_primaries(PATIENCE, PATIENCE).await;
    env.on_replica = true;
    let (live, _conn) = attached_at(&env, &old, IN_TRANS);
    let (e, to) = (&env, new.primary(2));
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        publish(e, Some(to), RecordState::Serving);
        ask_ok(&mut app, "SELECT 1").await;
        pipeline(&mut app, &["COMMIT", "SELECT 2"]).await;
        assert_eq!(read_payload(&mut app).await[0], 0x00, "COMMIT's OK");
        assert_eq!(read_payload(&mut app).await[0], 0x00, "SELECT 2's OK");
    })
    .await;
    assert_eq!(
        old.queries()[..2],
        ["SELECT 1", "COMMIT"],
        "the read transaction ran to its end on the replica it began on"
    );
    assert!(!old.received("SELECT 2"));
    assert!(new.queries().contains(&"SELECT 2".to_string()));
    assert_eq!(env.stats.sessions_migrated.load(Relaxed), 1);
    assert_eq!(outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn a_transaction_that_does_not_end_within_the_drain_timeout_is_aborted_with_9006() {
    let (old, _new, env) = two_primaries(PATIENCE, Duration::from_millis(200)).await;
    let (live, _conn) = attached_at(&env, &old, IN_TRANS);
    let (e, from) = (&env, old.primary(1));
    let (outcome, (code, msg)) = run_session(&env, live, |mut app| async move {
        publish(e, Some(from), RecordState::Draining);
        let aborted = || e.stats.transactions_aborted.load(Relaxed) == 1;
        wait_until("the drain timeout aborts the transaction", aborted).await;
        ask_error(&mut app, "COMMIT").await
    })
    .await;
    closed_with(
        9006,
        "the transaction did not end within 200ms",
        (code, msg, outcome),
    );
    assert!(
        !old.received("COMMIT"),
        "no byte of it reached the old primary"
    );
}

#[tokio::test]
async fn a_draining_route_holds_a_command_at_rest_until_the_new_primary_runs_it() {
    // the scenario itself asserts where each command ran
    let s = Planned::default().run().await;
    assert_eq!(s.reply.first(), Some(&0x00), "{:?}", s.reply);
    assert_eq!(
        s.old.queries()[0],
        "SELECT 1",
        "before the drain it ran on the old primary"
    );
    assert!(
        !s.old.received("SELECT 2"),
        "held: no byte reached the old primary"
    );
    assert!(
        s.new.queries().contains(&"SELECT 2".to_string()),
        "then it ran on the new one"
    );
}

#[tokio::test]
async fn a_route_naming_another_server_moves_a_session_at_rest() {
    let (old, new, env) = two_primaries(PATIENCE, PATIENCE).await;
    let (live, _conn) = attached(&env, &old, &old.primary(1), old.session(Some("app")));
    let (e, to) = (&env, new.primary(2));
    let (outcome, ()) = run_session(&env, live, |mut app| async move {
        publish(e, Some(to), RecordState::Serving);
        ask_ok(&mut app, "SELECT 2").await;
    })
    .await;
    assert!(!old.received("SELECT 2"));
    assert!(new.queries().contains(&"SELECT 2".to_string()));
    assert_eq!(new.logins().0.len(), 1);
    assert_eq!(outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn a_route_naming_another_server_aborts_a_transaction_with_9006() {
    let r = refused_after_move(IN_TRANS, To::New).await;
    closed_with(9006, "the record moved while the transaction was open", r);
}

#[tokio::test]
async fn a_route_naming_no_primary_aborts_a_transaction_with_9006() {
    let r = refused_after_move(IN_TRANS, To::Nobody).await;
    closed_with(9006, "the record moved while the transaction was open", r);
}

#[tokio::test]
async fn a_route_naming_another_server_closes_a_session_with_an_open_cursor_with_9005() {
    let cursor = status::AUTOCOMMIT | status::CURSOR_EXISTS;
    let r = refused_after_move(cursor, To::New).await;
    closed_with(9005, "a server-side cursor was open", r);
}

#[tokio::test]
async fn a_route_naming_no_primary_closes_a_session_at_rest_with_9005_after_the_hold() {
    let r = refused_after_move(status::AUTOCOMMIT, To::Nobody).await;
    closed_with(9005, "no primary known after 200ms", r);
}
