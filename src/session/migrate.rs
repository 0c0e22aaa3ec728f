//! Moving an idle session to a new primary: a new backend login as the
//! client's own user, answered with the credential derived from its
//! mysql_native_password exchange (no plaintext), then the session's schema
//! and SET statements replayed, its prepared statements prepared again. The
//! client sees none of it.

use std::io;

use tokio::io::AsyncWriteExt;

use crate::backend::{self, OpenError};
use crate::config::BackendConfig;
use crate::failover::native::{respond, DerivedPassword};
use crate::protocol::caps;
use crate::protocol::handshake::Greeting;
use crate::protocol::packet_io::{frame, PacketReader};
use crate::protocol::{PacketInfo, ServerEvent, Tracker, PREFIX_LEN};
use crate::routing::Primary;
use crate::session::login::LoginRecord;
use crate::session::secure;
use crate::session::state::CarriedState;
use crate::session::stream::Stream;
use crate::tls::BackendTls;

const NATIVE: &str = "mysql_native_password";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("new primary: {0}")]
    Open(#[from] OpenError),
    #[error("new primary refused the login: {0}")]
    Refused(String),
    #[error("new primary asked for auth plugin {0}, only mysql_native_password can be replayed")]
    Plugin(String),
    #[error("replaying {stmt:?} failed: {error}")]
    Replay { stmt: String, error: String },
    #[error("preparing statement {id} again: {error}")]
    Prepare { id: u32, error: String },
    #[error("talking to the new primary: {0}")]
    Io(#[from] io::Error),
    #[error("credential: {0}")]
    Credential(String),
    #[error("{0}")]
    Tls(String),
}

/// A backend the session was moved to.
pub struct Migrated {
    pub stream: Stream,
    pub greeting: Greeting,
    /// Status flags after the login and replay.
    pub status: u16,
    /// Prepared statements: (client id, id on the new backend).
    pub statements: Vec<(u32, u32)>,
}

/// Log in on `primary` as `record.user` and replay `state`.
pub async fn migrate(
    primary: &Primary,
    record: &LoginRecord,
    state: &CarriedState,
    password: &DerivedPassword,
    cfg: &BackendConfig,
    tls: Option<&BackendTls>,
) -> Result<Migrated, MigrateError> {
    let timeout = cfg.connect_timeout;
    let backend::Opened {
        backend: be,
        greeting,
    } = backend::open(primary, cfg).await?;
    let mut reader = PacketReader::new(64 * 1024);
    let auth = respond(password, &scramble20(&greeting.scramble)?);
    let mut response = handshake_response(record, state, &greeting, &auth);
    let mut stream = Stream::Plain(be.stream);
    let mut seq = be.greeting_seq.wrapping_add(1);
    if let Some(b) = tls {
        let request = secure::ssl_request(&response);
        let started =
            secure::start_backend_tls(&mut stream, &greeting, b, &primary.host, request, seq);
        tokio::time::timeout(timeout, started)
            .await
            .map_err(|_| MigrateError::Tls(format!("no TLS handshake within {timeout:?}")))?
            .map_err(MigrateError::Tls)?;
        secure::set_ssl_flag(&mut response, true);
        seq = seq.wrapping_add(1);
    }
    stream.write_all(&frame(seq, &response)).await?;
    stream.flush().await?;
    let mut status = login_reply(&mut stream, &mut reader, password).await?;
    for stmt in &state.sets {
        status = run_simple(&mut stream, &mut reader, stmt).await?;
    }
    let caps = greeting.caps & record.client_caps;
    let mariadb = greeting.mariadb_caps & record.client_mariadb_caps;
    let mut tracker = Tracker::logged_in(caps, mariadb, status);
    let mut statements = Vec::new();
    for st in state.stmts.to_prepare() {
        let id = prepare(&mut stream, &mut reader, &mut tracker, st.sql, st.params)
            .await
            .map_err(|error| MigrateError::Prepare {
                id: st.client_id,
                error,
            })?;
        statements.push((st.client_id, id));
    }
    Ok(Migrated {
        stream,
        greeting,
        status: tracker.status(),
        statements,
    })
}

/// Read the login reply, answering an auth switch to mysql_native_password.
async fn login_reply(
    s: &mut Stream,
    reader: &mut PacketReader,
    password: &DerivedPassword,
) -> Result<u16, MigrateError> {
    loop {
        let p = reader.read(s).await?;
        match p.payload.first() {
            Some(0x00) => return Ok(crate::protocol::ok_status(&p.payload)),
            Some(0xff) => return Err(MigrateError::Refused(err_text(&p.payload))),
            Some(0xfe) => {
                let body = &p.payload[1..];
                let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                let plugin = String::from_utf8_lossy(&body[..nul]).into_owned();
                if plugin != NATIVE {
                    return Err(MigrateError::Plugin(plugin));
                }
                let data = &body[(nul + 1).min(body.len())..];
                let scramble = data.strip_suffix(&[0]).unwrap_or(data);
                let auth = respond(password, &scramble20(scramble)?);
                s.write_all(&frame(p.seq.wrapping_add(1), &auth)).await?;
                s.flush().await?;
            }
            _ => {
                return Err(MigrateError::Refused(
                    "unexpected packet during login".into(),
                ))
            }
        }
    }
}

/// A mysql_native_password challenge is exactly 20 bytes.
fn scramble20(s: &[u8]) -> Result<[u8; 20], MigrateError> {
    s.try_into().map_err(|_| {
        MigrateError::Credential(format!("challenge of {} bytes, expected 20", s.len()))
    })
}

/// Send one COM_QUERY whose reply is a single OK/ERR; its status flags.
async fn run_simple(
    s: &mut Stream,
    reader: &mut PacketReader,
    stmt: &str,
) -> Result<u16, MigrateError> {
    let mut payload = vec![crate::protocol::command::QUERY];
    payload.extend_from_slice(stmt.as_bytes());
    s.write_all(&frame(0, &payload)).await?;
    s.flush().await?;
    let p = reader.read(s).await?;
    match p.payload.first() {
        Some(0x00) => Ok(crate::protocol::ok_status(&p.payload)),
        _ => Err(MigrateError::Replay {
            stmt: stmt.to_string(),
            error: err_text(&p.payload),
        }),
    }
}

/// COM_STMT_PREPARE `sql` and read the whole reply; the new statement id.
/// `Err` carries the server's error or what did not match.
async fn prepare(
    s: &mut Stream,
    reader: &mut PacketReader,
    tracker: &mut Tracker,
    sql: &[u8],
    params: u16,
) -> Result<u32, String> {
    let mut payload = vec![crate::protocol::command::STMT_PREPARE];
    payload.extend_from_slice(sql);
    s.write_all(&frame(0, &payload))
        .await
        .map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    tracker.on_client_packet(&info(&payload, 0));
    let mut answer = None;
    loop {
        let p = reader.read(s).await.map_err(|e| e.to_string())?;
        if answer.is_none() {
            answer = Some(match p.payload.first() {
                Some(0x00) if p.payload.len() >= 9 => {
                    let b = &p.payload;
                    let got = u16::from_le_bytes([b[7], b[8]]);
                    if got != params {
                        return Err(format!("{got} parameters, the client's had {params}"));
                    }
                    Ok(u32::from_le_bytes([b[1], b[2], b[3], b[4]]))
                }
                _ => Err(err_text(&p.payload)),
            });
        }
        if tracker.on_server_packet(&info(&p.payload, p.seq)) == ServerEvent::ResponseDone {
            return answer.expect("set at the first packet");
        }
    }
}

fn info(payload: &[u8], seq: u8) -> PacketInfo<'_> {
    PacketInfo {
        len: payload.len(),
        seq,
        prefix: &payload[..payload.len().min(PREFIX_LEN)],
        continuation: false,
        payload: None,
    }
}

/// A HandshakeResponse41 as the client sent it, but answering the new
/// scramble and naming the session's current schema.
fn handshake_response(
    record: &LoginRecord,
    state: &CarriedState,
    g: &Greeting,
    auth: &[u8; 20],
) -> Vec<u8> {
    let mut flags = record.client_caps & (g.caps | caps::CLIENT_MYSQL);
    flags &= !(caps::CLIENT_SSL | caps::CLIENT_COMPRESS);
    flags |= caps::CLIENT_PLUGIN_AUTH | caps::CLIENT_SECURE_CONNECTION;
    let db = state.schema.as_deref().filter(|d| !d.is_empty());
    if db.is_some() {
        flags |= caps::CLIENT_CONNECT_WITH_DB;
    } else {
        flags &= !caps::CLIENT_CONNECT_WITH_DB;
    }
    let mut p = flags.to_le_bytes().to_vec();
    p.extend_from_slice(&record.max_packet.to_le_bytes());
    p.push(record.collation);
    p.extend_from_slice(&[0; 19]);
    let mariadb = if flags & caps::CLIENT_MYSQL == 0 {
        record.client_mariadb_caps & g.mariadb_caps
    } else {
        0
    };
    p.extend_from_slice(&mariadb.to_le_bytes());
    p.extend_from_slice(record.user.as_bytes());
    p.push(0);
    p.push(auth.len() as u8); // lenenc of 20 == one byte; also the 4.1 length form
    p.extend_from_slice(auth);
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    p.extend_from_slice(NATIVE.as_bytes());
    p.push(0);
    if flags & CLIENT_CONNECT_ATTRS != 0 {
        p.extend_from_slice(&connect_attrs(record));
    }
    p
}

const CLIENT_CONNECT_ATTRS: u32 = 0x0010_0000;

fn connect_attrs(record: &LoginRecord) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in record.connect_attrs.iter().flatten() {
        lenenc_str(&mut body, k.as_bytes());
        lenenc_str(&mut body, v.as_bytes());
    }
    let mut out = Vec::new();
    lenenc_str(&mut out, &body);
    out
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len() as u64;
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out.extend_from_slice(s);
}

/// "code (state): message" of an ERR payload.
pub fn err_text(payload: &[u8]) -> String {
    if payload.len() < 3 || payload[0] != 0xff {
        return "unexpected reply".into();
    }
    let code = u16::from_le_bytes([payload[1], payload[2]]);
    let rest = &payload[3..];
    let msg = if rest.first() == Some(&b'#') && rest.len() >= 6 {
        &rest[6..]
    } else {
        rest
    };
    format!("{code}: {}", String::from_utf8_lossy(msg))
}
