//! Unit tests of the failover outcomes a session gets when its route moves
//! (docs/failover.md), over in-memory streams: no server, no ZooKeeper.
//! Moves that log in on a new primary are in `moved_success_tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{Secret, UserConfig};
use crate::credentials::CredentialStore;
use crate::session::stmts;
use crate::session::testkit::{ask_error, env, live, record};
use mysql_zk_proxy_protocol::tracker::ClientEvent;
use mysql_zk_proxy_protocol::{command, status, PacketInfo};

fn primary(port: u16, epoch: u64) -> Primary {
    Primary::local(port, epoch)
}

/// Run `failover` for a session on `from` with `flags` (after `prepare`),
/// the client sending its next command: what the client was told and the
/// session's outcome (`None`: it relays on).
async fn outcome(
    env: &Env,
    from: &Primary,
    flags: u16,
    rec: LoginRecord,
    prepare: impl FnOnce(&mut Live<'_>),
) -> (u16, String, Option<ConnOutcome>) {
    let (mut live, _server) = live(env, from, flags);
    prepare(&mut live);
    let (mut app, client_end) = tokio::io::duplex(64 * 1024);
    let mut client = Stream::Boxed(Box::new(client_end));
    let session = failover(&mut client, &mut live, &rec, env, Cause::RouteMoved);
    let told = ask_error(&mut app, "SELECT 1");
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

/// The session got error `code` with a message containing `needle`, and
/// its connection was closed for the failover.
fn closed_with(code: u16, needle: &str, (got, msg, done): (u16, String, Option<ConnOutcome>)) {
    assert_eq!(got, code, "{msg}");
    assert!(msg.contains(needle), "{msg}");
    assert_eq!(done, Some(ConnOutcome::FailoverClosed));
}

/// A session on a live old primary with `flags`, left by `prepare` in
/// some state and logged in as `rec` says, when the record names another
/// server: told `code` naming `why`, and closed.
async fn closed_on_move(
    code: u16,
    why: &str,
    flags: u16,
    rec: LoginRecord,
    prepare: impl FnOnce(&mut Live<'_>),
) {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let env = env(Some(new));
    closed_with(code, why, outcome(&env, &old, flags, rec, prepare).await);
}

#[tokio::test]
async fn a_transaction_open_when_the_record_names_another_server_gets_9006() {
    let in_trans = status::AUTOCOMMIT | status::IN_TRANS;
    let why = "transaction aborted by failover";
    closed_on_move(9006, why, in_trans, record(), |_| {}).await;
}

#[tokio::test]
async fn an_open_cursor_gets_9005() {
    let cursor = status::AUTOCOMMIT | status::CURSOR_EXISTS;
    closed_on_move(9005, "cursor", cursor, record(), |_| {}).await;
}

#[tokio::test]
async fn no_primary_within_the_hold_timeout_gets_9005() {
    let env = env(None);
    closed_with(
        9005,
        "no primary known",
        outcome(
            &env,
            &primary(3306, 1),
            status::AUTOCOMMIT,
            record(),
            |_| {},
        )
        .await,
    );
}

#[tokio::test]
async fn state_that_cannot_move_gets_9005_naming_it() {
    let why = "SET TRANSACTION for the next transaction";
    refused_before_reading(why, record(), |live| {
        live.state.next_transaction_set = true;
    })
    .await;
}

#[tokio::test]
async fn a_user_without_a_stored_credential_gets_9005() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let mut env = env(Some(new));
    env.credentials = Arc::new(CredentialStore::from_config(&[]).unwrap());
    closed_with(
        9005,
        "not in the credential store",
        outcome(&env, &old, status::AUTOCOMMIT, record(), |_| {}).await,
    );
}

#[tokio::test]
async fn the_same_server_under_a_new_epoch_keeps_the_backend() {
    let old = primary(3306, 1);
    let env = env(Some(primary(3306, 2)));
    let (mut live, _server) = live(&env, &old, status::AUTOCOMMIT);
    let (_, app_end) = tokio::io::duplex(1024);
    let mut client = Stream::Boxed(Box::new(app_end));
    let next = failover(&mut client, &mut live, &record(), &env, Cause::RouteMoved).await;
    assert!(matches!(next, Next::Relay), "relays on");
    assert_eq!(live.primary.epoch, 2, "the session follows the new epoch");
    assert_eq!(
        env.stats
            .sessions_migrated
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// 9005 naming `why` for an autocommit session ([`closed_on_move`]).
async fn refused_before_reading(why: &str, rec: LoginRecord, prepare: impl FnOnce(&mut Live<'_>)) {
    closed_on_move(9005, why, status::AUTOCOMMIT, rec, prepare).await;
}

#[tokio::test]
async fn a_stored_hash_that_does_not_match_the_login_gets_9005() {
    let (old, new) = (primary(3306, 1), primary(3307, 2));
    let mut env = env(Some(new));
    let other = UserConfig {
        name: "app".into(),
        // SHA1(SHA1("app")), not the password the client logged in with
        mysql_native_password: Secret::new("*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3"),
    };
    env.credentials = Arc::new(CredentialStore::from_config(&[other]).unwrap());
    let got = outcome(&env, &old, status::AUTOCOMMIT, record(), |_| {}).await;
    closed_with(9005, "stored hash for \"app\" does not match", got);
}

#[tokio::test]
async fn a_login_with_another_auth_plugin_gets_9005() {
    let mut rec = record();
    rec.plugin = "client_ed25519".into();
    refused_before_reading("user logged in with client_ed25519", rec, |_| {}).await;
}

#[tokio::test]
async fn prepared_statements_that_cannot_be_prepared_again_get_9005_naming_why() {
    let sql = || Some(b"SELECT ?".to_vec());
    let schema = || Some(Some("app".to_string()));
    refused_before_reading("prepared statement too long to track", record(), |l| {
        l.state.stmts.prepared(1, 1, None, schema());
    })
    .await;
    // a statement prepared with one parameter, then `command` for it
    let prepared_then = |command: &'static [u8]| {
        move |l: &mut Live<'_>| {
            l.state.stmts.prepared(1, 1, sql(), schema());
            l.state.stmts.on_command(command[0], command, None);
        }
    };
    let execute = &[command::STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    let long_data = &[command::STMT_SEND_LONG_DATA, 1, 0, 0, 0, 0, 0, b'x'];
    for (why, command) in [
        ("prepared statement parameter types not seen", &execute[..]),
        (
            "prepared statement with pending SEND_LONG_DATA",
            &long_data[..],
        ),
    ] {
        refused_before_reading(why, record(), prepared_then(command)).await;
    }
    refused_before_reading(
        "a prepared statement's default schema is not known",
        record(),
        |l| {
            l.state.stmts.prepared(1, 0, sql(), None);
        },
    )
    .await;
    refused_before_reading("too many prepared statements", record(), |l| {
        for id in 1..=(stmts::MAX_STATEMENTS as u32 + 1) {
            l.state.stmts.prepared(id, 0, sql(), schema());
        }
    })
    .await;
}

#[tokio::test]
async fn more_commands_pipelined_than_the_proxy_follows_gets_9005() {
    refused_before_reading(
        "more commands pipelined than the proxy follows",
        record(),
        |l| {
            let query = b"\x03SELECT 1";
            for _ in 0..65 {
                let p = PacketInfo::of_payload(query);
                l.state.on_client(ClientEvent::Command(command::QUERY), &p);
            }
        },
    )
    .await;
}
