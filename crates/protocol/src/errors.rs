//! Error packets the proxy itself sends, with fixed codes and SQLSTATEs
//! (docs/errors.md lists them with what an application should do).

use mysql_common::packets::{ErrPacket, ServerError, SqlState};
use mysql_common::proto::MySerialize;

/// An error the proxy reports to a client in MySQL's own format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyErrorCode {
    /// No primary became known within `failover.hold_timeout`. Retry later.
    NoPrimary,
    /// The primary could not be reached. Reconnect (maybe after a back-off).
    BackendUnreachable,
    /// The client asked for TLS, which this proxy does not offer (no `[listen.tls]`).
    TlsUnsupported,
    /// The proxy is shutting down. Reconnect (another proxy of the pool answers).
    ShuttingDown,
    /// The primary changed and this session could not be moved to the new
    /// one (see the message for why). Nothing of the command ran: reconnect.
    FailoverClosed,
    /// The primary changed while a transaction was open (the record moved,
    /// the transaction did not end within `failover.drain_timeout`, or the
    /// backend connection was lost); it was rolled back. Retry the
    /// transaction on a new connection.
    TransactionAborted,
    /// `listen.max_connections` reached: MySQL's own 1040 "Too many connections".
    TooManyConnections,
    /// The server asked for an authentication step that sends the password
    /// readable (mysql_clear_password, sha256_password, caching_sha2_password
    /// full authentication) and a leg of the connection is not TLS.
    InsecureAuth,
    /// `listen.tls.require`: the client did not start TLS.
    TlsRequired,
    /// Read-only listener, causal consistency: the replica did not reach the
    /// read's GTID position within `read_only.causal_timeout`. The command
    /// did not run; the session stays open. Retry, or read from the primary.
    CausalTimeout,
    /// Read-only listener: no replica qualifies for reads and
    /// `read_only.fallback_to_primary` is off. Sent instead of the greeting.
    NoReplica,
}

impl ProxyErrorCode {
    pub const ALL: [ProxyErrorCode; 11] = [
        ProxyErrorCode::NoPrimary,
        ProxyErrorCode::BackendUnreachable,
        ProxyErrorCode::TlsUnsupported,
        ProxyErrorCode::ShuttingDown,
        ProxyErrorCode::FailoverClosed,
        ProxyErrorCode::TransactionAborted,
        ProxyErrorCode::TooManyConnections,
        ProxyErrorCode::InsecureAuth,
        ProxyErrorCode::TlsRequired,
        ProxyErrorCode::CausalTimeout,
        ProxyErrorCode::NoReplica,
    ];

    /// The code as a metric label ("9001", ..., "1040").
    pub fn label(self) -> &'static str {
        match self {
            ProxyErrorCode::NoPrimary => "9001",
            ProxyErrorCode::BackendUnreachable => "9002",
            ProxyErrorCode::TlsUnsupported => "9003",
            ProxyErrorCode::ShuttingDown => "9004",
            ProxyErrorCode::FailoverClosed => "9005",
            ProxyErrorCode::TransactionAborted => "9006",
            ProxyErrorCode::TooManyConnections => "1040",
            ProxyErrorCode::InsecureAuth => "9007",
            ProxyErrorCode::TlsRequired => "9008",
            ProxyErrorCode::CausalTimeout => "9020",
            ProxyErrorCode::NoReplica => "9021",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            ProxyErrorCode::NoPrimary => 9001,
            ProxyErrorCode::BackendUnreachable => 9002,
            ProxyErrorCode::TlsUnsupported => 9003,
            ProxyErrorCode::ShuttingDown => 9004,
            ProxyErrorCode::FailoverClosed => 9005,
            ProxyErrorCode::TransactionAborted => 9006,
            ProxyErrorCode::TooManyConnections => 1040,
            ProxyErrorCode::InsecureAuth => 9007,
            ProxyErrorCode::TlsRequired => 9008,
            ProxyErrorCode::CausalTimeout => 9020,
            ProxyErrorCode::NoReplica => 9021,
        }
    }

    pub(crate) fn sqlstate(self) -> [u8; 5] {
        match self {
            ProxyErrorCode::NoPrimary
            | ProxyErrorCode::TlsUnsupported
            | ProxyErrorCode::TooManyConnections
            | ProxyErrorCode::TlsRequired => *b"08004",
            ProxyErrorCode::InsecureAuth => *b"28000",
            ProxyErrorCode::BackendUnreachable
            | ProxyErrorCode::ShuttingDown
            | ProxyErrorCode::FailoverClosed => *b"08S01",
            ProxyErrorCode::TransactionAborted => *b"40001",
            ProxyErrorCode::CausalTimeout => *b"HY000",
            ProxyErrorCode::NoReplica => *b"08004",
        }
    }
}

/// Where in the connection the error is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Instead of the greeting: clients parse this ERR without PROTOCOL_41,
    /// so (like MySQL's own "Too many connections") it carries no SQLSTATE
    /// marker — a `#XXXXX` would end up in the message text.
    BeforeGreeting,
    /// After the greeting: `#` + SQLSTATE precede the message.
    AfterGreeting,
}

/// A whole ERR packet (header included) with sequence id `seq`; the message
/// is prefixed with "mysql-zk-proxy: " so users can tell who said it.
pub fn err_packet(seq: u8, code: ProxyErrorCode, phase: Phase, message: &str) -> Vec<u8> {
    let msg = format!("mysql-zk-proxy: {message}");
    let state = (phase == Phase::AfterGreeting).then(|| SqlState::new(code.sqlstate()));
    let err = ErrPacket::Error(ServerError::new(code.code(), state, msg.as_bytes()));
    let mut payload = Vec::new();
    err.serialize(&mut payload);
    let len = payload.len().min(0xff_ffff) as u32;
    let mut packet = Vec::with_capacity(4 + payload.len());
    packet.extend_from_slice(&len.to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend_from_slice(&payload);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_greeting_has_no_sqlstate_marker() {
        let p = err_packet(0, ProxyErrorCode::NoPrimary, Phase::BeforeGreeting, "x");
        let mut want = vec![0xff, 0x29, 0x23];
        want.extend_from_slice(b"mysql-zk-proxy: x");
        assert_eq!(&p[4..], &want[..]);
        assert_eq!(&p[..4], &[want.len() as u8, 0, 0, 0]);
    }

    #[test]
    fn after_greeting_carries_the_sqlstate() {
        let p = err_packet(0, ProxyErrorCode::NoPrimary, Phase::AfterGreeting, "x");
        let mut want = vec![0xff, 0x29, 0x23, b'#'];
        want.extend_from_slice(b"08004mysql-zk-proxy: x");
        assert_eq!(&p[4..], &want[..]);
    }

    #[test]
    fn labels_are_the_codes() {
        for c in ProxyErrorCode::ALL {
            assert_eq!(c.label(), c.code().to_string());
        }
    }

    #[test]
    fn sequence_id_is_kept() {
        let p = err_packet(
            2,
            ProxyErrorCode::TlsUnsupported,
            Phase::AfterGreeting,
            "no TLS",
        );
        assert_eq!(p[3], 2);
        assert_eq!(u16::from_le_bytes([p[5], p[6]]), 9003);
    }
}
