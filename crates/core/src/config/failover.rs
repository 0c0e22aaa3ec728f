//! The configuration sections of failover: `[[users]]` (the credential store's
//! file half) and `[monitor]` (verifying a new primary), with their
//! validation, and [`Secret`], the redacted string other sections use too.
//! Plain data: `crate::credentials` and `crate::verify` read these, they know nothing of them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::{invalid, ConfigError};
use crate::native_password::StoredHash;

/// A secret string from the config: Debug and serialization (check-config
/// output) show `<redacted>` unless it is empty.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn shown(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            "<redacted>"
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

/// One `[[users]]` entry: a user whose sessions can be migrated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The MySQL user name as the client sends it.
    pub name: String,
    /// `*` + 40 hex digits: SHA1(SHA1(password)), as in mysql.user.
    pub mysql_native_password: Secret,
}

/// `[monitor]`: how a new primary is verified before it becomes the route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// MySQL user the proxy logs in as to check a new primary ("" = none).
    pub user: String,
    /// Its password (or use `password_file`).
    pub password: Secret,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Require `@@read_only = 0` (and a matching `server_id`/`server_uuid`)
    /// before routing to a new primary. Absent = on when `user` is set, off
    /// otherwise; `true` without a `user` is a config error.
    pub verify_writable: Option<bool>,
    /// Pause between checks of a primary that is not writable (yet).
    #[serde(with = "humantime_serde")]
    pub recheck_interval: Duration,
    /// Bound on one check (connect + query).
    #[serde(with = "humantime_serde")]
    pub check_timeout: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            user: String::new(),
            password: Secret::default(),
            password_file: None,
            verify_writable: None,
            recheck_interval: Duration::from_millis(200),
            check_timeout: Duration::from_secs(2),
        }
    }
}

impl MonitorConfig {
    /// Whether new primaries are verified before they are routed to.
    pub fn enabled(&self) -> bool {
        self.verify_writable.unwrap_or(!self.user.is_empty())
    }

    /// The password, read from `password_file` when that is set.
    pub(crate) fn resolve_password(&self) -> Result<Secret, ConfigError> {
        let Some(path) = &self.password_file else {
            return Ok(self.password.clone());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "monitor.password_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Ok(Secret::new(text.lines().next().unwrap_or("")))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.password_file.is_some() && !self.password.is_empty() {
            return Err(invalid(
                "monitor.password_file",
                "set either monitor.password or monitor.password_file, not both",
            ));
        }
        if self.verify_writable == Some(true) && self.user.is_empty() {
            return Err(invalid(
                "monitor.user",
                "monitor.verify_writable = true needs a user to log in to a new primary as",
            ));
        }
        if self.recheck_interval.is_zero() {
            return Err(invalid(
                "monitor.recheck_interval",
                "must be greater than 0",
            ));
        }
        if self.check_timeout.is_zero() {
            return Err(invalid("monitor.check_timeout", "must be greater than 0"));
        }
        if self.enabled() {
            self.resolve_password()?;
        }
        Ok(())
    }
}

/// Every `[[users]]` entry has a name, a valid hash, and is listed once.
pub(crate) fn validate_users(users: &[UserConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, u) in users.iter().enumerate() {
        if u.name.is_empty() {
            return Err(invalid(
                "users",
                format!("entry {} has an empty name", i + 1),
            ));
        }
        if let Err(e) = StoredHash::parse(u.mysql_native_password.expose()) {
            return Err(invalid(
                "users",
                format!("user {:?}: mysql_native_password: {e}", u.name),
            ));
        }
        if !seen.insert(u.name.as_str()) {
            return Err(invalid(
                "users",
                format!("user {:?} is listed twice", u.name),
            ));
        }
    }
    Ok(())
}

/// `zookeeper.users_path`, when set: an absolute znode path.
pub(crate) fn validate_znode_path(key: &'static str, p: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
        return Err(invalid(
            key,
            format!("{p:?} is not an absolute znode path like /mysql/clusters/main/users"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, MonitorConfig, Secret, UserConfig};
    use std::path::Path;

    fn err(c: &Config) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn users_and_monitor_parse() {
        let text = r#"
[zookeeper]
users_path = "/mysql/users"
fail_closed_after = "30s"
[monitor]
user = "admin"
password = "s3cret"
[[users]]
name = "app"
mysql_native_password = "*5BCB3E6AC345B435C7C2E6B7949A04CE6F6563D3"
"#;
        let c = Config::from_toml(text, Path::new("t")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.users.len(), 1);
        assert!(c.monitor.enabled());
        assert_eq!(
            c.zookeeper.fail_closed_after,
            Some(std::time::Duration::from_secs(30))
        );
        crate::config::secrets::hides(&c, &["s3cret", "5BCB"]);
    }

    #[test]
    fn verification_is_off_without_a_user_and_explicit_true_needs_one() {
        assert!(!MonitorConfig::default().enabled());
        let mut c = Config::default();
        c.monitor.verify_writable = Some(true);
        assert!(err(&c).contains("monitor.user"), "{}", err(&c));
        c.monitor.user = "admin".into();
        c.validate().unwrap();
        c.monitor.verify_writable = Some(false);
        assert!(!c.monitor.enabled());
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut c = Config::default();
        c.users.push(UserConfig {
            name: "bob".into(),
            mysql_native_password: Secret::new("plaintext"),
        });
        assert!(
            err(&c).contains("users") && err(&c).contains("bob"),
            "{}",
            err(&c)
        );
        let mut c = Config::default();
        c.zookeeper.users_path = Some("users".into());
        assert!(err(&c).contains("zookeeper.users_path"));
        let mut c = Config::default();
        c.zookeeper.fail_closed_after = Some(std::time::Duration::ZERO);
        assert!(err(&c).contains("zookeeper.fail_closed_after"));
        let mut c = Config::default();
        c.monitor.user = "u".into();
        c.monitor.password = Secret::new("p");
        c.monitor.password_file = Some("/nonexistent".into());
        assert!(err(&c).contains("monitor.password_file"));
        c.monitor.password = Secret::default();
        assert!(err(&c).contains("cannot read"), "{}", err(&c));
    }
}
