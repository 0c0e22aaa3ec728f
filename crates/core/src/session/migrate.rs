//! Moving an idle session to a new primary: a new backend login as the
//! client's own user, answered with the credential derived from its
//! mysql_native_password exchange (no plaintext), in the schema the session
//! was in; then its state carried as values (`snapshot.rs`), its prepared
//! statements prepared again in the schemas they were prepared in, and the
//! state read back and compared. The client sees none of it; any difference
//! is an error, never a session that is silently not the same.

use std::io;

use tokio::io::AsyncWriteExt;

use crate::backend::{self, OpenError};
use crate::config::BackendConfig;
use crate::native_password::{respond, DerivedPassword};
use crate::routing::Primary;
use crate::session::login::LoginRecord;
use crate::session::query::{err_text, Backend, QueryError};
use crate::session::secure;
use crate::session::snapshot::Snapshot;
use crate::session::stmts::Statements;
use crate::session::stream::Stream;
use crate::tls::BackendTls;
use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::command;
use mysql_zk_proxy_protocol::handshake::{self, Greeting};
use mysql_zk_proxy_protocol::packet_io::{frame, PacketReader};
use mysql_zk_proxy_protocol::Tracker;

const NATIVE: &str = "mysql_native_password";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("new primary: {0}")]
    Open(#[from] OpenError),
    #[error("new primary refused the login: {0}")]
    Refused(String),
    #[error("new primary asked for auth plugin {0}, only mysql_native_password can be answered without the password")]
    Plugin(String),
    #[error("the session's state cannot be written exactly: {0}")]
    Unwritable(String),
    #[error("carrying the session's state failed: {stmt}: {error}")]
    Carry { stmt: String, error: QueryError },
    #[error("preparing statement {id} again: {error}")]
    Prepare { id: u32, error: String },
    #[error("reading the carried state back: {0}")]
    Verify(QueryError),
    #[error("the carried state differs: {0}")]
    Differs(String),
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
    /// Status flags after the login and carry.
    pub status: u16,
    /// Prepared statements: (client id, id on the new backend).
    pub statements: Vec<(u32, u32)>,
}

/// Log in on `primary` as `record.user`, carry `state` and `stmts`.
pub async fn migrate(
    primary: &Primary,
    record: &LoginRecord,
    (state, stmts): (&Snapshot, &Statements),
    password: &DerivedPassword,
    cfg: &BackendConfig,
    tls: Option<&BackendTls>,
) -> Result<Migrated, MigrateError> {
    let carry = state.carry().map_err(MigrateError::Unwritable)?;
    let (mut stream, greeting, status) =
        log_in(primary, record, state.schema.as_deref(), password, cfg, tls).await?;
    let caps = greeting.caps & record.client_caps;
    let mariadb = greeting.mariadb_caps & record.client_mariadb_caps;
    let mut be = Backend::new(&mut stream, Tracker::logged_in(caps, mariadb, status));
    for stmt in carry {
        if let Err(error) = be.query(&stmt).await {
            return Err(MigrateError::Carry { stmt, error });
        }
    }
    let statements = prepare_all(&mut be, stmts, state.schema.as_deref()).await?;
    let now = state
        .read_carried(&mut be)
        .await
        .map_err(MigrateError::Verify)?;
    if let Some(diff) = state.difference(&now) {
        return Err(MigrateError::Differs(diff));
    }
    let status = be.tracker.status();
    Ok(Migrated {
        stream,
        greeting,
        status,
        statements,
    })
}

/// A new backend connection, logged in as the client's user into `schema`.
async fn log_in(
    primary: &Primary,
    record: &LoginRecord,
    schema: Option<&str>,
    password: &DerivedPassword,
    cfg: &BackendConfig,
    tls: Option<&BackendTls>,
) -> Result<(Stream, Greeting, u16), MigrateError> {
    let timeout = cfg.connect_timeout;
    let backend::Opened {
        backend: be,
        greeting,
    } = backend::open(primary, cfg).await?;
    let mut reader = PacketReader::new(64 * 1024);
    let auth = respond(password, &scramble20(&greeting.scramble)?);
    let mut response = handshake_response(record, schema, &greeting, &auth);
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
    let status = login_reply(&mut stream, &mut reader, password).await?;
    Ok((stream, greeting, status))
}

/// Prepare every statement again, each in the schema it was prepared in,
/// and end in `current`; (client id, new id) of each.
async fn prepare_all(
    be: &mut Backend<'_>,
    stmts: &Statements,
    current: Option<&str>,
) -> Result<Vec<(u32, u32)>, MigrateError> {
    let mut statements = Vec::new();
    let mut in_schema = current;
    for st in stmts.to_prepare() {
        if st.schema != in_schema {
            let Some(schema) = st.schema else {
                return Err(MigrateError::Unwritable(format!(
                    "statement {} was prepared with no default schema",
                    st.client_id
                )));
            };
            init_db(be, schema).await?;
            in_schema = st.schema;
        }
        let id = be
            .prepare(st.sql, st.params)
            .await
            .map_err(|error| MigrateError::Prepare {
                id: st.client_id,
                error,
            })?;
        statements.push((st.client_id, id));
    }
    if in_schema != current {
        if let Some(schema) = current {
            init_db(be, schema).await?;
        }
    }
    Ok(statements)
}

async fn init_db(be: &mut Backend<'_>, schema: &str) -> Result<(), MigrateError> {
    let mut payload = vec![command::INIT_DB];
    payload.extend_from_slice(schema.as_bytes());
    be.command(&payload)
        .await
        .map(drop)
        .map_err(|error| MigrateError::Carry {
            stmt: format!("COM_INIT_DB {schema}"),
            error,
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
            Some(0x00) => return Ok(mysql_zk_proxy_protocol::ok_status(&p.payload)),
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

/// A HandshakeResponse41 as the client sent it, but answering the new
/// scramble and naming the session's current schema.
fn handshake_response(
    record: &LoginRecord,
    schema: Option<&str>,
    g: &Greeting,
    auth: &[u8; 20],
) -> Vec<u8> {
    let mut flags = record.client_caps & (g.caps | caps::CLIENT_MYSQL);
    flags &= !(caps::CLIENT_SSL | caps::CLIENT_COMPRESS);
    if record.tracking != super::login::Tracking::Off {
        flags |= g.caps & caps::CLIENT_SESSION_TRACK;
    }
    flags |= caps::CLIENT_PLUGIN_AUTH | caps::CLIENT_SECURE_CONNECTION;
    let db = schema.filter(|d| !d.is_empty());
    if db.is_some() {
        flags |= caps::CLIENT_CONNECT_WITH_DB;
    } else {
        flags &= !caps::CLIENT_CONNECT_WITH_DB;
    }
    let mariadb_caps = if flags & caps::CLIENT_MYSQL == 0 {
        record.client_mariadb_caps & g.mariadb_caps
    } else {
        0
    };
    let mut p = handshake::Response {
        caps: flags,
        max_packet: record.max_packet,
        collation: record.collation,
        mariadb_caps,
        user: &record.user,
        auth,
        db,
        plugin: NATIVE,
    }
    .encode();
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
