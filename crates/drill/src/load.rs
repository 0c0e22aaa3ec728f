//! The drill's load: one task per worker (autocommit reads, autocommit
//! writes, short transactions, prepared statements, idle pooled
//! connections), each timing every operation and remembering the writes the
//! server acknowledged. A lost connection is recorded and re-opened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Statement};
use mysql_zk_proxy_core::acknowledged::Gtid;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// The drill's own table in the app database: one row per write, keyed by
/// (run, seq); `n` counts the UPDATEs a transaction made to its row.
pub const TABLE: &str = "drill_writes";

/// `CREATE TABLE IF NOT EXISTS` for [`TABLE`].
pub(crate) fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (run BIGINT NOT NULL, seq BIGINT NOT NULL, \
         kind VARCHAR(16) NOT NULL, n INT NOT NULL DEFAULT 0, \
         at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (run, seq))"
    )
}

/// What a worker does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Autocommit point SELECT (text protocol).
    Read,
    /// Autocommit INSERT of a new row (text protocol).
    Write,
    /// BEGIN; INSERT; UPDATE; COMMIT.
    Transaction,
    /// COM_STMT_EXECUTE of statements prepared once per connection.
    Prepared,
    /// A held-open connection that runs `SELECT 1` every few seconds.
    Idle,
    /// Opening a connection (the first one and every reconnect).
    Connect,
}

impl OpKind {
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Transaction => "transaction",
            OpKind::Prepared => "prepared",
            OpKind::Idle => "idle",
            OpKind::Connect => "connect",
        }
    }
}

/// How an operation failed, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrKind {
    /// An error packet from the proxy or the server, by code.
    Server(u16),
    /// The connection broke (socket error, EOF, driver saw it closed).
    ConnectionLost,
    /// No answer within the operation timeout (the drill closed the connection).
    Timeout,
}

impl ErrKind {
    pub fn label(self) -> String {
        match self {
            ErrKind::Server(code) => format!("error {code}"),
            ErrKind::ConnectionLost => "connection lost".into(),
            ErrKind::Timeout => "timeout".into(),
        }
    }
}

/// One timed operation.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub kind: OpKind,
    /// Since the drill started.
    pub start: Duration,
    pub latency: Duration,
    /// `None` when it succeeded.
    pub error: Option<ErrKind>,
    /// A successful write that the server acknowledged.
    pub wrote: bool,
}

impl Op {
    pub fn end(&self) -> Duration {
        self.start + self.latency
    }
}

/// A write the server acknowledged: row `seq` of this run must exist with `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub seq: u64,
    pub n: i64,
    /// Its GTID, when the client saw it (the unplanned drill's writers).
    pub gtid: Option<Gtid>,
    /// When the acknowledgement arrived, since the drill started.
    pub at: Duration,
}

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    pub acked: AtomicU64,
}

/// What every worker shares.
#[derive(Debug)]
pub struct LoadCtx {
    pub opts: Opts,
    pub run: u64,
    pub t0: Instant,
    pub think: Duration,
    pub idle_every: Duration,
    pub op_timeout: Duration,
    pub next_seq: AtomicU64,
    pub live: Live,
    pub stop: CancellationToken,
    /// `--unplanned`: writes and transactions go through GTID-aware
    /// connections ([`crate::unplanned::writer`]).
    pub unplanned: bool,
    /// Every acknowledged write so far, in order (the unplanned drill's
    /// ground truth is taken from it at each failover).
    pub acked_log: std::sync::Mutex<Vec<Acked>>,
}

impl LoadCtx {
    /// Count an acknowledged write (the worker keeps it too).
    pub(crate) fn note_acked(&self, a: Acked) {
        self.live.acked.fetch_add(1, Relaxed);
        let mut log = self.acked_log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(a);
    }
}

/// Everything one worker saw.
#[derive(Debug, Default)]
pub struct WorkerResult {
    pub ops: Vec<Op>,
    pub acked: Vec<Acked>,
    /// Connections lost (by an error or a proxy error that closes them).
    pub dropped: u64,
    /// The first message seen for each error kind, with when it started.
    pub samples: BTreeMap<ErrKind, (Duration, String)>,
}

/// Classify a client error: its kind and whether the connection is gone.
pub(crate) fn classify(e: &mysql_async::Error) -> (ErrKind, bool) {
    match e {
        // 9005 and 9006 are sent right before the proxy closes the connection.
        mysql_async::Error::Server(s) => (ErrKind::Server(s.code), matches!(s.code, 9005 | 9006)),
        _ => (ErrKind::ConnectionLost, true),
    }
}

/// An open connection with what the worker prepared on it.
struct Live1 {
    conn: Conn,
    stmts: Option<(Statement, Statement)>,
    /// Alternates the prepared worker between its INSERT and its SELECT.
    flip: bool,
}

/// Run one worker of `kind` until `ctx.stop`.
pub async fn worker(ctx: Arc<LoadCtx>, kind: OpKind) -> WorkerResult {
    if ctx.unplanned && matches!(kind, OpKind::Write | OpKind::Transaction) {
        return crate::unplanned::writer::worker(ctx, kind).await;
    }
    let mut res = WorkerResult::default();
    let mut live: Option<Live1> = None;
    while !ctx.stop.is_cancelled() {
        let Some(l) = live.as_mut() else {
            live = connect(&ctx, kind, &mut res).await;
            if live.is_none() {
                pause(&ctx, Duration::from_millis(100)).await;
            }
            continue;
        };
        let (start, out, latency) = timed(&ctx, one_op(&ctx, kind, l)).await;
        let out = match out {
            Ok(Ok(ack)) => Ok(ack),
            Ok(Err(e)) => {
                let (k, lost) = classify(&e);
                Err((k, lost, Some(e.to_string())))
            }
            Err(_) => Err((ErrKind::Timeout, true, None)),
        };
        let (error, lost) = settle(&ctx, &mut res, kind, (start, latency), out);
        if lost {
            live = None;
            continue;
        }
        if error.is_some() && kind == OpKind::Transaction {
            let _ = l.conn.query_drop("ROLLBACK").await;
        }
        let wait = if kind == OpKind::Idle {
            ctx.idle_every
        } else {
            ctx.think
        };
        pause(&ctx, wait).await;
    }
    if let Some(l) = live {
        let _ = l.conn.disconnect().await;
    }
    res
}

pub(crate) fn record(ctx: &LoadCtx, res: &mut WorkerResult, op: Op) {
    ctx.live.ops.fetch_add(1, Relaxed);
    if op.error.is_some() {
        ctx.live.errors.fetch_add(1, Relaxed);
    }
    res.ops.push(op);
}

/// How an operation of a worker failed: its kind, whether the connection
/// is gone, and its message (`None`: none to sample, a timeout).
pub(crate) type Failed = (ErrKind, bool, Option<String>);

/// Account one finished operation of a worker that started at `start` and
/// took `latency`: the first message of each error kind, the [`record`]ed
/// op, its acknowledged write (`Ok(Some)`), and the connection as dropped
/// when it was lost other than by a timeout. Returns its error and whether
/// the connection is gone.
pub(crate) fn settle(
    ctx: &LoadCtx,
    res: &mut WorkerResult,
    kind: OpKind,
    (start, latency): (Duration, Duration),
    out: Result<Option<Acked>, Failed>,
) -> (Option<ErrKind>, bool) {
    let (error, lost, ack) = match out {
        Ok(ack) => (None, false, ack),
        Err((k, lost, message)) => {
            if let Some(m) = message {
                res.samples.entry(k).or_insert((start, m));
            }
            (Some(k), lost, None)
        }
    };
    let op = Op {
        kind,
        start,
        latency,
        error,
        wrote: ack.is_some(),
    };
    record(ctx, res, op);
    if let Some(a) = ack {
        res.acked.push(a);
        ctx.note_acked(a);
    }
    if lost && error != Some(ErrKind::Timeout) {
        res.dropped += 1;
        ctx.live.dropped.fetch_add(1, Relaxed);
    }
    (error, lost)
}

/// Sleep `d`, or less when the drill stops.
/// Run one operation bounded by `drill.op_timeout`: when it started (since
/// the drill's start), its outcome (`Err` on timeout) and its latency.
pub(crate) async fn timed<T>(
    ctx: &LoadCtx,
    op: impl std::future::Future<Output = T>,
) -> (Duration, Result<T, tokio::time::error::Elapsed>, Duration) {
    let start = ctx.t0.elapsed();
    let out = tokio::time::timeout(ctx.op_timeout, op).await;
    (start, out, ctx.t0.elapsed() - start)
}

pub(crate) async fn pause(ctx: &LoadCtx, d: Duration) {
    if d.is_zero() {
        return tokio::task::yield_now().await;
    }
    tokio::select! {
        _ = ctx.stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Open a connection (and prepare statements for the prepared worker),
/// recorded as a `connect` operation.
async fn connect(ctx: &LoadCtx, kind: OpKind, res: &mut WorkerResult) -> Option<Live1> {
    let start = ctx.t0.elapsed();
    let out = tokio::time::timeout(ctx.op_timeout, async {
        let mut conn = Conn::new(ctx.opts.clone()).await?;
        let stmts = match kind {
            OpKind::Prepared => Some((
                conn.prep(format!(
                    "INSERT INTO {TABLE} (run, seq, kind) VALUES (?, ?, 'prepared')"
                ))
                .await?,
                conn.prep(format!("SELECT n FROM {TABLE} WHERE run = ? AND seq = ?"))
                    .await?,
            )),
            _ => None,
        };
        Ok::<_, mysql_async::Error>(Live1 {
            conn,
            stmts,
            flip: false,
        })
    })
    .await;
    let latency = ctx.t0.elapsed() - start;
    let (live, error) = match out {
        Ok(Ok(l)) => (Some(l), None),
        Ok(Err(e)) => {
            let k = classify(&e).0;
            res.samples
                .entry(k)
                .or_insert_with(|| (start, e.to_string()));
            (None, Some(k))
        }
        Err(_) => (None, Some(ErrKind::Timeout)),
    };
    let op = Op {
        kind: OpKind::Connect,
        start,
        latency,
        error,
        wrote: false,
    };
    record(ctx, res, op);
    live
}

/// A write acknowledged now, its GTID unseen (mysql_async does not ask for
/// session tracking).
pub(crate) fn acked(ctx: &LoadCtx, seq: u64, n: i64) -> Acked {
    Acked {
        seq,
        n,
        gtid: None,
        at: ctx.t0.elapsed(),
    }
}

/// One operation of `kind`; `Some` when it was an acknowledged write.
async fn one_op(ctx: &LoadCtx, kind: OpKind, l: &mut Live1) -> mysql_async::Result<Option<Acked>> {
    let run = ctx.run;
    match kind {
        OpKind::Read => {
            let seq = ctx.next_seq.load(Relaxed).saturating_sub(1);
            let sql = format!("SELECT n FROM {TABLE} WHERE run = {run} AND seq = {seq}");
            l.conn.query_drop(sql).await.map(|()| None)
        }
        OpKind::Write => {
            let seq = ctx.next_seq.fetch_add(1, Relaxed);
            let sql =
                format!("INSERT INTO {TABLE} (run, seq, kind) VALUES ({run}, {seq}, 'write')");
            l.conn.query_drop(sql).await?;
            Ok(Some(acked(ctx, seq, 0)))
        }
        OpKind::Transaction => {
            let seq = ctx.next_seq.fetch_add(1, Relaxed);
            let c = &mut l.conn;
            c.query_drop("BEGIN").await?;
            c.query_drop(format!(
                "INSERT INTO {TABLE} (run, seq, kind) VALUES ({run}, {seq}, 'transaction')"
            ))
            .await?;
            c.query_drop(format!(
                "UPDATE {TABLE} SET n = n + 1 WHERE run = {run} AND seq = {seq}"
            ))
            .await?;
            c.query_drop("COMMIT").await?;
            Ok(Some(acked(ctx, seq, 1)))
        }
        OpKind::Prepared => {
            let (insert, select) = l.stmts.clone().expect("prepared at connect");
            l.flip = !l.flip;
            if l.flip {
                let seq = ctx.next_seq.fetch_add(1, Relaxed);
                l.conn.exec_drop(&insert, (run, seq)).await?;
                Ok(Some(acked(ctx, seq, 0)))
            } else {
                let seq = ctx.next_seq.load(Relaxed).saturating_sub(1);
                l.conn.exec_drop(&select, (run, seq)).await.map(|()| None)
            }
        }
        OpKind::Idle | OpKind::Connect => l.conn.query_drop("SELECT 1").await.map(|()| None),
    }
}
