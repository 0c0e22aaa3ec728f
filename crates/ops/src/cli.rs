//! `mysql-zk-proxy publish` and `mysql-zk-proxy switchover`: their clap
//! arguments (this crate owns them; the binary embeds them in its command line),
//! running them, printing the outcome (text, or one JSON document with
//! `--json`) and the exit code: 0 done, 1 refused / rolled back / failed
//! (clap's own 2 for bad arguments). Passwords may come from the environment
//! (or a file, for ZooKeeper's) and are never printed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::publish::{publish, PublishError, PublishRequest};
use super::replicas::{publish_replica, ReplicaRequest};
use super::server::Login;
use super::switchover::{self, Plan};
use super::zk::{self, ZkOpError};
use super::Endpoint;
use mysql_zk_proxy_core::config::secrets::resolve;
use mysql_zk_proxy_core::config::Secret;
use mysql_zk_proxy_core::config::{invalid, ConfigError, ZkAuth, ZkTlsConfig};
use mysql_zk_proxy_core::discovery::replica_record::ReplicaState;

/// Where the record lives.
#[derive(Debug, Clone, Args)]
pub struct ZkArgs {
    /// ZooKeeper connect string host:port[,host:port][/chroot].
    #[arg(long, value_name = "CONNECT")]
    pub zk: String,
    /// Znode holding the primary record.
    #[arg(long, value_name = "PATH")]
    pub primary_path: String,
    /// Bound on establishing the ZooKeeper session.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub zk_timeout: Duration,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: ZkTlsArgs,
    #[command(flatten)]
    pub auth: ZkAuthArgs,
}

/// TLS to ZooKeeper for the commands that read or write the record.
#[derive(Debug, Clone, Default, Args)]
pub struct ZkTlsArgs {
    /// Connect to every server with TLS (ZooKeeper's secureClientPort),
    /// trusting the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub zk_tls_ca: Option<String>,
    /// Client certificate (PEM) for servers with ssl.clientAuth=need.
    #[arg(long, value_name = "FILE", requires_all = ["zk_tls_ca", "zk_tls_key"])]
    pub zk_tls_cert: Option<String>,
    /// Private key (PEM) of --zk-tls-cert.
    #[arg(long, value_name = "FILE", requires = "zk_tls_cert")]
    pub zk_tls_key: Option<String>,
    /// Accept a server certificate for any name (its chain is still verified
    /// against --zk-tls-ca), as zookeeper.tls.verify_hostname = false.
    #[arg(long, requires = "zk_tls_ca")]
    pub zk_tls_any_name: bool,
}

impl ZkTlsArgs {
    /// The `[zookeeper.tls]` these flags amount to; `None`: no TLS.
    pub fn config(&self) -> Option<ZkTlsConfig> {
        let ca = self.zk_tls_ca.clone()?;
        Some(ZkTlsConfig {
            enabled: true,
            ca,
            verify_hostname: !self.zk_tls_any_name,
            cert: self.zk_tls_cert.clone().unwrap_or_default(),
            key: self.zk_tls_key.clone().unwrap_or_default(),
        })
    }
}

/// Digest credentials for ZooKeeper (as `[zookeeper.auth]`), for a record
/// protected by an ACL.
#[derive(Debug, Clone, Default, Args)]
pub struct ZkAuthArgs {
    /// Authenticate the ZooKeeper session as this digest user (password from
    /// MYSQL_ZK_PROXY_ZK_PASSWORD, --zk-auth-password-file or --zk-auth-password).
    #[arg(long, value_name = "USER")]
    pub zk_auth_user: Option<String>,
    /// Password of --zk-auth-user; better from the environment or a file
    /// (kept off `ps`).
    #[arg(long, value_name = "PASSWORD", env = "MYSQL_ZK_PROXY_ZK_PASSWORD", hide_env_values = true, value_parser = secret, requires = "zk_auth_user")]
    pub zk_auth_password: Option<Secret>,
    /// A file whose first line is the password of --zk-auth-user (it takes
    /// precedence over MYSQL_ZK_PROXY_ZK_PASSWORD).
    #[arg(long, value_name = "FILE", requires = "zk_auth_user")]
    pub zk_auth_password_file: Option<PathBuf>,
}

impl ZkAuthArgs {
    /// The `[zookeeper.auth]` these flags amount to (the password read
    /// now); `None`: no credentials.
    pub fn auth(&self) -> Result<Option<ZkAuth>, ConfigError> {
        let Some(user) = &self.zk_auth_user else {
            return Ok(None);
        };
        if user.is_empty() || user.contains(':') {
            return Err(invalid(
                "--zk-auth-user",
                "must be a non-empty name without ':'",
            ));
        }
        let password = match (&self.zk_auth_password_file, &self.zk_auth_password) {
            (Some(file), _) => {
                resolve("--zk-auth-password-file", &Secret::default(), Some(file), None)?
            }
            (None, Some(password)) => password.clone(),
            (None, None) => {
                return Err(invalid(
                    "--zk-auth-user",
                    "needs a password: MYSQL_ZK_PROXY_ZK_PASSWORD, --zk-auth-password-file or --zk-auth-password",
                ))
            }
        };
        Ok(Some(ZkAuth::digest(user.clone(), password)))
    }
}

impl ZkArgs {
    /// The bounded session the command works in.
    async fn session(&self) -> Result<zookeeper_client::Client, ZkOpError> {
        let auth = self.auth.auth().map_err(ZkOpError::AuthConfig)?;
        let tls = self.tls.config();
        zk::connect(&self.zk, self.zk_timeout, tls.as_ref(), auth.as_ref()).await
    }
}

/// `publish`: write a serving primary record (compare-and-set, epoch + 1).
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub zk: ZkArgs,
    /// The primary's host name or IP address.
    #[arg(long)]
    pub host: String,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Epoch to write; must be above the current one. Default: current + 1.
    #[arg(long)]
    pub epoch: Option<u64>,
    /// `server_id` of the primary (proxies verify it when verification is on).
    #[arg(long)]
    pub server_id: Option<u64>,
    /// `server_uuid` of the primary (MySQL; MariaDB has none).
    #[arg(long)]
    pub server_uuid: Option<String>,
    /// Write only if the znode is at this data version (-1: only if absent).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-1..))]
    pub expect_version: Option<i32>,
    /// Write the replica record `<cluster>/replicas/NAME` for the server at
    /// --host/--port instead of the primary record; its epoch defaults to
    /// the primary record's.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["server_id", "server_uuid", "expect_version"])]
    pub replica: Option<String>,
    /// Replica record: its share of new read sessions (1-1000, `weighted` balance).
    #[arg(long, requires = "replica", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub weight: u32,
    /// Replica record: serving, draining or maintenance.
    #[arg(long, requires = "replica", default_value = "serving", value_parser = replica_state)]
    pub state: ReplicaState,
}

fn replica_state(s: &str) -> Result<ReplicaState, String> {
    match s {
        "serving" => Ok(ReplicaState::Serving),
        "draining" => Ok(ReplicaState::Draining),
        "maintenance" => Ok(ReplicaState::Maintenance),
        other => Err(format!("{other:?} is not serving, draining or maintenance")),
    }
}

/// `switchover`: planned switchover to a GTID replica of the primary.
#[derive(Debug, Clone, Args)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    pub zk: ZkArgs,
    /// The replica to promote, HOST:PORT as proxies should reach it.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Endpoint,
    /// MySQL user for both servers (SUPER or READ_ONLY ADMIN + REPLICATION privileges).
    #[arg(long)]
    pub user: String,
    /// Password of --user; better from the environment (kept off `ps`).
    #[arg(long, env = "MYSQL_ZK_PROXY_PASSWORD", hide_env_values = true, default_value = "", value_parser = secret)]
    pub password: Secret,
    /// Replication user the old primary uses to follow the target (default: --user).
    #[arg(long)]
    pub repl_user: Option<String>,
    /// Its password (default: --password).
    #[arg(long, env = "MYSQL_ZK_PROXY_REPL_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub repl_password: Option<Secret>,
    /// Bound on waiting for every registered proxy's drain acknowledgement.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Bound on the target applying the old primary's GTID position.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub catch_up_timeout: Duration,
    /// Bound on connecting to a server and on each other statement.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sql_timeout: Duration,
    /// Proceed even if not every registered proxy acknowledged in time
    /// (their open transactions are cut off); default: roll back.
    #[arg(long)]
    pub force: bool,
    /// Name of the old primary's replica record, written after the
    /// switchover when it has none (default `<host>-<port>`).
    #[arg(long, value_name = "NAME")]
    pub old_primary_name: Option<String>,
}

/// A password argument: redacted in Debug output.
fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s))
}

impl SwitchoverArgs {
    pub fn plan(&self) -> Plan {
        let login = Login {
            user: self.user.clone(),
            password: self.password.clone(),
        };
        let repl = Login {
            user: self.repl_user.clone().unwrap_or_else(|| self.user.clone()),
            password: self
                .repl_password
                .clone()
                .unwrap_or_else(|| self.password.clone()),
        };
        Plan {
            primary_path: self.zk.primary_path.clone(),
            target: self.to.clone(),
            login,
            repl,
            drain_timeout: self.drain_timeout,
            catch_up_timeout: self.catch_up_timeout,
            sql_timeout: self.sql_timeout,
            force: self.force,
            old_primary_name: self.old_primary_name.clone(),
        }
    }
}

/// Print a failure before anything ran (no ZooKeeper session) as
/// `outcome` and return 1.
fn unreached(json: bool, outcome: &str, e: &ZkOpError) -> u8 {
    if json {
        println!("{}", json!({"outcome": outcome, "error": e.to_string()}));
    } else {
        eprintln!("mysql-zk-proxy: {e}");
    }
    1
}

/// Run `publish`; the exit code.
pub async fn run_publish(args: PublishArgs) -> u8 {
    let client = match args.zk.session().await {
        Ok(c) => c,
        Err(e) => return unreached(args.zk.json, "failed", &e),
    };
    if let Some(name) = &args.replica {
        return run_publish_replica(&client, &args, name).await;
    }
    let req = PublishRequest {
        primary: Endpoint::new(args.host.clone(), args.port),
        epoch: args.epoch,
        server_id: args.server_id,
        server_uuid: args.server_uuid.clone(),
        expect_version: args.expect_version,
    };
    let result = publish(&client, &args.zk.primary_path, &req).await;
    match (&result, args.zk.json) {
        (Ok(p), true) => print_published(p),
        (Ok(p), false) => println!(
            "published {} epoch {} at {} (previous epoch {}, znode version {})",
            p.primary,
            p.epoch,
            p.path,
            p.previous_epoch.map_or("none".into(), |e| e.to_string()),
            p.version
        ),
        (Err(e), true) => println!(
            "{}",
            json!({"outcome": refused_or_failed(e), "error": e.to_string()})
        ),
        (Err(e), false) => eprintln!("mysql-zk-proxy: publish {}: {e}", refused_or_failed(e)),
    }
    u8::from(result.is_err())
}

/// `--json` of a publish that succeeded: what was written, with
/// `"outcome": "published"`.
fn print_published(p: &impl serde::Serialize) {
    let mut v = serde_json::to_value(p).expect("plain struct serializes");
    v["outcome"] = "published".into();
    println!("{v}");
}

/// `publish --replica NAME`; the exit code.
async fn run_publish_replica(
    client: &zookeeper_client::Client,
    args: &PublishArgs,
    name: &str,
) -> u8 {
    let req = ReplicaRequest {
        name: name.to_owned(),
        replica: Endpoint::new(args.host.clone(), args.port),
        epoch: args.epoch,
        weight: args.weight,
        state: args.state,
    };
    let result = publish_replica(client, &args.zk.primary_path, &req).await;
    match (&result, args.zk.json) {
        (Ok(p), true) => print_published(p),
        (Ok(p), false) => println!(
            "published replica {} epoch {} at {} (znode version {})",
            p.replica, p.epoch, p.path, p.version
        ),
        (Err(e), true) => println!("{}", json!({"outcome": "failed", "error": e.to_string()})),
        (Err(e), false) => eprintln!("mysql-zk-proxy: publish failed: {e}"),
    }
    u8::from(result.is_err())
}

/// `conflict` (the record changed since it was read), `refused` (the
/// request goes backwards or cannot be judged) or `failed` (ZooKeeper).
fn refused_or_failed(e: &PublishError) -> &'static str {
    match e {
        PublishError::Zk(ZkOpError::Conflict { .. }) | PublishError::VersionMismatch { .. } => {
            "conflict"
        }
        PublishError::Zk(_) => "failed",
        PublishError::Backwards { .. } | PublishError::Unparseable(_) => "refused",
    }
}

/// Run `switchover`; the exit code.
pub async fn run_switchover(args: SwitchoverArgs) -> u8 {
    let client = match args.zk.session().await {
        Ok(c) => c,
        Err(e) => return unreached(args.zk.json, "refused", &e),
    };
    let report = switchover::run(&client, &args.plan()).await;
    if args.zk.json {
        println!("{}", report.json());
    } else {
        println!("{report}");
    }
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Switchover {
        #[command(flatten)]
        args: super::SwitchoverArgs,
    }

    fn switchover(extra: &[&str]) -> Result<super::SwitchoverArgs, clap::Error> {
        let mut args = vec!["switchover", "--zk", "z:1", "--primary-path", "/p"];
        args.extend_from_slice(extra);
        Ok(Switchover::try_parse_from(args)?.args)
    }

    #[test]
    fn switchover_defaults_and_replication_login() {
        let a = switchover(&["--to", "10.0.0.6:3306", "--user", "op", "--password", "pw"]).unwrap();
        let plan = a.plan();
        assert_eq!(
            (plan.target.host.as_str(), plan.target.port),
            ("10.0.0.6", 3306)
        );
        assert_eq!(
            (plan.drain_timeout, plan.catch_up_timeout),
            (Duration::from_secs(10), Duration::from_secs(10))
        );
        assert!(!plan.force && !a.zk.json);
        assert_eq!(
            (plan.repl.user.as_str(), plan.repl.password.expose()),
            ("op", "pw")
        );
        let a = switchover(&[
            "--to",
            "db2:3306",
            "--user",
            "op",
            "--repl-user",
            "repl",
            "--repl-password",
            "r",
            "--drain-timeout",
            "250ms",
            "--catch-up-timeout",
            "2s",
            "--force",
            "--json",
        ])
        .unwrap();
        let plan = a.plan();
        assert_eq!(
            (plan.repl.user.as_str(), plan.repl.password.expose()),
            ("repl", "r")
        );
        assert_eq!(plan.drain_timeout, Duration::from_millis(250));
        assert!(plan.force && a.zk.json);
        assert!(
            !format!("{plan:?}").contains("\"r\""),
            "secrets are not in Debug output"
        );
    }

    #[test]
    fn zk_auth_flags_give_digest_credentials() {
        let to = ["--to", "db2:1", "--user", "op", "--zk-auth-user", "proxy"];
        let creds = |extra: &[&str]| {
            let a = switchover(&[&to[..], extra].concat()).unwrap();
            a.zk.auth.auth().map(|auth| {
                let auth = auth.expect("credentials");
                auth.digest_credentials().unwrap().expose().to_owned()
            })
        };
        assert_eq!(creds(&["--zk-auth-password", "pw"]).unwrap(), "proxy:pw");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\nignored\n").unwrap();
        let file = file.to_str().unwrap();
        let both = ["--zk-auth-password", "pw", "--zk-auth-password-file", file];
        assert_eq!(creds(&both).unwrap(), "proxy:from-file");
        let e = creds(&[]).unwrap_err().to_string();
        assert!(e.contains("MYSQL_ZK_PROXY_ZK_PASSWORD"), "{e}");
        let e = creds(&["--zk-auth-password-file", "/nonexistent/pw"]).unwrap_err();
        assert!(e.to_string().contains("--zk-auth-password-file"), "{e}");
        let a = switchover(&["--to", "db2:1", "--user", "op"]).unwrap();
        assert!(a.zk.auth.auth().unwrap().is_none(), "no credentials");
        let a = switchover(&["--to", "db2:1", "--user", "op", "--zk-auth-user", "a:b"]);
        let e = a.unwrap().zk.auth.auth().unwrap_err().to_string();
        assert!(e.contains("--zk-auth-user"), "{e}");
        let a = switchover(&["--to", "db2:1", "--user", "op", "--zk-auth-password", "pw"]);
        assert!(a.is_err(), "a password needs --zk-auth-user");
        let a = switchover(&[&to[..], &["--zk-auth-password", "zk-pw"]].concat()).unwrap();
        assert!(
            !format!("{a:?}").contains("zk-pw"),
            "secret in Debug output"
        );
    }

    #[test]
    fn bad_switchover_arguments_are_rejected() {
        for extra in [
            &["--to", "db2", "--user", "op"][..],
            &["--to", "db2:0", "--user", "op"],
            &["--user", "op"],
            &["--to", "db2:1", "--user", "op", "--drain-timeout", "ten"],
        ] {
            assert!(switchover(extra).is_err(), "{extra:?}");
        }
    }
}
