//! The replica record parser: the data of `<cluster>/replicas/<name>` →
//! [`ReplicaRecord`]. Pure, like the primary record's parser
//! (docs/architecture.md, ZooKeeper contract).
//!
//! JSON only: `{"host":"10.0.0.6","port":3306,"epoch":42}` with optional
//! `weight` (1..=1000, default 1) and `state` (`"serving"` | `"draining"` |
//! `"maintenance"`, absent = serving). `epoch` is the epoch of the primary
//! record the replica follows and is required. Unknown fields are ignored;
//! a known field with the wrong type (also `null`) is an error.

use serde::{Deserialize, Serialize};

use super::record::{json_host, json_port, present, record_text, RecordError};

/// Highest `weight` a record may carry.
pub const MAX_WEIGHT: u32 = 1000;

/// What the replica's operator says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Takes new read sessions while its health checks pass.
    #[default]
    Serving,
    /// Takes no new sessions; its idle sessions move elsewhere.
    Draining,
    /// As `draining`, for planned work on the server.
    Maintenance,
}

impl ReplicaState {
    pub fn label(self) -> &'static str {
        match self {
            ReplicaState::Serving => "serving",
            ReplicaState::Draining => "draining",
            ReplicaState::Maintenance => "maintenance",
        }
    }
}

/// One parsed replica record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaRecord {
    /// The znode's name under `<cluster>/replicas/`.
    pub name: String,
    /// Host name or IP literal, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Epoch of the primary record this replica follows.
    pub epoch: u64,
    pub weight: u32,
    pub state: ReplicaState,
}

/// Why znode data is not a replica record.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaRecordError {
    #[error("replica {name:?}: {source}")]
    Record {
        name: String,
        #[source]
        source: RecordError,
    },
    #[error("replica {name:?}: not a replica record (JSON with host, port, epoch): {source}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("replica {name:?}: weight {weight} is not in 1..={MAX_WEIGHT}")]
    BadWeight { name: String, weight: u64 },
    #[error("replica {name:?}: state {state:?} is not serving, draining or maintenance")]
    BadState { name: String, state: String },
}

#[derive(Deserialize)]
struct JsonReplica {
    host: String,
    port: u64,
    epoch: u64,
    #[serde(default, deserialize_with = "present")]
    weight: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    state: Option<String>,
}

/// Parse the data of the replica znode `name`.
pub fn parse_replica(name: &str, data: &[u8]) -> Result<ReplicaRecord, ReplicaRecordError> {
    let rec = |source| ReplicaRecordError::Record {
        name: name.to_owned(),
        source,
    };
    let text = record_text(data).map_err(rec)?;
    let j: JsonReplica = serde_json::from_str(text).map_err(|source| ReplicaRecordError::Json {
        name: name.to_owned(),
        source,
    })?;
    let port = json_port(j.port).map_err(rec)?;
    let weight = match j.weight {
        None => 1,
        Some(w @ 1..=1000) => w as u32,
        Some(weight) => {
            let name = name.to_owned();
            return Err(ReplicaRecordError::BadWeight { name, weight });
        }
    };
    let state = match j.state.as_deref() {
        None | Some("serving") => ReplicaState::Serving,
        Some("draining") => ReplicaState::Draining,
        Some("maintenance") => ReplicaState::Maintenance,
        Some(other) => {
            let (name, state) = (name.to_owned(), other.to_owned());
            return Err(ReplicaRecordError::BadState { name, state });
        }
    };
    Ok(ReplicaRecord {
        name: name.to_owned(),
        host: json_host(&j.host).map_err(rec)?,
        port,
        epoch: j.epoch,
        weight,
        state,
    })
}

/// The record's JSON as publishers write it (optional fields only when set
/// to something other than their default).
pub fn replica_json(r: &ReplicaRecord) -> String {
    let mut v = serde_json::json!({"host": r.host, "port": r.port, "epoch": r.epoch});
    if r.weight != 1 {
        v["weight"] = r.weight.into();
    }
    if r.state != ReplicaState::Serving {
        v["state"] = r.state.label().into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_records() {
        let r = parse_replica("db2", br#"{"host":"127.0.0.1","port":3307,"epoch":4}"#).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.epoch), ("127.0.0.1", 3307, 4));
        assert_eq!((r.weight, r.state), (1, ReplicaState::Serving));
        let full = br#" {"host":"[::1]","port":1,"epoch":0,"weight":5,"state":"draining","x":1} "#;
        let r = parse_replica("db3", full).unwrap();
        assert_eq!((r.host.as_str(), r.weight), ("::1", 5));
        assert_eq!(r.state, ReplicaState::Draining);
        assert_eq!(
            parse_replica("db3", replica_json(&r).as_bytes()).unwrap(),
            r
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_replica() {
        let cases: [&[u8]; 10] = [
            b"",
            b"\xff",
            b"127.0.0.1:3306",
            br#"{"host":"h","port":3306}"#,
            br#"{"host":"h","port":0,"epoch":1}"#,
            br#"{"host":"h/x","port":1,"epoch":1}"#,
            br#"{"host":"h","port":1,"epoch":1,"weight":0}"#,
            br#"{"host":"h","port":1,"epoch":1,"weight":null}"#,
            br#"{"host":"h","port":1,"epoch":1,"state":"off"}"#,
            br#"{"host":"h","port":1,"epoch":-1}"#,
        ];
        for data in cases {
            let e = parse_replica("dbx", data).unwrap_err().to_string();
            assert!(e.contains("\"dbx\"") && !e.contains("primary"), "{e}");
        }
    }
}
