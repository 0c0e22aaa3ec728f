//! The writer side of the discovery status watch channel: every change to
//! [`DiscoveryStatus`] goes through here so `since` follows `state`.

use std::time::SystemTime;

use tokio::sync::watch;

use super::{DiscoveryStatus, ZkState};

/// Raw records longer than this are cut in the status (it is for humans).
const RECORD_SHOWN_MAX: usize = 1024;

/// Owns the `watch::Sender<DiscoveryStatus>` (clones share it: the session
/// loop and the verifier task both report).
#[derive(Clone)]
pub(crate) struct StatusTx {
    tx: watch::Sender<DiscoveryStatus>,
}

impl StatusTx {
    pub(crate) fn new(tx: watch::Sender<DiscoveryStatus>) -> Self {
        StatusTx { tx }
    }

    /// Enter `state`; `session_id` is shown only while connected.
    pub(crate) fn set_state(&self, state: ZkState, session_id: Option<String>) {
        self.tx.send_if_modified(|s| {
            let changed = s.state != state || s.session_id != session_id;
            if s.state != state {
                s.state = state;
                s.since = SystemTime::now();
            }
            s.session_id = session_id;
            if state == ZkState::Connected {
                s.zk_error = None;
            }
            changed
        });
    }

    /// The last ZooKeeper-side failure (connect, read), shown until the next
    /// success. True when it differs from the one shown before.
    pub(crate) fn set_zk_error(&self, error: String) -> bool {
        self.tx.send_if_modified(|s| {
            let changed = s.zk_error.as_ref() != Some(&error);
            s.zk_error = Some(error);
            changed
        })
    }

    /// The outcome of reading the record: the raw bytes (None = znode absent)
    /// and why it was not applied (None = applied or unchanged).
    pub(crate) fn set_record(&self, raw: Option<&[u8]>, error: Option<String>) {
        let shown = raw.map(|raw| {
            let cut = &raw[..raw.len().min(RECORD_SHOWN_MAX)];
            String::from_utf8_lossy(cut).into_owned()
        });
        self.tx.send_if_modified(|s| {
            let changed = s.last_record != shown || s.last_error != error;
            s.last_record = shown;
            s.last_error = error;
            changed
        });
    }

    /// Why the record's primary is not routed to yet (None = verified / nothing pending).
    pub(crate) fn set_verify_error(&self, error: Option<String>) {
        self.tx.send_if_modified(|s| {
            let changed = s.verify_error != error;
            s.verify_error = error;
            changed
        });
    }

    /// Why routing is stopped by `zookeeper.fail_closed_after` (None = not stopped).
    pub(crate) fn set_fail_closed(&self, why: Option<String>) {
        self.tx.send_if_modified(|s| {
            let changed = s.fail_closed != why;
            s.fail_closed = why;
            changed
        });
    }
}
