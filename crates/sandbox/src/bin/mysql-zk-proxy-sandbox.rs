//! The `mysql-zk-proxy-sandbox` binary: a local ZooKeeper + MariaDB
//! primary/GTID replica cluster for trying the proxy, for the scripts
//! (demo, drill, benches) and for developers; `drill` runs the failover
//! drill against it. Exit codes: 0 done, 1 failed, 2 bad arguments, 3 a
//! drill whose verdict failed (as `mysql-zk-proxy-drill`).
//!
//! Layer: the test bench's binary, built beside the deployed
//! `mysql-zk-proxy`, never linked into it.

use std::process::ExitCode;

use clap::Parser;
use mysql_zk_proxy_drill::{tool, EXIT_DRILL_FAILED};
use mysql_zk_proxy_sandbox::cli::{self, SandboxCommand};
use mysql_zk_proxy_sandbox::SandboxError;

/// Local ZooKeeper + MariaDB cluster for trying mysql-zk-proxy and for tests.
#[derive(Debug, Parser)]
#[command(name = "mysql-zk-proxy-sandbox", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: SandboxCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The sandbox prints its own summary lines; library chatter stays below
    // warn (a drill prints its own report: warnings only).
    let level = match cli.command {
        SandboxCommand::Drill(_) => "warn",
        _ => "warn,mysql_zk_proxy=info",
    };
    tool::run("mysql-zk-proxy-sandbox", level, async {
        match cli::run(cli.command).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(SandboxError::DrillFailed) => Ok(ExitCode::from(EXIT_DRILL_FAILED)),
            Err(e) => Err(e),
        }
    })
}
