//! The ZooKeeper half of the credential store: one child of
//! `zookeeper.users_path` per user, data `{"mysql_native_password":"*HEX"}`.
//! The path is followed by the children task ([`super::children`]), which
//! hands every full read to [`CredentialStore::set_zookeeper`] through the
//! [`ChildrenSink`] here; a bad child is skipped, logged and counted, never
//! fatal (the last users read stay in the store until the next session has
//! read them again).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use super::children::ChildrenSink;
use crate::credentials::{parse_zookeeper_user, CredentialStore};

impl ChildrenSink for CredentialStore {
    /// Every valid child into the store; the others skipped and counted.
    fn load(&self, path: &str, children: Vec<(String, Vec<u8>)>) {
        let mut users = HashMap::new();
        let mut skipped = 0u64;
        for (name, data) in children {
            match parse_zookeeper_user(&name, &data) {
                Ok(hash) => {
                    users.insert(name, hash);
                }
                Err(e) => {
                    skipped += 1;
                    self.bad_zookeeper_entries.fetch_add(1, Relaxed);
                    tracing::warn!(%path, error = %e, "users znode child skipped");
                }
            }
        }
        let count = users.len();
        let snapshot = self.set_zookeeper(users);
        tracing::info!(%path, users = count, skipped, total = snapshot.len(),
            "users reloaded from ZooKeeper");
    }
}
