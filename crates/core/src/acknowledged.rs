//! The highest GTID position acknowledged to clients by this proxy: a small
//! shared handle the write path feeds (`record` with each commit's GTID it
//! learns) and the read-only listener's `proxy` consistency mode reads
//! (`position`). No I/O; cheap to clone.

use std::sync::{Arc, Mutex};

use crate::gtid::{Gtid, GtidPos};

/// Shared, cloneable; every clone sees the same position.
#[derive(Debug, Clone, Default)]
pub struct Acknowledged {
    pos: Arc<Mutex<GtidPos>>,
}

impl Acknowledged {
    pub fn new() -> Acknowledged {
        Acknowledged::default()
    }

    /// The position covering every GTID recorded so far.
    pub fn position(&self) -> GtidPos {
        self.pos.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A commit acknowledged to a client carried `gtid`.
    pub fn record(&self, gtid: Gtid) {
        self.pos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(gtid);
    }

    /// Take a whole position (e.g. a ledger's per-domain high-water mark).
    pub fn merge(&self, pos: &GtidPos) {
        self.pos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_position() {
        let a = Acknowledged::new();
        let b = a.clone();
        a.record(Gtid::parse("0-1-5").unwrap());
        b.record(Gtid::parse("0-1-3").unwrap());
        assert_eq!(b.position().to_string(), "0-1-5");
        b.merge(&GtidPos::parse("1-2-9").unwrap());
        assert_eq!(a.position().to_string(), "0-1-5,1-2-9");
    }
}
