//! What must hold before a switchover acts; each failure is a refusal that
//! says why (nothing has been changed yet when one is returned).

use super::server::{Server, ServerError, SlaveStatus};
use super::zk::Current;
use super::Endpoint;
use mysql_zk_proxy_core::discovery::record::{Record, RecordError};
use mysql_zk_proxy_core::routing::RecordState;

/// Why the switchover will not start.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no primary record at {0}: publish one first")]
    NoRecord(String),
    #[error("the primary record is not parseable: {0}")]
    Unparseable(#[source] RecordError),
    #[error("the primary record is draining (epoch {epoch:?}): another switchover is under way or was interrupted; publish a serving record first")]
    Draining { epoch: Option<u64> },
    #[error("{0} is already the published primary")]
    SameTarget(Endpoint),
    #[error("the target {target} is the primary itself (server_id {server_id})")]
    SameServer { target: Endpoint, server_id: u64 },
    #[error("the current primary {0} is read-only: it is not serving writes")]
    PrimaryReadOnly(Endpoint),
    #[error("the target {0} is not a replica (SHOW SLAVE STATUS is empty)")]
    NotAReplica(Endpoint),
    #[error("the target {target} replicates from {master}, not from the primary {primary}")]
    WrongMaster {
        target: Endpoint,
        master: Endpoint,
        primary: Endpoint,
    },
    #[error(
        "replication on the target {target} is broken: IO thread {io}, SQL thread {sql}{error}"
    )]
    ReplicationStopped {
        target: Endpoint,
        io: String,
        sql: String,
        error: String,
    },
    #[error("the target {0} does not replicate with GTID (Using_Gtid = No)")]
    NoGtid(Endpoint),
    #[error("the primary record changed before the switchover wrote it: {0}")]
    RecordChanged(#[source] super::zk::ZkOpError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The published record must exist, parse and be serving.
pub(crate) fn serving_record(path: &str, current: Option<Current>) -> Result<Record, Refusal> {
    let current = current.ok_or_else(|| Refusal::NoRecord(path.to_owned()))?;
    let record = current.record.map_err(Refusal::Unparseable)?;
    if record.state == RecordState::Draining {
        return Err(Refusal::Draining {
            epoch: record.epoch,
        });
    }
    Ok(record)
}

/// Old primary writable; the target a different server replicating from it
/// with both threads running and GTID on. Returns (old, target) server_id.
pub async fn servers(old: &mut Server, target: &mut Server) -> Result<(u64, u64), Refusal> {
    if old.addr == target.addr {
        return Err(Refusal::SameTarget(target.addr.clone()));
    }
    let (old_id, new_id) = (old.server_id().await?, target.server_id().await?);
    if old_id == new_id {
        let (target, server_id) = (target.addr.clone(), new_id);
        return Err(Refusal::SameServer { target, server_id });
    }
    if !old.writable().await? {
        return Err(Refusal::PrimaryReadOnly(old.addr.clone()));
    }
    // MariaDB GTID: fails here, before anything changes, on a server without it.
    old.gtid_binlog_pos().await?;
    let status = target.slave_status().await?;
    replica_of(&target.addr, status, &old.addr).await?;
    Ok((old_id, new_id))
}

/// `status` (of `target`) shows a healthy GTID replica of `primary`.
pub(crate) async fn replica_of(
    target: &Endpoint,
    status: Option<SlaveStatus>,
    primary: &Endpoint,
) -> Result<(), Refusal> {
    let st = status.ok_or_else(|| Refusal::NotAReplica(target.clone()))?;
    if !same_server(&st.master, primary).await {
        return Err(Refusal::WrongMaster {
            target: target.clone(),
            master: st.master,
            primary: primary.clone(),
        });
    }
    if st.io_running != "Yes" || st.sql_running != "Yes" {
        let error = match st.last_error.as_str() {
            "" => String::new(),
            e => format!(" ({e})"),
        };
        return Err(Refusal::ReplicationStopped {
            target: target.clone(),
            io: st.io_running,
            sql: st.sql_running,
            error,
        });
    }
    if st.using_gtid.eq_ignore_ascii_case("no") {
        return Err(Refusal::NoGtid(target.clone()));
    }
    Ok(())
}

/// Same port and the same host name, or names that resolve to a common address.
async fn same_server(a: &Endpoint, b: &Endpoint) -> bool {
    if a.port != b.port {
        return false;
    }
    if a.host.eq_ignore_ascii_case(&b.host) {
        return true;
    }
    let resolve = |e: &Endpoint| tokio::net::lookup_host((e.host.clone(), e.port));
    match (resolve(a).await, resolve(b).await) {
        (Ok(x), Ok(y)) => {
            let y: Vec<_> = y.collect();
            x.into_iter().any(|addr| y.contains(&addr))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(host: &str, port: u16, io: &str, sql: &str, gtid: &str) -> Option<SlaveStatus> {
        Some(SlaveStatus {
            master: Endpoint::new(host, port),
            io_running: io.into(),
            sql_running: sql.into(),
            using_gtid: gtid.into(),
            last_error: String::new(),
        })
    }

    #[tokio::test]
    async fn replica_checks_name_the_reason() {
        let (t, p) = (Endpoint::new("127.0.0.1", 2), Endpoint::new("127.0.0.1", 1));
        let ok = replica_of(&t, status("127.0.0.1", 1, "Yes", "Yes", "Slave_Pos"), &p);
        assert!(ok.await.is_ok());
        let same = replica_of(&t, status("localhost", 1, "Yes", "Yes", "Slave_Pos"), &p);
        assert!(same.await.is_ok(), "localhost resolves to 127.0.0.1");
        let r = replica_of(&t, None, &p).await;
        assert!(matches!(r, Err(Refusal::NotAReplica(_))));
        let r = replica_of(&t, status("127.0.0.1", 3, "Yes", "Yes", "Slave_Pos"), &p).await;
        assert!(matches!(r, Err(Refusal::WrongMaster { .. })));
        let r = replica_of(&t, status("127.0.0.1", 1, "Yes", "No", "Slave_Pos"), &p).await;
        assert!(r.unwrap_err().to_string().contains("SQL thread No"));
        let r = replica_of(&t, status("127.0.0.1", 1, "Yes", "Yes", "No"), &p).await;
        assert!(matches!(r, Err(Refusal::NoGtid(_))));
    }

    #[test]
    fn only_a_serving_record_is_accepted() {
        let cur = |data: &[u8]| Current {
            data: data.to_vec(),
            version: 3,
            record: mysql_zk_proxy_core::discovery::record::parse_record(data),
        };
        let r = serving_record("/p", Some(cur(br#"{"host":"a","port":1,"epoch":4}"#))).unwrap();
        assert_eq!(r.epoch, Some(4));
        let draining = cur(br#"{"host":"a","port":1,"epoch":4,"state":"draining"}"#);
        assert!(matches!(
            serving_record("/p", Some(draining)),
            Err(Refusal::Draining { .. })
        ));
        assert!(matches!(
            serving_record("/p", Some(cur(b"junk"))),
            Err(Refusal::Unparseable(_))
        ));
        assert!(matches!(
            serving_record("/p", None),
            Err(Refusal::NoRecord(_))
        ));
    }
}
