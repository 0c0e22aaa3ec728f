//! The unplanned drill's `write` and `transaction` workers: the same
//! statements as [`crate::load`]'s, over [`RawConn`]s that see each
//! commit's GTID in its OK, so the drill's ground truth names transactions
//! the way the proxy's loss report does.

use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConn, Reply};
use crate::load::{
    pause, record, settle, timed, Acked, ErrKind, LoadCtx, Op, OpKind, WorkerResult, TABLE,
};

/// How an operation failed: its kind, whether the connection is gone, the message.
type Failure = (ErrKind, bool, String);

/// Run one writer of `kind` (write or transaction) until `ctx.stop`.
pub async fn worker(ctx: Arc<LoadCtx>, kind: OpKind) -> WorkerResult {
    let mut res = WorkerResult::default();
    let mut conn: Option<RawConn> = None;
    while !ctx.stop.is_cancelled() {
        let Some(c) = conn.as_mut() else {
            conn = connect(&ctx, &mut res).await;
            if conn.is_none() {
                pause(&ctx, Duration::from_millis(100)).await;
            }
            continue;
        };
        let (start, out, latency) = timed(&ctx, one_op(&ctx, kind, c)).await;
        let out = out.unwrap_or_else(|_| Err((ErrKind::Timeout, true, "timeout".into())));
        let out = out.map(Some).map_err(|(k, lost, msg)| (k, lost, Some(msg)));
        let (error, lost) = settle(&ctx, &mut res, kind, (start, latency), out);
        if lost {
            conn = None;
            continue;
        }
        if error.is_some() && kind == OpKind::Transaction {
            let _ = c.query("ROLLBACK").await;
        }
        pause(&ctx, ctx.think).await;
    }
    res
}

/// Log in through the proxy, recorded as a `connect` operation.
async fn connect(ctx: &LoadCtx, res: &mut WorkerResult) -> Option<RawConn> {
    let start = ctx.t0.elapsed();
    let o = &ctx.opts;
    let addr = (o.ip_or_hostname(), o.tcp_port());
    let login = (
        o.user().unwrap_or_default(),
        o.pass().unwrap_or_default(),
        o.db_name().unwrap_or_default(),
    );
    let out = tokio::time::timeout(ctx.op_timeout, RawConn::connect(addr, login)).await;
    let failure = match out {
        Ok(Ok(Ok(c))) => Ok(c),
        Ok(Ok(Err(Reply::Err(code, msg)))) => Err((ErrKind::Server(code), msg)),
        Ok(Ok(Err(Reply::Ok(_)))) => Err((ErrKind::ConnectionLost, "login".into())),
        Ok(Err(e)) => Err((ErrKind::ConnectionLost, e.to_string())),
        Err(_) => Err((ErrKind::Timeout, "timeout".into())),
    };
    let (conn, error) = match failure {
        Ok(c) => (Some(c), None),
        Err((k, msg)) => {
            res.samples.entry(k).or_insert_with(|| (start, msg));
            (None, Some(k))
        }
    };
    let op = Op {
        kind: OpKind::Connect,
        start,
        latency: ctx.t0.elapsed() - start,
        error,
        wrote: false,
    };
    record(ctx, res, op);
    conn
}

/// One write (autocommit INSERT) or transaction (BEGIN, INSERT, UPDATE,
/// COMMIT); the acknowledged write with the GTID of its commit.
async fn one_op(ctx: &LoadCtx, kind: OpKind, c: &mut RawConn) -> Result<Acked, Failure> {
    let run = ctx.run;
    let seq = ctx
        .next_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let label = kind.label();
    let insert = format!("INSERT INTO {TABLE} (run, seq, kind) VALUES ({run}, {seq}, '{label}')");
    let statements = match kind {
        OpKind::Transaction => vec![
            "BEGIN".to_string(),
            insert,
            format!("UPDATE {TABLE} SET n = n + 1 WHERE run = {run} AND seq = {seq}"),
            "COMMIT".to_string(),
        ],
        _ => vec![insert],
    };
    let mut gtid = None;
    for sql in &statements {
        match c.query(sql).await {
            Ok(Reply::Ok(g)) => gtid = g,
            Ok(Reply::Err(code, msg)) => {
                return Err((ErrKind::Server(code), matches!(code, 9005 | 9006), msg))
            }
            Err(e) => return Err((ErrKind::ConnectionLost, true, e.to_string())),
        }
    }
    Ok(Acked {
        seq,
        n: i64::from(kind == OpKind::Transaction),
        gtid,
        at: ctx.t0.elapsed(),
    })
}
