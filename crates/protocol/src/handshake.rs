//! The backend's greeting as the proxy forwards it: parsed with mysql_common,
//! then capability bits the proxy cannot honour are cleared in place, so every
//! other byte (thread id, scramble, auth plugin, version) stays the backend's.

use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakePacket;

use super::caps;

/// Capabilities removed from the forwarded greeting, and why.
/// - CLIENT_SSL: the backend's TLS is not the client's; the proxy offers its
///   own ([`offer_ssl`]) when `[listen.tls]` is configured.
/// - CLIENT_COMPRESS / ZSTD: compressed framing would hide packet boundaries.
/// - CLIENT_OPTIONAL_RESULTSET_METADATA (MySQL 8): changes the column-count
///   packet in ways the tracker does not model.
/// - MULTI_FACTOR_AUTHENTICATION (MySQL 8): kept out until tested.
/// - CLIENT_QUERY_ATTRIBUTES (MySQL >= 8.0.23): puts attributes before the
///   text of every COM_QUERY and changes COM_STMT_EXECUTE's layout, which
///   the tracker and the statement-id and types rewrites read.
pub const CLEARED_CAPS: u32 = caps::CLIENT_SSL
    | caps::CLIENT_QUERY_ATTRIBUTES
    | caps::CLIENT_COMPRESS
    | caps::CLIENT_ZSTD_COMPRESSION_ALGORITHM
    | caps::CLIENT_OPTIONAL_RESULTSET_METADATA
    | caps::MULTI_FACTOR_AUTHENTICATION;

/// MariaDB extended capabilities the proxy relays (the tracker knows the
/// reply shapes each one changes); the rest are cleared. CACHE_METADATA lets
/// the server skip a prepared statement's column definitions on a repeated
/// EXECUTE, as it does for direct clients (tests/relay.rs checks the skipped
/// shape against the real server in both EOF modes).
pub(crate) const KEPT_MARIADB_CAPS: u32 = caps::MARIADB_CLIENT_PROGRESS
    | caps::MARIADB_CLIENT_STMT_BULK_OPERATIONS
    | caps::MARIADB_CLIENT_EXTENDED_METADATA
    | caps::MARIADB_CLIENT_CACHE_METADATA;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("backend greeting is not protocol 10 (first byte {0:#04x})")]
    Protocol(u8),
    #[error("backend greeting is malformed: {0}")]
    Malformed(String),
}

/// What the proxy learnt from a greeting it adjusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities as forwarded (after clearing).
    pub caps: u32,
    /// MariaDB extended capabilities as forwarded (0 for MySQL servers).
    pub mariadb_caps: u32,
    pub auth_plugin: Option<String>,
    /// The 20-byte challenge (both scramble parts).
    pub scramble: Vec<u8>,
    /// The backend offered TLS (CLIENT_SSL, before clearing).
    pub backend_ssl: bool,
}

/// Clear [`CLEARED_CAPS`] (and unknown MariaDB capabilities) in `payload`, a
/// HandshakeV10 payload (no packet header), and describe it.
pub fn adjust_greeting(payload: &mut [u8]) -> Result<Greeting, HandshakeError> {
    match payload.first() {
        Some(10) => {}
        Some(b) => return Err(HandshakeError::Protocol(*b)),
        None => return Err(HandshakeError::Malformed("empty".into())),
    }
    let parsed: HandshakePacket<'_> = ParseBuf(payload)
        .parse(())
        .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    let server_version = String::from_utf8_lossy(parsed.server_version_ref()).into_owned();
    let connection_id = parsed.connection_id();
    let auth_plugin = parsed.auth_plugin_name_str().map(|s| s.into_owned());
    let scramble = parsed.nonce();
    let server_caps = parsed.capabilities().bits();

    // Offsets: version(1) + server_version\0 + thread id(4) + scramble(8) + filler(1).
    let cap_lo = 1 + server_version.len() + 1 + 4 + 8 + 1;
    let cap_hi = cap_lo + 2 + 1 + 2;
    let ext = cap_hi + 2 + 1 + 6;
    if payload.len() < ext + 4 {
        return Err(HandshakeError::Malformed("too short".into()));
    }
    let caps = server_caps & !CLEARED_CAPS;
    payload[cap_lo..cap_lo + 2].copy_from_slice(&(caps as u16).to_le_bytes());
    payload[cap_hi..cap_hi + 2].copy_from_slice(&((caps >> 16) as u16).to_le_bytes());
    let mut mariadb_caps = 0;
    if server_caps & caps::CLIENT_MYSQL == 0 {
        let b = &payload[ext..ext + 4];
        mariadb_caps = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & KEPT_MARIADB_CAPS;
        payload[ext..ext + 4].copy_from_slice(&mariadb_caps.to_le_bytes());
    }
    Ok(Greeting {
        server_version,
        connection_id,
        caps,
        mariadb_caps,
        auth_plugin,
        scramble,
        backend_ssl: server_caps & caps::CLIENT_SSL != 0,
    })
}

/// Advertise the proxy's own TLS in an adjusted greeting `payload`.
pub fn offer_ssl(payload: &mut [u8], greeting: &mut Greeting) {
    let cap_lo = 1 + greeting.server_version.len() + 1 + 4 + 8 + 1;
    greeting.caps |= caps::CLIENT_SSL;
    payload[cap_lo..cap_lo + 2].copy_from_slice(&(greeting.caps as u16).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MariaDB 10.11 greeting as captured on the wire (payload only).
    fn mariadb_greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&42u32.to_le_bytes()); // thread id
        p.extend_from_slice(b"abcdefgh\0"); // scramble part 1 + filler
        let caps: u32 = 0xf7fe | (0x81bf << 16) | caps::CLIENT_SSL | caps::CLIENT_COMPRESS;
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45); // collation
        p.extend_from_slice(&2u16.to_le_bytes()); // status
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21); // auth data len
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&0x3du32.to_le_bytes()); // MariaDB ext caps incl. BULK_UNIT_RESULTS
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn clears_ssl_compress_and_unknown_mariadb_caps_only() {
        let original = mariadb_greeting();
        let mut p = original.clone();
        let g = adjust_greeting(&mut p).unwrap();
        assert_eq!(g.connection_id, 42);
        assert_eq!(g.auth_plugin.as_deref(), Some("mysql_native_password"));
        assert_eq!(g.caps & (caps::CLIENT_SSL | caps::CLIENT_COMPRESS), 0);
        assert_ne!(g.caps & caps::CLIENT_PROTOCOL_41, 0);
        // BULK_UNIT_RESULTS (0x20) is cleared, CACHE_METADATA (0x10) kept
        assert_eq!(g.mariadb_caps, 0x1d);
        assert!(g.backend_ssl);
        // same length, and only the capability bytes differ
        assert_eq!(p.len(), original.len());
        let diff: Vec<usize> = (0..p.len()).filter(|&i| p[i] != original[i]).collect();
        let cap_lo = 1 + 32 + 4 + 9;
        let (cap_hi, ext) = (cap_lo + 5, cap_lo + 5 + 9);
        let allowed = [
            cap_lo,
            cap_lo + 1,
            cap_hi,
            cap_hi + 1,
            ext,
            ext + 1,
            ext + 2,
            ext + 3,
        ];
        assert!(diff.iter().all(|i| allowed.contains(i)), "{diff:?}");
        assert!(diff.contains(&(cap_lo + 1)), "CLIENT_SSL cleared");
        assert!(diff.contains(&ext), "BULK_UNIT_RESULTS cleared");
        // parsing the adjusted greeting again agrees
        let again = adjust_greeting(&mut p.clone()).unwrap();
        assert_eq!(again.caps, g.caps);
        assert!(!again.backend_ssl);
        // offering the proxy's own TLS sets exactly that bit again
        let mut offered = g.clone();
        offer_ssl(&mut p, &mut offered);
        let parsed = adjust_greeting(&mut p.clone()).unwrap();
        assert!(parsed.backend_ssl);
        assert_eq!(offered.caps, g.caps | caps::CLIENT_SSL);
    }

    /// A MySQL 8.0.23+ greeting offers query attributes; the client must
    /// not agree to them through the proxy.
    #[test]
    fn clears_query_attributes() {
        let mut p = mariadb_greeting();
        let cap_hi = 1 + 32 + 4 + 9 + 5;
        let hi = u16::from_le_bytes([p[cap_hi], p[cap_hi + 1]])
            | (caps::CLIENT_QUERY_ATTRIBUTES >> 16) as u16;
        p[cap_hi..cap_hi + 2].copy_from_slice(&hi.to_le_bytes());
        let g = adjust_greeting(&mut p).unwrap();
        assert_eq!(g.caps & caps::CLIENT_QUERY_ATTRIBUTES, 0);
        let forwarded = u16::from_le_bytes([p[cap_hi], p[cap_hi + 1]]);
        assert_eq!(
            u32::from(forwarded) << 16 & caps::CLIENT_QUERY_ATTRIBUTES,
            0
        );
    }

    #[test]
    fn rejects_non_v10_and_truncated() {
        assert_eq!(
            adjust_greeting(&mut [9, 0]),
            Err(HandshakeError::Protocol(9))
        );
        let mut p = mariadb_greeting();
        p.truncate(40);
        assert!(matches!(
            adjust_greeting(&mut p),
            Err(HandshakeError::Malformed(_))
        ));
        assert!(adjust_greeting(&mut []).is_err());
    }
}

/// A HandshakeResponse41 whose auth data fits one length byte (a
/// `mysql_native_password` answer): what a client sends after the greeting.
/// MariaDB's extended capabilities go in the filler's last 4 bytes, which
/// only a server without CLIENT_MYSQL reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub caps: u32,
    pub max_packet: u32,
    pub collation: u8,
    pub mariadb_caps: u32,
    pub user: &'a str,
    pub auth: &'a [u8],
    /// Sent only with CLIENT_CONNECT_WITH_DB set in `caps`.
    pub db: Option<&'a str>,
    pub plugin: &'a str,
}

impl Response<'_> {
    /// The payload (connection attributes, if any, are appended by the caller).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = self.caps.to_le_bytes().to_vec();
        p.extend_from_slice(&self.max_packet.to_le_bytes());
        p.push(self.collation);
        p.extend_from_slice(&[0; 19]);
        p.extend_from_slice(&self.mariadb_caps.to_le_bytes());
        p.extend_from_slice(self.user.as_bytes());
        p.push(0);
        p.push(self.auth.len() as u8);
        p.extend_from_slice(self.auth);
        if let Some(db) = self
            .db
            .filter(|_| self.caps & caps::CLIENT_CONNECT_WITH_DB != 0)
        {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        p.extend_from_slice(self.plugin.as_bytes());
        p.push(0);
        p
    }
}
