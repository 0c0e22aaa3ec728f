//! The routing table: the current primary as one immutable `Arc<Route>` in an
//! arc-swap, plus a change notification sessions can await.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// Where a primary lives, as published in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    pub host: String,
    pub port: u16,
    /// Ordering key of the record: the JSON `epoch`, or the znode's mzxid
    /// when the record has none (see [`Ordering`]).
    pub epoch: u64,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
}

impl Primary {
    /// The same address as `other`, at any epoch, with no identity claim
    /// (`server_id`, `server_uuid`) that contradicts one of `other`'s; a
    /// claim only one of them makes contradicts nothing.
    pub(crate) fn same_server(&self, other: &Primary) -> bool {
        fn agree<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            a.is_none() || b.is_none() || a == b
        }
        self.host == other.host
            && self.port == other.port
            && agree(&self.server_id, &other.server_id)
            && agree(&self.server_uuid, &other.server_uuid)
    }

    /// The same identity claims as `other` (none, or the same ones).
    pub(crate) fn same_claims(&self, other: &Primary) -> bool {
        self.server_id == other.server_id && self.server_uuid == other.server_uuid
    }

    /// A primary on 127.0.0.1 (unit tests).
    #[cfg(test)]
    pub(crate) fn local(port: u16, epoch: u64) -> Primary {
        Primary {
            host: "127.0.0.1".into(),
            port,
            epoch,
            server_id: None,
            server_uuid: None,
        }
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Primary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (epoch {})", self.address(), self.epoch)
    }
}

/// What orders records: an explicit epoch always wins over an mzxid-ordered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ordering {
    /// Plain `host:port` or JSON without `epoch`: the znode's modification zxid.
    Mzxid(i64),
    /// JSON with `"epoch": N`.
    Epoch(u64),
}

/// Planned-switchover state carried by the record (docs/architecture.md,
/// ZooKeeper contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordState {
    #[default]
    Serving,
    Draining,
}

/// One snapshot of the routing decision. Immutable once published.
#[derive(Debug, Clone)]
pub struct Route {
    /// Increases by one with every published route.
    pub generation: u64,
    /// The primary to send new connections to; `None` = no primary known
    /// (znode absent, not read yet, not verified yet, or stale).
    /// `Some` only once verified when verification is on (`crate::verify`).
    pub primary: Option<Primary>,
    /// The record's primary while it is being verified (read-only, wrong
    /// server, unreachable): new connections wait, nothing is sent to it.
    pub pending: Option<Primary>,
    pub state: RecordState,
    /// Highest ordering key ever accepted (kept when the znode is deleted, so
    /// a re-created record cannot go backwards).
    pub high_water: Option<Ordering>,
    pub since: SystemTime,
}

impl Route {
    /// A primary is known and new work may go to it (the record is not
    /// `draining` for a planned switchover).
    pub fn serving(&self) -> bool {
        self.primary.is_some() && self.state == RecordState::Serving
    }

    pub fn empty() -> Self {
        Route {
            generation: 0,
            primary: None,
            pending: None,
            state: RecordState::Serving,
            high_water: None,
            since: SystemTime::now(),
        }
    }
}

/// Told of every publish synchronously, on the writer's thread, before any
/// reader can load the new route. The failover timeline is one: the counts it
/// shows must start before a session can act on the new route.
pub trait RouteObserver: Send + Sync {
    fn published(&self, prev: &Route, next: &Route);
}

/// The table: readers take one `Arc<Route>` (never hold a guard across
/// `.await`); writers (discovery, its promote task) publish whole new
/// routes, one at a time.
pub struct RouteTable {
    current: ArcSwap<Route>,
    changed: watch::Sender<u64>,
    /// Serialises writers so a read-modify-publish is never lost.
    writer: std::sync::Mutex<()>,
    observer: Option<Arc<dyn RouteObserver>>,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteTable {
    pub fn new() -> Self {
        let (changed, _) = watch::channel(0);
        RouteTable {
            current: ArcSwap::from_pointee(Route::empty()),
            changed,
            writer: std::sync::Mutex::new(()),
            observer: None,
        }
    }

    /// A table that tells `observer` of every publish (see [`RouteObserver`]).
    pub fn observed(observer: Arc<dyn RouteObserver>) -> Self {
        RouteTable {
            observer: Some(observer),
            ..Self::new()
        }
    }

    /// The current route (one atomic load + refcount increment).
    pub fn current(&self) -> Arc<Route> {
        self.current.load_full()
    }

    /// Publish a new route built from the current one; bumps the generation
    /// and wakes every subscriber. Returns the published route.
    pub fn publish(&self, build: impl FnOnce(&Route) -> Route) -> Arc<Route> {
        let _one_writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let prev = self.current.load_full();
        self.install(&prev, build(&prev))
    }

    /// Like [`publish`](Self::publish), but `build` may decline (`None`:
    /// nothing published) after looking at the current route; no other
    /// writer publishes in between.
    pub(crate) fn update(&self, build: impl FnOnce(&Route) -> Option<Route>) -> Option<Arc<Route>> {
        let _one_writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let prev = self.current.load_full();
        let next = build(&prev)?;
        Some(self.install(&prev, next))
    }

    /// Store `next` as the successor of `prev` (writer lock held).
    fn install(&self, prev: &Route, mut next: Route) -> Arc<Route> {
        next.generation = prev.generation + 1;
        next.since = SystemTime::now();
        if let Some(o) = &self.observer {
            o.published(prev, &next);
        }
        let next = Arc::new(next);
        self.current.store(next.clone());
        self.changed.send_replace(next.generation);
        next
    }

    /// Generation of the current route (one atomic load, no refcount).
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// A receiver that is marked changed on every publish.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wait until a primary is known and serving (not draining for a planned
    /// switchover), or `deadline` passes. Returns that route, or `None` on timeout.
    pub(crate) async fn wait_for_primary(
        &self,
        deadline: tokio::time::Instant,
    ) -> Option<Arc<Route>> {
        let mut rx = self.subscribe();
        loop {
            let route = self.current();
            if route.serving() {
                return Some(route);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(port: u16, epoch: u64) -> Primary {
        Primary::local(port, epoch)
    }

    #[test]
    fn publish_bumps_generation_and_notifies() {
        let table = RouteTable::new();
        let rx = table.subscribe();
        let r = table.publish(|prev| Route {
            primary: Some(primary(3306, 1)),
            ..prev.clone()
        });
        assert_eq!(r.generation, 1);
        assert!(rx.has_changed().unwrap());
        assert_eq!(table.current().primary.as_ref().unwrap().port, 3306);
    }

    #[test]
    fn observer_sees_each_publish_once() {
        struct Seen(std::sync::Mutex<Vec<(u64, u64)>>);
        impl RouteObserver for Seen {
            fn published(&self, prev: &Route, next: &Route) {
                self.0
                    .lock()
                    .unwrap()
                    .push((prev.generation, next.generation));
            }
        }
        let seen = Arc::new(Seen(Default::default()));
        let table = RouteTable::observed(seen.clone());
        table.publish(|prev| prev.clone());
        assert!(table.update(|_| None).is_none());
        table.publish(|prev| prev.clone());
        assert_eq!(*seen.0.lock().unwrap(), vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn epoch_orders_above_mzxid() {
        assert!(Ordering::Epoch(0) > Ordering::Mzxid(i64::MAX));
        assert!(Ordering::Epoch(2) > Ordering::Epoch(1));
    }

    #[test]
    fn update_may_decline() {
        let table = RouteTable::new();
        assert!(table.update(|_| None).is_none());
        assert_eq!(table.current().generation, 0);
        let r = table.update(|prev| {
            Some(Route {
                pending: Some(primary(3306, 2)),
                ..prev.clone()
            })
        });
        assert_eq!(r.unwrap().generation, 1);
    }

    #[tokio::test]
    async fn wait_for_primary_wakes_on_publish() {
        let table = Arc::new(RouteTable::new());
        let t2 = table.clone();
        let waiter = tokio::spawn(async move {
            t2.wait_for_primary(tokio::time::Instant::now() + std::time::Duration::from_secs(5))
                .await
        });
        tokio::task::yield_now().await;
        table.publish(|prev| Route {
            primary: Some(primary(1, 1)),
            ..prev.clone()
        });
        let got = waiter.await.unwrap().expect("woken with a primary");
        assert_eq!(got.primary.as_ref().unwrap().port, 1);
    }

    #[tokio::test]
    async fn draining_route_is_not_served() {
        let table = RouteTable::new();
        table.publish(|prev| Route {
            primary: Some(primary(1, 2)),
            state: RecordState::Draining,
            ..prev.clone()
        });
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(
            table.wait_for_primary(soon).await.is_none(),
            "held while draining"
        );
        table.publish(|prev| Route {
            state: RecordState::Serving,
            ..prev.clone()
        });
        let later = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        assert!(table.wait_for_primary(later).await.is_some());
    }

    #[tokio::test]
    async fn wait_for_primary_times_out() {
        let table = RouteTable::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(table.wait_for_primary(deadline).await.is_none());
    }
}
