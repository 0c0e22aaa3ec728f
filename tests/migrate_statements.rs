//! Migration of sessions holding server-side prepared statements, against real
//! ZooKeeper and MariaDB: the statements are prepared again on the new primary
//! under the ids the client knows, an EXECUTE that relies on types bound before
//! the move still works, and `KILL <id>` reaches the migrated session.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::poll::until_count;
use common::raw::RawConn;
use common::{with_app_user, APP_PASS, APP_USER};
use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_protocol::command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_keep_their_ids_across_a_switchover() {
    let mut env = common::start_with(true, with_app_user).await;
    let mut c = Conn::new(env.via_proxy()).await.unwrap();
    let first_id = c.id();
    c.query_drop("SET @v = 10").await.unwrap();
    let add = c.prep("SELECT ? + @v, @@port").await.unwrap();
    let one = c.prep("SELECT 1").await.unwrap();
    let before: (i64, u16) = c.exec_first(&add, (1,)).await.unwrap().unwrap();
    assert_eq!(before, (11, env.cluster.primary().port()));

    let report = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(report.new_port).await;

    let after: (i64, u16) = c.exec_first(&add, (5,)).await.unwrap().unwrap();
    assert_eq!(after, (15, report.new_port), "same statement, new primary");
    let x: i64 = c.exec_first(&one, ()).await.unwrap().unwrap();
    assert_eq!(x, 1);
    // statements prepared and closed after the move keep working too
    let twice = c.prep("SELECT ? * 2").await.unwrap();
    let y: i64 = c.exec_first(&twice, (21,)).await.unwrap().unwrap();
    assert_eq!(y, 42);
    c.close(one).await.unwrap();
    let again: (i64, u16) = c.exec_first(&add, (0,)).await.unwrap().unwrap();
    assert_eq!(again, (10, report.new_port));
    assert_eq!(c.id(), first_id, "the client keeps its connection");
    assert_eq!(env.proxy.stats().sessions_migrated.load(Relaxed), 1);
    assert_eq!(
        env.proxy.stats().sessions_closed_by_failover.load(Relaxed),
        0
    );
}

/// COM_STMT_EXECUTE of statement `id` with one BIGINT parameter; the type
/// is sent only when `bind`.
fn execute(id: u32, value: i64, bind: bool) -> Vec<u8> {
    let mut p = vec![command::STMT_EXECUTE];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.push(0); // null bitmap of one parameter
    p.push(bind as u8);
    if bind {
        p.extend_from_slice(&[0x08, 0x00]); // MYSQL_TYPE_LONGLONG, signed
    }
    p.extend_from_slice(&value.to_le_bytes());
    p
}

/// The single BIGINT of a one-row binary result (column count, definition,
/// row, end), or the error text.
fn bigint(reply: &[Vec<u8>]) -> Result<i64, String> {
    if reply[0][0] == 0xff {
        return Err(String::from_utf8_lossy(&reply[0][3..]).into_owned());
    }
    let row = reply
        .iter()
        .find(|p| p[0] == 0x00 && p.len() == 10)
        .expect("a row");
    Ok(i64::from_le_bytes(row[2..10].try_into().unwrap()))
}

/// A proxy over a primary and a replica, and a raw protocol session of the
/// app user through it.
async fn raw_session() -> (common::Env, RawConn) {
    let env = common::start_with(true, with_app_user).await;
    let c = RawConn::login(&env.proxy_addr(), APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    (env, c)
}

/// COM_STMT_PREPARE `command` (its payload); the statement id.
async fn prepare(c: &mut RawConn, command: &[u8]) -> u32 {
    let ok = c.command(command).await.unwrap();
    u32::from_le_bytes(ok[0][1..5].try_into().unwrap())
}

/// Like libmysqlclient (sysbench), this client binds parameter types once:
/// later EXECUTEs say "types as before", which a freshly prepared statement
/// on the new primary would reject (1210) unless the proxy sends them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_without_types_works_after_the_move_even_in_a_transaction() {
    let (mut env, mut c) = raw_session().await;
    let id = prepare(&mut c, b"\x16SELECT ? + 1").await;
    assert_eq!(
        bigint(&c.command(&execute(id, 41, true)).await.unwrap()),
        Ok(42)
    );
    assert_eq!(
        bigint(&c.command(&execute(id, 1, false)).await.unwrap()),
        Ok(2)
    );

    let report = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(report.new_port).await;

    let begin = c.command(b"\x03BEGIN").await.unwrap();
    assert_eq!(begin[0][0], 0x00, "migrated, then BEGIN on the new primary");
    let reply = c.command(&execute(id, 2, false)).await.unwrap();
    assert_eq!(bigint(&reply), Ok(3), "first EXECUTE after the move");
    assert_eq!(
        bigint(&c.command(&execute(id, 3, false)).await.unwrap()),
        Ok(4)
    );
    assert_eq!(c.command(b"\x03COMMIT").await.unwrap()[0][0], 0x00);
    assert_eq!(env.proxy.stats().sessions_migrated.load(Relaxed), 1);
}

/// Several EXECUTEs that rely on types bound before the move, pipelined in
/// one write: each gets its types sent again, not only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_executes_without_types_each_get_theirs() {
    let (mut env, mut c) = raw_session().await;
    let mut ids = Vec::new();
    for sql in [&b"\x16SELECT ? + 1"[..], b"\x16SELECT ? * 10"] {
        let id = prepare(&mut c, sql).await;
        c.command(&execute(id, 1, true)).await.unwrap();
        ids.push(id);
    }
    let report = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(report.new_port).await;

    let (a, b) = (execute(ids[0], 4, false), execute(ids[1], 4, false));
    let replies = c.pipeline(&[&a, &b, &a]).await.unwrap();
    let got: Vec<_> = replies.iter().map(|r| bigint(r)).collect();
    assert_eq!(got, vec![Ok(5), Ok(40), Ok(5)]);
    assert_eq!(env.proxy.stats().sessions_migrated.load(Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_reaches_a_migrated_session() {
    let mut env = common::start_with(true, with_app_user).await;
    let mut victim = Conn::new(env.via_proxy()).await.unwrap();
    let visible_id = victim.id();
    let report = env.cluster.switchover().await.unwrap();
    env.wait_for_primary_port(report.new_port).await;
    let port: u16 = victim.query_first("SELECT @@port").await.unwrap().unwrap();
    assert_eq!(port, report.new_port, "migrated");

    let sleeping = tokio::spawn(async move {
        let r = victim.query_first::<i64, _>("SELECT SLEEP(60)").await;
        r.map_err(|e| match e {
            mysql_async::Error::Server(e) => e.code,
            other => panic!("expected the server's error, got {other:?}"),
        })
    });
    let mut direct = Conn::new(common::app_opts(report.new_port)).await.unwrap();
    until_count(
        &mut direct,
        "SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(60)'",
        Duration::from_secs(15),
        "the sleep never started",
        |n| n == 1,
    )
    .await;
    // Ctrl-C in the mariadb CLI: a new connection sends KILL QUERY <id it was shown>
    let mut killer = Conn::new(env.via_proxy()).await.unwrap();
    killer
        .query_drop(format!("KILL QUERY {visible_id}"))
        .await
        .expect("the id the client knows is translated, not unknown");
    let slept = tokio::time::timeout(Duration::from_secs(30), sleeping)
        .await
        .expect("the killed query returns")
        .unwrap();
    assert_eq!(slept, Err(1317), "Query execution was interrupted");
}
