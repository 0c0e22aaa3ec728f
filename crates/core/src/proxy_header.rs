//! PROXY protocol v1 (text) and v2 (binary) headers, as load balancers
//! (HAProxy `send-proxy[-v2]`, cloud LBs) prepend them: a pure parser, and
//! the async read of exactly one header from a new connection (the
//! listener), and the check for a header a session's client sends where
//! none may come (the session). Below both; uses only `config`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::{ListenConfig, ProxyProtocol};

/// The v2 signature.
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// Longest v2 header we accept (16 + addresses + TLVs).
const V2_MAX: usize = 16 + 2048;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Relayed for a client: its address and the one it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The balancer's own connection (health check, v2 LOCAL) or an
    /// unknown/unsupported family (v1 UNKNOWN): use the socket's address.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    NotAHeader,
    #[error("malformed PROXY v1 header: {0}")]
    BadV1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    BadV2(&'static str),
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    #[error("data after the PROXY header before the greeting")]
    TrailingData,
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before a complete PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// Parse a header at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the header and its length in bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if n < 6 { Ok(None) } else { parse_v1(buf) };
    }
    Err(ProxyHeaderError::NotAHeader)
}

/// Could `buf` (the first bytes a client sent) be the start of a header?
pub(crate) fn looks_like_header(buf: &[u8]) -> bool {
    !matches!(parse(buf), Err(ProxyHeaderError::NotAHeader))
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let bad = ProxyHeaderError::BadV1;
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyHeaderError::TooLong(V1_MAX))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| bad("not ASCII"))?;
    let mut f = line.split(' ');
    let header = match f.next() {
        Some("UNKNOWN") => Header::Local,
        Some(proto @ ("TCP4" | "TCP6")) => {
            let mut ip = |v6: bool| -> Result<IpAddr, ProxyHeaderError> {
                let s = f.next().ok_or(bad("missing address"))?;
                let ip: IpAddr = s.parse().map_err(|_| bad("bad address"))?;
                if ip.is_ipv6() != v6 {
                    return Err(bad("address family does not match"));
                }
                Ok(ip)
            };
            let v6 = proto == "TCP6";
            let (src, dst) = (ip(v6)?, ip(v6)?);
            let mut port = || -> Result<u16, ProxyHeaderError> {
                let s = f.next().ok_or(bad("missing port"))?;
                if s.len() > 1 && s.starts_with('0') {
                    return Err(bad("port with a leading zero"));
                }
                s.parse().map_err(|_| bad("bad port"))
            };
            let (sp, dp) = (port()?, port()?);
            if f.next().is_some() {
                return Err(bad("extra fields"));
            }
            Header::Proxied {
                source: SocketAddr::new(src, sp),
                destination: SocketAddr::new(dst, dp),
            }
        }
        _ => return Err(bad("unknown protocol")),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyHeaderError> {
    let bad = ProxyHeaderError::BadV2;
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(bad("version is not 2"));
    }
    if len > V2_MAX {
        return Err(ProxyHeaderError::TooLong(V2_MAX));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    let header = match (ver_cmd & 0x0f, family) {
        (0, _) => Header::Local,
        (1, 0x11) => {
            let a = body.get(..12).ok_or(bad("address block too short"))?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (1, 0x21) => {
            let a = body.get(..36).ok_or(bad("address block too short"))?;
            let ip = |i: usize| {
                let o: [u8; 16] = a[i..i + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        // UNSPEC, UDP, unix sockets: keep the socket's address.
        (1, _) => Header::Local,
        _ => return Err(bad("unknown command")),
    };
    Ok(Some((header, len)))
}

/// Read exactly one header from a new connection, within `timeout`. The
/// client speaks only after our greeting, so nothing may follow the header.
pub(crate) async fn read_header(
    sock: &mut TcpStream,
    timeout: Duration,
) -> Result<Header, ProxyHeaderError> {
    let read = async {
        let mut buf = vec![0u8; V2_MAX];
        let mut filled = 0;
        loop {
            let n = sock
                .read(&mut buf[filled..])
                .await
                .map_err(|e| ProxyHeaderError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ProxyHeaderError::Closed);
            }
            filled += n;
            if let Some((header, len)) = parse(&buf[..filled])? {
                return if len == filled {
                    Ok(header)
                } else {
                    Err(ProxyHeaderError::TrailingData)
                };
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ProxyHeaderError::Timeout(timeout)))
}

/// After the greeting, with the PROXY protocol on: does the client start
/// with a header anyway (a source not in `trusted_proxies`, or a second
/// header)? Such a connection is refused. Only peeks, at most
/// `handshake_timeout` (the relay's login deadline covers a silent client).
pub(crate) async fn stray_header(client: &TcpStream, listen: &ListenConfig) -> bool {
    if listen.proxy_protocol == ProxyProtocol::Off {
        return false;
    }
    let deadline = Instant::now() + listen.handshake_timeout;
    let mut buf = [0u8; 12];
    loop {
        let n = match tokio::time::timeout_at(deadline, client.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        let header = looks_like_header(&buf[..n]);
        if !header || n == buf.len() {
            if header {
                tracing::warn!(
                    "PROXY protocol header from a source not in listen.trusted_proxies; closing"
                );
            }
            return header;
        }
        // Only a prefix so far (rare: one segment carries a header): look again.
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
#[path = "proxy_header_tests.rs"]
mod tests;
