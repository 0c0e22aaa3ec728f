//! ZooKeeper for the operator commands: one bounded session, the primary
//! record read with its data version, and compare-and-set writes (a set with
//! the expected version, or a create when the znode was absent).

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use crate::discovery::record::{parse_record, Record, RecordError};

/// A ZooKeeper failure of an operator command.
#[derive(Debug, thiserror::Error)]
pub enum ZkOpError {
    #[error("cannot reach ZooKeeper {connect} within {after:?}")]
    ConnectTimeout { connect: String, after: Duration },
    #[error("cannot connect to ZooKeeper {connect}: {source}")]
    Connect {
        connect: String,
        #[source]
        source: ZkError,
    },
    #[error("zookeeper {op} {path}: {source}")]
    Op {
        op: &'static str,
        path: String,
        #[source]
        source: ZkError,
    },
    /// The znode is not at the version that was read (changed, created or
    /// deleted by someone else): nothing was written.
    #[error("{path} changed under us (expected {expected}); nothing written")]
    Conflict { path: String, expected: String },
}

/// The record znode as read: data, data version and the parse result.
#[derive(Debug)]
pub struct Current {
    pub data: Vec<u8>,
    pub version: i32,
    pub record: Result<Record, RecordError>,
}

/// A session bounded by `timeout` (fails instead of retrying forever).
pub async fn connect(connect: &str, timeout: Duration) -> Result<Client, ZkOpError> {
    let fut = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(timeout)
        .with_fail_eagerly()
        .connect(connect);
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => Err(ZkOpError::Connect {
            connect: connect.to_owned(),
            source,
        }),
        Err(_) => Err(ZkOpError::ConnectTimeout {
            connect: connect.to_owned(),
            after: timeout,
        }),
    }
}

fn op<'a>(op: &'static str, path: &'a str) -> impl FnOnce(ZkError) -> ZkOpError + 'a {
    move |source| ZkOpError::Op {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The record at `path` with its version; `None` when the znode is absent.
pub async fn read(client: &Client, path: &str) -> Result<Option<Current>, ZkOpError> {
    match client.get_data(path).await {
        Ok((data, stat)) => Ok(Some(Current {
            record: parse_record(&data),
            data,
            version: stat.version,
        })),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(op("get", path)(e)),
    }
}

/// Write `data` only if the znode is still at `expected` (`None` = absent:
/// create it, parents too). Returns the new data version.
pub async fn compare_and_set(
    client: &Client,
    path: &str,
    data: &[u8],
    expected: Option<i32>,
) -> Result<i32, ZkOpError> {
    let conflict = || ZkOpError::Conflict {
        path: path.to_owned(),
        expected: expected.map_or("no znode".into(), |v| format!("version {v}")),
    };
    let Some(version) = expected else {
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        if let Some(parent) = path.rfind('/').filter(|&i| i > 0).map(|i| &path[..i]) {
            client
                .mkdir(parent, &opts)
                .await
                .map_err(op("mkdir", parent))?;
        }
        return match client.create(path, data, &opts).await {
            Ok((stat, _)) => Ok(stat.version),
            Err(ZkError::NodeExists) => Err(conflict()),
            Err(e) => Err(op("create", path)(e)),
        };
    };
    match client.set_data(path, data, Some(version)).await {
        Ok(stat) => Ok(stat.version),
        Err(ZkError::BadVersion | ZkError::NoNode) => Err(conflict()),
        Err(e) => Err(op("set", path)(e)),
    }
}

/// Children of `path` with their data (a child gone meanwhile is skipped);
/// empty when `path` is absent.
pub async fn children_data(
    client: &Client,
    path: &str,
) -> Result<Vec<(String, Vec<u8>)>, ZkOpError> {
    let names = match client.list_children(path).await {
        Ok(names) => names,
        Err(ZkError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(op("list", path)(e)),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let child = format!("{path}/{name}");
        match client.get_data(&child).await {
            Ok((data, _)) => out.push((name, data)),
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(op("get", &child)(e)),
        }
    }
    Ok(out)
}
