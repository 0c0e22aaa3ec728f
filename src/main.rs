//! The `mysql-zk-proxy` binary, what operators deploy: parses the command
//! line, loads the config, sets up logging and runs the chosen command; maps
//! failures to exit codes (2 for a bad configuration, 1 for any other fatal
//! error).
//!
//! Layer: the top. It depends on `mysql-zk-proxy-core` (the proxy) and
//! `mysql-zk-proxy-ops` (operator commands); never on the failover drill
//! (`mysql-zk-proxy-drill`) or the test bench (`mysql-zk-proxy-sandbox`),
//! which are binaries of their own.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{signal, Signal, SignalKind};

use cli::{Cli, Command, OverrideArgs, RunArgs, EXIT_BAD_CONFIG};
use mysql_zk_proxy_core::config::{Config, LogConfig, Overrides, RuntimeConfig, RuntimeMode};
use mysql_zk_proxy_core::logging::{self, LogInitError};
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_ops as ops;

/// Exit code of every fatal error but a bad configuration.
const EXIT_FATAL: u8 = 1;

fn main() -> ExitCode {
    // Before any TLS: zookeeper-client and mysql_async use the process default.
    mysql_zk_proxy_core::tls::install_default_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig(args) => check_config(&args.config, args.overrides),
        Command::Publish(args) => operator(ops::cli::run_publish(args)),
        Command::Switchover(args) => operator(ops::cli::run_switchover(args)),
    };
    result.unwrap_or_else(|code| code)
}

/// Print a fatal error (each cause once) and return the exit code.
fn fail(code: u8, e: &anyhow::Error) -> ExitCode {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1).map(ToString::to_string) {
        if !msg.contains(&cause) {
            msg = format!("{msg}: {cause}");
        }
    }
    eprintln!("mysql-zk-proxy: {msg}");
    ExitCode::from(code)
}

fn load(path: Option<&Path>, overrides: OverrideArgs) -> Result<Config, ExitCode> {
    Config::load(path, &overrides.into()).map_err(|e| fail(EXIT_BAD_CONFIG, &e.into()))
}

fn check_config(path: &Path, overrides: OverrideArgs) -> Result<ExitCode, ExitCode> {
    let config = load(Some(path), overrides)?;
    let text = toml::to_string_pretty(&config)
        .context("cannot print the config as TOML")
        .map_err(|e| fail(EXIT_FATAL, &e))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> Result<ExitCode, ExitCode> {
    let overrides: Overrides = args.overrides.into();
    let config = Config::load(args.config.as_deref(), &overrides)
        .map_err(|e| fail(EXIT_BAD_CONFIG, &e.into()))?;
    init_logging(&config.log)?;
    let runtime = proxy_runtime(&config.runtime)?;
    let source = ConfigSource {
        path: args.config,
        overrides,
    };
    let result = runtime.block_on(serve(config, source));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| fail(EXIT_FATAL, &e))
}

/// Where the config came from, to load it again at SIGHUP.
struct ConfigSource {
    path: Option<PathBuf>,
    overrides: Overrides,
}

/// Start the proxy; reload at SIGHUP; at SIGTERM/SIGINT stop gracefully
/// (`[shutdown]` phases). A second SIGTERM/SIGINT exits at once.
async fn serve(config: Config, source: ConfigSource) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new()?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let proxy = Proxy::start(config).await?;
    tracing::info!(listen = %proxy.listen_addr(),
        admin = %proxy.admin_addr().map_or("disabled".into(), |a| a.to_string()),
        "serving until SIGTERM or SIGINT (SIGHUP reloads the config)");
    let name = loop {
        tokio::select! {
            name = signals.next() => break name,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                proxy.reload(Config::load(source.path.as_deref(), &source.overrides));
            }
        }
    };
    let timeout = proxy.config().shutdown.timeout;
    tracing::info!(signal = name, ?timeout, "shutting down");
    tokio::select! {
        clean = proxy.stop() => {
            if clean {
                tracing::info!("stopped");
            } else {
                tracing::warn!(?timeout,
                    "some sessions were still open at shutdown.timeout; closed them");
            }
            Ok(ExitCode::SUCCESS)
        }
        name = signals.next() => {
            tracing::warn!(signal = name, "second signal during shutdown; exiting now");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// SIGTERM and SIGINT, registered before the proxy starts so that no
/// signal in between falls back to the default action.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// An operator command (`publish`, `switchover`): it prints its own outcome
/// and returns its exit code.
fn operator(cmd: impl std::future::Future<Output = u8>) -> Result<ExitCode, ExitCode> {
    quiet_logging()?;
    Ok(ExitCode::from(runtime()?.block_on(cmd)))
}

/// Warnings only: the tools print their own output.
fn quiet_logging() -> Result<(), ExitCode> {
    init_logging(&LogConfig {
        level: "warn".into(),
        ..LogConfig::default()
    })
}

/// The multi-thread tokio runtime (a worker per core, IO and timers on).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .map_err(|e| fail(EXIT_FATAL, &e))
}

/// The proxy's main runtime. `per_core`: one thread for accepting, discovery
/// and admin (sessions run on the proxy's own per-core workers); `shared`:
/// the multi-thread runtime with `runtime.threads` workers for everything.
fn proxy_runtime(rt: &RuntimeConfig) -> Result<tokio::runtime::Runtime, ExitCode> {
    let built = match rt.mode {
        RuntimeMode::PerCore => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        RuntimeMode::Shared => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(rt.worker_threads())
            .enable_all()
            .build(),
    };
    built
        .context("cannot start the async runtime")
        .map_err(|e| fail(EXIT_FATAL, &e))
}

/// tracing to stderr: config `log.level`/`log.format`, RUST_LOG wins when set.
fn init_logging(log: &LogConfig) -> Result<(), ExitCode> {
    logging::init(log).map_err(|e| match e {
        LogInitError::Filter(_) => fail(EXIT_BAD_CONFIG, &e.into()),
        LogInitError::Install(_) => fail(EXIT_FATAL, &e.into()),
    })
}
