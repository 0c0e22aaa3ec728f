//! Replica records (docs/architecture.md, ZooKeeper contract):
//! `mysql-zk-proxy publish --replica NAME` writes one, and a switchover
//! brings them to the new epoch: the promoted replica's record is removed,
//! every other replica is repointed at the new primary and its record
//! rewritten, and the old primary gets a record as a replica of the new one.

use serde::Serialize;
use zookeeper_client::{Client, Error as ZkError};

use super::server::{Login, Server};
use super::zk::{children_data, compare_and_set, get, read, ZkOpError};
use super::Endpoint;
use mysql_zk_proxy_core::discovery::replica_record::{
    parse_replica, replica_json, ReplicaRecord, ReplicaState,
};
use mysql_zk_proxy_core::discovery::replicas::replicas_path;

/// Why a replica record was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaPublishError {
    #[error("replica name {0:?} is not a znode name (empty, '.', '..' or with '/')")]
    BadName(String),
    #[error("no --epoch given and the primary record at {0} has no readable epoch")]
    NoEpoch(String),
    #[error(transparent)]
    Zk(#[from] ZkOpError),
}

/// What `publish --replica` writes.
#[derive(Debug, Clone)]
pub struct ReplicaRequest {
    pub name: String,
    pub replica: Endpoint,
    /// The followed primary's epoch; default the primary record's.
    pub epoch: Option<u64>,
    pub weight: u32,
    pub state: ReplicaState,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedReplica {
    pub path: String,
    pub replica: Endpoint,
    pub epoch: u64,
    pub version: i32,
}

/// Write (create or replace) the replica record `req.name`.
pub async fn publish_replica(
    client: &Client,
    primary_path: &str,
    req: &ReplicaRequest,
) -> Result<PublishedReplica, ReplicaPublishError> {
    let name = &req.name;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(ReplicaPublishError::BadName(name.clone()));
    }
    let epoch = match req.epoch {
        Some(e) => e,
        None => read(client, primary_path)
            .await?
            .and_then(|c| c.record.ok()?.epoch)
            .ok_or_else(|| ReplicaPublishError::NoEpoch(primary_path.to_owned()))?,
    };
    let record = ReplicaRecord {
        name: name.clone(),
        host: req.replica.host.clone(),
        port: req.replica.port,
        epoch,
        weight: req.weight,
        state: req.state,
    };
    let path = format!("{}/{name}", replicas_path(primary_path));
    let version = write(client, &path, &record).await?;
    Ok(PublishedReplica {
        path,
        replica: req.replica.clone(),
        epoch,
        version,
    })
}

/// Create or overwrite `path` with `record` (compare-and-set on what was read).
async fn write(client: &Client, path: &str, record: &ReplicaRecord) -> Result<i32, ZkOpError> {
    let current = get(client, path).await?.map(|(_, stat)| stat.version);
    compare_and_set(client, path, replica_json(record).as_bytes(), current).await
}

/// After a switchover to `target` at `epoch`: bring the replica records
/// and the other replicas along. Every problem is returned as a warning
/// (the switchover itself is done).
pub(crate) async fn follow_switchover(
    client: &Client,
    primary_path: &str,
    (old, old_name): (&Endpoint, Option<&str>),
    target: &Endpoint,
    epoch: u64,
    logins: (&Login, &Login, std::time::Duration),
) -> Vec<String> {
    let mut warnings = Vec::new();
    let dir = replicas_path(primary_path);
    let children = match children_data(client, &dir).await {
        Ok(c) => c,
        Err(e) => return vec![format!("replica records not updated: {e}")],
    };
    let mut old_recorded = false;
    for (name, data) in children {
        let path = format!("{dir}/{name}");
        let Ok(mut rec) = parse_replica(&name, &data) else {
            warnings.push(format!("replica record {path} is not valid; left as it is"));
            continue;
        };
        let at = Endpoint::new(rec.host.clone(), rec.port);
        if at == *target {
            if let Err(e) = delete(client, &path).await {
                warnings.push(format!("the promoted replica's record {path}: {e}"));
            }
            continue;
        }
        if at == *old {
            old_recorded = true;
        } else if let Err(e) = repoint(&at, target, logins).await {
            warnings.push(format!(
                "replica {name} ({at}) not repointed, record kept: {e}"
            ));
            continue;
        }
        rec.epoch = epoch;
        if let Err(e) = write(client, &path, &rec).await {
            warnings.push(format!("replica record {path} not updated: {e}"));
        }
    }
    if !old_recorded {
        let name = old_name.map_or_else(
            || format!("{}-{}", old.host.replace(['/', ':'], "_"), old.port),
            str::to_owned,
        );
        let rec = ReplicaRecord {
            name: name.clone(),
            host: old.host.clone(),
            port: old.port,
            epoch,
            weight: 1,
            state: ReplicaState::Serving,
        };
        if let Err(e) = write(client, &format!("{dir}/{name}"), &rec).await {
            warnings.push(format!(
                "the old primary's replica record {dir}/{name}: {e}"
            ));
        }
    }
    warnings
}

/// Make the replica at `at` follow `target` (GTID, its own slave position).
async fn repoint(
    at: &Endpoint,
    target: &Endpoint,
    (login, repl, timeout): (&Login, &Login, std::time::Duration),
) -> Result<(), super::server::ServerError> {
    let mut server = Server::connect(at, login, timeout).await?;
    let r = server.follow(target, repl).await;
    server.close().await;
    r
}

async fn delete(client: &Client, path: &str) -> Result<(), ZkError> {
    match client.delete(path, None).await {
        Ok(()) | Err(ZkError::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}
