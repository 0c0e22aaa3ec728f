//! The two clients a case can run on: mysql_async (text and binary protocol,
//! COM_CHANGE_USER, COM_RESET_CONNECTION) and a raw-protocol client (server
//! cursors, COM_CHANGE_USER answered with an auth switch, pipelining). Every
//! answer is reduced to rows of optional strings so two sessions compare.

use std::fmt;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Params, QueryResult, Row, Statement, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mysql_zk_proxy_protocol::{command, status};

use crate::common::raw::RawConn;

/// How long any single answer may take.
pub const ANSWER_WAIT: Duration = Duration::from_secs(30);

pub type Rows = Vec<Vec<Option<String>>>;

/// A failed command: the server's error code (None: not a server error).
#[derive(Debug, Clone)]
pub struct Fail {
    pub code: Option<u16>,
    pub msg: String,
}

/// The answer to one command.
pub type Answer = Result<Rows, Fail>;

/// Two answers are the same when the rows are equal, or both are errors
/// with the same server code (messages name per-session objects).
pub fn same(a: &Answer, b: &Answer) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.code.is_some() && x.code == y.code,
        _ => false,
    }
}

pub fn refusal(a: &Answer) -> Option<u16> {
    match a {
        Err(Fail {
            code: Some(c @ (9005 | 9006)),
            ..
        }) => Some(*c),
        _ => None,
    }
}

pub struct Shown<'a>(pub &'a Answer);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Err(e) => match e.code {
                Some(c) => write!(f, "ERROR {c}: {}", e.msg),
                None => write!(f, "client error: {}", e.msg),
            },
            Ok(rows) => {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let cells: Vec<&str> =
                            r.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                        cells.join(",")
                    })
                    .collect();
                write!(f, "[{}]", rows.join(" | "))
            }
        }
    }
}

fn fail(e: mysql_async::Error) -> Fail {
    match e {
        mysql_async::Error::Server(s) => Fail {
            code: Some(s.code),
            msg: s.message,
        },
        other => Fail {
            code: None,
            msg: other.to_string(),
        },
    }
}

fn timed_out() -> Fail {
    Fail {
        code: None,
        msg: format!("no answer within {ANSWER_WAIT:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("0x{}", hex(b)),
    }
}

fn show(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(text(b)),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(x) => Some(format!("{x:?}")),
        Value::Double(x) => Some(format!("{x:?}")),
        other => Some(format!("{other:?}")),
    }
}

/// Every result set of `r`: a row of column types and character sets, then
/// the rows; a result without columns is `ok affected=N`.
async fn drain<P: Protocol>(mut r: QueryResult<'_, '_, P>) -> Result<Rows, mysql_async::Error> {
    let mut out = Vec::new();
    loop {
        let cols = r.columns();
        let rows: Vec<Row> = r.collect().await?;
        match cols {
            Some(cols) if !cols.is_empty() => {
                out.push(
                    cols.iter()
                        .map(|c| Some(format!("{:?}/{}", c.column_type(), c.character_set())))
                        .collect(),
                );
                out.extend(
                    rows.into_iter()
                        .map(|row| row.unwrap().iter().map(show).collect()),
                );
            }
            _ => out.push(vec![Some(format!("ok affected={}", r.affected_rows()))]),
        }
        if r.is_empty() {
            break;
        }
    }
    r.drop_result().await?;
    Ok(out)
}

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, Fail>>) -> Result<T, Fail> {
    tokio::time::timeout(ANSWER_WAIT, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// A session on either client.
pub enum Session {
    Async { conn: Conn, stmts: Vec<Statement> },
    Raw(Raw),
}

impl Session {
    pub async fn query(&mut self, sql: &str) -> Answer {
        match self {
            Session::Async { conn, .. } => {
                bounded(async {
                    let r = conn.query_iter(sql).await.map_err(fail)?;
                    drain(r).await.map_err(fail)
                })
                .await
            }
            Session::Raw(r) => r.query(sql).await,
        }
    }

    /// Prepare a statement (binary protocol); it gets the next index.
    pub async fn prepare(&mut self, sql: &str) -> Answer {
        match self {
            Session::Async { conn, stmts } => {
                let s = bounded(async { conn.prep(sql).await.map_err(fail) }).await?;
                stmts.push(s);
                Ok(vec![])
            }
            Session::Raw(r) => r.prepare(sql).await,
        }
    }

    pub async fn execute(&mut self, idx: usize, params: &[String]) -> Answer {
        match self {
            Session::Async { conn, stmts } => {
                let stmt = stmts[idx].clone();
                let params = Params::Positional(params.iter().map(|p| p.as_str().into()).collect());
                bounded(async {
                    let r = conn.exec_iter(stmt, params).await.map_err(fail)?;
                    drain(r).await.map_err(fail)
                })
                .await
            }
            Session::Raw(_) => unsupported("binary EXECUTE with parameters on the raw client"),
        }
    }

    pub async fn change_user(&mut self, user: &str, pass: &str, db: &str) -> Answer {
        match self {
            Session::Async { conn, stmts } => {
                stmts.clear();
                let opts = ChangeUserOpts::new()
                    .with_user(Some(user.into()))
                    .with_pass(Some(pass.into()))
                    .with_db_name(Some(db.into()));
                bounded(async { conn.change_user(opts).await.map_err(fail) }).await?;
                Ok(vec![])
            }
            Session::Raw(r) => r.change_user_with_switch(user, pass, db).await,
        }
    }

    pub async fn reset(&mut self) -> Answer {
        match self {
            Session::Async { conn, stmts } => {
                stmts.clear();
                let done = bounded(async { conn.reset().await.map_err(fail) }).await?;
                Ok(vec![vec![Some(format!("reset={done}"))]])
            }
            Session::Raw(_) => unsupported("COM_RESET_CONNECTION on the raw client"),
        }
    }

    pub async fn open_cursor(&mut self, idx: usize) -> Answer {
        match self {
            Session::Raw(r) => r.open_cursor(idx).await,
            Session::Async { .. } => unsupported("a cursor on mysql_async"),
        }
    }

    pub async fn fetch(&mut self, idx: usize, n: u32) -> Answer {
        match self {
            Session::Raw(r) => r.fetch(idx, n).await,
            Session::Async { .. } => unsupported("COM_STMT_FETCH on mysql_async"),
        }
    }
}

fn unsupported(what: &str) -> Answer {
    Err(Fail {
        code: None,
        msg: format!("the suite does not support {what}"),
    })
}

// --- raw protocol -------------------------------------------------------

const CURSOR_TYPE_READ_ONLY: u8 = 0x01;

/// A raw-protocol session (logged in with mysql_native_password and
/// CLIENT_DEPRECATE_EOF by [`RawConn`]).
pub struct Raw {
    stream: TcpStream,
    stmts: Vec<u32>,
    /// Result columns per prepared statement.
    columns: Vec<u16>,
}

pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

fn err_packet(p: &[u8]) -> Fail {
    let code = u16::from_le_bytes([p[1], p[2]]);
    let msg = if p.get(3) == Some(&b'#') {
        &p[9..]
    } else {
        &p[3..]
    };
    Fail {
        code: Some(code),
        msg: String::from_utf8_lossy(msg).into_owned(),
    }
}

fn io(e: impl fmt::Display) -> Fail {
    Fail {
        code: None,
        msg: e.to_string(),
    }
}

/// A length-encoded integer at `*at`, advancing it; None for the NULL marker.
fn lenenc(p: &[u8], at: &mut usize) -> Option<u64> {
    let b = p[*at];
    *at += 1;
    let n = |k: usize, at: &mut usize| {
        let mut v = [0u8; 8];
        v[..k].copy_from_slice(&p[*at..*at + k]);
        *at += k;
        u64::from_le_bytes(v)
    };
    match b {
        0xfb => None,
        0xfc => Some(n(2, at)),
        0xfd => Some(n(3, at)),
        0xfe => Some(n(8, at)),
        x => Some(x as u64),
    }
}

fn lenenc_str(p: &[u8], at: &mut usize) -> Option<String> {
    let len = lenenc(p, at)? as usize;
    let s = text(&p[*at..*at + len]);
    *at += len;
    Some(s)
}

/// Status flags of an OK packet (0x00 or 0xfe header).
fn ok_status(p: &[u8]) -> u16 {
    let mut at = 1;
    lenenc(p, &mut at);
    lenenc(p, &mut at);
    u16::from_le_bytes([p[at], p[at + 1]])
}

fn is_end(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 0xff_ffff
}

impl Raw {
    pub async fn login(addr: &str, user: &str, pass: &str, db: &str) -> anyhow::Result<Raw> {
        let c = RawConn::login(addr, user, pass, db).await?;
        Ok(Raw {
            stream: c.into_stream(),
            stmts: Vec::new(),
            columns: Vec::new(),
        })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        self.stream.write_all(bytes).await.map_err(io)
    }

    pub async fn read(&mut self) -> Result<Vec<u8>, Fail> {
        Ok(self.read_with_seq().await?.1)
    }

    /// Column definitions and text rows until the end packet, for every
    /// result set of one command whose first packet is `first`.
    async fn text_result(&mut self, mut first: Vec<u8>) -> Answer {
        let mut out = Vec::new();
        loop {
            let status = match first[0] {
                0xff => return Err(err_packet(&first)),
                0x00 => {
                    let mut at = 1;
                    let affected = lenenc(&first, &mut at).unwrap_or(0);
                    out.push(vec![Some(format!("ok affected={affected}"))]);
                    ok_status(&first)
                }
                _ => {
                    let n = lenenc(&first, &mut 0).unwrap_or(0) as usize;
                    for _ in 0..n {
                        self.read().await?;
                    }
                    loop {
                        let p = self.read().await?;
                        if p[0] == 0xff {
                            return Err(err_packet(&p));
                        }
                        if is_end(&p) {
                            break ok_status(&p);
                        }
                        let mut at = 0;
                        out.push((0..n).map(|_| lenenc_str(&p, &mut at)).collect());
                    }
                }
            };
            if status & status::MORE_RESULTS_EXISTS == 0 {
                return Ok(out);
            }
            first = self.read().await?;
        }
    }

    pub async fn query(&mut self, sql: &str) -> Answer {
        let mut p = vec![command::QUERY];
        p.extend_from_slice(sql.as_bytes());
        self.write(&frame(0, &p)).await?;
        let first = self.read().await?;
        self.text_result(first).await
    }

    /// The reply to a command already written (e.g. one of a pipeline).
    pub async fn reply(&mut self) -> Answer {
        let first = self.read().await?;
        self.text_result(first).await
    }

    async fn prepare(&mut self, sql: &str) -> Answer {
        let mut p = vec![command::STMT_PREPARE];
        p.extend_from_slice(sql.as_bytes());
        self.write(&frame(0, &p)).await?;
        let ok = self.read().await?;
        if ok[0] == 0xff {
            return Err(err_packet(&ok));
        }
        let id = u32::from_le_bytes(ok[1..5].try_into().unwrap());
        let cols = u16::from_le_bytes([ok[5], ok[6]]);
        let params = u16::from_le_bytes([ok[7], ok[8]]);
        for _ in 0..(cols + params) {
            self.read().await?;
        }
        self.stmts.push(id);
        self.columns.push(cols);
        Ok(vec![])
    }

    /// command::STMT_EXECUTE without parameters, asking for a read-only cursor:
    /// the column count and whether the server kept a cursor open.
    async fn open_cursor(&mut self, idx: usize) -> Answer {
        let mut p = vec![command::STMT_EXECUTE];
        p.extend_from_slice(&self.stmts[idx].to_le_bytes());
        p.push(CURSOR_TYPE_READ_ONLY);
        p.extend_from_slice(&1u32.to_le_bytes());
        self.write(&frame(0, &p)).await?;
        let first = self.read().await?;
        match first[0] {
            0xff => return Err(err_packet(&first)),
            0x00 => return Ok(vec![vec![Some("ok, no result set".into())]]),
            _ => {}
        }
        let n = lenenc(&first, &mut 0).unwrap_or(0);
        for _ in 0..n {
            self.read().await?;
        }
        let mut rows = 0;
        loop {
            let p = self.read().await?;
            if p[0] == 0xff {
                return Err(err_packet(&p));
            }
            if is_end(&p) {
                let cursor = ok_status(&p) & 0x0040 != 0;
                return Ok(vec![vec![Some(format!(
                    "columns={n} cursor={cursor} rows={rows}"
                ))]]);
            }
            rows += 1;
        }
    }

    /// command::STMT_FETCH of `n` rows (binary rows of string columns).
    async fn fetch(&mut self, idx: usize, n: u32) -> Answer {
        let mut p = vec![command::STMT_FETCH];
        p.extend_from_slice(&self.stmts[idx].to_le_bytes());
        p.extend_from_slice(&n.to_le_bytes());
        self.write(&frame(0, &p)).await?;
        let cols = self.columns[idx] as usize;
        let mut out = Vec::new();
        loop {
            let p = self.read().await?;
            if p[0] == 0xff {
                return Err(err_packet(&p));
            }
            if is_end(&p) {
                let last = ok_status(&p) & status::LAST_ROW_SENT != 0;
                out.push(vec![Some(format!("last_row_sent={last}"))]);
                return Ok(out);
            }
            let bitmap = (cols + 9) / 8;
            let nulls = &p[1..1 + bitmap];
            let mut at = 1 + bitmap;
            out.push(
                (0..cols)
                    .map(|i| {
                        let bit = i + 2;
                        if nulls[bit / 8] & (1 << (bit % 8)) != 0 {
                            None
                        } else {
                            lenenc_str(&p, &mut at)
                        }
                    })
                    .collect(),
            );
        }
    }

    /// command::CHANGE_USER naming a plugin the server does not use for `user`,
    /// so the server answers with an auth switch request; answered with the
    /// mysql_native_password scramble of the new nonce.
    async fn change_user_with_switch(&mut self, user: &str, pass: &str, db: &str) -> Answer {
        let mut p = vec![command::CHANGE_USER];
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(20);
        p.extend_from_slice(&[0x5a; 20]);
        p.extend_from_slice(db.as_bytes());
        p.push(0);
        p.extend_from_slice(&45u16.to_le_bytes());
        p.extend_from_slice(b"client_ed25519\0");
        self.write(&frame(0, &p)).await?;
        let (seq, reply) = self.read_with_seq().await?;
        if reply[0] != 0xfe {
            let what = if reply[0] == 0xff {
                return Err(err_packet(&reply));
            } else {
                format!("expected an auth switch request, got {:02X?}", &reply[..1])
            };
            return Err(io(what));
        }
        let rest = &reply[1..];
        let nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let plugin = String::from_utf8_lossy(&rest[..nul]).into_owned();
        let data = &rest[(nul + 1).min(rest.len())..];
        let nonce = data.strip_suffix(&[0]).unwrap_or(data);
        if plugin != "mysql_native_password" {
            return Err(io(format!("auth switch to {plugin}")));
        }
        let auth = mysql_common::scramble::scramble_native(nonce, pass.as_bytes())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        self.write(&frame(seq.wrapping_add(1), &auth)).await?;
        let (_, done) = self.read_with_seq().await?;
        match done[0] {
            0x00 => Ok(vec![vec![Some("switched".into())]]),
            0xff => Err(err_packet(&done)),
            x => Err(io(format!(
                "unexpected packet {x:02X} after the auth switch"
            ))),
        }
    }

    async fn read_with_seq(&mut self) -> Result<(u8, Vec<u8>), Fail> {
        let read = async {
            let mut h = [0u8; 4];
            self.stream.read_exact(&mut h).await?;
            let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
            let mut p = vec![0u8; len];
            self.stream.read_exact(&mut p).await?;
            Ok::<_, std::io::Error>((h[3], p))
        };
        match tokio::time::timeout(ANSWER_WAIT, read).await {
            Ok(r) => r.map_err(io),
            Err(_) => Err(timed_out()),
        }
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}
