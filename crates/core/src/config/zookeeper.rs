//! `[zookeeper]`: where the primary record is (servers, path, session and
//! retry timing, users path, this proxy's id), with `[zookeeper.auth]` and
//! `[zookeeper.tls]`, and the validation of the whole section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError, ZkAuth, ZkTlsConfig};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZookeeperConfig {
    /// Connect string: `host:port[,host:port...][/chroot]`.
    pub connect: String,
    /// Znode holding the primary record (relative to the chroot, if any).
    pub primary_path: String,
    /// ZooKeeper session timeout negotiated with the server.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How long one attempt to establish a session may take before retrying.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Pause between attempts to establish a new session after a failure.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Znode whose children are users (`{"mysql_native_password":"*HEX"}`); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_path: Option<String>,
    /// Stop routing after this long without a usable session; absent = never.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub fail_closed_after: Option<Duration>,
    /// This proxy's id under `<cluster>/proxies/` (its registration znode, where
    /// it acknowledges planned-switchover drains); default `<hostname>-<listen port>`.
    pub proxy_id: Option<String>,
    /// `[zookeeper.auth]`: digest credentials for the session; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<ZkAuth>,
    /// `[zookeeper.tls]`: TLS to the servers; off by default.
    pub tls: ZkTlsConfig,
}

impl Default for ZookeeperConfig {
    fn default() -> Self {
        ZookeeperConfig {
            connect: "127.0.0.1:2181".into(),
            primary_path: "/mysql/clusters/main/primary".into(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(500),
            users_path: None,
            fail_closed_after: None,
            proxy_id: None,
            auth: None,
            tls: ZkTlsConfig::default(),
        }
    }
}

impl ZookeeperConfig {
    /// Check the section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(a) = &self.auth {
            a.validate()?;
        }
        validate_connect(&self.connect)?;
        self.tls.validate(&self.connect)?;
        let p = &self.primary_path;
        if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
            return Err(invalid(
                "zookeeper.primary_path",
                format!("{p:?} is not an absolute znode path like /mysql/clusters/main/primary"),
            ));
        }
        positive("zookeeper.session_timeout", self.session_timeout)?;
        positive("zookeeper.connect_timeout", self.connect_timeout)?;
        if let Some(p) = &self.users_path {
            super::failover::validate_znode_path("zookeeper.users_path", p)?;
        }
        if let Some(id) = &self.proxy_id {
            if id.is_empty() || id.contains('/') {
                return Err(invalid(
                    "zookeeper.proxy_id",
                    format!("{id:?} must be a non-empty znode name without '/'"),
                ));
            }
        }
        if let Some(d) = self.fail_closed_after {
            positive("zookeeper.fail_closed_after", d)?;
        }
        Ok(())
    }
}

fn validate_connect(connect: &str) -> Result<(), ConfigError> {
    let key = "zookeeper.connect";
    if let Some(h) = connect.split(',').find(|h| h.contains("://")) {
        return Err(invalid(
            key,
            format!(
                "{h:?}: write servers as host:port; TLS to every server is zookeeper.tls.enabled"
            ),
        ));
    }
    let (hosts, chroot) = match connect.find('/') {
        Some(i) => (&connect[..i], Some(&connect[i..])),
        None => (connect, None),
    };
    if hosts.is_empty() {
        return Err(invalid(
            key,
            "no server listed (expected host:port[,host:port][/chroot])",
        ));
    }
    for h in hosts.split(',') {
        let ok = h
            .rsplit_once(':')
            .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            .unwrap_or(false);
        if !ok {
            return Err(invalid(key, format!("{h:?} is not host:port")));
        }
    }
    if let Some(c) = chroot {
        if c.len() > 1 && c.ends_with('/') {
            return Err(invalid(key, format!("chroot {c:?} must not end with '/'")));
        }
    }
    Ok(())
}
