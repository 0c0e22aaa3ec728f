//! The credential store: users' mysql_native_password hashes from
//! `[[users]]` and from ZooKeeper (`zookeeper.users_path`), merged into one
//! immutable snapshot in an arc-swap, so sessions look users up without locks.
//!
//! On a name in both, **ZooKeeper wins**: it is where the cluster's users
//! are managed (docs/architecture.md, ZooKeeper contract), so a password
//! rotated there takes effect without editing every proxy's file; `[[users]]`
//! covers deployments without a users znode and bootstrap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::UserConfig;
use crate::native_password::{NativeError, StoredHash};

/// Why a user entry was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("user {user:?}: mysql_native_password: {source}")]
    BadHash {
        user: String,
        #[source]
        source: NativeError,
    },
    #[error("user {user:?}: not JSON {{\"mysql_native_password\":\"*HEX\"}}: {source}")]
    BadJson {
        user: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("user {0:?} is listed twice")]
    Duplicate(String),
}

/// Where a user's hash came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Config,
    Zookeeper,
}

/// One user in a snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub hash: StoredHash,
    pub origin: Origin,
}

/// One immutable view of every known user.
#[derive(Debug, Default)]
pub struct Credentials {
    users: HashMap<String, Entry>,
}

impl Credentials {
    pub fn get(&self, user: &str) -> Option<&Entry> {
        self.users.get(user)
    }
    pub fn len(&self) -> usize {
        self.users.len()
    }
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
    /// User names, sorted (for status pages; never the hashes).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.users.keys().cloned().collect();
        v.sort();
        v
    }
}

/// The store: the `[[users]]` half is fixed at start, the ZooKeeper half is
/// replaced on every reload; readers see whole snapshots.
#[derive(Debug)]
pub struct CredentialStore {
    config: HashMap<String, StoredHash>,
    current: ArcSwap<Credentials>,
    /// ZooKeeper children skipped because their data was not a valid entry.
    pub bad_zookeeper_entries: AtomicU64,
    /// Snapshots published from ZooKeeper reads.
    pub zookeeper_reloads: AtomicU64,
    /// Bumped on every new snapshot.
    changed: watch::Sender<u64>,
}

impl CredentialStore {
    /// A store holding the `[[users]]` entries (validated again here).
    pub fn from_config(users: &[UserConfig]) -> Result<CredentialStore, CredentialError> {
        let mut config = HashMap::new();
        for u in users {
            let hash = StoredHash::parse(u.mysql_native_password.expose()).map_err(|source| {
                CredentialError::BadHash {
                    user: u.name.clone(),
                    source,
                }
            })?;
            if config.insert(u.name.clone(), hash).is_some() {
                return Err(CredentialError::Duplicate(u.name.clone()));
            }
        }
        let store = CredentialStore {
            current: ArcSwap::from_pointee(merge(&config, &HashMap::new())),
            config,
            bad_zookeeper_entries: AtomicU64::new(0),
            zookeeper_reloads: AtomicU64::new(0),
            changed: watch::channel(0).0,
        };
        Ok(store)
    }

    /// The stored hash of `user`, if the store knows it (one atomic load).
    pub fn lookup(&self, user: &str) -> Option<StoredHash> {
        self.current.load().get(user).map(|e| e.hash.clone())
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Credentials> {
        self.current.load_full()
    }

    /// Replace the ZooKeeper half (every user read under `users_path`).
    pub(crate) fn set_zookeeper(&self, users: HashMap<String, StoredHash>) -> Arc<Credentials> {
        let overridden = users
            .keys()
            .filter(|n| self.config.contains_key(n.as_str()))
            .count();
        if overridden > 0 {
            tracing::info!(
                overridden,
                "users in both [[users]] and ZooKeeper: ZooKeeper's hash is used"
            );
        }
        let next = Arc::new(merge(&self.config, &users));
        self.current.store(next.clone());
        let reloads = self.zookeeper_reloads.fetch_add(1, Relaxed) + 1;
        self.changed.send_replace(reloads);
        next
    }

    /// A receiver marked changed on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Config users, then ZooKeeper users over them (ZooKeeper wins).
fn merge(config: &HashMap<String, StoredHash>, zk: &HashMap<String, StoredHash>) -> Credentials {
    let entry = |hash: &StoredHash, origin| Entry {
        hash: hash.clone(),
        origin,
    };
    let mut users: HashMap<String, Entry> = config
        .iter()
        .map(|(n, h)| (n.clone(), entry(h, Origin::Config)))
        .collect();
    for (n, h) in zk {
        users.insert(n.clone(), entry(h, Origin::Zookeeper));
    }
    Credentials { users }
}

#[derive(Deserialize)]
struct ZkUser {
    mysql_native_password: String,
}

/// Parse one child of `users_path`: `{"mysql_native_password":"*HEX"}`
/// (other fields are ignored, for forward compatibility).
pub fn parse_zookeeper_user(user: &str, data: &[u8]) -> Result<StoredHash, CredentialError> {
    let parsed: ZkUser =
        serde_json::from_slice(data).map_err(|source| CredentialError::BadJson {
            user: user.to_owned(),
            source,
        })?;
    StoredHash::parse(&parsed.mysql_native_password).map_err(|source| CredentialError::BadHash {
        user: user.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const APP: &str = "*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3";

    fn user(name: &str, hash: &str) -> UserConfig {
        UserConfig {
            name: name.into(),
            mysql_native_password: Secret::new(hash),
        }
    }

    #[test]
    fn config_users_are_looked_up() {
        let store = CredentialStore::from_config(&[user("app", APP)]).unwrap();
        assert_eq!(store.lookup("app"), Some(StoredHash::of_password(b"app")));
        assert_eq!(store.lookup("other"), None);
        assert_eq!(store.snapshot().get("app").unwrap().origin, Origin::Config);
    }

    #[test]
    fn bad_and_duplicate_config_entries_name_the_user() {
        let e = CredentialStore::from_config(&[user("bob", "*12")]).unwrap_err();
        assert!(e.to_string().contains("\"bob\""), "{e}");
        let e = CredentialStore::from_config(&[user("a", APP), user("a", APP)]).unwrap_err();
        assert!(
            matches!(e, CredentialError::Duplicate(ref n) if n == "a"),
            "{e}"
        );
    }

    #[test]
    fn zookeeper_wins_over_config_and_reload_replaces_its_half() {
        let store = CredentialStore::from_config(&[user("app", APP), user("cfg", APP)]).unwrap();
        let rotated = StoredHash::of_password(b"new");
        let zk = HashMap::from([
            ("app".to_owned(), rotated.clone()),
            ("zk".to_owned(), rotated.clone()),
        ]);
        let snap = store.set_zookeeper(zk);
        assert_eq!(snap.names(), ["app", "cfg", "zk"]);
        assert_eq!(store.lookup("app"), Some(rotated));
        assert_eq!(snap.get("app").unwrap().origin, Origin::Zookeeper);
        store.set_zookeeper(HashMap::new());
        assert_eq!(store.lookup("app"), Some(StoredHash::of_password(b"app")));
        assert_eq!(store.lookup("zk"), None);
        assert_eq!(store.zookeeper_reloads.load(Relaxed), 2);
    }

    #[test]
    fn zookeeper_child_data() {
        let h = parse_zookeeper_user(
            "app",
            format!(r#"{{"mysql_native_password":"{APP}","x":1}}"#).as_bytes(),
        );
        assert_eq!(h.unwrap(), StoredHash::of_password(b"app"));
        let e = parse_zookeeper_user("app", b"*5BCB").unwrap_err();
        assert!(matches!(e, CredentialError::BadJson { .. }), "{e}");
        let e = parse_zookeeper_user("app", br#"{"mysql_native_password":"app"}"#).unwrap_err();
        assert!(matches!(e, CredentialError::BadHash { .. }), "{e}");
    }
}
