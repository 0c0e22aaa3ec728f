//! `[runtime]`: how client sessions are spread over threads (one event loop
//! per worker thread, or tokio's shared work-stealing pool) and how many.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// Most worker threads accepted (a typo guard, far above any core count).
const MAX_THREADS: usize = 1024;

/// How sessions are scheduled.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeMode {
    /// One single-threaded event loop per worker thread; the acceptor hands
    /// each new session to the next loop, and both of its sockets stay on
    /// that thread for the session's life (no cross-thread wake-ups).
    #[default]
    PerCore,
    /// tokio's multi-thread runtime: sessions may move between workers.
    Shared,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub mode: RuntimeMode,
    /// Worker threads; 0 = one per CPU the process may run on.
    pub threads: usize,
}

impl RuntimeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.threads > MAX_THREADS {
            return Err(invalid(
                "runtime.threads",
                format!("{} is more than {MAX_THREADS}", self.threads),
            ));
        }
        Ok(())
    }

    /// The number of worker threads to start (`threads`, or the CPU count).
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_rejects_unknown_ones() {
        let c: RuntimeConfig = toml::from_str("mode = \"shared\"\nthreads = 3").unwrap();
        assert_eq!(c.mode, RuntimeMode::Shared);
        assert_eq!(c.worker_threads(), 3);
        let c: RuntimeConfig = toml::from_str("mode = \"per_core\"").unwrap();
        assert_eq!(c.mode, RuntimeMode::PerCore);
        assert!(c.worker_threads() >= 1);
        assert!(toml::from_str::<RuntimeConfig>("mode = \"percore\"").is_err());
        assert!(toml::from_str::<RuntimeConfig>("thread = 2").is_err());
    }

    #[test]
    fn too_many_threads_is_invalid() {
        let c = RuntimeConfig {
            threads: MAX_THREADS + 1,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("runtime.threads"), "{e}");
        assert!(RuntimeConfig::default().validate().is_ok());
    }
}
