//! `mysql-zk-proxy-sandbox up|down|status|switchover|publish|env|drill`: a
//! persistent local cluster for demos and drills (see `persistent.rs`), and
//! the ops crate's drill run against it with the sandbox's login, database,
//! ZooKeeper and switchover filled in.

use super::cluster::{record_json, REPL_PASS, REPL_USER};
use super::cluster::{Cluster, ADMIN_PASS, ADMIN_USER, APP_DB, APP_PASS, APP_USER};
use super::persistent::{self, UpOutcome};
use super::state::{default_dir, SandboxState};
use super::{MariaDb, Result, SandboxError};
use mysql_zk_proxy_drill::{self as drill, DrillArgs, Switcher};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct DirArg {
    /// State dir of the sandbox [default: ${TMPDIR:-/tmp}/mysql-zk-proxy-sandbox]
    #[arg(long, env = "MYSQL_ZK_PROXY_SANDBOX_DIR")]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_dir)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Start ZooKeeper + MariaDB primary + GTID replica(s) (detached; idempotent).
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// GTID replicas of a new sandbox (db2, db3, ...); an existing one keeps its own.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
        replicas: u16,
    },
    /// Stop the recorded processes; --wipe also deletes the state dir.
    Down {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        wipe: bool,
    },
    /// PIDs, roles, read_only, GTID positions and the znode.
    Status {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
    /// Planned switchover primary <-> replica, znode epoch + 1; prints phase timings.
    Switchover(DirArg),
    /// Unplanned failover: SIGKILL the primary, promote the replica, publish
    /// it (epoch + 1), rebuild the crashed server as its replica.
    Failover(FailoverArgs),
    /// Write the primary znode by hand (drills): JSON with the given or next epoch.
    Publish {
        #[command(flatten)]
        dir: DirArg,
        /// HOST:PORT to publish
        addr: String,
        /// Epoch to write [default: current + 1]
        #[arg(long)]
        epoch: Option<u64>,
        /// Write "HOST:PORT" as plain text instead of JSON
        #[arg(long, conflicts_with = "epoch")]
        raw: bool,
    },
    /// Print `export` lines: eval "$(mysql-zk-proxy-sandbox env)".
    Env(DirArg),
    /// `mysql-zk-proxy-drill` against the sandbox: its app user and
    /// database, its ZooKeeper and its switchover unless given; the other
    /// flags are the drill's (docs/drill.md).
    Drill(Box<SandboxDrillArgs>),
}

#[derive(Debug, Clone, clap::Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Crash the primary (the only kind of `failover`; `switchover` is the planned one)
    #[arg(long, required = true)]
    pub unplanned: bool,
    /// Stop the replica's SQL thread this long before the kill, so the
    /// writes acknowledged meanwhile are lost
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub lag: std::time::Duration,
    /// Apply --lag only when the new epoch is a multiple of N (2: every other failover)
    #[arg(long, default_value_t = 1)]
    pub lag_every: u64,
}

/// The drill's flags, with the ones the sandbox fills in made optional.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("user", |a| a.required(false)),
    mut_arg("password", |a| a.required(false)),
    mut_arg("database", |a| a.required(false)),
    mut_arg("switch_cmd", |a| a.required(false))
)]
pub struct SandboxDrillArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub drill: DrillArgs,
}

pub async fn run(cmd: SandboxCommand) -> Result<(), SandboxError> {
    match cmd {
        SandboxCommand::Up { dir, replicas } => up(&dir, replicas.into()).await,
        SandboxCommand::Down { dir, wipe } => {
            for line in persistent::down(&dir.path(), wipe)? {
                println!("{line}");
            }
            Ok(())
        }
        SandboxCommand::Status { dir, json } => status(&dir, json).await,
        SandboxCommand::Switchover(d) => {
            let report = persistent::switchover(&d.path()).await?;
            println!("{report}");
            Ok(())
        }
        SandboxCommand::Failover(a) => {
            let (c, _) = persistent::attach(&a.dir.path())?;
            let next = c.published_epoch().await?.unwrap_or(0) + 1;
            drop(c);
            let lagged = a.lag_every > 0 && next % a.lag_every == 0;
            let lag = if lagged { a.lag } else { Default::default() };
            let report = persistent::crash_failover(&a.dir.path(), lag).await?;
            println!("{report}");
            Ok(())
        }
        SandboxCommand::Publish {
            dir,
            addr,
            epoch,
            raw,
        } => publish(&dir, &addr, epoch, raw).await,
        SandboxCommand::Env(d) => env(&d),
        SandboxCommand::Drill(a) => match run_drill(*a).await? {
            true => Ok(()),
            false => Err(SandboxError::DrillFailed),
        },
    }
}

/// The drill with the sandbox's values where the flags give none; `Ok(true)`
/// when its verdict passed. The switchover is this binary's `switchover`.
async fn run_drill(a: SandboxDrillArgs) -> Result<bool> {
    let dir = a.dir.path();
    let st = SandboxState::load(&dir)?.ok_or_else(|| {
        SandboxError::State(format!(
            "no sandbox in {}: run `mysql-zk-proxy-sandbox up` first",
            dir.display()
        ))
    })?;
    let mut args = a.drill;
    args.user.get_or_insert_with(|| APP_USER.into());
    args.password.get_or_insert_with(|| APP_PASS.into());
    args.database.get_or_insert_with(|| APP_DB.into());
    args.zk.get_or_insert(st.zk_connect);
    args.primary_path.get_or_insert(st.primary_path);
    let dir_arg = dir.display().to_string();
    let own = match args.unplanned {
        // losses in every other failover: the replica lags 300 ms before the kill
        true => vec![
            "failover",
            "--unplanned",
            "--lag",
            "300ms",
            "--lag-every",
            "2",
        ],
        false => vec!["switchover"],
    };
    let switcher = match args.switch_cmd.take() {
        Some(cmd) => Switcher::Command(cmd),
        None => Switcher::Exec {
            program: std::env::current_exe()
                .map_err(|e| SandboxError::io("cannot find this binary", e))?,
            args: own
                .into_iter()
                .map(String::from)
                .chain(["--dir".into(), dir_arg])
                .collect(),
        },
    };
    let (json, html) = (args.json.clone(), args.html.clone());
    let o = args.options().map_err(drill_error)?;
    drill::cli_with(o, switcher, &json, &html)
        .await
        .map_err(drill_error)
}

fn drill_error(e: drill::DrillError) -> SandboxError {
    SandboxError::Other(e.to_string())
}

async fn up(d: &DirArg, replicas: usize) -> Result<()> {
    let t0 = Instant::now();
    let (c, st, outcome) = persistent::up_with_replicas(&d.path(), replicas).await?;
    let verb = match outcome {
        UpOutcome::AlreadyUp => "already up",
        UpOutcome::Started => "up",
    };
    println!(
        "sandbox {verb} in {} ms: primary={}:{} replica={} zk={} dir={}",
        t0.elapsed().as_millis(),
        c.primary().name(),
        c.primary().port(),
        c.replicas()
            .iter()
            .map(|r| format!("{}:{}", r.name(), r.port()))
            .collect::<Vec<_>>()
            .join(","),
        st.zk_connect,
        st.dir.display()
    );
    println!(
        "eval \"$(mysql-zk-proxy-sandbox env)\" to get ZK_CONNECT, PRIMARY_PATH, ports and users"
    );
    Ok(())
}

#[derive(Debug, Serialize)]
struct ServerStatus {
    name: String,
    role: &'static str,
    port: u16,
    pid: Option<u32>,
    running: bool,
    read_only: Option<bool>,
    gtid_binlog_pos: Option<String>,
    gtid_slave_pos: Option<String>,
    slave_io_running: Option<String>,
    slave_sql_running: Option<String>,
}

#[derive(Debug, Serialize)]
struct Status {
    dir: PathBuf,
    zk_connect: String,
    zk_pid: Option<u32>,
    zk_running: bool,
    primary_path: String,
    znode: Option<String>,
    znode_version: Option<i32>,
    servers: Vec<ServerStatus>,
}

async fn server_status(db: &MariaDb, role: &'static str) -> ServerStatus {
    let running = db.is_running();
    let q = |sql: &'static str| async move {
        if running {
            db.sql_async(sql).await.ok()
        } else {
            None
        }
    };
    let field = |f: &'static str| async move {
        if running {
            db.slave_status_field(f).await.ok().flatten()
        } else {
            None
        }
    };
    ServerStatus {
        name: db.name().to_owned(),
        role,
        port: db.port(),
        pid: db.pid(),
        running,
        read_only: q("SELECT @@global.read_only").await.map(|v| v == "1"),
        gtid_binlog_pos: q("SELECT @@global.gtid_binlog_pos").await,
        gtid_slave_pos: q("SELECT @@global.gtid_slave_pos").await,
        slave_io_running: field("Slave_IO_Running").await,
        slave_sql_running: field("Slave_SQL_Running").await,
    }
}

async fn collect_status(c: &Cluster, st: &SandboxState) -> Status {
    let znode = match c.zk().is_running() {
        true => c.published().await.ok().flatten(),
        false => None,
    };
    let mut servers = vec![server_status(c.primary(), "primary").await];
    for r in c.replicas() {
        servers.push(server_status(r, "replica").await);
    }
    Status {
        dir: st.dir.clone(),
        zk_connect: st.zk_connect.clone(),
        zk_pid: c.zk().pid(),
        zk_running: c.zk().is_running(),
        primary_path: st.primary_path.clone(),
        znode: znode
            .as_ref()
            .map(|(d, _)| String::from_utf8_lossy(d).into_owned()),
        znode_version: znode.map(|(_, v)| v),
        servers,
    }
}

async fn status(d: &DirArg, json: bool) -> Result<()> {
    let (c, st) = persistent::attach(&d.path())?;
    let s = collect_status(&c, &st).await;
    if json {
        let text =
            serde_json::to_string_pretty(&s).map_err(|e| SandboxError::Other(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let pid = |p: Option<u32>| p.map_or("-".into(), |p| p.to_string());
    println!("sandbox {}", s.dir.display());
    let zk_state = if s.zk_running { "running" } else { "DOWN" };
    println!(
        "zookeeper {} pid {} {zk_state}",
        s.zk_connect,
        pid(s.zk_pid)
    );
    for v in &s.servers {
        println!(
            "{} 127.0.0.1:{} pid {} {} {} read_only={} gtid_binlog_pos={} gtid_slave_pos={} io={} sql={}",
            v.name,
            v.port,
            pid(v.pid),
            if v.running { "running" } else { "DOWN" },
            v.role,
            v.read_only.map_or("-".into(), |r| u8::from(r).to_string()),
            opt(&v.gtid_binlog_pos),
            opt(&v.gtid_slave_pos),
            opt(&v.slave_io_running),
            opt(&v.slave_sql_running),
        );
    }
    let version = s.znode_version.map_or("-".into(), |v| v.to_string());
    println!(
        "znode {} = {} (dataVersion {version})",
        s.primary_path,
        opt(&s.znode)
    );
    Ok(())
}

async fn publish(d: &DirArg, addr: &str, epoch: Option<u64>, raw: bool) -> Result<()> {
    let (c, _st) = persistent::attach(&d.path())?;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| SandboxError::State(format!("expected HOST:PORT, got {addr:?}")))?;
    let data = if raw {
        addr.to_owned()
    } else {
        let epoch = match epoch {
            Some(e) => e,
            None => c.published_epoch().await?.unwrap_or(0) + 1,
        };
        record_json(host, port, epoch)
    };
    c.publish_raw(data.as_bytes()).await?;
    println!("znode {} = {data}", c.primary_path());
    Ok(())
}

/// Single-quote for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn env(d: &DirArg) -> Result<()> {
    let (c, st) = persistent::attach(&d.path())?;
    let mut vars: Vec<(&str, String)> = vec![
        ("SANDBOX_DIR", st.dir.display().to_string()),
        ("ZK_CONNECT", st.zk_connect.clone()),
        ("PRIMARY_PATH", st.primary_path.clone()),
        ("ZNODE", st.primary_path.clone()),
    ];
    // DB1_PORT, DB1_SOCKET, DB2_PORT, ... for every server
    let mut per_db: Vec<(String, String)> = Vec::new();
    for db in &st.dbs {
        let upper = db.name.to_ascii_uppercase();
        per_db.push((format!("{upper}_PORT"), db.port.to_string()));
        let path = st.dir.join(&db.name).join("mysqld.sock");
        per_db.push((format!("{upper}_SOCKET"), path.display().to_string()));
    }
    vars.push(("PRIMARY", c.primary().name().to_owned()));
    vars.push(("PRIMARY_PORT", c.primary().port().to_string()));
    if let Some(r) = c.replica() {
        vars.push(("REPLICA", r.name().to_owned()));
        vars.push(("REPLICA_PORT", r.port().to_string()));
        // its record (docs/replicas.md), for the read-only listener
        vars.push(("REPLICA_ZNODE", c.replica_path(r.name())));
    }
    let replicas_path = mysql_zk_proxy_core::discovery::replicas::replicas_path(&st.primary_path);
    vars.push(("REPLICAS_PATH", replicas_path));
    let names: Vec<String> = c.replicas().iter().map(|r| r.name().to_owned()).collect();
    vars.push(("REPLICA_NAMES", names.join(" ")));
    for (k, v) in [
        ("APP_USER", APP_USER),
        ("APP_PASS", APP_PASS),
        ("APP_DB", APP_DB),
        ("ADMIN_USER", ADMIN_USER),
        ("ADMIN_PASS", ADMIN_PASS),
        ("REPL_USER", REPL_USER),
        ("REPL_PASS", REPL_PASS),
    ] {
        vars.push((k, v.to_owned()));
    }
    for (k, v) in per_db {
        println!("export {k}={}", sh_quote(&v));
    }
    for (k, v) in vars {
        println!("export {k}={}", sh_quote(&v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: SandboxCommand,
    }

    #[test]
    fn drill_needs_no_login_but_takes_the_drill_flags() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["sandbox", "drill", "--dir", "/d", "--switchovers", "2"]).unwrap();
        let SandboxCommand::Drill(a) = cli.cmd else {
            panic!("not drill")
        };
        assert_eq!(a.dir.dir.as_deref(), Some(std::path::Path::new("/d")));
        assert_eq!((a.drill.switchovers, a.drill.user), (2, None));
        let cli = Cli::try_parse_from(["sandbox", "drill", "--user", "u", "--switch-cmd", "true"])
            .unwrap();
        let SandboxCommand::Drill(a) = cli.cmd else {
            panic!("not drill")
        };
        assert_eq!(a.drill.user.as_deref(), Some("u"));
        assert_eq!(a.drill.switch_cmd.as_deref(), Some("true"));
    }

    #[test]
    fn sh_quote_survives_single_quotes() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
