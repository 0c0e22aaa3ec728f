//! `[listen]` (client side: address, limits, timeouts, keepalive, PROXY
//! protocol, `[listen.tls]`) and `[shutdown]` (the phases of a graceful stop).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError, ListenTlsConfig};

/// Whether clients may be behind a load balancer speaking the PROXY protocol.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header is read; a header sent by anyone is refused.
    #[default]
    Off,
    /// Connections from `trusted_proxies` must start with a v1 or v2 header
    /// (without one they are closed); other sources connect directly and a
    /// header from them is refused.
    Required,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Address clients connect to.
    pub address: String,
    /// Client connections served at once; past it a client gets MySQL error
    /// 1040 "Too many connections" instead of the greeting. 0 = no limit.
    pub max_connections: u32,
    /// How long a client has from the greeting to a successful login (and,
    /// separately, to send its PROXY protocol header).
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Close a session that stays at rest (no transaction, nothing
    /// outstanding) this long; "0s" = never.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// TCP keepalive idle time on client connections; "0s" turns it off.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    pub proxy_protocol: ProxyProtocol,
    /// Sources (CIDR, e.g. "10.0.0.0/8", or a bare IP) allowed to send a PROXY header.
    pub trusted_proxies: Vec<String>,
    /// `[listen.tls]`: TLS for clients.
    pub tls: ListenTlsConfig,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: "127.0.0.1:6033".into(),
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::ZERO,
            keepalive: Duration::from_secs(60),
            proxy_protocol: ProxyProtocol::Off,
            trusted_proxies: Vec::new(),
            tls: ListenTlsConfig::default(),
        }
    }
}

impl ListenConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("listen.handshake_timeout", self.handshake_timeout)?;
        self.tls.validate()?;
        for v in &self.trusted_proxies {
            parse_net(v).ok_or_else(|| {
                invalid(
                    "listen.trusted_proxies",
                    format!("{v:?} is not a CIDR like 10.0.0.0/8 or an IP address"),
                )
            })?;
        }
        if self.proxy_protocol == ProxyProtocol::Required && self.trusted_proxies.is_empty() {
            return Err(invalid(
                "listen.trusted_proxies",
                "must list the load balancers' addresses when listen.proxy_protocol = \"required\"",
            ));
        }
        Ok(())
    }

    /// The idle timeout, `None` when off.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (!self.idle_timeout.is_zero()).then_some(self.idle_timeout)
    }

    /// May `ip` send a PROXY protocol header?
    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies
            .iter()
            .filter_map(|v| parse_net(v))
            .any(|net| net.contains(&ip))
    }
}

/// A CIDR or a bare address (a /32 or /128).
fn parse_net(v: &str) -> Option<IpNet> {
    v.parse::<IpNet>()
        .ok()
        .or_else(|| v.parse::<IpAddr>().ok().map(IpNet::from))
}

/// IPv4-mapped IPv6 addresses (dual-stack listeners) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM/SIGINT, `/ready` answers 503 at once but clients are
    /// still accepted this long, so load balancers notice first.
    #[serde(with = "humantime_serde")]
    pub ready_delay: Duration,
    /// From the signal to exit: sessions end at their next rest point; after
    /// half of what is left past `ready_delay`, also inside a transaction
    /// once no reply is outstanding; at the end every session is closed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            ready_delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

impl ShutdownConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("shutdown.timeout", self.timeout)?;
        if self.ready_delay >= self.timeout {
            return Err(invalid(
                "shutdown.ready_delay",
                "must be shorter than shutdown.timeout",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_match_cidrs_bare_ips_and_mapped_v4() {
        let l = ListenConfig {
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into(), "::1/128".into()],
            ..ListenConfig::default()
        };
        l.validate().unwrap();
        for ok in ["10.1.2.3", "127.0.0.1", "::1", "::ffff:10.9.9.9"] {
            assert!(l.is_trusted_proxy(ok.parse().unwrap()), "{ok}");
        }
        for no in ["11.0.0.1", "127.0.0.2", "::2"] {
            assert!(!l.is_trusted_proxy(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let l = ListenConfig {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..ListenConfig::default()
        };
        crate::config::names_key(l.validate(), "listen.trusted_proxies");
        let l = ListenConfig {
            proxy_protocol: ProxyProtocol::Required,
            ..ListenConfig::default()
        };
        crate::config::names_key(l.validate(), "listen.trusted_proxies");
        let s = ShutdownConfig {
            ready_delay: Duration::from_secs(30),
            ..ShutdownConfig::default()
        };
        crate::config::names_key(s.validate(), "shutdown.ready_delay");
    }
}
