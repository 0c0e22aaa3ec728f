//! Verifying a new primary before it becomes the route (docs/architecture.md,
//! Control path: never route writes to a server that reports
//! `@@read_only=1`): log in with mysql_async (control plane only, TCP), read
//! `@@read_only`, `@@server_id` and, when the record carries one,
//! `@@server_uuid`, and judge them against the record. MariaDB has no `@@server_uuid`: a record naming
//! a uuid cannot be verified on it and is held ([`VerifyError::NoServerUuid`]).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use crate::config::{ConfigError, MonitorConfig};
use crate::control::Login;
use crate::routing::Primary;

/// MySQL's "Unknown system variable" (ER_UNKNOWN_SYSTEM_VARIABLE).
const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

/// Why a candidate primary is not routed to (yet).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot check {addr}: {source}")]
    Mysql {
        addr: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{addr} is read-only (@@read_only = {value})")]
    ReadOnly { addr: String, value: String },
    #[error("{addr} has server_id {got}; the record says {expected}")]
    ServerId {
        addr: String,
        expected: u64,
        got: u64,
    },
    #[error("{addr} has server_uuid {got:?}; the record says {expected:?}")]
    ServerUuid {
        addr: String,
        expected: String,
        got: String,
    },
    #[error(
        "the record carries server_uuid but {addr} has no @@server_uuid (MariaDB): cannot verify"
    )]
    NoServerUuid { addr: String },
}

/// What the server said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// `@@read_only` as text (`0`, `1`, or an enum name on newer servers).
    pub read_only: String,
    pub server_id: u64,
    /// Only read when the record carries a uuid.
    pub server_uuid: Option<String>,
}

impl ServerFacts {
    pub fn writable(&self) -> bool {
        matches!(self.read_only.as_str(), "0" | "OFF")
    }
}

/// Accept `facts` for `p` only if writable and matching what the record says.
pub fn judge(p: &Primary, facts: &ServerFacts) -> Result<(), VerifyError> {
    let addr = p.address();
    if !facts.writable() {
        let value = facts.read_only.clone();
        return Err(VerifyError::ReadOnly { addr, value });
    }
    if let Some(expected) = p.server_id {
        if expected != facts.server_id {
            let got = facts.server_id;
            return Err(VerifyError::ServerId {
                addr,
                expected,
                got,
            });
        }
    }
    if let Some(expected) = &p.server_uuid {
        match &facts.server_uuid {
            None => return Err(VerifyError::NoServerUuid { addr }),
            Some(got) if !got.eq_ignore_ascii_case(expected) => {
                let (expected, got) = (expected.clone(), got.clone());
                return Err(VerifyError::ServerUuid {
                    addr,
                    expected,
                    got,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Logs in to candidate primaries with the `[monitor]` credentials.
#[derive(Debug, Clone)]
pub struct Verifier {
    login: Login,
    /// Bound on one check (connect + queries).
    pub check_timeout: Duration,
    /// Pause between checks of a candidate that failed one.
    pub recheck_interval: Duration,
}

impl Verifier {
    /// `None` when verification is off (`verify_writable` false, or no user).
    pub fn from_config(cfg: &MonitorConfig) -> Result<Option<Verifier>, ConfigError> {
        if !cfg.enabled() {
            return Ok(None);
        }
        Ok(Some(Verifier {
            login: Login::monitor(cfg)?,
            check_timeout: cfg.check_timeout,
            recheck_interval: cfg.recheck_interval,
        }))
    }

    /// Check `p` once: facts read and judged, within `check_timeout`.
    pub async fn verify(&self, p: &Primary) -> Result<ServerFacts, VerifyError> {
        let addr = p.address();
        let facts = tokio::time::timeout(self.check_timeout, self.facts(p))
            .await
            .map_err(|_| VerifyError::Timeout {
                addr: addr.clone(),
                after: self.check_timeout,
            })??;
        judge(p, &facts)?;
        Ok(facts)
    }

    /// Read the facts of `p` over a fresh connection.
    pub async fn facts(&self, p: &Primary) -> Result<ServerFacts, VerifyError> {
        let addr = p.address();
        let mysql = |source| VerifyError::Mysql {
            addr: addr.clone(),
            source,
        };
        let want_uuid = p.server_uuid.is_some();
        self.login
            .once(&p.host, p.port, async |c: &mut Conn| {
                read_facts(c, want_uuid).await
            })
            .await
            .map_err(mysql)
    }
}

async fn read_facts(conn: &mut Conn, want_uuid: bool) -> Result<ServerFacts, mysql_async::Error> {
    let row: Option<(Value, u64)> = conn.query_first("SELECT @@read_only, @@server_id").await?;
    let (read_only, server_id) = row.unwrap_or((Value::NULL, 0));
    let server_uuid = if want_uuid {
        match conn.query_first::<String, _>("SELECT @@server_uuid").await {
            Ok(v) => v,
            Err(mysql_async::Error::Server(e)) if e.code == UNKNOWN_SYSTEM_VARIABLE => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(ServerFacts {
        read_only: value_text(&read_only),
        server_id,
        server_uuid,
    })
}

/// `@@read_only` as text: `0`/`1`, or the enum name some servers return.
fn value_text(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).to_ascii_uppercase(),
        Value::NULL => "NULL".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(server_id: Option<u64>, uuid: Option<&str>) -> Primary {
        Primary {
            host: "127.0.0.1".into(),
            port: 3306,
            epoch: 2,
            server_id,
            server_uuid: uuid.map(str::to_owned),
        }
    }

    fn facts(read_only: &str, server_id: u64, uuid: Option<&str>) -> ServerFacts {
        ServerFacts {
            read_only: read_only.into(),
            server_id,
            server_uuid: uuid.map(str::to_owned),
        }
    }

    #[test]
    fn writable_matching_server_passes() {
        judge(&primary(None, None), &facts("0", 9, None)).unwrap();
        judge(&primary(Some(9), None), &facts("OFF", 9, None)).unwrap();
        judge(
            &primary(Some(9), Some("AB-1")),
            &facts("0", 9, Some("ab-1")),
        )
        .unwrap();
    }

    #[test]
    fn read_only_or_mismatch_is_held() {
        let e = judge(&primary(None, None), &facts("1", 9, None)).unwrap_err();
        assert!(matches!(e, VerifyError::ReadOnly { .. }), "{e}");
        assert!(judge(&primary(None, None), &facts("NULL", 9, None)).is_err());
        let e = judge(&primary(Some(1), None), &facts("0", 2, None)).unwrap_err();
        assert!(e.to_string().contains("server_id 2"), "{e}");
        let e = judge(&primary(None, Some("a")), &facts("0", 2, Some("b"))).unwrap_err();
        assert!(matches!(e, VerifyError::ServerUuid { .. }), "{e}");
        let e = judge(&primary(None, Some("a")), &facts("0", 2, None)).unwrap_err();
        assert!(matches!(e, VerifyError::NoServerUuid { .. }), "{e}");
    }

    #[test]
    fn read_only_values_as_text() {
        assert_eq!(value_text(&Value::Int(0)), "0");
        assert_eq!(value_text(&Value::Bytes(b"off".to_vec())), "OFF");
        assert!(!facts(&value_text(&Value::UInt(1)), 1, None).writable());
    }
}
