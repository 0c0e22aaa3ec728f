//! The read-only listener's side of routing: the replicas learned from
//! ZooKeeper (`discovery::replicas`), each checked by the control plane
//! (`monitor`, `probe`, `health`), and the choice of a replica for each new
//! read session ([`ReadRouter::pick`]). docs/replicas.md describes the
//! rules; docs/architecture.md, ZooKeeper contract, the record.
//!
//! Each replica is a *slot*: its own [`RouteTable`] and session
//! environment, so a read session runs the same session code as a primary
//! session. The table names the replica while it qualifies; when it stops
//! qualifying the monitor publishes another target into it (another
//! qualified replica, or the primary with `fallback_to_primary`), and the
//! slot's sessions move at their next rest point exactly as sessions move
//! at a failover. A running query is never interrupted for lag.

pub mod causal;
pub mod health;
mod metrics;
mod monitor;
mod pick;
pub mod probe;
pub mod status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::ReadOnlyConfig;
use crate::discovery::replica_record::ReplicaRecord;
use crate::discovery::replicas::ReplicaSet;
use crate::routing::RouteTable;
use crate::session::Env;
use health::Health;
pub use monitor::spawn_monitor;
pub use pick::Picked;

/// Counters of one slot (also read by `/status` and `/metrics`).
#[derive(Debug, Default)]
pub struct SlotCounters {
    /// Sessions opened on this slot and still running.
    pub sessions: AtomicU64,
    /// Sessions ever opened on this slot.
    pub opened: AtomicU64,
    /// Causal waits run, and how many failed (timeout or error).
    pub causal_waits: AtomicU64,
    pub causal_failures: AtomicU64,
    /// Sum of causal wait durations, microseconds.
    pub causal_wait_us: AtomicU64,
}

/// One replica the router knows.
pub struct Slot {
    pub name: String,
    /// Where this slot's sessions go: the replica while it qualifies.
    pub table: Arc<RouteTable>,
    /// The environment of sessions opened on this slot.
    pub env: Arc<Env>,
    pub counters: Arc<SlotCounters>,
    /// The record and health as of the last check (monitor writes).
    pub state: Mutex<SlotState>,
}

/// What the monitor last learned of a slot.
#[derive(Debug, Clone)]
pub struct SlotState {
    pub record: ReplicaRecord,
    pub health: Health,
    /// The record is no longer in ZooKeeper.
    pub removed: bool,
    /// Transactions of the primary it lacked at the last check.
    pub behind: Option<u64>,
}

/// A qualified replica as new sessions see it.
#[derive(Clone)]
pub struct Candidate {
    pub slot: Arc<Slot>,
    pub weight: u32,
}

/// Counters of the read-only listener as a whole.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Sessions sent to the primary because no replica qualified.
    pub fallback_sessions: AtomicU64,
    /// Sessions refused (9021): no replica and no fallback.
    pub refused_sessions: AtomicU64,
    /// Health checks run, and those that failed to read the server.
    pub checks: AtomicU64,
    pub check_errors: AtomicU64,
}

/// The read-only listener's routing: slots and the qualified view.
pub struct ReadRouter {
    pub cfg: ReadOnlyConfig,
    pub set: Arc<ReplicaSet>,
    /// Every slot, by replica name (the monitor adds; none is removed).
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// The qualified replicas, replaced whole after each check round.
    qualified: ArcSwap<Vec<Candidate>>,
    pub counters: ReadCounters,
    /// Where the next tie between equally loaded replicas starts.
    turn: std::sync::atomic::AtomicUsize,
}

impl ReadRouter {
    pub fn new(cfg: ReadOnlyConfig, set: Arc<ReplicaSet>) -> ReadRouter {
        ReadRouter {
            cfg,
            set,
            slots: Mutex::default(),
            qualified: ArcSwap::from_pointee(Vec::new()),
            counters: ReadCounters::default(),
            turn: Default::default(),
        }
    }

    /// Every slot, by name.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().cloned().collect()
    }

    fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(name).cloned()
    }

    fn add_slot(&self, slot: Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(slot.name.clone(), slot);
    }

    /// The qualified replicas now (one atomic load).
    pub fn qualified(&self) -> Arc<Vec<Candidate>> {
        self.qualified.load_full()
    }

    fn set_qualified(&self, q: Vec<Candidate>) {
        self.qualified.store(Arc::new(q));
    }

    /// Sessions running on every slot, for `/status`.
    pub fn sessions(&self) -> u64 {
        self.slots()
            .iter()
            .map(|s| s.counters.sessions.load(Relaxed))
            .sum()
    }
}
