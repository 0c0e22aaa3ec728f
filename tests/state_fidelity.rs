//! Session-state fidelity across a failover, against real ZooKeeper and
//! MariaDB. A session is migrated only when its whole state is carried
//! exactly; otherwise its next command gets 9005 (9006 for an aborted
//! transaction). For every case of `fidelity::cases`, a session through the
//! proxy does the case's steps, the primary changes, and its answers to the
//! probes must equal those of a control session that did the same steps
//! directly on the new primary, unless the session was refused.

mod common;
mod fidelity;

use std::time::{Duration, Instant};

use common::{with_app_user, APP_PASS, APP_USER};
use fidelity::cases;
use fidelity::client::{frame, refusal, Answer, Raw, Shown};
use fidelity::run::{self, admin, Run, Verdict};
use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::io::AsyncReadExt;

/// A cluster with a replica, a proxy that can migrate `app` and `app2` (not
/// `app3`) and verifies new primaries, and the case table's schema, users
/// and procedures.
async fn start() -> common::Env {
    let env = common::start_with(true, |c| {
        with_app_user(c);
        common::with_monitor(c);
        c.users.push(common::user_entry("app2", "app2"));
    })
    .await;
    let mut a = Conn::new(run::admin_opts(env.cluster.primary().port()))
        .await
        .unwrap();
    for sql in cases::SCHEMA {
        a.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    env
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Planned,
    Unplanned,
}

async fn gtid_binlog_pos(port: u16) -> String {
    let mut c = Conn::new(run::admin_opts(port)).await.unwrap();
    c.query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap()
}

/// Wait (bounded) until the server on `port` applied everything up to `pos`.
async fn applied(port: u16, pos: &str) {
    let mut c = Conn::new(run::admin_opts(port)).await.unwrap();
    let waited: i64 = c
        .query_first(format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited, 0, "server {port} did not apply {pos} within 30 s");
}

/// Fail over (planned or not); returns the new primary's port.
async fn fail_over(env: &mut common::Env, kind: Kind) -> u16 {
    match kind {
        Kind::Planned => {
            let report = env.cluster.switchover().await.unwrap();
            env.wait_for_primary_port(report.new_port).await;
            report.new_port
        }
        Kind::Unplanned => {
            let pos = gtid_binlog_pos(env.cluster.primary().port()).await;
            applied(env.cluster.replica().unwrap().port(), &pos).await;
            env.cluster.primary_mut().kill().unwrap();
            let new_port = env.cluster.promote_replica_after_crash().await.unwrap();
            env.cluster.publish_json(new_port, 2).await.unwrap();
            env.wait_for_primary_port(new_port).await;
            new_port
        }
    }
}

async fn run_table(kind: Kind, title: &str) {
    let started = Instant::now();
    let mut env = start().await;
    let mut table = cases::all();
    run::check_table(&table);
    if kind == Kind::Unplanned {
        // a crashed primary cannot be read: any session that ran statements
        // may be refused
        table.iter_mut().for_each(|c| c.must_migrate = false);
    }
    assert!(table.len() >= 45, "{} cases", table.len());
    let proxy_port = env.proxy.listen_addr().port();

    let mut sessions = Vec::new();
    for case in &table {
        let tag = format!("m_{}", case.name);
        let mut s = run::open(case, proxy_port).await;
        let setup = run::run_steps(&mut s, &case.steps, &tag).await;
        let before = run::run_stable(&mut s, &case.stable, &tag).await;
        sessions.push((s, setup, before));
    }
    let setup_done = started.elapsed();

    let new_port = fail_over(&mut env, kind).await;
    let moved = started.elapsed();

    let mut third = admin(new_port).await;
    let mut verdicts = Vec::new();
    for (case, (mut s, setup, before)) in table.iter().zip(sessions) {
        let tag = format!("m_{}", case.name);
        let probes = run::run_probes(&mut s, &case.probes, &tag, &mut third).await;
        let after = run::run_stable(&mut s, &case.stable, &tag).await;
        drop(s);
        let m = Run { setup, probes };

        let tag = format!("c_{}", case.name);
        let mut s = run::open(case, new_port).await;
        let setup = run::run_steps(&mut s, &case.steps, &tag).await;
        let probes = run::run_probes(&mut s, &case.probes, &tag, &mut third).await;
        drop(s);
        let c = Run { setup, probes };

        let stable: Vec<(Answer, Answer)> = before.into_iter().zip(after).collect();
        verdicts.push((case.name, run::judge(case, &m, &c, &stable)));
    }
    let (text, failed) = run::report(title, &verdicts);
    let refused = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Refused(_)))
        .count();
    println!(
        "{text}\n{title}: {} cases, {} migrated equal, {refused} refused, {failed} failed; \
         setup {:.1} s, failover at {:.1} s, total {:.1} s",
        verdicts.len(),
        verdicts.len() - refused - failed,
        setup_done.as_secs_f64(),
        moved.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failed, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover() {
    run_table(Kind::Planned, "planned switchover").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplanned_failover() {
    run_table(Kind::Unplanned, "unplanned failover").await;
}

async fn count_rows(port: u16, tag: &str) -> i64 {
    let mut c = Conn::new(run::admin_opts(port)).await.unwrap();
    c.query_first(format!("SELECT COUNT(*) FROM db1.t WHERE tag = '{tag}'"))
        .await
        .unwrap()
        .unwrap()
}

/// `SELECT SLEEP(2)` and an INSERT in one write; the switchover starts
/// while the sleep runs. The INSERT ran before the record moved (and
/// replicated), or ran on the new primary, or was refused with 9005/9006
/// and ran nowhere: never lost, never run on the old primary after the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_insert_during_a_switchover() {
    let mut env = start().await;
    let old_port = env.cluster.primary().port();
    let mut c = Raw::login(&env.proxy_addr(), APP_USER, APP_PASS, "app")
        .await
        .unwrap();
    let mut pipeline = frame(0, b"\x03SELECT SLEEP(2)");
    pipeline.extend(frame(0, b"\x03INSERT INTO db1.t VALUES ('pipe', 1)"));
    c.write(&pipeline).await.unwrap();

    let mut watch = admin(old_port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = watch
            .query("SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(2)'")
            .await
            .unwrap();
        if seen.get(1).and_then(|r| r[0].as_deref()) == Some("1") {
            break;
        }
        assert!(Instant::now() < deadline, "the sleep never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let new_port = fail_over(&mut env, Kind::Planned).await;

    let sleep = c.reply().await;
    let insert = if refusal(&sleep).is_some() {
        sleep.clone()
    } else {
        c.reply().await
    };
    let on_new = count_rows(new_port, "pipe").await;
    applied(old_port, &gtid_binlog_pos(new_port).await).await;
    let on_old = count_rows(old_port, "pipe").await;
    let what = format!(
        "SLEEP: {}; INSERT: {}; rows on the new primary {on_new}, on the old one {on_old}",
        Shown(&sleep),
        Shown(&insert)
    );
    println!("pipelined insert: {what}");
    match &insert {
        Ok(_) => assert!(
            on_new == 1 && on_old == 1,
            "acknowledged once, everywhere: {what}"
        ),
        Err(_) if refusal(&insert).is_some() => {
            assert!(on_new == 0 && on_old == 0, "refused, yet applied: {what}")
        }
        Err(_) => panic!("the INSERT must run on a primary or be refused: {what}"),
    }
}

/// What a client sees of an idle connection after `SET wait_timeout = 2`.
#[derive(Debug, PartialEq)]
enum Idle {
    /// The server's error packet (code), then the connection closed.
    ErrorThenClosed(u16),
    Closed,
    /// Still open after the bounded wait.
    StillOpen,
    /// Unexpected bytes.
    Other(String),
}

/// How long after `SET wait_timeout = 2` the client must have seen the close.
const IDLE_BOUND: Duration = Duration::from_secs(5);

/// Set a 2 s wait_timeout on a raw connection to `addr`, then read
/// (bounded by [`IDLE_BOUND`]) without sending anything; then try `BEGIN`.
async fn idle_past_wait_timeout(addr: &str) -> (Idle, Duration, Answer) {
    let mut c = Raw::login(addr, APP_USER, APP_PASS, "app").await.unwrap();
    c.query("SET @@session.wait_timeout = 2").await.unwrap();
    let started = Instant::now();
    let mut stream = c.into_stream();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(IDLE_BOUND, read).await.is_ok();
    let waited = started.elapsed();
    let idle = match (closed, got.as_slice()) {
        (false, _) => Idle::StillOpen,
        (true, []) => Idle::Closed,
        (true, [_, _, _, _, 0xff, lo, hi, ..]) => {
            Idle::ErrorThenClosed(u16::from_le_bytes([*lo, *hi]))
        }
        (true, other) => Idle::Other(format!("{other:02X?}")),
    };
    let begin = {
        use tokio::io::AsyncWriteExt;
        let _ = stream.write_all(&frame(0, b"\x03BEGIN")).await;
        let mut h = [0u8; 5];
        match tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut h)).await {
            Ok(Ok(_)) if h[4] == 0x00 => Ok(vec![vec![Some("BEGIN ok".into())]]),
            Ok(Ok(_)) => Err(fidelity::client::Fail {
                code: None,
                msg: format!("packet {:02X?}", h),
            }),
            Ok(Err(e)) => Err(fidelity::client::Fail {
                code: None,
                msg: format!("closed: {e}"),
            }),
            Err(_) => Err(fidelity::client::Fail {
                code: None,
                msg: "no answer".into(),
            }),
        }
    };
    (idle, waited, begin)
}

/// A session the server closes for inactivity is closed for its client too,
/// as it is for a client connected directly: no silent new backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_closes_the_client_like_direct() {
    let env = common::start_with(false, with_app_user).await;
    let (primary, proxy) = (env.primary_addr(), env.proxy_addr());
    let (direct, proxied) = tokio::join!(
        idle_past_wait_timeout(&primary),
        idle_past_wait_timeout(&proxy)
    );
    println!(
        "direct: {:?} after {:?}, BEGIN: {}; through the proxy: {:?} after {:?}, BEGIN: {}",
        direct.0,
        direct.1,
        Shown(&direct.2),
        proxied.0,
        proxied.1,
        Shown(&proxied.2)
    );
    assert!(
        matches!(direct.0, Idle::Closed | Idle::ErrorThenClosed(_)),
        "the server closes an idle session: {:?}",
        direct.0
    );
    assert_eq!(
        proxied.0, direct.0,
        "the client sees what a direct client sees"
    );
    assert!(
        proxied.1 >= Duration::from_millis(1500),
        "closed by the timeout, not before"
    );
    assert!(proxied.2.is_err(), "BEGIN after the close must not succeed");
}

/// The verdict rules themselves: a silent difference fails, a refusal
/// passes (unless the case must migrate), a stable value that changed fails.
#[test]
fn verdict_rules() {
    use fidelity::client::Fail;
    let table = cases::all();
    let case = table.iter().find(|c| c.name == "var_int").unwrap();
    let rows = |v: &str| -> Answer { Ok(vec![vec![Some(v.to_string())]]) };
    let err = |code: u16| -> Answer {
        Err(Fail {
            code: Some(code),
            msg: String::new(),
        })
    };
    let ran = |a: Answer| Run {
        setup: Ok(()),
        probes: vec![a],
    };
    let verdict =
        |m: Answer, c: Answer, case: &cases::Case, stable: &[(Answer, Answer)]| match run::judge(
            case,
            &ran(m),
            &ran(c),
            stable,
        ) {
            Verdict::Same => "same".to_string(),
            Verdict::Refused(code) => format!("refused {code}"),
            Verdict::Fail(_) => "fail".to_string(),
        };
    assert_eq!(verdict(rows("42"), rows("42"), case, &[]), "same");
    assert_eq!(verdict(rows("NULL"), rows("42"), case, &[]), "fail");
    assert_eq!(verdict(err(9005), rows("42"), case, &[]), "refused 9005");
    assert_eq!(verdict(err(9006), rows("42"), case, &[]), "refused 9006");
    assert_eq!(verdict(err(1421), rows("42"), case, &[]), "fail");
    assert_eq!(verdict(err(1146), err(1146), case, &[]), "same");
    assert_eq!(verdict(err(1146), err(1054), case, &[]), "fail");
    let uuid = table.iter().find(|c| c.name == "uuid_user_var").unwrap();
    let kept = [(rows("a"), rows("a"))];
    assert_eq!(verdict(rows("36"), rows("36"), uuid, &kept), "same");
    let changed = [(rows("a"), rows("b"))];
    assert_eq!(verdict(rows("36"), rows("36"), uuid, &changed), "fail");
    let must = table
        .iter()
        .find(|c| c.must_migrate)
        .expect("a case that must migrate");
    assert_eq!(verdict(err(9005), rows("1"), must, &[]), "fail");
}
