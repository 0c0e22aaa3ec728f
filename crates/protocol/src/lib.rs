//! mysql-zk-proxy's protocol layer, the bottom of the workspace: the
//! MySQL/MariaDB wire protocol, sans-IO. Framing, the handshake fields the
//! proxy reads or adjusts, response tracking (where a response ends, session
//! status) and the error packets the proxy itself sends.
//!
//! Layer: depends on no other crate of the workspace, and on no sockets,
//! runtime or config: the framer and the tracker are state machines fed
//! byte slices. The one exception is [`packet_io`], a packet reader over any
//! `tokio::io::AsyncRead` (tokio's `io-util` only; no runtime). Everything
//! above (the proxy in `mysql-zk-proxy-core`) may use it.

pub mod errors;
pub mod framer;
pub mod gtid;
pub mod handshake;
pub mod ok;
pub mod packet_io;
pub mod tracker;

pub use framer::{Frame, FrameSink, Framer, Head, PacketInfo, MAX_PAYLOAD, PREFIX_LEN};
pub use tracker::{ServerEvent, Tracker};

/// Command bytes (first payload byte of a client packet in the command phase).
pub mod command {
    pub const SLEEP: u8 = 0x00;
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const CREATE_DB: u8 = 0x05;
    pub const DROP_DB: u8 = 0x06;
    pub const REFRESH: u8 = 0x07;
    pub const SHUTDOWN: u8 = 0x08;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_INFO: u8 = 0x0a;
    pub const CONNECT: u8 = 0x0b;
    pub const PROCESS_KILL: u8 = 0x0c;
    pub const DEBUG: u8 = 0x0d;
    pub const PING: u8 = 0x0e;
    pub const TIME: u8 = 0x0f;
    pub const DELAYED_INSERT: u8 = 0x10;
    pub const CHANGE_USER: u8 = 0x11;
    pub const BINLOG_DUMP: u8 = 0x12;
    pub const TABLE_DUMP: u8 = 0x13;
    pub const CONNECT_OUT: u8 = 0x14;
    pub const REGISTER_SLAVE: u8 = 0x15;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const DAEMON: u8 = 0x1d;
    pub const BINLOG_DUMP_GTID: u8 = 0x1e;
    pub const RESET_CONNECTION: u8 = 0x1f;
    /// MariaDB COM_STMT_BULK_EXECUTE.
    pub const STMT_BULK_EXECUTE: u8 = 0xfa;
}

/// Server status flags (OK and EOF packets).
pub mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    pub const CURSOR_EXISTS: u16 = 0x0040;
    pub const LAST_ROW_SENT: u16 = 0x0080;
    pub const IN_TRANS_READONLY: u16 = 0x2000;
}

/// Capability flags (lower 32 bits) and MariaDB extended capabilities.
pub mod caps {
    /// Bit 0: set by MySQL clients/servers; clear means MariaDB extended
    /// capabilities live in the otherwise reserved bytes.
    pub const CLIENT_MYSQL: u32 = 0x0000_0001;
    pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
    pub const CLIENT_COMPRESS: u32 = 0x0000_0020;
    pub const CLIENT_LOCAL_FILES: u32 = 0x0000_0080;
    pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
    pub const CLIENT_SSL: u32 = 0x0000_0800;
    pub const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
    pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
    pub const CLIENT_MULTI_STATEMENTS: u32 = 0x0001_0000;
    pub const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
    pub const CLIENT_PS_MULTI_RESULTS: u32 = 0x0004_0000;
    pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
    pub const CLIENT_SESSION_TRACK: u32 = 0x0080_0000;
    pub const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;
    /// MySQL 8: result-set metadata may be omitted (changes the column-count packet).
    pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 0x0200_0000;
    pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 0x0400_0000;
    pub const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;
    /// MySQL 8.0.27 multi-factor authentication.
    pub const MULTI_FACTOR_AUTHENTICATION: u32 = 0x1000_0000;

    pub const MARIADB_CLIENT_PROGRESS: u32 = 0x0000_0001;
    pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u32 = 0x0000_0004;
    pub const MARIADB_CLIENT_EXTENDED_METADATA: u32 = 0x0000_0008;
    pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 0x0000_0010;
    pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u32 = 0x0000_0020;
}

/// Status flags of an OK packet payload (0 when unreadable).
pub fn ok_status(payload: &[u8]) -> u16 {
    let Some((_, n1)) = payload.get(1..).and_then(read_lenenc) else {
        return 0;
    };
    let Some((_, n2)) = payload.get(1 + n1..).and_then(read_lenenc) else {
        return 0;
    };
    payload
        .get(1 + n1 + n2..3 + n1 + n2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

/// Read a length-encoded integer at the start of `b`: (value, bytes used).
/// `None` when `b` is too short or starts with 0xFB (NULL) / 0xFF (invalid).
pub fn read_lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let (n, value) = match first {
        0..=0xfa => return Some((first as u64, 1)),
        0xfc => (2, b.get(1..3)?),
        0xfd => (3, b.get(1..4)?),
        0xfe => (8, b.get(1..9)?),
        _ => return None,
    };
    let mut v = 0u64;
    for (i, byte) in value.iter().enumerate() {
        v |= (*byte as u64) << (8 * i);
    }
    Some((v, n + 1))
}

#[cfg(test)]
mod tests {
    use super::read_lenenc;

    #[test]
    fn ok_status_reads_after_two_lenencs() {
        use super::ok_status;
        assert_eq!(ok_status(&[0, 0, 0, 2, 0, 0, 0]), 2);
        assert_eq!(ok_status(&[0, 0xfc, 1, 1, 0, 0x03, 0x40, 0, 0]), 0x4003);
        assert_eq!(ok_status(&[0]), 0);
    }

    #[test]
    fn lenenc_forms() {
        assert_eq!(read_lenenc(&[0x05]), Some((5, 1)));
        assert_eq!(read_lenenc(&[0xfc, 0x34, 0x12]), Some((0x1234, 3)));
        assert_eq!(read_lenenc(&[0xfd, 1, 2, 3]), Some((0x030201, 4)));
        assert_eq!(
            read_lenenc(&[0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80]),
            Some((0x8000_0000_0000_0001, 9))
        );
        assert_eq!(read_lenenc(&[0xfc, 1]), None);
        assert_eq!(read_lenenc(&[0xfb]), None);
        assert_eq!(read_lenenc(&[]), None);
    }
}
