//! The running configuration, swappable at a reload (SIGHUP): sessions read
//! live settings (limits, timeouts) through one arc-swap load; settings that
//! need a restart keep their running values and are reported.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use serde::Serialize;

use crate::config::{Config, ConfigError};

/// What the last reload did (`/status` `last_reload`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReloadRecord {
    /// The new config was applied (settings needing a restart aside).
    pub ok: bool,
    /// Why it was rejected (the running config was kept).
    pub error: Option<String>,
    /// Keys whose new value needs a restart: they keep their running value.
    pub restart_required: Vec<&'static str>,
    #[serde(with = "crate::time::rfc3339")]
    pub at: SystemTime,
}

/// The running configuration and the history of reloads.
#[derive(Debug)]
pub struct LiveConfig {
    current: ArcSwap<Config>,
    last: Mutex<Option<ReloadRecord>>,
}

impl LiveConfig {
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig {
            current: ArcSwap::from_pointee(config),
            last: Mutex::new(None),
        }
    }

    /// The config in force now (cheap; do not hold it across an await).
    pub fn load(&self) -> Guard<Arc<Config>> {
        self.current.load()
    }

    /// The config in force now, to keep.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Apply a freshly loaded (already validated) config, or record why
    /// loading it failed. Settings that need a restart keep their running
    /// values and are named in the record.
    pub fn reload(&self, loaded: Result<Config, ConfigError>) -> ReloadRecord {
        let record = match loaded {
            Ok(mut new) => {
                let running = self.current.load();
                let restart_required = keep_restart_only(&running, &mut new);
                self.current.store(Arc::new(new));
                ReloadRecord {
                    ok: true,
                    error: None,
                    restart_required,
                    at: SystemTime::now(),
                }
            }
            Err(e) => ReloadRecord {
                ok: false,
                error: Some(e.to_string()),
                restart_required: Vec::new(),
                at: SystemTime::now(),
            },
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(record.clone());
        record
    }

    /// Record a reload that failed after the config was applied (TLS files
    /// that changed between validation and loading): the old material stays.
    pub(crate) fn record_failure(&self, error: String) -> ReloadRecord {
        let record = ReloadRecord {
            ok: false,
            error: Some(error),
            restart_required: Vec::new(),
            at: SystemTime::now(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(record.clone());
        record
    }

    pub fn last_reload(&self) -> Option<ReloadRecord> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Copy into `new` the running values of settings only read at start, and
/// name those that differed.
fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($key:literal => $($field:ident).+;)*) => {$(
            if new.$($field).+ != running.$($field).+ {
                changed.push($key);
                new.$($field).+ = running.$($field).+.clone();
            }
        )*};
    }
    keep! {
        "listen.address" => listen.address;
        "admin.address" => admin.address;
        "zookeeper" => zookeeper;
        "log" => log;
        "runtime" => runtime;
        "read_only" => read_only;
        "failover.ledger_capacity" => failover.ledger_capacity;
        "failover.wait_for_acknowledged" => failover.wait_for_acknowledged;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn live_settings_apply_restart_only_ones_are_reported_and_kept() {
        let live = LiveConfig::new(Config::default());
        let mut new = Config::default();
        new.listen.max_connections = 7;
        new.listen.address = "127.0.0.1:1".into();
        new.zookeeper.session_timeout = Duration::from_secs(99);
        let r = live.reload(Ok(new));
        assert!(r.ok && r.error.is_none());
        assert_eq!(r.restart_required, vec!["listen.address", "zookeeper"]);
        let now = live.get();
        assert_eq!(now.listen.max_connections, 7);
        assert_eq!(now.listen.address, Config::default().listen.address);
        assert_eq!(now.zookeeper, Config::default().zookeeper);
    }

    #[test]
    fn a_bad_reload_keeps_the_running_config_and_says_why() {
        let live = LiveConfig::new(Config::default());
        let mut bad = Config::default();
        bad.shutdown.timeout = Duration::ZERO;
        let r = live.reload(bad.validate().map(|_| bad.clone()));
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("shutdown.timeout"));
        assert_eq!(*live.get(), Config::default());
        assert_eq!(live.last_reload().map(|r| r.ok), Some(false));
    }
}
