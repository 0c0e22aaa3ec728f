//! Logging set-up shared by the binaries: the log filter (config
//! `log.level`, RUST_LOG wins) and the tracing subscriber on stderr, text
//! or JSON.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// RUST_LOG is set but is not a valid filter.
#[derive(Debug, thiserror::Error)]
#[error("invalid RUST_LOG {value:?}: {problem}")]
pub struct LogFilterError {
    pub value: String,
    pub problem: String,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    /// RUST_LOG is not a valid filter (a bad configuration).
    #[error(transparent)]
    Filter(#[from] LogFilterError),
    /// A subscriber was already installed.
    #[error("cannot set up logging: {0}")]
    Install(String),
}

/// The installed log filter. Plain `target=level` lists (the usual case:
/// `info`, `mysql_zk_proxy=debug,warn`) become a [`Targets`] filter, which
/// costs nothing when a span is entered; directives naming spans or fields
/// (`[session{id=7}]=debug`) need an [`EnvFilter`], which looks each entered
/// span up under a lock (every poll of every session).
///
/// Targets match by prefix: `mysql_zk_proxy` covers every crate of the
/// workspace (`mysql_zk_proxy_core::session`, `mysql_zk_proxy_ops`, ...).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once, at start-up
pub(crate) enum LogFilter {
    Targets(Targets),
    Env(EnvFilter),
}

impl LogFilter {
    fn parse(directives: &str) -> Result<LogFilter, String> {
        let is_static = |c: char| c.is_alphanumeric() || "_:=,-. ".contains(c);
        if directives.chars().all(is_static) {
            if let Ok(t) = directives.parse::<Targets>() {
                return Ok(LogFilter::Targets(t));
            }
        }
        EnvFilter::try_new(directives)
            .map(LogFilter::Env)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogFilter::Targets(t) => t.fmt(f),
            LogFilter::Env(e) => e.fmt(f),
        }
    }
}

/// The log filter: `rust_log` (the RUST_LOG variable) when set and not
/// blank, else the config's `log.level` (already validated).
pub(crate) fn log_filter(level: &str, rust_log: Option<&str>) -> Result<LogFilter, LogFilterError> {
    match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(v) => LogFilter::parse(v).map_err(|problem| LogFilterError {
            value: v.to_string(),
            problem,
        }),
        None => Ok(LogFilter::parse(level)
            .unwrap_or_else(|_| LogFilter::Targets(Targets::new().with_default(Level::INFO)))),
    }
}

/// Install tracing to stderr: config `log.level`/`log.format`, RUST_LOG wins when set.
pub fn init(log: &LogConfig) -> Result<(), LogInitError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let rust_log = std::env::var("RUST_LOG").ok();
    let (targets, env) = match log_filter(&log.level, rust_log.as_deref())? {
        LogFilter::Targets(t) => (Some(t), None),
        LogFilter::Env(e) => (None, Some(e)),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(targets).with(env);
    let installed = match log.format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
    installed.map_err(|e| LogInitError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_when_set_and_must_be_valid() {
        let f = log_filter("info", Some("mysql_zk_proxy=debug")).unwrap();
        assert_eq!(f.to_string(), "mysql_zk_proxy=debug");
        assert_eq!(log_filter("warn", Some(" ")).unwrap().to_string(), "warn");
        assert_eq!(log_filter("warn", None).unwrap().to_string(), "warn");
        let e = log_filter("info", Some("=[")).unwrap_err();
        assert!(e.to_string().contains("RUST_LOG"), "{e}");
    }

    #[test]
    fn plain_level_lists_get_the_lock_free_filter() {
        for plain in [
            "info",
            "mysql_zk_proxy=debug,warn",
            "zookeeper_client=off, info",
        ] {
            let f = log_filter("info", Some(plain)).unwrap();
            assert!(matches!(f, LogFilter::Targets(_)), "{plain}: {f:?}");
        }
        // a crate-name prefix covers every crate of the workspace
        let LogFilter::Targets(t) = log_filter("warn", Some("mysql_zk_proxy=debug")).unwrap()
        else {
            panic!("not a Targets filter")
        };
        assert!(t.would_enable("mysql_zk_proxy_core::session", &Level::DEBUG));
        assert!(t.would_enable("mysql_zk_proxy_sandbox::cluster", &Level::DEBUG));
        assert!(!t.would_enable("zookeeper_client", &Level::INFO));
        let spans = log_filter("info", Some("[session{id=7}]=debug,info")).unwrap();
        assert!(matches!(spans, LogFilter::Env(_)), "{spans:?}");
        assert!(log_filter("info", Some("mysql_zk_proxy=loud")).is_err());
    }
}
