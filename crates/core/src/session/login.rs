//! The login exchange, packet by packet: TLS started on either leg as
//! configured, then every packet forwarded unchanged but for its sequence id
//! (the backend stays the authority for every auth plugin; steps that would
//! carry a readable password need TLS on both legs) and the parts a later
//! re-login on another primary needs are recorded.

use std::collections::HashMap;
use std::io;

use bytes::BytesMut;
use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakeResponse;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::session::secure::{self, is_ssl_request, plugin_needs_tls};
use crate::session::stream::Stream;
pub use crate::session::tracking::Tracking;
use crate::session::tracking::{ask_for_tracking, for_client};
use crate::tls::BackendTls;
use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::errors::ProxyErrorCode;
use mysql_zk_proxy_protocol::handshake::Greeting;
use mysql_zk_proxy_protocol::packet_io::{frame, Packet, PacketReader};

/// Largest packet accepted during login (handshake responses with connect
/// attributes are a few hundred bytes).
const MAX_LOGIN_PACKET: usize = 64 * 1024;

/// What the client sent to log in, and how the exchange went.
#[derive(Clone)]
pub struct LoginRecord {
    pub user: String,
    pub db: Option<String>,
    /// Capabilities the client sent (before intersecting with the server's).
    pub client_caps: u32,
    pub client_mariadb_caps: u32,
    pub collation: u8,
    pub max_packet: u32,
    pub connect_attrs: Option<HashMap<String, String>>,
    /// The plugin whose challenge the recorded response answers.
    pub plugin: String,
    pub scramble: Vec<u8>,
    pub auth_response: Vec<u8>,
    /// Status flags of the final OK.
    pub status: u16,
    /// Who asked the backend for session state tracking.
    pub tracking: Tracking,
}

impl std::fmt::Debug for LoginRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRecord")
            .field("user", &self.user)
            .field("db", &self.db)
            .field("plugin", &self.plugin)
            .field("auth_response", &"<redacted>")
            .finish_non_exhaustive()
    }
}

pub enum LoginOutcome {
    LoggedIn {
        record: Box<LoginRecord>,
        /// Bytes each side sent past the login (handed to the relay).
        client_leftover: BytesMut,
        backend_leftover: BytesMut,
    },
    /// The backend answered ERR (forwarded to the client).
    Failed,
    /// The client asked for TLS, which the greeting did not offer.
    SslRequested,
    /// The proxy refuses the login: send `code` with sequence id `seq`.
    Refused {
        code: ProxyErrorCode,
        seq: u8,
        msg: String,
    },
    ClientGone(io::Error),
    BackendGone(io::Error),
    /// The client's handshake response could not be parsed (it was not forwarded).
    Malformed(String),
}

/// TLS for the two legs of one login.
#[derive(Default)]
pub struct LoginTls {
    /// Set when the greeting offered TLS to the client.
    pub acceptor: Option<Arc<TlsAcceptor>>,
    /// Refuse a client that does not start TLS.
    pub require: bool,
    /// Start TLS towards the backend at `host`.
    pub backend: Option<(Arc<BackendTls>, String)>,
    /// Bound on the backend's TLS handshake (`backend.connect_timeout`).
    pub backend_timeout: Duration,
}

/// Who speaks next in the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The backend answers (OK, ERR, auth switch, more data).
    Server,
    /// The client answers an auth switch.
    ClientAuthData,
    /// After "more data" (0x01) either side may speak next.
    Either,
}

fn refused(code: ProxyErrorCode, seq: u8, msg: String) -> LoginOutcome {
    LoginOutcome::Refused { code, seq, msg }
}

/// Run the exchange after the greeting was forwarded. With TLS on one leg
/// only, sequence ids differ by one between the legs (the SSLRequest took
/// one): packets are renumbered as they pass.
pub async fn login(
    client: &mut Stream,
    backend: &mut Stream,
    greeting: &Greeting,
    tls: &LoginTls,
    ledger: bool,
) -> LoginOutcome {
    let mut first = match client_response(client, tls).await {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    let mut record = match parse_response(&first, greeting) {
        Ok(Some(r)) => r,
        Ok(None) => return LoginOutcome::Malformed("a second SSL request".into()),
        Err(e) => return LoginOutcome::Malformed(e),
    };
    // the backend's greeting had the id the client answered (less its SSLRequest)
    let backend_first = first.seq.wrapping_sub(client.is_tls() as u8);
    if let Some((b, host)) = &tls.backend {
        let to_client = first.seq.wrapping_add(1);
        let request = secure::ssl_request(&first.payload);
        let started = secure::start_backend_tls(backend, greeting, b, host, request, backend_first);
        let started = tokio::time::timeout(tls.backend_timeout, started).await;
        let started = started.unwrap_or_else(|_| {
            Err(format!(
                "no TLS handshake with primary {host} within {:?} (backend.connect_timeout)",
                tls.backend_timeout
            ))
        });
        if let Err(msg) = started {
            return refused(ProxyErrorCode::BackendUnreachable, to_client, msg);
        }
    }
    let backend_seq = backend_first.wrapping_add(backend.is_tls() as u8);
    let delta = backend_seq.wrapping_sub(first.seq);
    let legs = (client.is_tls(), backend.is_tls());
    if plugin_needs_tls(&record.plugin) && legs != (true, true) {
        let msg = secure::refusal(&record.plugin, legs.0, legs.1);
        return refused(ProxyErrorCode::InsecureAuth, first.seq.wrapping_add(1), msg);
    }
    secure::set_ssl_flag(&mut first.payload, backend.is_tls());
    record.tracking = ask_for_tracking(&mut first.payload, greeting, ledger);
    first.seq = backend_seq;
    if let Err(e) = send(backend, &first).await {
        return LoginOutcome::BackendGone(e);
    }
    exchange(client, backend, &mut record, delta).await
}

/// The client's handshake response, after TLS if it asked for it.
async fn client_response(client: &mut Stream, tls: &LoginTls) -> Result<Packet, LoginOutcome> {
    let first = read_one(client).await.map_err(LoginOutcome::ClientGone)?;
    if !is_ssl_request(&first.payload) {
        if tls.require {
            let msg = "this proxy requires TLS (listen.tls.require); connect with TLS".into();
            return Err(refused(
                ProxyErrorCode::TlsRequired,
                first.seq.wrapping_add(1),
                msg,
            ));
        }
        return Ok(first);
    }
    let Some(acceptor) = &tls.acceptor else {
        return Err(LoginOutcome::SslRequested);
    };
    client
        .accept_tls(acceptor)
        .await
        .map_err(LoginOutcome::ClientGone)?;
    read_one(client).await.map_err(LoginOutcome::ClientGone)
}

/// Packets both ways until OK or ERR; client ids shift by `delta` going up.
async fn exchange(
    client: &mut Stream,
    backend: &mut Stream,
    record: &mut LoginRecord,
    delta: u8,
) -> LoginOutcome {
    let secure = client.is_tls() && backend.is_tls();
    let mut from_client = PacketReader::new(MAX_LOGIN_PACKET);
    let mut from_backend = PacketReader::new(MAX_LOGIN_PACKET);
    let mut step = Step::Server;
    loop {
        let (from_server, p) = match step {
            Step::Server => (true, from_backend.read(backend).await),
            Step::ClientAuthData => (false, from_client.read(client).await),
            Step::Either => tokio::select! {
                p = from_backend.read(backend) => (true, p),
                p = from_client.read(client) => (false, p),
            },
        };
        let mut p = match (from_server, p) {
            (_, Ok(p)) => p,
            (true, Err(e)) => return LoginOutcome::BackendGone(e),
            (false, Err(e)) => return LoginOutcome::ClientGone(e),
        };
        if !from_server {
            if step == Step::ClientAuthData {
                record.auth_response = p.payload.clone();
            }
            p.seq = p.seq.wrapping_add(delta);
            if let Err(e) = send(backend, &p).await {
                return LoginOutcome::BackendGone(e);
            }
            step = Step::Server;
            continue;
        }
        p.seq = p.seq.wrapping_sub(delta);
        if !secure {
            if let Some(what) = secure::cleartext_step(&p.payload, &record.plugin) {
                let msg = secure::refusal(&what, client.is_tls(), backend.is_tls());
                return refused(ProxyErrorCode::InsecureAuth, p.seq, msg);
            }
        }
        if p.payload.first() == Some(&0x00) {
            for_client(&mut p.payload, record.tracking);
        }
        if let Err(e) = send(client, &p).await {
            return LoginOutcome::ClientGone(e);
        }
        match p.payload.first() {
            Some(0x00) => {
                record.status = mysql_zk_proxy_protocol::ok_status(&p.payload);
                return LoginOutcome::LoggedIn {
                    record: Box::new(record.clone()),
                    client_leftover: from_client.into_leftover(),
                    backend_leftover: from_backend.into_leftover(),
                };
            }
            Some(0xff) => return LoginOutcome::Failed,
            Some(0xfe) => {
                auth_switch(record, &p.payload);
                step = Step::ClientAuthData;
            }
            _ => step = Step::Either,
        }
    }
}

async fn send(to: &mut Stream, p: &Packet) -> io::Result<()> {
    to.write_all(&frame(p.seq, &p.payload)).await?;
    to.flush().await
}

/// One packet, read exactly (the bytes after an SSLRequest are TLS).
async fn read_one(from: &mut Stream) -> io::Result<Packet> {
    let mut header = [0u8; 4];
    from.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > MAX_LOGIN_PACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("login packet of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    from.read_exact(&mut payload).await?;
    Ok(Packet {
        seq: header[3],
        payload,
    })
}

/// Parse a client's handshake response (public for the fuzz target);
/// Ok(None) for an SSL request.
pub fn parse_response(p: &Packet, greeting: &Greeting) -> Result<Option<LoginRecord>, String> {
    let b = &p.payload;
    let flags = b
        .get(..4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    let flags = flags.ok_or("handshake response shorter than 4 bytes")?;
    if flags & caps::CLIENT_PROTOCOL_41 == 0 {
        return Err("client does not speak protocol 4.1".into());
    }
    if is_ssl_request(b) {
        return Ok(None);
    }
    let hr: HandshakeResponse<'_> = ParseBuf(b)
        .parse(())
        .map_err(|e| format!("bad handshake response: {e}"))?;
    let mariadb = if flags & caps::CLIENT_MYSQL == 0 {
        hr.mariadb_ext_capabilities().bits()
    } else {
        0
    };
    let plugin = hr
        .auth_plugin()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .or_else(|| greeting.auth_plugin.clone())
        .unwrap_or_else(|| "mysql_native_password".into());
    Ok(Some(LoginRecord {
        user: String::from_utf8_lossy(hr.user()).into_owned(),
        db: hr
            .db_name()
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        client_caps: flags,
        client_mariadb_caps: mariadb,
        collation: hr.collation(),
        max_packet: b
            .get(4..8)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .unwrap_or(0),
        connect_attrs: hr.connect_attributes(),
        plugin,
        scramble: greeting.scramble.clone(),
        auth_response: hr.scramble_buf().to_vec(),
        status: 0,
        tracking: Tracking::Off,
    }))
}

/// 0xFE plugin-name NUL data: the client answers this new challenge.
fn auth_switch(record: &mut LoginRecord, payload: &[u8]) {
    let body = &payload[1..];
    let (name, data) = match body.iter().position(|&b| b == 0) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    record.plugin = String::from_utf8_lossy(name).into_owned();
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    record.scramble = data.to_vec();
    record.auth_response.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Greeting {
        Greeting {
            server_version: "10.11".into(),
            connection_id: 1,
            caps: 0,
            mariadb_caps: 0,
            auth_plugin: Some("mysql_native_password".into()),
            scramble: vec![3; 20],
            backend_ssl: false,
        }
    }

    #[test]
    fn ssl_request_is_recognised_and_not_parsed_as_a_login() {
        let flags = caps::CLIENT_PROTOCOL_41 | caps::CLIENT_SSL | caps::CLIENT_PLUGIN_AUTH;
        let mut payload = flags.to_le_bytes().to_vec();
        payload.resize(32, 0);
        let p = Packet { seq: 1, payload };
        assert!(matches!(parse_response(&p, &greeting()), Ok(None)));
    }

    #[test]
    fn pre_41_clients_are_refused() {
        let p = Packet {
            seq: 1,
            payload: vec![0; 40],
        };
        assert!(parse_response(&p, &greeting()).is_err());
    }

    #[test]
    fn a_length_announcing_a_gibibyte_is_an_error_not_an_allocation() {
        // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH_LENENC_CLIENT_DATA:
        // the auth response is a lenenc string, here claiming 1 GiB.
        let flags = caps::CLIENT_PROTOCOL_41 | caps::CLIENT_SECURE_CONNECTION | 0x0020_0000;
        let mut payload = flags.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0, 0, 0, 1, 45]);
        payload.extend_from_slice(&[0; 23]);
        payload.extend_from_slice(b"u\0");
        payload.push(0xfe);
        payload.extend_from_slice(&(1u64 << 30).to_le_bytes());
        payload.extend_from_slice(b"short");
        let p = Packet { seq: 1, payload };
        assert!(parse_response(&p, &greeting()).is_err());
    }

    #[test]
    fn auth_switch_records_plugin_and_scramble() {
        let mut r = LoginRecord {
            user: "u".into(),
            db: None,
            client_caps: 0,
            client_mariadb_caps: 0,
            collation: 45,
            max_packet: 0,
            connect_attrs: None,
            plugin: "client_ed25519".into(),
            scramble: vec![1; 20],
            auth_response: vec![7; 32],
            status: 0,
            tracking: Tracking::Off,
        };
        let mut p = b"\xfemysql_native_password\0".to_vec();
        p.extend_from_slice(&[5u8; 20]);
        p.push(0);
        auth_switch(&mut r, &p);
        assert_eq!(r.plugin, "mysql_native_password");
        assert_eq!(r.scramble, vec![5u8; 20]);
        assert!(r.auth_response.is_empty());
        assert!(!format!("{r:?}").contains('7'), "auth data never printed");
    }
}
