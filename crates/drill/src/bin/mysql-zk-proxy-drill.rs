//! The `mysql-zk-proxy-drill` binary: client load through a proxy while a
//! command switches the primary over, repeatedly, and a report of what the
//! clients saw (docs/drill.md). Exit codes: 0 the drill passed, 1 it could
//! not run, 2 bad arguments, 3 it ran and its verdict is FAIL.
//!
//! Layer: an operator's tool beside the deployed `mysql-zk-proxy`, which
//! does not contain it.

use std::process::ExitCode;

use clap::Parser;
use mysql_zk_proxy_drill::{tool, DrillArgs, DrillError, EXIT_DRILL_FAILED};

/// Failover drill for mysql-zk-proxy: load, repeated switchovers, a report.
#[derive(Debug, Parser)]
#[command(name = "mysql-zk-proxy-drill", version)]
struct Cli {
    #[command(flatten)]
    drill: DrillArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tool::run("mysql-zk-proxy-drill", "warn", async {
        let passed = mysql_zk_proxy_drill::cli(cli.drill).await?;
        Ok::<_, DrillError>(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_DRILL_FAILED)
        })
    })
}
