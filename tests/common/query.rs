//! Reading one value back over a client connection.

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::Conn;

/// The first column of the first row of `sql`, `None` for no row; panics on
/// an error.
pub async fn first<T: FromValue + Send + 'static>(c: &mut Conn, sql: &str) -> Option<T> {
    c.query_first(sql).await.unwrap()
}

/// The first column of the first row of `sql`; panics on an error or when
/// there is no row.
pub async fn one<T: FromValue + Send + 'static>(c: &mut Conn, sql: &str) -> T {
    first(c, sql)
        .await
        .unwrap_or_else(|| panic!("no row from {sql}"))
}
