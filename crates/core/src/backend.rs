//! Backend connections: TCP to the primary (bounded by a timeout, NODELAY,
//! keepalive), the greeting read as one framed packet and adjusted to what
//! the proxy can relay.

use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::BackendConfig;
use crate::net::set_keepalive;
use crate::routing::Primary;
use mysql_zk_proxy_protocol::handshake::{adjust_greeting, Greeting, HandshakeError};

/// Largest greeting we accept (real ones are ~100 bytes).
const MAX_GREETING: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("no greeting from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{addr} closed the connection before its greeting")]
    Closed { addr: String },
    #[error("{addr} sent a greeting of {len} bytes (limit {MAX_GREETING})")]
    GreetingTooLarge { addr: String, len: usize },
    #[error("reading the greeting from {addr}: {source}")]
    Read {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// A connected backend that has sent its greeting.
#[derive(Debug)]
pub struct Backend {
    pub stream: TcpStream,
    pub addr: String,
    /// Sequence id of the greeting packet (0 in practice).
    pub greeting_seq: u8,
    /// The greeting payload, or an ERR payload when the server refused us
    /// at once (e.g. "Too many connections").
    pub greeting: Vec<u8>,
}

impl Backend {
    /// The server sent an ERR instead of a greeting.
    pub fn refused(&self) -> bool {
        self.greeting.first() == Some(&0xff)
    }
}

/// A backend ready for a login: connected, its greeting parsed and adjusted
/// (capabilities the proxy cannot relay cleared in `backend.greeting`).
#[derive(Debug)]
pub struct Opened {
    pub backend: Backend,
    pub greeting: Greeting,
}

/// Why a backend could not be opened for a login.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Connect(#[from] BackendError),
    /// An ERR instead of the greeting (e.g. 1040 Too many connections); the
    /// backend keeps it, so a client can be given the server's own words.
    #[error("{} refused the connection: {}", .0.addr, refusal(&.0.greeting))]
    Refused(Box<Backend>),
    #[error("{addr} sent an unusable greeting: {source}")]
    Greeting {
        addr: String,
        #[source]
        source: HandshakeError,
    },
}

/// The message of an ERR payload sent before the greeting (no SQLSTATE).
fn refusal(err: &[u8]) -> String {
    String::from_utf8_lossy(err.get(3..).unwrap_or_default()).into_owned()
}

/// Connect to `primary` for a login: [`connect`], keepalive, the greeting adjusted.
pub async fn open(primary: &Primary, cfg: &BackendConfig) -> Result<Opened, OpenError> {
    let mut backend = connect(primary, cfg.connect_timeout).await?;
    if backend.refused() {
        return Err(OpenError::Refused(Box::new(backend)));
    }
    set_keepalive(&backend.stream, cfg.keepalive);
    match adjust_greeting(&mut backend.greeting) {
        Ok(greeting) => Ok(Opened { backend, greeting }),
        Err(source) => Err(OpenError::Greeting {
            addr: backend.addr,
            source,
        }),
    }
}

/// Connect to `primary` and read its greeting, all within `timeout`.
pub async fn connect(primary: &Primary, timeout: Duration) -> Result<Backend, BackendError> {
    let addr = primary.address();
    match tokio::time::timeout(timeout, connect_inner(&addr)).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Timeout {
            addr,
            after: timeout,
        }),
    }
}

async fn connect_inner(addr: &str) -> Result<Backend, BackendError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| BackendError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (greeting_seq, greeting) = read_packet(&mut stream, addr).await?;
    Ok(Backend {
        stream,
        addr: addr.to_string(),
        greeting_seq,
        greeting,
    })
}

async fn read_packet(stream: &mut TcpStream, addr: &str) -> Result<(u8, Vec<u8>), BackendError> {
    let read_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            BackendError::Closed {
                addr: addr.to_string(),
            }
        } else {
            BackendError::Read {
                addr: addr.to_string(),
                source,
            }
        }
    };
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.map_err(read_err)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > MAX_GREETING {
        return Err(BackendError::GreetingTooLarge {
            addr: addr.to_string(),
            len,
        });
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(read_err)?;
    Ok((header[3], payload))
}
