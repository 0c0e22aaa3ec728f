//! The relay is faithful: what works direct works the same through the proxy
//! (real MariaDB behind a real ZooKeeper record, no mocks).

mod common;

use common::query;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Row, WhiteListFsHandler};
use mysql_zk_proxy_core::metrics::ConnOutcome;

use common::raw::RawConn;

async fn connect(b: mysql_async::OptsBuilder) -> Conn {
    Conn::new(b).await.expect("connect")
}

/// A cluster and a client session through the proxy.
async fn proxied() -> (common::Env, Conn) {
    let env = common::start(false).await;
    let c = connect(env.via_proxy()).await;
    (env, c)
}

/// [`proxied`], with the table `create` makes.
async fn proxied_with_table(create: &str) -> (common::Env, Conn) {
    let (env, mut c) = proxied().await;
    c.query_drop(create).await.unwrap();
    (env, c)
}

/// `SELECT 1` still answers 1 on `c`: the session is in step (`why` says
/// after what).
async fn in_step(c: &mut Conn, why: &str) {
    let one: i64 = query::one(c, "SELECT 1").await;
    assert_eq!(one, 1, "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_errors_and_warnings_are_the_backends() {
    let (env, mut c) = proxied().await;
    let port: u16 = query::one(&mut c, "SELECT @@port").await;
    assert_eq!(port, env.cluster.primary().port());
    // connection id is the backend's own thread id (greeting forwarded)
    let id: u32 = query::one(&mut c, "SELECT CONNECTION_ID()").await;
    assert_eq!(id, c.id());

    let err = c.query_drop("SELEC 1").await.unwrap_err();
    match err {
        mysql_async::Error::Server(e) => {
            assert_eq!(e.code, 1064);
            assert_eq!(e.state, "42000");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    c.query_drop("CREATE TEMPORARY TABLE w (n TINYINT)")
        .await
        .unwrap();
    c.query_drop("INSERT IGNORE INTO w VALUES (1000)")
        .await
        .unwrap();
    assert_eq!(c.get_warnings(), 1, "warning count from the OK packet");
    let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").await.unwrap();
    assert_eq!(warnings[0].1, 1264, "{warnings:?}");
    c.ping().await.unwrap();
    assert!(c.reset().await.unwrap(), "COM_RESET_CONNECTION supported");
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statements_and_procedures_return_every_result_set() {
    let (_env, mut c) = proxied().await;
    let mut r = c
        .query_iter("SELECT 1 AS a; SELECT 2 AS b, 3 AS c; DO 0; SELECT 'x' UNION SELECT 'y'")
        .await
        .unwrap();
    let mut sets: Vec<Vec<Row>> = Vec::new();
    while !r.is_empty() {
        sets.push(r.collect().await.unwrap());
    }
    drop(r);
    let shapes: Vec<usize> = sets.iter().map(|s| s.len()).collect();
    assert_eq!(shapes, vec![1, 1, 0, 2]);

    c.query_drop("CREATE OR REPLACE PROCEDURE two() BEGIN SELECT 1; SELECT 2, 3; END")
        .await
        .unwrap();
    let mut r = c.query_iter("CALL two()").await.unwrap();
    let first: Vec<i64> = r.collect().await.unwrap();
    let second: Vec<(i64, i64)> = r.collect().await.unwrap();
    drop(r);
    assert_eq!((first, second), (vec![1], vec![(2, 3)]));
    in_step(&mut c, "after CALL's trailing OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_execute_reset_and_close() {
    let (_env, mut c) =
        proxied_with_table("CREATE TABLE ps (id INT PRIMARY KEY, v VARCHAR(20))").await;
    let ins = c.prep("INSERT INTO ps VALUES (?, ?)").await.unwrap();
    for i in 0..10 {
        c.exec_drop(&ins, (i, format!("v{i}"))).await.unwrap();
    }
    let sel = c
        .prep("SELECT v FROM ps WHERE id >= ? ORDER BY id")
        .await
        .unwrap();
    let rows: Vec<String> = c.exec(&sel, (7,)).await.unwrap();
    assert_eq!(rows, vec!["v7", "v8", "v9"]);
    c.close(ins).await.unwrap();
    c.close(sel).await.unwrap();
    let n: i64 = query::one(&mut c, "SELECT COUNT(*) FROM ps").await;
    assert_eq!(n, 10);
}

/// Commands mysql_async never sends, byte for byte the same as direct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_commands_match_direct_byte_for_byte() {
    let env = common::start(false).await;
    let mut admin = connect(env.direct()).await;
    admin
        .query_drop("CREATE TABLE f (a INT, b VARCHAR(10))")
        .await
        .unwrap();

    let mut replies = Vec::new();
    for addr in [env.primary_addr(), env.proxy_addr()] {
        let mut c = RawConn::login(&addr, "app", "app", "app").await.unwrap();
        let mut got = Vec::new();
        got.push(c.command(b"\x04f\0").await.unwrap()); // COM_FIELD_LIST
        got.push(c.command(b"\x02app").await.unwrap()); // COM_INIT_DB
        got.push(c.command(b"\x0e").await.unwrap()); // COM_PING
        got.push(c.command(b"\x16SELECT ?, CONCAT(?, 'x')").await.unwrap()); // PREPARE
        let stmt = u32::from_le_bytes(got[3][0][1..5].try_into().unwrap());
        let mut long = vec![0x18];
        long.extend_from_slice(&stmt.to_le_bytes());
        long.extend_from_slice(&1u16.to_le_bytes());
        long.extend_from_slice(b"long-data");
        c.send(&long).await.unwrap(); // COM_STMT_SEND_LONG_DATA: no reply
        let mut exec = vec![0x17];
        exec.extend_from_slice(&stmt.to_le_bytes());
        exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x08, 0, 0xfe, 0]);
        exec.extend_from_slice(&7i64.to_le_bytes());
        got.push(c.command(&exec).await.unwrap()); // EXECUTE (param 1 from long data)
        let mut reset = vec![0x1a];
        reset.extend_from_slice(&stmt.to_le_bytes());
        got.push(c.command(&reset).await.unwrap()); // COM_STMT_RESET
        let mut close = vec![0x19];
        close.extend_from_slice(&stmt.to_le_bytes());
        c.send(&close).await.unwrap(); // COM_STMT_CLOSE: no reply
        got.push(c.command(b"\x03SELECT 1; SELECT 'two'").await.unwrap());
        let stats = c.command(b"\x09").await.unwrap(); // COM_STATISTICS: one plain packet
        assert_eq!(stats.len(), 1);
        assert!(
            stats[0].starts_with(b"Uptime:"),
            "{:?}",
            String::from_utf8_lossy(&stats[0])
        );
        assert!(c.at_rest());
        replies.push(got);
    }
    let exec_rows = &replies[1][4];
    assert!(
        exec_rows
            .iter()
            .any(|p| p.windows(9).any(|w| w == b"long-data")),
        "long data reached the statement"
    );
    // statement ids are the server's to choose per connection: compare the rest
    for r in replies.iter_mut() {
        assert_ne!(&r[3][0][1..5], &[0, 0, 0, 0], "a statement id was assigned");
        r[3][0][1..5].fill(0);
    }
    for (i, (d, p)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(d, p, "reply {i}: proxy differs from direct");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_row_both_ways() {
    let (_env, mut c) =
        proxied_with_table("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)").await;
    let blob: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    // prepared: mysql_async sends a parameter this large as COM_STMT_SEND_LONG_DATA
    c.exec_drop("INSERT INTO big VALUES (1, ?)", (blob.clone(),))
        .await
        .unwrap();
    // text protocol: a COM_QUERY packet over 16 MiB (split at 0xFFFFFF)
    let text: String = "y".repeat(20 * 1024 * 1024);
    c.query_drop(format!("INSERT INTO big VALUES (2, '{text}')"))
        .await
        .unwrap();
    let back: Vec<u8> = query::one(&mut c, "SELECT b FROM big WHERE id = 1").await;
    assert!(
        back == blob,
        "20 MiB blob came back different ({} bytes)",
        back.len()
    );
    let back: Vec<u8> = c
        .exec_first("SELECT b FROM big WHERE id = ?", (2,))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.len(), text.len());
    assert!(back.iter().all(|&b| b == b'y'));
    in_step(&mut c, "session still in step after the large packets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_infile() {
    let env = common::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let body: String = (0..5000).map(|i| format!("{i},row-{i}\n")).collect();
    std::fs::write(&path, body).unwrap();
    let opts = env
        .via_proxy()
        .local_infile_handler(Some(WhiteListFsHandler::new(&[&path][..])));
    let mut c = connect(opts).await;
    c.query_drop("CREATE TABLE l (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    c.query_drop(format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE l FIELDS TERMINATED BY ','",
        path.display()
    ))
    .await
    .unwrap();
    assert_eq!(c.affected_rows(), 5000);
    let last: String = query::one(&mut c, "SELECT v FROM l WHERE id = 4999").await;
    assert_eq!(last, "row-4999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_switches_identity() {
    let (_env, mut c) = proxied().await;
    c.change_user(
        ChangeUserOpts::default()
            .with_user(Some("admin".into()))
            .with_pass(Some("admin".into())),
    )
    .await
    .unwrap();
    let who: String = query::one(&mut c, "SELECT CURRENT_USER()").await;
    assert!(who.starts_with("admin@"), "{who}");
    let err = c
        .change_user(
            ChangeUserOpts::default()
                .with_user(Some("app".into()))
                .with_pass(Some("nope".into())),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1045") || err.to_string().contains("Access denied"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gets_the_backends_own_error() {
    let env = common::start(false).await;
    let errs = [env.direct(), env.via_proxy()].map(|b| b.pass(Some("wrong")));
    let mut seen = Vec::new();
    for b in errs {
        match Conn::new(b).await {
            Err(mysql_async::Error::Server(e)) => {
                seen.push((e.code, e.state.clone(), e.message.clone()))
            }
            other => panic!("expected an access-denied error, got {other:?}"),
        }
    }
    assert_eq!(seen[0].0, 1045);
    assert_eq!(seen[0], seen[1], "same error direct and through the proxy");
    common::outcome_counted(env.proxy.stats(), ConnOutcome::AuthFailed, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_from_a_second_connection() {
    let (env, mut victim) = proxied().await;
    let id = victim.id();
    let opts = env.via_proxy();
    let started = Instant::now();
    let killer = tokio::spawn(async move {
        let mut k = Conn::new(opts).await.unwrap();
        // wait until the victim's query is running, as seen by the server
        loop {
            let st: Option<String> = k
                .exec_first(
                    "SELECT state FROM information_schema.processlist WHERE id = ?",
                    (id,),
                )
                .await
                .unwrap();
            if st.as_deref() == Some("User sleep") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        k.query_drop(format!("KILL QUERY {id}")).await.unwrap();
    });
    let r: Result<Option<i64>, _> = victim.query_first("SELECT SLEEP(60)").await;
    killer.await.unwrap();
    // MariaDB reports a killed SLEEP() as result 1 (interrupted), or error 1317
    match r {
        Ok(Some(v)) => assert_eq!(v, 1, "SLEEP interrupted"),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "query was not killed"
    );
    in_step(&mut victim, "the killed query's session goes on").await;
}

/// MariaDB's cached metadata (MARIADB_CLIENT_CACHE_METADATA, which
/// libmariadb and mysql_async ask for): through the proxy a repeated EXECUTE
/// skips the column definitions exactly as direct, in both EOF modes, and
/// the proxy still sees where each reply ends (the session is idle after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_metadata_replies_match_direct_and_end_where_they_end() {
    use mysql_zk_proxy_core::metrics::SessionState;
    use mysql_zk_proxy_protocol::caps::MARIADB_CLIENT_CACHE_METADATA;
    let env = common::start(false).await;
    for deprecate_eof in [false, true] {
        let mut replies = Vec::new();
        for addr in [env.primary_addr(), env.proxy_addr()] {
            let login = ("app", "app", "app");
            let mut c =
                RawConn::login_mariadb(&addr, login, deprecate_eof, MARIADB_CLIENT_CACHE_METADATA)
                    .await
                    .unwrap();
            let mut got = vec![c.command(b"\x16SELECT ? AS a, 'x' AS b").await.unwrap()];
            let stmt = got[0][0][1..5].to_vec();
            got[0][0][1..5].fill(0); // ids are each connection's own
            let mut exec = vec![0x17];
            exec.extend_from_slice(&stmt);
            exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x08, 0]);
            exec.extend_from_slice(&7i64.to_le_bytes());
            for _ in 0..3 {
                got.push(c.command(&exec).await.unwrap());
            }
            got.push(c.command(b"\x03SELECT 1, 2").await.unwrap());
            got.push(c.command(b"\x0e").await.unwrap()); // COM_PING
            assert!(c.at_rest());
            assert_eq!(
                got[2][0],
                [2, 0],
                "the second EXECUTE skips the metadata ({addr}, deprecate_eof {deprecate_eof})"
            );
            replies.push(got);
        }
        for (i, (d, p)) in replies[0].iter().zip(&replies[1]).enumerate() {
            assert_eq!(
                d, p,
                "reply {i}: proxy differs from direct (deprecate_eof {deprecate_eof})"
            );
        }
        // the proxy's tracker saw every reply end: no session is left busy
        assert_eq!(env.proxy.stats().sessions_in(SessionState::Busy), 0);
    }
}
