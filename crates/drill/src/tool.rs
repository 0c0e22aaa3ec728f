//! The start every tool binary beside the proxy shares (the drill, the
//! sandbox): the process's TLS provider, logging at a fixed level, an async
//! runtime, and one line on stderr for the error that ends it.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use mysql_zk_proxy_core::config::LogConfig;

/// Runs `work` on a new runtime with logging at `level`; an `Err` is printed
/// as `<name>: <error>` and exits 1, a logging set-up failure exits 2.
pub fn run<F, E>(name: &str, level: &str, work: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: Display,
{
    // Before any TLS: zookeeper-client and mysql_async use the process default.
    mysql_zk_proxy_core::tls::install_default_provider();
    let log = LogConfig {
        level: level.into(),
        ..LogConfig::default()
    };
    if let Err(e) = mysql_zk_proxy_core::logging::init(&log) {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(work).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        ExitCode::FAILURE
    })
}
