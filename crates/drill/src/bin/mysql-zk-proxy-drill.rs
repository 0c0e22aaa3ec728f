//! The `mysql-zk-proxy-drill` binary: client load through a proxy while a
//! command switches the primary over, repeatedly, and a report of what the
//! clients saw (docs/drill.md). Exit codes: 0 the drill passed, 1 it could
//! not run, 2 bad arguments, 3 it ran and its verdict is FAIL.
//!
//! Layer: an operator's tool beside the deployed `mysql-zk-proxy`, which
//! does not contain it.

use std::process::ExitCode;

use clap::Parser;
use mysql_zk_proxy_core::config::LogConfig;
use mysql_zk_proxy_drill::{DrillArgs, EXIT_DRILL_FAILED};

/// Failover drill for mysql-zk-proxy: load, repeated switchovers, a report.
#[derive(Debug, Parser)]
#[command(name = "mysql-zk-proxy-drill", version)]
struct Cli {
    #[command(flatten)]
    drill: DrillArgs,
}

fn main() -> ExitCode {
    // Before any TLS: zookeeper-client and mysql_async use the process default.
    mysql_zk_proxy_core::tls::install_default_provider();
    let cli = Cli::parse();
    let log = LogConfig {
        level: "warn".into(),
        ..LogConfig::default()
    };
    if let Err(e) = mysql_zk_proxy_core::logging::init(&log) {
        eprintln!("mysql-zk-proxy-drill: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mysql-zk-proxy-drill: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mysql_zk_proxy_drill::cli(cli.drill)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_DRILL_FAILED),
        Err(e) => {
            eprintln!("mysql-zk-proxy-drill: {e}");
            ExitCode::FAILURE
        }
    }
}
