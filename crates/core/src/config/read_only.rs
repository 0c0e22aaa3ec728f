//! `[read_only]`: the read-only listener (its own port, sessions on
//! replicas), the replica health rules and the consistency mode of reads
//! (docs/replicas.md). Plain data with its validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, parse_addr, positive, ConfigError};

/// What a read through the read-only listener is guaranteed to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Whatever the replica has applied (bounded by `max_lag` only).
    #[default]
    None,
    /// Every write acknowledged by this proxy before the read began.
    Proxy,
    /// Every write the primary had committed when the read began.
    Fleet,
}

/// How a new session picks among qualified replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Fewest sessions opened to it and still running.
    #[default]
    LeastConnections,
    /// Fewest sessions relative to the record's `weight`.
    Weighted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadOnlyConfig {
    /// Client address of the read-only listener; "" = off.
    pub listen: String,
    /// A replica lagging more than this takes no new sessions.
    #[serde(with = "humantime_serde")]
    pub max_lag: Duration,
    pub consistency: Consistency,
    /// Bound on one causal wait before a read (`proxy`, `fleet`).
    #[serde(with = "humantime_serde")]
    pub causal_timeout: Duration,
    /// With no qualified replica, new sessions go to the primary instead of
    /// getting error 9021.
    pub fallback_to_primary: bool,
    /// Pause between two health checks of every replica.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Bound on one replica's check (connect + queries).
    #[serde(with = "humantime_serde")]
    pub check_timeout: Duration,
    /// Consecutive good checks a disqualified replica needs to qualify
    /// again (its lag at most half of `max_lag` in each).
    pub requalify_checks: u32,
    pub balance: Balance,
}

impl Default for ReadOnlyConfig {
    fn default() -> Self {
        ReadOnlyConfig {
            listen: String::new(),
            max_lag: Duration::from_secs(10),
            consistency: Consistency::None,
            causal_timeout: Duration::from_secs(1),
            fallback_to_primary: true,
            check_interval: Duration::from_secs(1),
            check_timeout: Duration::from_secs(2),
            requalify_checks: 3,
            balance: Balance::LeastConnections,
        }
    }
}

impl ReadOnlyConfig {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Checked only when enabled; `monitor_user` is whom checks log in as.
    pub fn validate(&self, monitor_user: &str) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        parse_addr("read_only.listen", &self.listen)?;
        positive("read_only.max_lag", self.max_lag)?;
        positive("read_only.causal_timeout", self.causal_timeout)?;
        positive("read_only.check_interval", self.check_interval)?;
        positive("read_only.check_timeout", self.check_timeout)?;
        if self.requalify_checks == 0 {
            return Err(invalid("read_only.requalify_checks", "must be at least 1"));
        }
        if monitor_user.is_empty() {
            return Err(invalid(
                "read_only.listen",
                "the replica health checks log in as monitor.user: set it (and its password)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn parses_and_validates() {
        let text = "[monitor]\nuser = \"admin\"\n[read_only]\nlisten = \"127.0.0.1:0\"\n\
                    max_lag = \"3s\"\nconsistency = \"fleet\"\ncausal_timeout = \"250ms\"\n\
                    balance = \"weighted\"\n";
        let c = Config::from_toml(text, Path::new("t")).unwrap();
        assert_eq!(c.read_only.max_lag, Duration::from_secs(3));
        assert_eq!(c.read_only.consistency, Consistency::Fleet);
        assert_eq!(c.read_only.balance, Balance::Weighted);
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Config::from_toml("[read_only]\nlag = \"1s\"\n", Path::new("t")).unwrap_err();
        assert!(e.to_string().contains("lag"), "{e}");
        let mut c = ReadOnlyConfig {
            listen: "127.0.0.1:1".into(),
            ..Default::default()
        };
        let e = c.validate("").unwrap_err().to_string();
        assert!(
            e.contains("read_only.listen") && e.contains("monitor.user"),
            "{e}"
        );
        c.max_lag = Duration::ZERO;
        assert!(c.validate("u").unwrap_err().to_string().contains("max_lag"));
        c.max_lag = Duration::from_secs(1);
        c.listen = "nope".into();
        assert!(c.validate("u").is_err());
        assert!(ReadOnlyConfig::default().validate("").is_ok());
    }
}
