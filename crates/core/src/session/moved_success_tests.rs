//! Moves that log in on a new primary (docs/failover.md, "What is read,
//! carried and checked"), against scripted fake servers: the state read on
//! the old primary is carried as values under the derived credential and
//! read back; a read-back that differs, a refused value and a move past
//! `failover.migrate_timeout` each refuse with 9005.

use std::time::Duration;

use super::fake_server::{Login, Script, USER};
use super::switchover_kit::{busy, Planned, Switched, BUSY_CARRIED};
use super::testkit::CAPS;
use crate::metrics::ConnOutcome;
use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::command;

/// A busy session's planned move to a new primary scripted by `new`
/// (bounded by the config `tweak` leaves).
async fn busy_move(new: Script, tweak: fn(&mut crate::config::Config)) -> Switched {
    let planned = Planned {
        new,
        edit: busy,
        tweak,
        ..Planned::default()
    };
    planned.run().await
}

/// The move succeeded: one login on the new primary as the client's user
/// into its schema (answering the new scramble with the derived
/// credential, which the fake server checks), the held command ran there
/// and never on the old primary; the queries the new primary received
/// before it, after the login, start with `carried`.
fn moved(s: &Switched, carried: &[&str]) {
    assert_eq!(
        s.reply.first(),
        Some(&0x00),
        "the held command got an OK: {:?}",
        s.reply
    );
    let login = Login {
        user: USER.into(),
        schema: Some("app".into()),
    };
    assert_eq!(s.new.logins(), (vec![login], 0), "one login, accepted");
    assert_eq!(s.migrated, 1);
    assert!(
        !s.old.received("SELECT 2"),
        "no byte of the held command reached the old primary"
    );
    let queries = s.new.queries();
    let held = queries
        .iter()
        .position(|q| q == "SELECT 2")
        .expect("ran on the new primary");
    assert_eq!(&queries[..carried.len()], carried, "{queries:#?}");
    assert!(
        held > carried.len(),
        "the state was read back before it ran: {queries:#?}"
    );
    // the client closed the connection after its reply
    assert_eq!(s.outcome, ConnOutcome::Closed);
}

#[tokio::test]
async fn a_planned_move_carries_the_state_read_on_the_old_primary_as_values() {
    let s = Planned {
        edit: busy,
        ..Planned::default()
    }
    .run()
    .await;
    assert!(
        s.old
            .received("information_schema.SESSION_VARIABLES UNION ALL"),
        "the state was read on the old primary"
    );
    moved(&s, &BUSY_CARRIED);
}

#[tokio::test]
async fn a_fresh_session_moves_with_nothing_to_carry() {
    let s = Planned::default().run().await;
    moved(&s, &[]);
    assert!(
        !s.new
            .queries()
            .iter()
            .any(|q| q.starts_with("SET ") && !q.starts_with("SET STATEMENT")),
        "no SET reached the new primary: {:#?}",
        s.new.queries()
    );
}

#[tokio::test]
async fn a_variable_without_a_session_scope_that_moves_under_load_is_not_carried() {
    // gtid_binlog_pos advanced between the session-side and the global-side
    // read of the snapshot: it is no state of the session
    let s = Planned {
        old: Script::faulty(|f| f.moves = Some("GTID_BINLOG_POS".into())),
        ..Planned::default()
    }
    .run()
    .await;
    moved(&s, &[]);
    assert!(
        !s.new
            .queries()
            .iter()
            .any(|q| q.contains("gtid_binlog_pos")),
        "{:#?}",
        s.new.queries()
    );
}

#[tokio::test]
async fn the_collation_results_are_sent_in_is_carried_from_the_result_metadata() {
    let s = Planned {
        edit: |s| {
            // SET NAMES utf8mb4 COLLATE utf8mb4_bin: only result metadata shows it
            s.results_collation = 46;
            s.sysvars
                .insert("COLLATION_CONNECTION".into(), "utf8mb4_bin".into());
        },
        ..Planned::default()
    }
    .run()
    .await;
    moved(
        &s,
        &[
            "SET SESSION `collation_connection` = 'utf8mb4_bin'",
            "SET NAMES `utf8mb4` COLLATE `utf8mb4_bin`",
            "SET SESSION character_set_client = 'utf8mb4', SESSION collation_connection = 'utf8mb4_bin'",
        ],
    );
}

#[tokio::test]
async fn a_read_back_that_differs_or_a_refused_value_refuses_the_move() {
    let differs = Script::faulty(|f| f.ignores = Some("SQL_MODE".into()));
    let refuses = Script::faulty(|f| f.refuses = Some("WAIT_TIMEOUT".into()));
    for (new, why) in [
        (differs, "the carried state differs: @@sql_mode"),
        (
            refuses,
            "carrying the session's state failed: SET SESSION `sql_mode` = 'ANSI'",
        ),
    ] {
        busy_move(new, |_| {}).await.refused(why);
    }
}

#[tokio::test]
async fn a_move_blocked_past_the_migrate_timeout_refuses_naming_it() {
    let new = Script::faulty(|f| f.stall_login = true);
    let bounded = |c: &mut crate::config::Config| {
        c.failover.migrate_timeout = Duration::from_millis(300);
    };
    let s = busy_move(new, bounded).await;
    s.refused("moving it took longer than failover.migrate_timeout (300ms)");
}

#[tokio::test]
async fn a_client_without_deprecate_eof_moves_with_eof_terminated_reads() {
    let s = Planned {
        edit: busy,
        caps: CAPS & !caps::CLIENT_DEPRECATE_EOF,
        ..Planned::default()
    }
    .run()
    .await;
    moved(&s, &BUSY_CARRIED);
}

/// COM_STMT_EXECUTE of statement `id` (no parameters, no cursor).
fn execute(id: u8) -> Vec<u8> {
    vec![command::STMT_EXECUTE, id, 0, 0, 0, 0, 1, 0, 0, 0]
}

#[tokio::test]
async fn prepared_statements_are_prepared_again_under_the_ids_the_client_knows() {
    const PREPARE: &[u8] = b"\x16SELECT 1";
    const EXECUTE_1: &[u8] = &[command::STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
    // the old primary numbers statements from 1, the new one from 50
    let new = Script {
        first_statement_id: 50,
        ..Script::default()
    };
    let s = Planned {
        first: PREPARE,
        held: EXECUTE_1,
        new,
        ..Planned::default()
    }
    .run()
    .await;
    assert_eq!(s.reply.first(), Some(&0x00), "{:?}", s.reply);
    let on_new = s.new.commands();
    let at = |p: &[u8]| on_new.iter().position(|c| c == p);
    let (prepared, executed) = (at(PREPARE), at(&execute(50)));
    assert!(prepared.is_some(), "prepared again: {on_new:?}");
    assert!(
        prepared < executed,
        "then the client's EXECUTE of 1 ran as 50"
    );
    assert_eq!(
        at(EXECUTE_1),
        None,
        "no EXECUTE of an id the new primary never gave"
    );
    let executes = |c: &Vec<u8>| c[0] == command::STMT_EXECUTE;
    assert!(
        !s.old.commands().iter().any(executes),
        "nothing executed on the old primary"
    );
}

#[tokio::test]
async fn a_kill_of_the_id_the_client_knows_reaches_its_thread_on_the_new_primary() {
    // the client knows thread 7 (its login); on the new primary it is 100,
    // the fake server's first connection
    let s = Planned {
        held: b"\x03KILL QUERY 7",
        ..Planned::default()
    }
    .run()
    .await;
    assert_eq!(s.reply.first(), Some(&0x00), "{:?}", s.reply);
    let on_new = s.new.queries();
    assert_eq!(
        on_new.last().map(String::as_str),
        Some("KILL QUERY 100"),
        "{on_new:#?}"
    );
    assert!(
        !s.old.received("KILL"),
        "nothing of it reached the old primary"
    );
}
