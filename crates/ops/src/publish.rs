//! `mysql-zk-proxy publish`: write a serving primary record with
//! compare-and-set. The epoch is the previous one + 1 (or `--epoch`, which
//! must be higher than the current one): a record never goes backwards.

use serde::Serialize;
use zookeeper_client::Client;

use super::zk::{compare_and_set, read, Current, ZkOpError};
use super::{record_json, Endpoint};
use mysql_zk_proxy_core::discovery::record::{Record, RecordError};
use mysql_zk_proxy_core::routing::RecordState;

/// Why nothing was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "refusing to go backwards: epoch {requested} is not above the current epoch {current}"
    )]
    Backwards { requested: u64, current: u64 },
    #[error("the current record is not parseable, so its epoch is unknown: pass --epoch")]
    Unparseable(#[source] RecordError),
    #[error("the record is at version {actual}, not the expected {expected}: it changed since it was read")]
    VersionMismatch { expected: i32, actual: String },
    #[error(transparent)]
    Zk(#[from] ZkOpError),
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub primary: Endpoint,
    /// Explicit epoch; default the current epoch + 1 (1 without one).
    pub epoch: Option<u64>,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
    /// Write only if the znode is still at this data version (read earlier
    /// by a script); `-1` = only if absent. Default: the version read now.
    pub expect_version: Option<i32>,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub path: String,
    pub primary: Endpoint,
    /// The epoch before (`None`: no znode, or a record without epoch).
    pub previous_epoch: Option<u64>,
    pub epoch: u64,
    /// The znode's data version after the write.
    pub version: i32,
}

/// Read the record, check the request against it, compare-and-set.
pub async fn publish(
    client: &Client,
    path: &str,
    req: &PublishRequest,
) -> Result<Published, PublishError> {
    let current = read(client, path).await?;
    let expected = expected_version(current.as_ref(), req.expect_version)?;
    let (record, previous_epoch) = next_record(current, req)?;
    let version = compare_and_set(client, path, &record_json(&record), expected).await?;
    Ok(Published {
        path: path.to_owned(),
        primary: req.primary.clone(),
        previous_epoch,
        epoch: record.epoch.unwrap_or_default(),
        version,
    })
}

/// The record to write and the previous epoch.
pub(crate) fn next_record(
    current: Option<Current>,
    req: &PublishRequest,
) -> Result<(Record, Option<u64>), PublishError> {
    let previous = match current.map(|c| c.record) {
        None => None,
        Some(Ok(r)) => r.epoch,
        Some(Err(_)) if req.epoch.is_some() => None,
        Some(Err(e)) => return Err(PublishError::Unparseable(e)),
    };
    let epoch = match (req.epoch, previous) {
        (Some(e), Some(p)) if e <= p => {
            return Err(PublishError::Backwards {
                requested: e,
                current: p,
            })
        }
        (Some(e), _) => e,
        (None, p) => p.unwrap_or(0) + 1,
    };
    let record = Record {
        host: req.primary.host.clone(),
        port: req.primary.port,
        epoch: Some(epoch),
        server_id: req.server_id,
        server_uuid: req.server_uuid.clone(),
        state: RecordState::Serving,
    };
    Ok((record, previous))
}

/// The version to compare against: what was read, checked against the
/// caller's expectation when given.
fn expected_version(
    current: Option<&Current>,
    expect: Option<i32>,
) -> Result<Option<i32>, PublishError> {
    let read = current.map(|c| c.version);
    match expect {
        None => Ok(read),
        Some(-1) if read.is_none() => Ok(None),
        Some(v) if read == Some(v) => Ok(read),
        Some(expected) => Err(PublishError::VersionMismatch {
            expected,
            actual: read.map_or("absent".into(), |v| v.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_zk_proxy_core::discovery::record::parse_record;

    fn cur(data: &[u8], version: i32) -> Current {
        Current {
            data: data.to_vec(),
            version,
            record: parse_record(data),
        }
    }

    fn req(epoch: Option<u64>) -> PublishRequest {
        PublishRequest {
            primary: Endpoint::new("db2", 3306),
            epoch,
            server_id: Some(2),
            server_uuid: None,
            expect_version: None,
        }
    }

    #[test]
    fn epoch_follows_the_current_one_and_never_goes_back() {
        let c = || Some(cur(br#"{"host":"db1","port":3306,"epoch":7}"#, 4));
        let (r, prev) = next_record(c(), &req(None)).unwrap();
        assert_eq!((r.epoch, prev, r.server_id), (Some(8), Some(7), Some(2)));
        assert_eq!(next_record(c(), &req(Some(10))).unwrap().0.epoch, Some(10));
        for back in [7, 3] {
            let e = next_record(c(), &req(Some(back))).unwrap_err();
            assert!(
                matches!(e, PublishError::Backwards { current: 7, .. }),
                "{e}"
            );
        }
        assert_eq!(next_record(None, &req(None)).unwrap().0.epoch, Some(1));
        let plain = cur(b"db1:3306", 0);
        assert_eq!(
            next_record(Some(plain), &req(None)).unwrap().0.epoch,
            Some(1)
        );
    }

    #[test]
    fn unparseable_needs_an_explicit_epoch() {
        let c = || Some(cur(b"junk", 1));
        assert!(matches!(
            next_record(c(), &req(None)),
            Err(PublishError::Unparseable(_))
        ));
        assert_eq!(next_record(c(), &req(Some(5))).unwrap().0.epoch, Some(5));
    }

    #[test]
    fn expected_version_must_match_what_is_there() {
        let c = cur(b"db1:1", 4);
        assert_eq!(expected_version(Some(&c), None).unwrap(), Some(4));
        assert_eq!(expected_version(Some(&c), Some(4)).unwrap(), Some(4));
        assert!(expected_version(Some(&c), Some(3)).is_err());
        assert!(expected_version(Some(&c), Some(-1)).is_err());
        assert_eq!(expected_version(None, Some(-1)).unwrap(), None);
        assert!(expected_version(None, Some(0)).is_err());
    }
}
