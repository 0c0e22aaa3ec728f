//! `[listen.tls]` (clients connecting to the proxy with TLS),
//! `[backend.tls]` (the proxy connecting to primaries with TLS) and
//! `[zookeeper.tls]` (the proxy connecting to ZooKeeper with TLS): file
//! paths and switches, checked together with the files they name. Part of
//! [`crate::config::Config`] (which re-exports them); they know nothing of
//! it: a problem is a [`TlsError`] naming the key, which the config turns
//! into its own error.

use serde::{Deserialize, Serialize};

use super::TlsError;

fn invalid(key: &'static str, problem: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        key,
        problem: problem.into(),
    }
}

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

    pub(crate) fn validate(&self) -> Result<(), TlsError> {
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
            super::server_config(self)?;
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
    pub(crate) fn validate(&self) -> Result<(), TlsError> {
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
        super::client_config(self)?;
        Ok(())
    }
}

/// TLS towards ZooKeeper: every server of `zookeeper.connect` when enabled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ZkTlsConfig {
    /// Connect to every server with TLS (ZooKeeper's `secureClientPort`).
    pub enabled: bool,
    /// PEM CA certificate(s) the servers' certificates must chain to
    /// (required when enabled).
    pub ca: String,
    /// The server's certificate must carry the host (DNS name or IP) it is
    /// reached by in `zookeeper.connect`; false checks the chain only.
    pub verify_hostname: bool,
    /// Client certificate and key, for servers with `ssl.clientAuth=need`
    /// ("" = none).
    pub cert: String,
    pub key: String,
}

impl Default for ZkTlsConfig {
    fn default() -> Self {
        ZkTlsConfig {
            enabled: false,
            ca: String::new(),
            verify_hostname: true,
            cert: String::new(),
            key: String::new(),
        }
    }
}

impl ZkTlsConfig {
    /// Check the settings, the files and the servers of `connect` (already
    /// checked to be `host:port` each).
    pub fn validate(&self, connect: &str) -> Result<(), TlsError> {
        let files = [
            ("zookeeper.tls.ca", &self.ca),
            ("zookeeper.tls.cert", &self.cert),
            ("zookeeper.tls.key", &self.key),
        ];
        if !self.enabled {
            return match files.iter().find(|(_, v)| !v.is_empty()) {
                Some((key, _)) => Err(invalid(
                    key,
                    "is set but zookeeper.tls.enabled is false (the connection would not be \
                     encrypted): set enabled = true, or remove it",
                )),
                None => Ok(()),
            };
        }
        if self.ca.is_empty() {
            return Err(invalid(
                "zookeeper.tls.ca",
                "must be set when zookeeper.tls.enabled",
            ));
        }
        if self.cert.is_empty() != self.key.is_empty() {
            let key = match self.cert.is_empty() {
                true => "zookeeper.tls.cert",
                false => "zookeeper.tls.key",
            };
            return Err(invalid(
                key,
                "zookeeper.tls.cert and zookeeper.tls.key go together",
            ));
        }
        for host in connect_hosts(connect) {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            if rustls::pki_types::ServerName::try_from(name).is_err() {
                return Err(invalid(
                    "zookeeper.connect",
                    format!("{host:?} is not a DNS name or IP address a TLS certificate can carry"),
                ));
            }
        }
        super::ZkTls::from_config(self)?;
        Ok(())
    }
}

/// The host of each `host:port` of a connect string.
fn connect_hosts(connect: &str) -> impl Iterator<Item = &str> {
    let hosts = connect.split('/').next().unwrap_or_default();
    hosts
        .split(',')
        .filter_map(|h| h.rsplit_once(':').map(|(host, _)| host))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error as the config reports it: the key, then the problem.
    fn problem(r: Result<(), TlsError>) -> String {
        let e = r.unwrap_err();
        format!("{}: {e}", e.key())
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

    #[test]
    fn zookeeper_tls_settings_name_the_key() {
        let zk = |f: fn(&mut ZkTlsConfig)| {
            let mut c = ZkTlsConfig::default();
            f(&mut c);
            problem(c.validate("127.0.0.1:2281"))
        };
        let p = zk(|c| c.ca = "ca.pem".into());
        assert!(
            p.contains("zookeeper.tls.ca") && p.contains("enabled is false"),
            "{p}"
        );
        assert!(zk(|c| c.enabled = true).contains("zookeeper.tls.ca"));
        let p = zk(|c| {
            c.enabled = true;
            c.ca = "ca.pem".into();
            c.cert = "cert.pem".into();
        });
        assert!(p.contains("zookeeper.tls.key"), "{p}");
        let p = zk(|c| {
            c.enabled = true;
            c.ca = "/nonexistent/zk-ca.pem".into();
        });
        assert!(
            p.contains("zookeeper.tls.ca") && p.contains("/nonexistent/zk-ca.pem"),
            "{p}"
        );
        let bad_host = ZkTlsConfig {
            enabled: true,
            ca: "/nonexistent/zk-ca.pem".into(),
            ..Default::default()
        };
        let p = problem(bad_host.validate("zk_1 .example:2281"));
        assert!(p.contains("zookeeper.connect"), "{p}");
        // off by default: nothing is read
        ZkTlsConfig::default().validate("a:1,b:2/chroot").unwrap();
    }
}
