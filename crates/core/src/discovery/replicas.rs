//! The replica set discovery publishes: every valid record under
//! `<cluster>/replicas/` as one immutable [`ReplicaSnapshot`] in an
//! arc-swap (one `Arc` per update; readers never hold a guard across
//! `.await`), plus a change channel. Invalid children are skipped, logged
//! and counted. Which records count (their epoch against the primary's) is
//! the reader's decision: the primary may change without the set changing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::children::ChildrenSink;
use super::replica_record::{parse_replica, ReplicaRecord};

/// `<parent of the primary znode>/replicas`.
pub fn replicas_path(primary_path: &str) -> String {
    let cluster = primary_path.rsplit_once('/').map_or("", |(p, _)| p);
    format!("{cluster}/replicas")
}

/// One read of the replica znodes.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSnapshot {
    /// Valid records, by name.
    pub records: Vec<ReplicaRecord>,
    /// Children skipped in this read, with why.
    pub invalid: Vec<String>,
    /// `None` until the first read.
    pub read_at: Option<SystemTime>,
}

/// The published replica set.
pub struct ReplicaSet {
    current: ArcSwap<ReplicaSnapshot>,
    changed: watch::Sender<u64>,
    /// Children skipped as invalid, over all reads.
    pub invalid_records: AtomicU64,
}

impl Default for ReplicaSet {
    fn default() -> Self {
        ReplicaSet {
            current: ArcSwap::from_pointee(ReplicaSnapshot::default()),
            changed: watch::channel(0).0,
            invalid_records: AtomicU64::new(0),
        }
    }
}

impl ReplicaSet {
    /// The current snapshot (one atomic load).
    pub fn current(&self) -> Arc<ReplicaSnapshot> {
        self.current.load_full()
    }

    /// Marked changed on every publish.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Parse `children` and publish the result as the new snapshot.
    pub fn publish_children(&self, children: Vec<(String, Vec<u8>)>) -> Arc<ReplicaSnapshot> {
        let mut snap = ReplicaSnapshot {
            read_at: Some(SystemTime::now()),
            ..Default::default()
        };
        for (name, data) in children {
            match parse_replica(&name, &data) {
                Ok(r) => snap.records.push(r),
                Err(e) => {
                    self.invalid_records.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "replica record skipped");
                    snap.invalid.push(e.to_string());
                }
            }
        }
        snap.records.sort_by(|a, b| a.name.cmp(&b.name));
        let snap = Arc::new(snap);
        self.current.store(snap.clone());
        self.changed.send_modify(|g| *g += 1);
        snap
    }
}

impl ChildrenSink for ReplicaSet {
    fn load(&self, path: &str, children: Vec<(String, Vec<u8>)>) {
        let snap = self.publish_children(children);
        tracing::info!(%path, replicas = snap.records.len(), invalid = snap.invalid.len(),
            "replica records read from ZooKeeper");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_beside_the_primary() {
        assert_eq!(
            replicas_path("/mysql/clusters/main/primary"),
            "/mysql/clusters/main/replicas"
        );
    }

    #[test]
    fn garbage_is_skipped_and_counted() {
        let set = ReplicaSet::default();
        let rx = set.subscribe();
        let snap = set.publish_children(vec![
            ("db3".into(), br#"{"host":"h","port":2,"epoch":1}"#.to_vec()),
            ("bad".into(), b"junk".to_vec()),
            ("db2".into(), br#"{"host":"h","port":1,"epoch":1}"#.to_vec()),
        ]);
        let names: Vec<_> = snap.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["db2", "db3"]);
        assert_eq!(snap.invalid.len(), 1);
        assert_eq!(set.invalid_records.load(Relaxed), 1);
        assert!(rx.has_changed().unwrap());
        assert_eq!(set.current().records.len(), 2);
    }
}
