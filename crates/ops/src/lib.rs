//! mysql-zk-proxy's ops layer: the operator commands that change the
//! primary record and the servers, `publish` (compare-and-set a primary
//! record) and `switchover` (planned GTID switchover with the draining
//! protocol of docs/architecture.md, ZooKeeper contract). The failover drill
//! is its own crate above this one (`mysql-zk-proxy-drill`).
//!
//! Layer: above `mysql-zk-proxy-core` (config types, the record format,
//! routing states); below the deployed binary and the test bench
//! (`mysql-zk-proxy-sandbox`), which it must not know: every value the
//! commands need (servers, users, ZooKeeper, the switchover to drill) comes
//! from their arguments.
//!
//! * [`zk`]: bounded ZooKeeper session, versioned read, compare-and-set write.
//! * [`publish`]: `mysql-zk-proxy publish` (epoch = previous + 1, never backwards).
//! * [`replicas`]: replica records (`publish --replica`, and a switchover's update).
//! * [`server`]: one control connection to a MariaDB/MySQL server (mysql_async).
//! * [`checks`]: what must hold before a switchover acts (refusals).
//! * [`drain`]: waiting for every registered proxy's drain acknowledgement.
//! * [`switchover`]: the phases, their timing and the roll-back.
//! * [`report`]: the outcome, printed as text or one JSON document.
//! * [`cli`]: the clap arguments of both commands and their exit codes.

pub mod checks;
pub mod cli;
pub mod drain;
pub mod publish;
pub mod replicas;
pub mod report;
pub mod server;
pub mod switchover;
pub mod zk;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use mysql_zk_proxy_core::discovery::record::Record;
use mysql_zk_proxy_core::routing::RecordState;

/// `HOST:PORT` of a server (IPv6 as `[::1]:3306`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// The record's primary.
    pub fn of(record: &Record) -> Endpoint {
        Endpoint::new(record.host.clone(), record.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `HOST:PORT` that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not HOST:PORT: {1}")]
pub struct EndpointError(
    String,
    #[source] mysql_zk_proxy_core::discovery::record::RecordError,
);

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// Parsed like a plain record, so the same hosts are accepted.
    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        use mysql_zk_proxy_core::discovery::record::{parse_record, RecordError};
        let t = s.trim();
        if t.starts_with('{') {
            return Err(EndpointError(
                s.to_owned(),
                RecordError::NotHostPort(s.into()),
            ));
        }
        parse_record(t.as_bytes())
            .map(|r| Endpoint::of(&r))
            .map_err(|e| EndpointError(s.to_owned(), e))
    }
}

/// The record as JSON in the contract's key order, `state` always written.
pub fn record_json(record: &Record) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        host: &'a str,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        server_id: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        server_uuid: Option<&'a str>,
        state: &'static str,
    }
    let out = Out {
        host: &record.host,
        port: record.port,
        epoch: record.epoch,
        server_id: record.server_id,
        server_uuid: record.server_uuid.as_deref(),
        state: match record.state {
            RecordState::Serving => "serving",
            RecordState::Draining => "draining",
        },
    };
    serde_json::to_vec(&out).expect("plain struct serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_zk_proxy_core::discovery::record::parse_record;

    #[test]
    fn endpoint_parses_like_a_plain_record() {
        let e: Endpoint = "10.0.0.6:3307".parse().unwrap();
        assert_eq!(e, Endpoint::new("10.0.0.6", 3307));
        let e: Endpoint = "[::1]:3306".parse().unwrap();
        assert_eq!(
            (e.host.as_str(), e.to_string()),
            ("::1", "[::1]:3306".into())
        );
        for bad in ["db1", "db1:0", "a b:1", r#"{"host":"a","port":1}"#, ""] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_json_round_trips_through_the_parser() {
        let r = Record {
            host: "db2".into(),
            port: 3306,
            epoch: Some(8),
            server_id: Some(2),
            server_uuid: None,
            state: RecordState::Draining,
        };
        let json = record_json(&r);
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"host":"db2","port":3306,"epoch":8,"server_id":2,"state":"draining"}"#
        );
        assert_eq!(parse_record(&json).unwrap(), r);
        let serving = Record {
            state: RecordState::Serving,
            ..r
        };
        assert_eq!(parse_record(&record_json(&serving)).unwrap(), serving);
    }
}
