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
use mysql_zk_proxy_core::config::LogConfig;
use mysql_zk_proxy_drill::EXIT_DRILL_FAILED;
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
    // Before any TLS: zookeeper-client and mysql_async use the process default.
    mysql_zk_proxy_core::tls::install_default_provider();
    let cli = Cli::parse();
    // The sandbox prints its own summary lines; library chatter stays below
    // warn (a drill prints its own report: warnings only).
    let level = match cli.command {
        SandboxCommand::Drill(_) => "warn",
        _ => "warn,mysql_zk_proxy=info",
    };
    let log = LogConfig {
        level: level.into(),
        ..LogConfig::default()
    };
    if let Err(e) = mysql_zk_proxy_core::logging::init(&log) {
        eprintln!("mysql-zk-proxy-sandbox: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mysql-zk-proxy-sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(SandboxError::DrillFailed) => ExitCode::from(EXIT_DRILL_FAILED),
        Err(e) => {
            eprintln!("mysql-zk-proxy-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}
