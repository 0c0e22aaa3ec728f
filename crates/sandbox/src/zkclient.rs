//! Tiny async ZooKeeper client helpers for tests and the sandbox CLI: write
//! (create parents, create or set), read with version, delete. One short
//! session per call; [`zk_connect_as`] for a session with credentials.

use super::{Result, SandboxError};
use mysql_zk_proxy_core::config::ZkAuth;
use mysql_zk_proxy_core::discovery::connect::{open, ConnectError, SessionSpec};
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between session attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

fn zk_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(ZkError) -> SandboxError + 'a {
    move |source| SandboxError::Zk {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Connect with a bounded wait (fails instead of retrying forever). A
/// session attempt lost on a loaded machine (the server answered `srvr` but
/// dropped the handshake) is retried until the same bound.
pub async fn zk_connect(connect: &str) -> Result<Client> {
    zk_connect_as(connect, None).await
}

/// [`zk_connect`] authenticated with digest credentials when `auth` is given
/// (e.g. to read or write a znode whose ACL allows only that user).
pub async fn zk_connect_as(connect: &str, auth: Option<&ZkAuth>) -> Result<Client> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let spec = SessionSpec {
            connection_timeout: Some(Duration::from_secs(2)),
            auth,
            ..SessionSpec::new(connect, Duration::from_secs(10), left)
        };
        match open(&spec).await {
            Ok(client) => return Ok(client),
            Err(e @ ConnectError::Connect { .. })
                if tokio::time::Instant::now() + RETRY_PAUSE < deadline =>
            {
                tracing::debug!(error = %e, "zookeeper session attempt failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            // The bound of the whole wait, not of the last attempt.
            Err(ConnectError::Timeout { connect, .. }) => {
                let after = CONNECT_TIMEOUT;
                return Err(ConnectError::Timeout { connect, after }.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write `data` at `path`: set it if it exists, else create it (and its
/// parents, with empty data).
pub async fn zk_write(connect: &str, path: &str, data: &[u8]) -> Result<()> {
    let client = zk_connect(connect).await?;
    write_with(&client, path, data).await
}

/// [`zk_write`] on an existing session.
pub async fn write_with(client: &Client, path: &str, data: &[u8]) -> Result<()> {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for _ in 0..3 {
        match client.set_data(path, data, None).await {
            Ok(_) => return Ok(()),
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(zk_err("set", path)(e)),
        }
        if let Some(parent) = path.rfind('/').filter(|&i| i > 0).map(|i| &path[..i]) {
            client
                .mkdir(parent, &opts)
                .await
                .map_err(zk_err("mkdir", parent))?;
        }
        match client.create(path, data, &opts).await {
            Ok(_) => return Ok(()),
            // A concurrent writer created it meanwhile: set it again.
            Err(ZkError::NodeExists) => {}
            Err(e) => return Err(zk_err("create", path)(e)),
        }
    }
    Err(SandboxError::State(format!(
        "zookeeper write {path}: lost a race 3 times"
    )))
}

/// Set `path` only if its data version is `expected_version` (compare-and-set);
/// returns the new version.
pub async fn zk_set_versioned(
    connect: &str,
    path: &str,
    data: &[u8],
    expected_version: i32,
) -> Result<i32> {
    let client = zk_connect(connect).await?;
    let stat = client
        .set_data(path, data, Some(expected_version))
        .await
        .map_err(zk_err("set (versioned)", path))?;
    Ok(stat.version)
}

/// Data and data version of `path`, `None` if absent.
pub async fn zk_read(connect: &str, path: &str) -> Result<Option<(Vec<u8>, i32)>> {
    let client = zk_connect(connect).await?;
    match client.get_data(path).await {
        Ok((data, stat)) => Ok(Some((data, stat.version))),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(zk_err("get", path)(e)),
    }
}

/// Delete `path` (any version); absent is fine.
pub async fn zk_delete(connect: &str, path: &str) -> Result<()> {
    let client = zk_connect(connect).await?;
    match client.delete(path, None).await {
        Ok(()) | Err(ZkError::NoNode) => Ok(()),
        Err(e) => Err(zk_err("delete", path)(e)),
    }
}
