//! Operational counters: client commands by type (one atomic add per
//! command), handshake and backend-connect latency histograms with fixed
//! buckets (atomics, no allocation), and config reloads; plus their
//! Prometheus text for the histograms.

use mysql_zk_proxy_protocol::errors::ProxyErrorCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mysql_zk_proxy_protocol::command;

/// The `command` label of client commands (low cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Query,
    StmtPrepare,
    StmtExecute,
    StmtClose,
    Ping,
    InitDb,
    ChangeUser,
    ResetConnection,
    Quit,
    Other,
}

impl CommandKind {
    pub const ALL: [CommandKind; 10] = [
        CommandKind::Query,
        CommandKind::StmtPrepare,
        CommandKind::StmtExecute,
        CommandKind::StmtClose,
        CommandKind::Ping,
        CommandKind::InitDb,
        CommandKind::ChangeUser,
        CommandKind::ResetConnection,
        CommandKind::Quit,
        CommandKind::Other,
    ];

    /// The kind of a command byte.
    pub fn of(cmd: u8) -> CommandKind {
        match cmd {
            command::QUERY => CommandKind::Query,
            command::STMT_PREPARE => CommandKind::StmtPrepare,
            command::STMT_EXECUTE | command::STMT_BULK_EXECUTE => CommandKind::StmtExecute,
            command::STMT_CLOSE => CommandKind::StmtClose,
            command::PING => CommandKind::Ping,
            command::INIT_DB => CommandKind::InitDb,
            command::CHANGE_USER => CommandKind::ChangeUser,
            command::RESET_CONNECTION => CommandKind::ResetConnection,
            command::QUIT => CommandKind::Quit,
            _ => CommandKind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CommandKind::Query => "query",
            CommandKind::StmtPrepare => "stmt_prepare",
            CommandKind::StmtExecute => "stmt_execute",
            CommandKind::StmtClose => "stmt_close",
            CommandKind::Ping => "ping",
            CommandKind::InitDb => "init_db",
            CommandKind::ChangeUser => "change_user",
            CommandKind::ResetConnection => "reset_connection",
            CommandKind::Quit => "quit",
            CommandKind::Other => "other",
        }
    }
}

/// Upper bounds (seconds) of the latency histogram buckets (`le`).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`]: one atomic add per bucket
/// hit plus count and sum (microseconds).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Non-cumulative: `buckets[i]` counts samples in (bound[i-1], bound[i]];
    /// the last slot counts samples above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Prometheus text: HELP, TYPE, cumulative buckets, sum and count.
    pub(crate) fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Relaxed));
        out.push('\n');
    }
}

/// Counters for operations: commands, latencies, reloads.
#[derive(Debug, Default)]
pub struct OpsStats {
    commands: [AtomicU64; CommandKind::ALL.len()],
    /// From accept to the login OK.
    pub handshake: LatencyHistogram,
    /// TCP connect plus the greeting from the primary (successful ones).
    pub backend_connect: LatencyHistogram,
    /// Config reloads: [applied, rejected].
    reloads: [AtomicU64; 2],
    /// Errors the proxy itself sent, by code (index of ProxyErrorCode::ALL).
    errors: [AtomicU64; ProxyErrorCode::ALL.len()],
    /// Statements held at a rest point during a failover, from the stop to
    /// the moment they were sent to the new primary.
    pub statement_hold: LatencyHistogram,
}

impl OpsStats {
    /// One client command (the relay calls this per command packet).
    #[inline]
    pub(crate) fn count_command(&self, cmd: u8) {
        self.commands[CommandKind::of(cmd) as usize].fetch_add(1, Relaxed);
    }

    pub fn commands(&self, kind: CommandKind) -> u64 {
        self.commands[kind as usize].load(Relaxed)
    }

    pub(crate) fn count_reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// One error packet the proxy sent.
    pub(crate) fn count_error(&self, code: ProxyErrorCode) {
        self.errors[code as usize].fetch_add(1, Relaxed);
    }

    pub fn errors(&self, code: ProxyErrorCode) -> u64 {
        self.errors[code as usize].load(Relaxed)
    }

    /// Reloads applied (`ok`) or rejected.
    pub fn reloads(&self, ok: bool) -> u64 {
        self.reloads[usize::from(!ok)].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_low_cardinality_labels() {
        let s = OpsStats::default();
        for b in [command::QUERY, command::QUERY, command::PING, 0x77] {
            s.count_command(b);
        }
        assert_eq!(s.commands(CommandKind::Query), 2);
        assert_eq!(s.commands(CommandKind::Ping), 1);
        assert_eq!(s.commands(CommandKind::Other), 1);
        assert_eq!(
            CommandKind::of(command::STMT_BULK_EXECUTE),
            CommandKind::StmtExecute
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        let mut text = String::new();
        h.render("x", "help", &mut text);
        assert!(text.contains("x_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"0.025\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_count 3\n"), "{text}");
        assert!(text.contains("# TYPE x histogram\n"), "{text}");
    }
}
