//! The outcome of a switchover: which phases ran and how long each took,
//! the epochs written, the proxies' acknowledgements; printed as one line per
//! phase or as one JSON document (`--json`). Holds no secrets.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::drain::ProxyAck;
use super::Endpoint;

/// How the switchover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The target is the serving primary.
    Switched,
    /// A check failed before anything was changed.
    Refused,
    /// Stopped after acting; the old primary is writable and serving again.
    RolledBack,
    /// Stopped in a state that needs an operator (see `error`).
    Failed,
}

/// Phase durations (`None` = the phase did not run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    /// Read the record, log in, check both servers.
    #[serde(serialize_with = "ms")]
    pub check: Option<Duration>,
    /// Publish `draining`, wait for the proxies' acknowledgements.
    #[serde(serialize_with = "ms")]
    pub drain: Option<Duration>,
    /// `read_only = 1` on the old primary.
    #[serde(serialize_with = "ms")]
    pub read_only: Option<Duration>,
    /// The target applies the old primary's GTID position.
    #[serde(serialize_with = "ms")]
    pub catch_up: Option<Duration>,
    /// Target: stop replicating, writable.
    #[serde(serialize_with = "ms")]
    pub promote: Option<Duration>,
    /// The serving record for the target (compare-and-set).
    #[serde(serialize_with = "ms")]
    pub publish: Option<Duration>,
    /// Old primary: replicate from the target (after the publish).
    #[serde(serialize_with = "ms")]
    pub repoint: Option<Duration>,
    /// Old primary writable again, record serving on it again.
    #[serde(serialize_with = "ms")]
    pub rollback: Option<Duration>,
}

/// Epochs of the records read and written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Epochs {
    /// The serving record found (`None`: a record without epoch).
    pub before: Option<u64>,
    pub draining: Option<u64>,
    /// The last serving record written (target, or old primary on roll-back).
    pub serving: Option<u64>,
}

/// Everything a caller (or `--json`) needs about one switchover.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub from: Option<Endpoint>,
    pub to: Endpoint,
    pub epochs: Epochs,
    pub phases: Phases,
    /// From `read_only = 1` to the last record write.
    #[serde(serialize_with = "ms", rename = "write_blocked_ms")]
    pub write_blocked: Option<Duration>,
    #[serde(serialize_with = "ms_total", rename = "total_ms")]
    pub total: Duration,
    /// The registered proxies as last seen while draining.
    pub proxies: Vec<ProxyAck>,
    /// Why it did not switch (refusal, roll-back cause, failure).
    pub error: Option<String>,
    /// Problems that did not stop it (e.g. the old primary not repointed).
    pub warnings: Vec<String>,
}

impl Report {
    /// 0 switched, 1 anything else.
    pub(crate) fn exit_code(&self) -> u8 {
        u8::from(self.outcome != Outcome::Switched)
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain struct serializes")
    }
}

fn ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(millis(*d)),
        None => s.serialize_none(),
    }
}

fn ms_total<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(millis(*d))
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = self.from.as_ref().map_or("?".into(), ToString::to_string);
        writeln!(f, "switchover {from} -> {}", self.to)?;
        let p = &self.phases;
        for (name, d) in [
            ("check", p.check),
            ("drain", p.drain),
            ("read_only", p.read_only),
            ("catch-up", p.catch_up),
            ("promote", p.promote),
            ("publish", p.publish),
            ("repoint", p.repoint),
            ("rollback", p.rollback),
        ] {
            if let Some(d) = d {
                writeln!(f, "  {name:<10} {:>9.1} ms", millis(d))?;
            }
        }
        let acked = self.proxies.iter().filter(|p| p.acked).count();
        writeln!(
            f,
            "  proxies    {acked}/{} acknowledged",
            self.proxies.len()
        )?;
        if let Some(d) = self.write_blocked {
            writeln!(f, "  writes blocked {:.1} ms", millis(d))?;
        }
        let e = &self.epochs;
        let show = |e: Option<u64>| e.map_or("-".into(), |e| e.to_string());
        writeln!(
            f,
            "  epochs: before {}, draining {}, serving {}",
            show(e.before),
            show(e.draining),
            show(e.serving)
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        let outcome = serde_json::to_value(self.outcome).expect("enum serializes");
        write!(
            f,
            "{} in {:.1} ms",
            outcome.as_str().unwrap_or("?"),
            millis(self.total)
        )?;
        match &self.error {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        }
    }
}
