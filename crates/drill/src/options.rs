//! `mysql-zk-proxy-drill` flags (clap) and the options they resolve to.
//! The proxy and admin addresses default to the proxy's own defaults
//! (127.0.0.1:6033, 127.0.0.1:9104); the login, the database and the
//! switchover command have no default: they are given (flags or the
//! environment), or filled in by a caller that knows them (the sandbox's
//! `mysql-zk-proxy-sandbox drill`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::load::OpKind;
use super::switcher::Switcher;
use super::verify::VerifyTarget;
use super::DrillError;

#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The proxy clients connect to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6033")]
    pub proxy: String,
    /// The proxy's admin HTTP address ("" = do not read /metrics and /status).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9104")]
    pub admin: String,
    /// MySQL user the load logs in as through the proxy.
    #[arg(long, required = true, env = "MYSQL_ZK_PROXY_DRILL_USER")]
    pub user: Option<String>,
    /// Password of --user; better from the environment (kept off `ps`).
    #[arg(
        long,
        required = true,
        env = "MYSQL_ZK_PROXY_DRILL_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Database holding the drill's table `drill_writes`.
    #[arg(long, required = true, env = "MYSQL_ZK_PROXY_DRILL_DATABASE")]
    pub database: Option<String>,
    /// Number of switchovers.
    #[arg(long, default_value_t = 20)]
    pub switchovers: u32,
    /// Time from the end of one switchover to the start of the next.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Load before the first switchover (the latency baseline) [default: --interval].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Added to the end of each switchover's window (see docs/drill.md).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Each switch is an unplanned failover (the command kills the primary
    /// and publishes a replica): per failover, the proxy's loss report is
    /// compared with the acknowledged writes the new primary lacks.
    #[arg(long)]
    pub unplanned: bool,
    /// Switchover command run with `sh -c` (exit 0 = done), e.g. a
    /// `mysql-zk-proxy switchover ...` line.
    #[arg(long, value_name = "CMD", required = true)]
    pub switch_cmd: Option<String>,
    /// ZooKeeper connect string to read the final primary from (without it
    /// and --primary-path, acknowledged writes are not checked).
    #[arg(long, value_name = "CONNECT")]
    pub zk: Option<String>,
    /// Znode of the primary record.
    #[arg(long, value_name = "PATH")]
    pub primary_path: Option<String>,
    #[command(flatten)]
    pub zk_tls: mysql_zk_proxy_ops::cli::ZkTlsArgs,
    #[command(flatten)]
    pub zk_auth: mysql_zk_proxy_ops::cli::ZkAuthArgs,
    /// Workers running autocommit point SELECTs.
    #[arg(long, default_value_t = 2)]
    pub readers: u32,
    /// Workers running autocommit INSERTs.
    #[arg(long, default_value_t = 2)]
    pub writers: u32,
    /// Workers running BEGIN; INSERT; UPDATE; COMMIT.
    #[arg(long, default_value_t = 2)]
    pub transactions: u32,
    /// Workers running server-side prepared statements.
    #[arg(long, default_value_t = 1)]
    pub prepared: u32,
    /// Idle connections held open (one `SELECT 1` per --idle-every).
    #[arg(long, default_value_t = 4)]
    pub idle: u32,
    /// Pause of a busy worker between two operations.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub think: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub idle_every: Duration,
    /// An operation without an answer this long counts as a timeout.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub op_timeout: Duration,
    /// JSON report ("" = none).
    #[arg(long, value_name = "FILE", default_value = "drill-report.json")]
    pub json: PathBuf,
    /// HTML report ("" = none).
    #[arg(long, value_name = "FILE", default_value = "drill-report.html")]
    pub html: PathBuf,
}

/// Everything [`super::run`] needs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub proxy: (String, u16),
    pub admin: Option<String>,
    pub user: String,
    pub password: String,
    pub database: String,
    pub switchovers: u32,
    pub interval: Duration,
    pub warmup: Duration,
    pub settle: Duration,
    pub workers: BTreeMap<OpKind, u32>,
    pub think: Duration,
    pub idle_every: Duration,
    pub op_timeout: Duration,
    /// `None`: acknowledged writes are not checked (the verdict fails).
    pub verify: Option<VerifyTarget>,
    /// The run id the rows are written with [default: now in ms since 1970].
    pub run: Option<u64>,
    /// Each switch is an unplanned failover: compare the proxy's loss report
    /// with the drill's ground truth (docs/drill.md, Unplanned drill).
    pub unplanned: bool,
}

impl DrillOptions {
    /// Options for `proxy` and a login with the defaults of
    /// `mysql-zk-proxy-drill`, no admin and no verification.
    pub fn new(proxy: (String, u16), user: &str, password: &str, database: &str) -> DrillOptions {
        let workers = [
            (OpKind::Read, 2),
            (OpKind::Write, 2),
            (OpKind::Transaction, 2),
        ];
        let workers = workers
            .into_iter()
            .chain([(OpKind::Prepared, 1), (OpKind::Idle, 4)]);
        DrillOptions {
            proxy,
            admin: None,
            user: user.into(),
            password: password.into(),
            database: database.into(),
            switchovers: 20,
            interval: Duration::from_secs(3),
            warmup: Duration::from_secs(3),
            settle: Duration::from_millis(500),
            workers: workers.collect(),
            think: Duration::from_millis(5),
            idle_every: Duration::from_secs(2),
            op_timeout: Duration::from_secs(30),
            verify: None,
            run: None,
            unplanned: false,
        }
    }
}

/// `HOST:PORT` split.
pub(crate) fn host_port(s: &str) -> Result<(String, u16), DrillError> {
    s.rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| DrillError::Options(format!("expected HOST:PORT, got {s:?}")))
}

impl DrillArgs {
    /// The options and the switcher (`--switch-cmd`).
    pub fn resolve(self) -> Result<(DrillOptions, Switcher), DrillError> {
        let cmd = required(self.switch_cmd.clone(), "--switch-cmd")?;
        Ok((self.options()?, Switcher::Command(cmd)))
    }

    /// The options these flags amount to.
    pub fn options(self) -> Result<DrillOptions, DrillError> {
        let auth = self
            .zk_auth
            .auth()
            .map_err(|e| DrillError::Options(format!("ZooKeeper auth (--zk-auth-*): {e}")))?;
        let user = required(self.user, "--user")?;
        let password = required(self.password, "--password")?;
        let database = required(self.database, "--database")?;
        let mut o = DrillOptions::new(host_port(&self.proxy)?, &user, &password, &database);
        o.admin = Some(self.admin.clone()).filter(|a| !a.is_empty());
        o.verify = self
            .zk
            .zip(self.primary_path)
            .map(|(zk, primary_path)| VerifyTarget {
                zk,
                primary_path,
                tls: self.zk_tls.config(),
                auth,
                user,
                password,
                database,
            });
        (o.switchovers, o.interval, o.settle) = (self.switchovers, self.interval, self.settle);
        o.warmup = self.warmup.unwrap_or(self.interval);
        o.workers = [
            (OpKind::Read, self.readers),
            (OpKind::Write, self.writers),
            (OpKind::Transaction, self.transactions),
            (OpKind::Prepared, self.prepared),
            (OpKind::Idle, self.idle),
        ]
        .into_iter()
        .collect();
        (o.think, o.idle_every, o.op_timeout) = (self.think, self.idle_every, self.op_timeout);
        o.unplanned = self.unplanned;
        if o.workers.values().sum::<u32>() == 0 {
            return Err(DrillError::Options(
                "no workers: nothing would load the proxy".into(),
            ));
        }
        Ok(o)
    }
}

/// A value clap requires, unless a caller that knows it relaxed the flag.
fn required(v: Option<String>, flag: &str) -> Result<String, DrillError> {
    v.ok_or_else(|| DrillError::Options(format!("the drill needs {flag}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Drill {
        #[command(flatten)]
        args: DrillArgs,
    }

    const LOGIN: [&str; 6] = ["--user", "u", "--password", "pw", "--database", "d"];

    fn parse_only(args: &[&str]) -> Result<DrillArgs, DrillError> {
        use clap::Parser;
        Drill::try_parse_from([&["drill"], args].concat())
            .map(|d| d.args)
            .map_err(|e| DrillError::Options(e.to_string()))
    }

    /// `args` after a login and `--switch-cmd true`.
    fn parse(args: &[&str]) -> Result<(DrillOptions, Switcher), DrillError> {
        parse_only(&[&LOGIN[..], &["--switch-cmd", "true"], args].concat())?.resolve()
    }

    #[test]
    fn flags_resolve_with_defaults() {
        let (o, sw) = parse(&["--interval", "2s", "--idle", "0"]).unwrap();
        assert_eq!(o.proxy, ("127.0.0.1".into(), 6033));
        assert_eq!((o.user.as_str(), o.password.as_str()), ("u", "pw"));
        assert_eq!(o.database, "d");
        assert_eq!(o.admin.as_deref(), Some("127.0.0.1:9104"));
        assert_eq!(
            (o.switchovers, o.interval, o.warmup),
            (20, Duration::from_secs(2), Duration::from_secs(2))
        );
        assert_eq!(o.workers[&OpKind::Idle], 0);
        assert!(matches!(sw, Switcher::Command(c) if c == "true"));
        let (o, _) = parse(&["--admin", "", "--warmup", "1s"]).unwrap();
        assert_eq!((o.admin, o.warmup), (None, Duration::from_secs(1)));
        let none = [
            "--readers",
            "0",
            "--writers",
            "0",
            "--transactions",
            "0",
            "--prepared",
            "0",
            "--idle",
            "0",
        ];
        assert!(parse(&none).is_err());
    }

    #[test]
    fn login_database_and_switchover_are_required() {
        for missing in 0..3 {
            let mut args: Vec<&str> = LOGIN.to_vec();
            args.drain(2 * missing..2 * missing + 2);
            args.extend(["--switch-cmd", "true"]);
            assert!(parse_only(&args).is_err(), "{args:?}");
        }
        assert!(parse_only(&LOGIN).is_err(), "no --switch-cmd");
        let mut relaxed = parse_only(&[&LOGIN[..], &["--switch-cmd", "true"]].concat()).unwrap();
        relaxed.user = None;
        assert!(relaxed.options().is_err());
    }

    #[test]
    fn zk_tls_flags_reach_the_verification() {
        let zk = ["--zk", "zk1:2281", "--primary-path", "/p"];
        let (o, _) =
            parse(&[&zk[..], &["--zk-tls-ca", "ca.pem", "--zk-tls-any-name"]].concat()).unwrap();
        let tls = o.verify.unwrap().tls.expect("TLS to ZooKeeper");
        assert_eq!((tls.ca.as_str(), tls.verify_hostname), ("ca.pem", false));
        let (o, _) = parse(&zk).unwrap();
        assert!(o.verify.unwrap().tls.is_none());
        assert!(parse(&[&zk[..], &["--zk-tls-cert", "c.pem"]].concat()).is_err());
    }

    #[test]
    fn zk_auth_flags_reach_the_verification() {
        let zk = ["--zk", "zk1:2181", "--primary-path", "/p"];
        let auth = ["--zk-auth-user", "drill", "--zk-auth-password", "pw"];
        let (o, _) = parse(&[&zk[..], &auth].concat()).unwrap();
        let auth = o.verify.unwrap().auth.expect("credentials");
        assert_eq!(auth.digest_credentials().unwrap().expose(), "drill:pw");
        let (o, _) = parse(&zk).unwrap();
        assert!(o.verify.unwrap().auth.is_none());
        let e = parse(&[&zk[..], &["--zk-auth-user", "drill"]].concat()).unwrap_err();
        assert!(e.to_string().contains("--zk-auth"), "{e}");
    }

    #[test]
    fn host_port_splits_and_rejects() {
        assert_eq!(
            host_port("127.0.0.1:6033").unwrap(),
            ("127.0.0.1".into(), 6033)
        );
        assert_eq!(host_port("[::1]:6033").unwrap(), ("::1".into(), 6033));
        assert!(host_port("6033").is_err());
        assert!(host_port(":6033").is_err());
        assert!(host_port("h:99999").is_err());
    }
}
