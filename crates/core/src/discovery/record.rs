//! The primary record parser: znode bytes → [`Record`]. Pure (no I/O, no
//! clock), so it can be unit-tested with byte literals and fuzzed.
//!
//! Accepted forms (surrounding ASCII whitespace, e.g. a trailing newline, is ignored):
//! - JSON object `{"host":"10.0.0.5","port":3306,"epoch":42}` with optional
//!   `server_id` (u64), `server_uuid` (string) and `state` (`"serving"` |
//!   `"draining"`, absent = serving). Unknown fields are ignored; a field
//!   present with the wrong type (also `null`) is an error.
//! - plain `host:port` (Orchestrator KV style), IPv6 as `[::1]:3306`.

use serde::{Deserialize, Deserializer};

use crate::routing::RecordState;

/// A parsed primary record, not yet ordered against the current route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Host name or IP literal, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// The ordering epoch; `None` = order by the znode's mzxid.
    pub epoch: Option<u64>,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
    pub state: RecordState,
}

/// Why znode data is not a primary record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record is not UTF-8")]
    NotUtf8,
    #[error("record is empty")]
    Empty,
    #[error("record is not valid JSON for a primary: {0}")]
    Json(#[source] serde_json::Error),
    #[error("plain record {0:?} is not host:port")]
    NotHostPort(String),
    #[error("port {0:?} is not in 1..=65535")]
    BadPort(String),
    #[error("host {0:?} is not a valid host name or IP address")]
    BadHost(String),
    #[error("state {0:?} is neither \"serving\" nor \"draining\"")]
    BadState(String),
}

#[derive(Deserialize)]
struct JsonRecord {
    host: String,
    port: u64,
    #[serde(default, deserialize_with = "present")]
    epoch: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    server_id: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    server_uuid: Option<String>,
    #[serde(default, deserialize_with = "present")]
    state: Option<String>,
}

/// An optional field that, when present, must have its type (`null` is rejected).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parse znode data into a [`Record`].
pub fn parse_record(data: &[u8]) -> Result<Record, RecordError> {
    let text = record_text(data)?;
    if text.starts_with('{') {
        parse_json(text)
    } else {
        parse_plain(text)
    }
}

fn parse_json(text: &str) -> Result<Record, RecordError> {
    let j: JsonRecord = serde_json::from_str(text).map_err(RecordError::Json)?;
    let port = json_port(j.port)?;
    let state = match j.state.as_deref() {
        None | Some("serving") => RecordState::Serving,
        Some("draining") => RecordState::Draining,
        Some(other) => return Err(RecordError::BadState(other.to_owned())),
    };
    Ok(Record {
        host: json_host(&j.host)?,
        port,
        epoch: j.epoch,
        server_id: j.server_id,
        server_uuid: j.server_uuid,
        state,
    })
}

fn parse_plain(text: &str) -> Result<Record, RecordError> {
    let not_host_port = || RecordError::NotHostPort(text.to_owned());
    let (host, port) = text.rsplit_once(':').ok_or_else(not_host_port)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(not_host_port)?,
        // An unbracketed IPv6 literal is ambiguous: "::1:3306".
        None if host.contains(':') => return Err(not_host_port()),
        None => host,
    };
    Ok(Record {
        host: valid_host(host)?,
        port: parse_port(port)?,
        epoch: None,
        server_id: None,
        server_uuid: None,
        state: RecordState::Serving,
    })
}

fn parse_port(s: &str) -> Result<u16, RecordError> {
    let bad = || RecordError::BadPort(s.to_owned());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(bad()),
    }
}

/// Znode data as text: UTF-8, ASCII whitespace trimmed, not empty.
pub(crate) fn record_text(data: &[u8]) -> Result<&str, RecordError> {
    let text = std::str::from_utf8(data).map_err(|_| RecordError::NotUtf8)?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Err(RecordError::Empty);
    }
    Ok(text)
}

/// A JSON record's `port`: a TCP port other than zero.
pub(crate) fn json_port(port: u64) -> Result<u16, RecordError> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(RecordError::BadPort(port.to_string())),
    }
}

/// A JSON record's `host`, brackets around an IPv6 literal taken off.
pub(crate) fn json_host(host: &str) -> Result<String, RecordError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    valid_host(bare.unwrap_or(host))
}

/// Host names, IPv4 and IPv6 literals (with an optional `%zone`); nothing
/// that could smuggle a path, credentials or whitespace into an address.
pub(crate) fn valid_host(host: &str) -> Result<String, RecordError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'));
    if ok {
        Ok(host.to_owned())
    } else {
        Err(RecordError::BadHost(host.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(data: &[u8]) -> Record {
        parse_record(data).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(data)))
    }

    fn err(data: &[u8]) -> RecordError {
        match parse_record(data) {
            Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(data)),
            Err(e) => e,
        }
    }

    #[test]
    fn json_minimal() {
        let r = ok(br#"{"host":"10.0.0.5","port":3306,"epoch":42}"#);
        assert_eq!(r.host, "10.0.0.5");
        assert_eq!(r.port, 3306);
        assert_eq!(r.epoch, Some(42));
        assert_eq!(r.server_id, None);
        assert_eq!(r.state, RecordState::Serving);
    }

    #[test]
    fn json_full_and_unknown_fields_ignored() {
        let r = ok(br#"{"host":"db1","port":3307,"epoch":7,"server_id":11,
            "server_uuid":"3e11fa47-71ca-11e1-9e33-c80aa9429562","state":"draining",
            "written_by":"switchover","extra":{"a":[1,2]}}"#);
        assert_eq!(r.server_id, Some(11));
        assert_eq!(
            r.server_uuid.as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562")
        );
        assert_eq!(r.state, RecordState::Draining);
        let r = ok(br#"{"host":"db1","port":1,"epoch":0,"state":"serving"}"#);
        assert_eq!(r.state, RecordState::Serving);
    }

    #[test]
    fn json_without_epoch_is_mzxid_ordered() {
        assert_eq!(ok(br#"{"host":"db1","port":3306}"#).epoch, None);
    }

    #[test]
    fn surrounding_whitespace_and_newline() {
        assert_eq!(ok(b"  {\"host\":\"a\",\"port\":1,\"epoch\":1}\n").host, "a");
        assert_eq!(ok(b"\t10.0.0.5:3306\r\n").port, 3306);
    }

    #[test]
    fn json_ipv6_host_with_or_without_brackets() {
        assert_eq!(ok(br#"{"host":"::1","port":3306,"epoch":1}"#).host, "::1");
        assert_eq!(
            ok(br#"{"host":"[fe80::1%eth0]","port":3306,"epoch":1}"#).host,
            "fe80::1%eth0"
        );
    }

    #[test]
    fn plain_host_port() {
        let r = ok(b"10.0.0.5:3306");
        assert_eq!((r.host.as_str(), r.port, r.epoch), ("10.0.0.5", 3306, None));
        assert_eq!(ok(b"db-1.example.com:3306").host, "db-1.example.com");
        let r = ok(b"[::1]:3306");
        assert_eq!((r.host.as_str(), r.port), ("::1", 3306));
    }

    #[test]
    fn ports_out_of_range() {
        for data in [
            &br#"{"host":"a","port":0,"epoch":1}"#[..],
            br#"{"host":"a","port":65536,"epoch":1}"#,
            br#"{"host":"a","port":-1,"epoch":1}"#,
            br#"{"host":"a","port":"3306","epoch":1}"#,
            b"a:0",
            b"a:65536",
            b"a:99999999999999999999",
            b"a:",
            b"a:+3306",
            b"a:33 06",
        ] {
            err(data);
        }
        assert!(matches!(err(b"a:0"), RecordError::BadPort(_)));
        assert_eq!(ok(br#"{"host":"a","port":65535,"epoch":1}"#).port, 65535);
    }

    #[test]
    fn empty_or_bad_host() {
        assert!(matches!(
            err(br#"{"host":"","port":1,"epoch":1}"#),
            RecordError::BadHost(_)
        ));
        assert!(matches!(err(b":3306"), RecordError::BadHost(_)));
        assert!(matches!(err(b"[]:3306"), RecordError::BadHost(_)));
        assert!(matches!(err(b"a b:3306"), RecordError::BadHost(_)));
        assert!(matches!(err(b"user@h:3306"), RecordError::BadHost(_)));
        assert!(matches!(
            err(br#"{"host":"h/x","port":1}"#),
            RecordError::BadHost(_)
        ));
    }

    #[test]
    fn epoch_must_be_a_non_negative_integer() {
        for data in [
            &br#"{"host":"a","port":1,"epoch":"42"}"#[..],
            br#"{"host":"a","port":1,"epoch":-1}"#,
            br#"{"host":"a","port":1,"epoch":4.2}"#,
            br#"{"host":"a","port":1,"epoch":null}"#,
            br#"{"host":"a","port":1,"epoch":18446744073709551616}"#,
        ] {
            assert!(matches!(err(data), RecordError::Json(_)));
        }
        assert_eq!(
            ok(br#"{"host":"a","port":1,"epoch":18446744073709551615}"#).epoch,
            Some(u64::MAX)
        );
    }

    #[test]
    fn bad_json() {
        for data in [
            &b"{"[..],
            br#"{"port":1,"epoch":1}"#,
            br#"{"host":"a","epoch":1}"#,
            br#"{"host":"a","port":1,"epoch":1,"epoch":2}"#,
            br#"{"host":"a","port":1,"epoch":1} trailing"#,
            br#"{"host":"a","port":1,"server_id":"x"}"#,
            br#"{"host":1,"port":1}"#,
        ] {
            assert!(matches!(err(data), RecordError::Json(_)), "{data:?}");
        }
        assert!(matches!(
            err(br#"{"host":"a","port":1,"state":"primary"}"#),
            RecordError::BadState(_)
        ));
    }

    #[test]
    fn not_a_record() {
        assert!(matches!(err(b""), RecordError::Empty));
        assert!(matches!(err(b" \n\t"), RecordError::Empty));
        assert!(matches!(err(b"\xff\xfe:3306"), RecordError::NotUtf8));
        assert!(matches!(err(b"10.0.0.5"), RecordError::NotHostPort(_)));
        assert!(matches!(err(b"::1:3306"), RecordError::NotHostPort(_)));
        assert!(matches!(err(b"[::1:3306"), RecordError::NotHostPort(_)));
        assert!(matches!(
            err(br#""10.0.0.5:3306""#),
            RecordError::BadHost(_)
        ));
        err(b"[1,2,3]");
        err(b"null");
    }
}
