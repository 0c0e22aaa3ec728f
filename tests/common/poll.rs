//! Bounded polling of a server through a direct connection.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Run `count_sql` (a query of one integer, e.g. `SELECT COUNT(*) ...`) on
/// `conn` every 20 ms until `done` holds of its value; fail with `what`
/// after `within`.
pub async fn until_count(
    conn: &mut Conn,
    count_sql: &str,
    within: Duration,
    what: &str,
    done: impl Fn(i64) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let n: i64 = conn.query_first(count_sql).await.unwrap().unwrap();
        if done(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
