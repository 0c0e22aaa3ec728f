//! ZooKeeper for the operator commands: one bounded session (over TLS and
//! with digest credentials when asked), the primary record read with its data version, and
//! compare-and-set writes (a set with the expected version, or a create
//! when the znode was absent).

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, Stat};

use mysql_zk_proxy_core::config::{ConfigError, ZkAuth, ZkTlsConfig};
use mysql_zk_proxy_core::discovery::connect::{open, ConnectError, SessionSpec};
use mysql_zk_proxy_core::discovery::record::{parse_record, Record, RecordError};
use mysql_zk_proxy_core::tls::ZkTls;

/// A ZooKeeper failure of an operator command.
#[derive(Debug, thiserror::Error)]
pub enum ZkOpError {
    /// No session (unreachable, timed out, refused over TLS).
    #[error(transparent)]
    Session(#[from] ConnectError),
    /// `--zk-tls-*` (named by the `[zookeeper.tls]` key they set).
    #[error("ZooKeeper TLS (--zk-tls-*): {0}")]
    TlsConfig(#[source] ConfigError),
    /// `--zk-auth-*` (named by the flag).
    #[error("ZooKeeper auth (--zk-auth-*): {0}")]
    AuthConfig(#[source] ConfigError),
    /// The znode's ACL refuses this session (no or wrong credentials).
    #[error("ZooKeeper ACL denies {op} of {path}: {source}; authenticate as a digest user the ACL allows (--zk-auth-user with MYSQL_ZK_PROXY_ZK_PASSWORD or --zk-auth-password-file), or check its password")]
    Denied {
        op: &'static str,
        path: String,
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

/// A session bounded by `timeout` (fails instead of retrying forever);
/// over TLS to every server when `tls` is given, authenticated with the
/// digest credentials `auth` when given.
pub async fn connect(
    connect: &str,
    timeout: Duration,
    tls: Option<&ZkTlsConfig>,
    auth: Option<&ZkAuth>,
) -> Result<Client, ZkOpError> {
    let tls = match tls {
        Some(cfg) => {
            // Also checks the hosts can be verified as TLS names.
            cfg.validate(connect)
                .map_err(|e| ZkOpError::TlsConfig(e.into()))?;
            let tls = ZkTls::from_config(cfg).map_err(|e| ZkOpError::TlsConfig(e.into()))?;
            Some(tls)
        }
        None => None,
    };
    let spec = SessionSpec {
        connection_timeout: Some(timeout),
        auth,
        tls: tls.as_ref(),
        ..SessionSpec::new(connect, Duration::from_secs(10), timeout)
    };
    Ok(open(&spec).await?)
}

/// `op` of `path` failed with `source`: an ACL refusal is `Denied`.
fn op<'a>(op: &'static str, path: &'a str) -> impl FnOnce(ZkError) -> ZkOpError + 'a {
    move |source| {
        let path = path.to_owned();
        match source {
            ZkError::NoAuth => ZkOpError::Denied { op, path, source },
            source => ZkOpError::Op { op, path, source },
        }
    }
}

/// Data and stat of `path`; `None` when the znode is absent.
pub async fn get(client: &Client, path: &str) -> Result<Option<(Vec<u8>, Stat)>, ZkOpError> {
    match client.get_data(path).await {
        Ok(got) => Ok(Some(got)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(op("get", path)(e)),
    }
}

/// The record at `path` with its version; `None` when the znode is absent.
pub async fn read(client: &Client, path: &str) -> Result<Option<Current>, ZkOpError> {
    Ok(get(client, path).await?.map(|(data, stat)| Current {
        record: parse_record(&data),
        data,
        version: stat.version,
    }))
}

/// Write `data` only if the znode is still at `expected` (`None` = absent:
/// create it, parents too). Returns the new data version.
pub(crate) async fn compare_and_set(
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
pub(crate) async fn children_data(
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
