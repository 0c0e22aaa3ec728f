//! `[listen.tls]` (clients connecting to the proxy with TLS) and
//! `[backend.tls]` (the proxy connecting to primaries with TLS): file paths
//! and switches only; the files are read by `crate::tls`.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// TLS towards clients: on when `cert` and `key` are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenTlsConfig {
    /// PEM certificate chain the proxy presents ("" = TLS off).
    pub cert: String,
    /// PEM private key of `cert`.
    pub key: String,
    /// Refuse clients that do not start TLS (error 9008).
    pub require: bool,
}

impl ListenTlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match (self.cert.is_empty(), self.key.is_empty()) {
            (true, false) => {
                return Err(invalid(
                    "listen.tls.cert",
                    "must be set with listen.tls.key",
                ))
            }
            (false, true) => {
                return Err(invalid(
                    "listen.tls.key",
                    "must be set with listen.tls.cert",
                ))
            }
            _ => {}
        }
        if self.require && !self.enabled() {
            return Err(invalid(
                "listen.tls.require",
                "needs listen.tls.cert and listen.tls.key",
            ));
        }
        if self.enabled() {
            crate::tls::server_config(self)?;
        }
        Ok(())
    }
}

/// TLS towards primaries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendTlsConfig {
    /// Connect to primaries with TLS (a primary that does not offer it is
    /// refused with error 9002).
    pub enabled: bool,
    /// PEM CA certificate(s) the primaries' certificates must chain to
    /// (required when enabled).
    pub ca: String,
    /// Name the primaries' certificates must carry; "" = the host of the
    /// primary's address as published in ZooKeeper.
    pub server_name: String,
    /// Client certificate and key presented to primaries ("" = none).
    pub cert: String,
    pub key: String,
}

impl BackendTlsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.ca.is_empty() {
            return Err(invalid(
                "backend.tls.ca",
                "must be set when backend.tls.enabled",
            ));
        }
        if self.cert.is_empty() != self.key.is_empty() {
            return Err(invalid(
                "backend.tls.cert",
                "backend.tls.cert and backend.tls.key go together",
            ));
        }
        crate::tls::client_config(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(r: Result<(), ConfigError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn incomplete_settings_name_the_key() {
        let l = ListenTlsConfig {
            cert: "c.pem".into(),
            ..Default::default()
        };
        assert!(problem(l.validate()).contains("listen.tls.key"));
        let l = ListenTlsConfig {
            require: true,
            ..Default::default()
        };
        assert!(problem(l.validate()).contains("listen.tls.require"));
        let b = BackendTlsConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(problem(b.validate()).contains("backend.tls.ca"));
        let b = BackendTlsConfig {
            enabled: true,
            ca: "/nonexistent/ca.pem".into(),
            ..Default::default()
        };
        let p = problem(b.validate());
        assert!(
            p.contains("backend.tls.ca") && p.contains("/nonexistent/ca.pem"),
            "{p}"
        );
        // off by default: nothing is read
        ListenTlsConfig::default().validate().unwrap();
        BackendTlsConfig::default().validate().unwrap();
    }
}
