//! Security settings that carry secrets: `[zookeeper.auth]` (digest
//! credentials for the ZooKeeper session) and `admin.token`; where a secret
//! comes from (inline, a file, an environment variable) and its validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, Secret};

/// `[zookeeper.auth]`: the proxy authenticates its ZooKeeper session with
/// the `digest` scheme (`user:password`), so znodes can be protected by ACLs
/// such as `digest:proxy:<base64 sha1>:r`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZkAuth {
    /// Only "digest" is supported.
    #[serde(default = "digest")]
    pub scheme: String,
    pub user: String,
    /// The password inline; or use `password_file` / `password_env`.
    #[serde(default)]
    pub password: Secret,
    /// A file whose first line is the password (read at each session attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

fn digest() -> String {
    "digest".into()
}

impl ZkAuth {
    /// Digest credentials with the password given inline.
    pub fn digest(user: impl Into<String>, password: Secret) -> ZkAuth {
        ZkAuth {
            scheme: digest(),
            user: user.into(),
            password,
            password_file: None,
            password_env: None,
        }
    }

    /// The `user:password` bytes sent in ZooKeeper's AddAuth request.
    pub fn digest_credentials(&self) -> Result<Secret, ConfigError> {
        let password = resolve(
            "zookeeper.auth.password_file",
            &self.password,
            self.password_file.as_ref(),
            self.password_env.as_deref(),
        )?;
        Ok(Secret::new(format!("{}:{}", self.user, password.expose())))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.scheme != "digest" {
            return Err(invalid(
                "zookeeper.auth.scheme",
                format!("{:?} is not supported (only \"digest\")", self.scheme),
            ));
        }
        if self.user.is_empty() || self.user.contains(':') {
            return Err(invalid(
                "zookeeper.auth.user",
                "must be a non-empty name without ':'",
            ));
        }
        let sources = [
            !self.password.is_empty(),
            self.password_file.is_some(),
            self.password_env.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                "zookeeper.auth.password",
                "set exactly one of password, password_file, password_env",
            ));
        }
        self.digest_credentials().map(|_| ())
    }
}

/// A secret from exactly one of: inline, a file's first line, an env var.
pub fn resolve(
    key: &'static str,
    inline: &Secret,
    file: Option<&PathBuf>,
    env: Option<&str>,
) -> Result<Secret, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
        return Ok(Secret::new(text.lines().next().unwrap_or("")));
    }
    if let Some(var) = env {
        return std::env::var(var).map(Secret::new).map_err(|_| {
            invalid(
                key,
                format!("environment variable {var:?} is not set (or not UTF-8)"),
            )
        });
    }
    Ok(inline.clone())
}

/// `admin.token` resolution: inline or `token_file` / `token_env`.
pub(crate) fn admin_token(
    inline: &Secret,
    file: Option<&PathBuf>,
    env: Option<&str>,
) -> Result<Option<Secret>, ConfigError> {
    let set = [!inline.is_empty(), file.is_some(), env.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(invalid(
            "admin.token",
            "set at most one of token, token_file, token_env",
        ));
    }
    let token = resolve("admin.token_file", inline, file, env)?;
    if set.iter().any(|s| *s) && token.expose().len() < 16 {
        return Err(invalid(
            "admin.token",
            "must be at least 16 characters (use a random string)",
        ));
    }
    Ok((!token.is_empty()).then_some(token))
}

/// A test's check that none of `secrets` shows in the config's `Debug`
/// or its TOML.
#[cfg(test)]
pub(crate) fn hides(c: &super::Config, secrets: &[&str]) {
    let shown = format!("{c:?} {}", toml::to_string(c).unwrap());
    for s in secrets {
        assert!(!shown.contains(s), "{s} shown: {shown}");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        Config::from_toml(text, Path::new("t")).unwrap()
    }

    #[test]
    fn zk_auth_parses_and_never_prints_the_password() {
        let c = parse(
            "[zookeeper.auth]\nuser = \"proxy\"\npassword = \"zk-Pa55\"\n\
             [admin]\ntoken = \"tok-0123456789abcdef\"\n",
        );
        c.validate().unwrap();
        let auth = c.zookeeper.auth.as_ref().unwrap();
        assert_eq!(auth.digest_credentials().unwrap().expose(), "proxy:zk-Pa55");
        super::hides(&c, &["zk-Pa55", "tok-0123"]);
    }

    #[test]
    fn password_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\nignored\n").unwrap();
        let c = parse(&format!(
            "[zookeeper.auth]\nuser = \"u\"\npassword_file = {:?}\n",
            f
        ));
        c.validate().unwrap();
        let got = c.zookeeper.auth.unwrap().digest_credentials().unwrap();
        assert_eq!(got.expose(), "u:from-file");
        let c = parse("[zookeeper.auth]\nuser = \"u\"\npassword_env = \"MZP_TEST_UNSET_VAR\"\n");
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("zookeeper.auth") && e.contains("MZP_TEST_UNSET_VAR"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = |t: &str| parse(t).validate().unwrap_err().to_string();
        assert!(
            e("[zookeeper.auth]\nscheme = \"sasl\"\nuser = \"u\"\npassword = \"p\"\n")
                .contains("zookeeper.auth.scheme")
        );
        assert!(e("[zookeeper.auth]\nuser = \"a:b\"\npassword = \"p\"\n")
            .contains("zookeeper.auth.user"));
        assert!(e("[zookeeper.auth]\nuser = \"u\"\n").contains("zookeeper.auth.password"));
        assert!(e("[admin]\ntoken = \"short\"\n").contains("admin.token"));
    }
}
