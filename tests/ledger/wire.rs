//! With the ledger on, every client sees the packets a direct connection
//! gets: a client that did not ask for session tracking gets OKs without
//! state information (the proxy asked for it on the backend and strips
//! it), one that asked gets exactly the tracked items the server sends;
//! and the proxy still learns each commit's GTID.

use std::sync::atomic::Ordering::Relaxed;

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_protocol::caps::{CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK};
use mysql_zk_proxy_protocol::ok::{self, SESSION_STATE_CHANGED};
use mysql_zk_proxy_protocol::ok_status;

use crate::common::raw::{RawConn, CLIENT_CAPS};
use crate::common::{self, admin_opts, APP_PASS, APP_USER};

/// Statements of every kind of OK: commits (autocommit, explicit, with
/// autocommit off, inside a multi-statement), info messages, tracked
/// variables and schema changes, and result sets.
const STATEMENTS: &[&str] = &[
    "INSERT INTO app.wire VALUES (1, 1)",
    "INSERT INTO app.wire VALUES (2, 1), (3, 1)",
    "UPDATE app.wire SET v = v + 1",
    "BEGIN",
    "INSERT INTO app.wire VALUES (4, 1)",
    "COMMIT",
    "SET autocommit = 0",
    "INSERT INTO app.wire VALUES (5, 1)",
    "COMMIT",
    "SET autocommit = 1",
    "SELECT k FROM app.wire ORDER BY k",
    "SELECT @@session_track_system_variables",
    "SHOW SESSION VARIABLES LIKE 'session_track%'",
    "SELECT 1; INSERT INTO app.wire VALUES (6, 1)",
    "USE app",
    "SET time_zone = '+01:00'",
    "DELETE FROM app.wire WHERE k = 6",
];

/// Commits among [`STATEMENTS`].
const COMMITS: u64 = 7;

/// The digits of each tracked `last_gtid` value (runs differ only there).
fn mask_gtids(p: &mut [u8]) {
    let name = b"\x09last_gtid";
    let mut at = 0;
    while let Some(i) = p[at..].windows(name.len()).position(|w| w == name) {
        let v = at + i + name.len();
        let len = p.get(v).copied().unwrap_or(0) as usize;
        for b in p.iter_mut().skip(v + 1).take(len) {
            if b.is_ascii_digit() {
                *b = b'#';
            }
        }
        at = v;
    }
}

/// Every reply packet of the statements, from a login asking for `caps`.
async fn session(addr: &str, caps: u32) -> Vec<Vec<u8>> {
    let login = (APP_USER, APP_PASS, "app");
    let mut c = RawConn::login_with_caps(addr, login, caps).await.unwrap();
    let mut got = vec![c.login_ok.clone()];
    for s in STATEMENTS {
        let cmd = [b"\x03", s.as_bytes()].concat();
        got.extend(c.command(&cmd).await.unwrap());
    }
    got.iter_mut().for_each(|p| mask_gtids(p));
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_the_bytes_of_a_direct_connection() {
    let env = common::start(false).await;
    let mut admin = Conn::new(admin_opts(env.cluster.primary().port()))
        .await
        .unwrap();
    // sequence numbers of the same length in every run
    admin.query_drop("SET gtid_seq_no = 100000").await.unwrap();
    admin
        .query_drop("CREATE TABLE app.seq (a INT)")
        .await
        .unwrap();
    let stats = env.proxy.stats().clone();
    let variants = [
        ("no tracking", CLIENT_CAPS),
        (
            "no tracking, EOF packets",
            CLIENT_CAPS & !CLIENT_DEPRECATE_EOF,
        ),
        ("tracking", CLIENT_CAPS | CLIENT_SESSION_TRACK),
    ];
    for (name, caps) in variants {
        let mut runs = Vec::new();
        for addr in [env.primary_addr(), env.proxy_addr()] {
            admin
                .query_drop("DROP TABLE IF EXISTS app.wire")
                .await
                .unwrap();
            let table = "CREATE TABLE app.wire (k INT PRIMARY KEY, v INT)";
            admin.query_drop(table).await.unwrap();
            let before = stats.acknowledged_writes.load(Relaxed);
            runs.push(session(&addr, caps).await);
            let counted = stats.acknowledged_writes.load(Relaxed) - before;
            let expected = if addr == env.proxy_addr() { COMMITS } else { 0 };
            assert_eq!(
                counted, expected,
                "{name}: commits the ledger saw via {addr}"
            );
        }
        let (direct, proxied) = (&runs[0], &runs[1]);
        assert_eq!(direct.len(), proxied.len(), "{name}: packet count");
        for (i, (d, p)) in direct.iter().zip(proxied).enumerate() {
            assert_eq!(d, p, "{name}: packet {i} differs from direct");
        }
        let tracked = direct
            .iter()
            .filter(|p| p.starts_with(&[0]) && ok_status(p) & SESSION_STATE_CHANGED != 0)
            .count();
        let gtids = direct.iter().filter(|p| ok::last_gtid(p).is_some()).count();
        if caps & CLIENT_SESSION_TRACK == 0 {
            assert_eq!((tracked, gtids), (0, 0), "{name}: no state information");
        } else {
            assert!(gtids as u64 >= COMMITS, "{name}: {gtids} OKs name a GTID");
        }
    }
    let pos = env.cluster.primary().gtid_binlog_pos().await.unwrap();
    assert_eq!(env.proxy.ledger().position().to_string(), pos);
}
