//! The 9005 reasons a planned switchover meets on the old primary
//! (docs/failover.md, "What refuses a move"), each scripted on a fake
//! server: what its reads show refuses the move, the held command reaches
//! neither server, and the client is told why.

use std::time::Duration;

use super::fake_server::{FakeSession, Script};
use super::switchover_kit::Planned;

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
    let old = Script {
        fails: Some("USER_VARIABLES".into()),
        ..Script::default()
    };
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
    let old = Script {
        stalls: Some("@@session.sql_select_limit".into()),
        ..Script::default()
    };
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
