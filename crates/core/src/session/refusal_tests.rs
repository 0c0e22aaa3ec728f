//! The 9005 reasons a planned switchover meets on the old primary
//! (docs/failover.md, "What refuses a move"), each scripted on a fake
//! server: what its reads show refuses the move, the held command reaches
//! neither server, and the client is told why.

use std::time::Duration;

use super::fake_server::{FakeServer, FakeSession, Script};
use super::switchover_kit::Planned;
use super::testkit::{
    ask_error, attached_at, env_with, publish, run_session, wait_until, PATIENCE,
};
use crate::metrics::ConnOutcome;
use crate::routing::RecordState;
use mysql_zk_proxy_protocol::status;

/// A planned switchover from an old primary scripted by `old`, in the
/// state `edit` gives the session, is refused naming `why`.
async fn refused(why: &str, old: Script, edit: fn(&mut FakeSession)) {
    let planned = Planned {
        old,
        edit,
        ..Planned::default()
    };
    planned.run().await.refused(why);
}

fn unchanged(_: &mut FakeSession) {}

#[tokio::test]
async fn temporary_tables_refuse() {
    let old = Script {
        temp_tables: 2,
        ..Script::default()
    };
    let why =
        "temporary tables or SQL prepared statements may exist (com_create_temporary_table = 2)";
    refused(why, old, unchanged).await;
}

#[tokio::test]
async fn locks_refuse() {
    let old = Script {
        locks: Some(1),
        ..Script::default()
    };
    refused(
        "the session holds locks (user locks, LOCK TABLES or HANDLER)",
        old,
        unchanged,
    )
    .await;
}

#[tokio::test]
async fn locks_that_cannot_be_checked_refuse() {
    let old = Script {
        locks: None,
        ..Script::default()
    };
    let why = "its locks cannot be checked: the metadata_lock_info plugin is not loaded";
    refused(why, old, unchanged).await;
}

#[tokio::test]
async fn a_session_running_as_another_user_refuses() {
    let why = "the session runs as user \"other\" (COM_CHANGE_USER), not as its login user \"app\"";
    refused(why, Script::default(), |s| s.user = "other".into()).await;
}

#[tokio::test]
async fn warnings_of_the_previous_statement_refuse() {
    let old = Script {
        warnings: 1,
        ..Script::default()
    };
    let why = "the previous statement's warnings (SHOW WARNINGS) cannot be carried";
    refused(why, old, unchanged).await;
}

#[tokio::test]
async fn a_read_the_old_primary_refuses_refuses() {
    let old = Script::faulty(|f| f.fails = Some("USER_VARIABLES".into()));
    let s = Planned {
        old,
        ..Planned::default()
    }
    .run()
    .await;
    s.refused("its state could not be read on 127.0.0.1:");
    s.refused("1105: scripted failure at USER_VARIABLES");
}

#[tokio::test]
async fn a_value_that_cannot_be_written_exactly_refuses() {
    let why = "the session's state cannot be written exactly: @@sql_mode";
    refused(why, Script::default(), |s| {
        s.sysvars.insert("SQL_MODE".into(), "a\\b".into());
    })
    .await;
}

/// A planned switchover, bounded by a `migrate_timeout` of 4 s, from an
/// old primary that never answers the first read, after `first` ran there.
async fn silent_old_primary(first: &'static [u8]) -> super::switchover_kit::Switched {
    let old = Script::faulty(|f| f.stalls = Some("@@session.sql_select_limit".into()));
    let planned = Planned {
        first,
        old,
        tweak: |c| c.failover.migrate_timeout = Duration::from_secs(4),
        ..Planned::default()
    };
    planned.run().await
}

#[tokio::test]
async fn an_old_primary_that_does_not_answer_refuses_a_session_that_ran_statements() {
    let s = silent_old_primary(b"\x03UPDATE t SET x = 1").await;
    s.refused("its state cannot be read on 127.0.0.1:");
    s.refused("(no answer within 2s) and it ran statements since its state was last known");
}

#[tokio::test]
async fn an_old_primary_that_does_not_answer_moves_a_session_whose_state_is_known() {
    let s = silent_old_primary(b"\x03SHOW TABLES").await;
    assert_eq!(s.reply.first(), Some(&0x00), "{:?}", s.reply);
    assert_eq!(s.migrated, 1);
    assert!(
        s.new.received("SELECT 2"),
        "the held command ran on the new primary"
    );
}

/// A session on a live old primary scripted by `old`, with status `flags`,
/// whose route names a new primary while the client is silent: the old
/// primary's connection closes before the client speaks again, and its
/// next command gets error `code` naming `why`.
async fn refused_while_silent(old: Script, flags: u16, code: u16, why: &str) {
    let old = FakeServer::listen(old).await;
    let new = FakeServer::listen(Script::default()).await;
    let env = env_with(Some(old.primary(1)), |c| {
        c.failover.hold_timeout = PATIENCE;
        c.listen.idle_timeout = PATIENCE;
    });
    let (live, conn) = attached_at(&env, &old, flags);
    let (e, to) = (&env, new.primary(2));
    let (outcome, (got, msg)) = run_session(&env, live, |mut app| async move {
        publish(e, Some(to), RecordState::Serving);
        let released = || conn.is_finished();
        wait_until("the refused session closes its old backend", released).await;
        ask_error(&mut app, "COMMIT").await
    })
    .await;
    assert_eq!(got, code, "{msg}");
    assert!(msg.contains(why), "{why:?} in {msg:?}");
    assert_eq!(outcome, ConnOutcome::FailoverClosed);
    assert!(
        !old.received("COMMIT"),
        "the command never reached the old primary"
    );
}

#[tokio::test]
async fn a_session_refused_at_rest_holds_no_backend_while_it_waits() {
    let old = Script {
        locks: Some(1),
        ..Script::default()
    };
    refused_while_silent(old, status::AUTOCOMMIT, 9005, "the session holds locks").await;
}

#[tokio::test]
async fn a_transaction_aborted_by_a_move_holds_no_backend_while_it_waits() {
    let in_trans = status::AUTOCOMMIT | status::IN_TRANS;
    let why = "transaction aborted by failover";
    refused_while_silent(Script::default(), in_trans, 9006, why).await;
}
