//! Whether a replica qualifies for new read sessions, from what its checks
//! saw (pure, no I/O): the rules and the hysteresis of docs/replicas.md.
//!
//! A qualified replica is disqualified by the first check that fails a
//! rule. A disqualified one qualifies again only after `requalify_checks`
//! consecutive checks that pass every rule with a lag of at most half of
//! `max_lag`; a replica never checked before qualifies at its first such
//! check. So a replica whose lag hovers near `max_lag` does not flap.

use std::time::Duration;

use serde::Serialize;

use crate::discovery::replica_record::ReplicaState;

/// Why a replica does not qualify (or did not, at its last check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotQualified {
    /// Its record was deleted from ZooKeeper.
    Removed,
    /// Its record names an epoch other than the current primary's.
    StaleEpoch { record: u64, primary: u64 },
    /// No primary is known, so what it replicates from cannot be judged.
    NoPrimary,
    /// The check could not connect, log in or query.
    Unreachable { error: String },
    /// `SHOW SLAVE STATUS` is empty: it replicates from nothing.
    NotReplicating,
    /// It replicates from another server than the current primary.
    WrongSource { source: String, primary: String },
    /// `Slave_IO_Running` is not `Yes`.
    IoThreadStopped,
    /// `Slave_SQL_Running` is not `Yes`.
    SqlThreadStopped,
    /// Its lag is above `read_only.max_lag`.
    Lagging { lag_ms: u64 },
    /// Its record says `draining` or `maintenance`.
    Draining { state: &'static str },
    /// Its checks pass again; it waits for enough of them in a row.
    Recovering { good: u32, need: u32 },
}

impl NotQualified {
    /// Low-cardinality name (metrics label, `/status`).
    pub fn label(&self) -> &'static str {
        match self {
            NotQualified::Removed => "removed",
            NotQualified::StaleEpoch { .. } => "stale_epoch",
            NotQualified::NoPrimary => "no_primary",
            NotQualified::Unreachable { .. } => "unreachable",
            NotQualified::NotReplicating => "not_replicating",
            NotQualified::WrongSource { .. } => "wrong_source",
            NotQualified::IoThreadStopped => "io_thread_stopped",
            NotQualified::SqlThreadStopped => "sql_thread_stopped",
            NotQualified::Lagging { .. } => "lagging",
            NotQualified::Draining { .. } => "draining",
            NotQualified::Recovering { .. } => "recovering",
        }
    }
}

/// What one check of a replica found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `Master_Host:Master_Port`, `None` when `SHOW SLAVE STATUS` is empty.
    pub source: Option<(String, u16)>,
    pub io_running: bool,
    pub sql_running: bool,
    /// The larger of the GTID lag and `Seconds_Behind_Master`.
    pub lag: Duration,
}

/// Judge one check against the rules (no hysteresis): the lag on success.
pub fn judge(
    seen: &Observed,
    primary: (&str, u16),
    state: ReplicaState,
    max_lag: Duration,
) -> Result<Duration, NotQualified> {
    let Some((host, port)) = &seen.source else {
        return Err(NotQualified::NotReplicating);
    };
    if (host.as_str(), *port) != primary {
        return Err(NotQualified::WrongSource {
            source: format!("{host}:{port}"),
            primary: format!("{}:{}", primary.0, primary.1),
        });
    }
    if !seen.io_running {
        return Err(NotQualified::IoThreadStopped);
    }
    if !seen.sql_running {
        return Err(NotQualified::SqlThreadStopped);
    }
    if seen.lag > max_lag {
        let lag_ms = seen.lag.as_millis() as u64;
        return Err(NotQualified::Lagging { lag_ms });
    }
    if state != ReplicaState::Serving {
        return Err(NotQualified::Draining {
            state: state.label(),
        });
    }
    Ok(seen.lag)
}

/// A replica's qualification across checks.
#[derive(Debug, Clone, Default)]
pub struct Health {
    qualified: bool,
    /// Checks taken (`/status`; 0: never checked).
    pub checks: u64,
    /// Consecutive checks passing with lag ≤ max_lag / 2, while disqualified.
    good: u32,
    /// Why not qualified, as of the last check.
    pub why_not: Option<NotQualified>,
    /// The lag of the last check that measured one.
    pub lag: Option<Duration>,
}

impl Health {
    pub fn qualified(&self) -> bool {
        self.qualified
    }

    /// Take one check's judgement; returns whether it qualifies now.
    pub fn update(
        &mut self,
        judged: Result<Duration, NotQualified>,
        max_lag: Duration,
        need: u32,
    ) -> bool {
        let first = self.checks == 0;
        self.checks += 1;
        match judged {
            Err(why) => {
                if let NotQualified::Lagging { lag_ms } = &why {
                    self.lag = Some(Duration::from_millis(*lag_ms));
                }
                self.qualified = false;
                self.good = 0;
                self.why_not = Some(why);
            }
            Ok(lag) => {
                self.lag = Some(lag);
                if self.qualified {
                    return true;
                }
                if lag <= max_lag / 2 {
                    self.good += 1;
                } else {
                    self.good = 0;
                }
                if (first && self.good > 0) || self.good >= need {
                    self.qualified = true;
                    self.why_not = None;
                } else {
                    let good = self.good;
                    self.why_not = Some(NotQualified::Recovering { good, need });
                }
            }
        }
        self.qualified
    }

    /// Not qualified without a check (stale epoch, no primary).
    pub fn set_not_qualified(&mut self, why: NotQualified) {
        self.qualified = false;
        self.good = 0;
        self.why_not = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(10);

    fn seen(lag_s: u64) -> Observed {
        Observed {
            source: Some(("127.0.0.1".into(), 3306)),
            io_running: true,
            sql_running: true,
            lag: Duration::from_secs(lag_s),
        }
    }

    fn j(o: &Observed) -> Result<Duration, NotQualified> {
        judge(o, ("127.0.0.1", 3306), ReplicaState::Serving, MAX)
    }

    #[test]
    fn each_rule_names_its_reason() {
        assert_eq!(j(&seen(3)), Ok(Duration::from_secs(3)));
        let mut o = seen(0);
        o.source = Some(("127.0.0.1".into(), 3307));
        assert_eq!(j(&o).unwrap_err().label(), "wrong_source");
        o.source = None;
        assert_eq!(j(&o).unwrap_err(), NotQualified::NotReplicating);
        let mut o = seen(0);
        o.io_running = false;
        assert_eq!(j(&o).unwrap_err(), NotQualified::IoThreadStopped);
        let mut o = seen(0);
        o.sql_running = false;
        assert_eq!(j(&o).unwrap_err(), NotQualified::SqlThreadStopped);
        assert_eq!(j(&seen(11)).unwrap_err().label(), "lagging");
        let d = judge(&seen(0), ("127.0.0.1", 3306), ReplicaState::Draining, MAX);
        assert_eq!(d.unwrap_err().label(), "draining");
    }

    #[test]
    fn first_good_check_qualifies_at_once() {
        let mut h = Health::default();
        assert!(h.update(j(&seen(1)), MAX, 3));
        let mut h = Health::default();
        assert!(!h.update(j(&seen(7)), MAX, 3), "above half of max_lag");
    }

    #[test]
    fn hysteresis_disqualifies_at_once_and_requalifies_slowly() {
        let mut h = Health::default();
        assert!(h.update(j(&seen(0)), MAX, 3));
        assert!(h.update(j(&seen(9)), MAX, 3), "under max_lag stays");
        assert!(!h.update(j(&seen(11)), MAX, 3), "over max_lag leaves");
        // hovering between max_lag/2 and max_lag: stays out
        for _ in 0..10 {
            assert!(!h.update(j(&seen(8)), MAX, 3));
        }
        assert!(!h.update(j(&seen(2)), MAX, 3));
        assert!(!h.update(j(&seen(2)), MAX, 3));
        assert_eq!(h.why_not.as_ref().unwrap().label(), "recovering");
        assert!(h.update(j(&seen(2)), MAX, 3), "third good check in a row");
        assert!(h.why_not.is_none());
    }
}
