//! The replica monitor: one control-plane task that, every
//! `read_only.check_interval` (and at once when the replica set or the
//! primary route changes), samples the primary's GTID position, checks
//! every current replica, updates each one's [`Health`], publishes the
//! qualified list and repoints the slot route tables. Every read is bounded
//! by `read_only.check_timeout`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::causal::CausalShared;
use super::health::{judge, Health, NotQualified, Observed};
use super::probe::{LagClock, Probe, ProbeError, ReplicaFacts};
use super::{Candidate, ReadRouter, Slot, SlotCounters, SlotState};
use crate::control::Login;
use crate::discovery::replica_record::ReplicaRecord;
use crate::routing::{Primary, RecordState, Route, RouteTable};
use crate::session::Env;

/// Start the monitor on `tracker`; it stops with `cancel`.
pub fn spawn_monitor(
    router: Arc<ReadRouter>,
    primary_env: Arc<Env>,
    login: Login,
    causal: Option<Arc<CausalShared>>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let m = Monitor {
        router,
        primary_env,
        login,
        causal,
        cancel,
        probes: HashMap::new(),
        primary_probe: None,
        clock: LagClock::default(),
        serving_epoch: None,
    };
    tracker.spawn(m.run());
}

struct Monitor {
    router: Arc<ReadRouter>,
    primary_env: Arc<Env>,
    login: Login,
    causal: Option<Arc<CausalShared>>,
    cancel: CancellationToken,
    /// Control connections to replicas, by name.
    probes: HashMap<String, Probe>,
    primary_probe: Option<Probe>,
    clock: LagClock,
    /// The epoch of the last serving primary record: replica records must
    /// name it (while a switchover drains, the draining epoch is not theirs).
    serving_epoch: Option<u64>,
}

impl Monitor {
    async fn run(mut self) {
        let mut records = self.router.set.subscribe();
        let mut routes = self.primary_env.table.subscribe();
        let interval = self.router.cfg.check_interval;
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.round() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
                r = records.changed() => if r.is_err() { break },
                r = routes.changed() => if r.is_err() { break },
            }
        }
        tracing::debug!("replica monitor stopped");
    }

    /// One round: primary position, every replica's check, publish.
    async fn round(&mut self) {
        let route = self.primary_env.table.current();
        if route.serving() {
            self.serving_epoch = route.primary.as_ref().map(|p| p.epoch);
        }
        let primary = route.primary.clone();
        if let Some(p) = &primary {
            self.sample_primary(p).await;
        }
        let snapshot = self.router.set.current();
        for rec in &snapshot.records {
            self.ensure_slot(rec);
        }
        let checks = self.check_all(&snapshot.records, primary.as_ref()).await;
        let now = Instant::now();
        for slot in self.router.slots() {
            let rec = snapshot.records.iter().find(|r| r.name == slot.name);
            let result = checks.get(&slot.name);
            self.judge_slot(&slot, rec, primary.as_ref(), result, now);
        }
        self.publish(&route);
    }

    async fn sample_primary(&mut self, p: &Primary) {
        let (cfg, login) = (&self.router.cfg, &self.login);
        let probe = match &mut self.primary_probe {
            Some(probe) if probe.is_for(&p.host, p.port) => probe,
            slot => {
                self.clock.clear();
                slot.insert(Probe::new(&p.host, p.port))
            }
        };
        match probe.binlog_position(login, cfg.check_timeout).await {
            Ok(pos) => self.clock.sample(Instant::now(), pos, cfg.max_lag * 4),
            Err(e) => tracing::debug!(error = %e, "primary GTID position not read"),
        }
    }

    fn ensure_slot(&self, rec: &ReplicaRecord) {
        if self.router.slot(&rec.name).is_some() {
            return;
        }
        let table = Arc::new(RouteTable::new());
        let counters = Arc::new(SlotCounters::default());
        let before_read = self.causal.as_ref().map(|c| {
            Arc::new(c.for_slot(counters.clone())) as Arc<dyn crate::session::causal::BeforeRead>
        });
        let env = slot_env(&self.primary_env, table.clone(), before_read);
        let state = SlotState {
            record: rec.clone(),
            health: Health::default(),
            removed: false,
            behind: None,
        };
        tracing::info!(replica = %rec.name, host = %rec.host, port = rec.port, "replica learned");
        self.router.add_slot(Arc::new(Slot {
            name: rec.name.clone(),
            table,
            env: Arc::new(env),
            counters,
            state: std::sync::Mutex::new(state),
        }));
    }

    /// Check every replica whose record names the current epoch, at once.
    async fn check_all(
        &mut self,
        records: &[ReplicaRecord],
        primary: Option<&Primary>,
    ) -> HashMap<String, Result<ReplicaFacts, ProbeError>> {
        let mut set = JoinSet::new();
        let timeout = self.router.cfg.check_timeout;
        for rec in records {
            if primary.is_none() || Some(rec.epoch) != self.serving_epoch {
                continue;
            }
            let mut probe = self
                .probes
                .remove(&rec.name)
                .filter(|p| p.is_for(&rec.host, rec.port))
                .unwrap_or_else(|| Probe::new(&rec.host, rec.port));
            let (login, name) = (self.login.clone(), rec.name.clone());
            set.spawn(async move {
                let facts = probe.replica_facts(&login, timeout).await;
                (name, probe, facts)
            });
        }
        let mut out = HashMap::new();
        while let Some(done) = set.join_next().await {
            let Ok((name, probe, facts)) = done else {
                continue;
            };
            self.probes.insert(name.clone(), probe);
            out.insert(name, facts);
        }
        out
    }

    fn judge_slot(
        &self,
        slot: &Slot,
        rec: Option<&ReplicaRecord>,
        primary: Option<&Primary>,
        result: Option<&Result<ReplicaFacts, ProbeError>>,
        now: Instant,
    ) {
        let cfg = &self.router.cfg;
        let mut st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        let was = st.health.qualified();
        st.removed = rec.is_none();
        if let Some(rec) = rec {
            st.record = rec.clone();
        }
        let counters = &self.router.counters;
        match (rec, primary, result) {
            (None, _, _) => st.health.set_not_qualified(NotQualified::Removed),
            (Some(_), None, _) => st.health.set_not_qualified(NotQualified::NoPrimary),
            (Some(r), Some(_), None) => st.health.set_not_qualified(NotQualified::StaleEpoch {
                record: r.epoch,
                primary: self.serving_epoch.unwrap_or_default(),
            }),
            (Some(r), Some(p), Some(res)) => {
                counters
                    .checks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let judged = match res {
                    Err(e) => {
                        counters
                            .check_errors
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Err(NotQualified::Unreachable {
                            error: e.to_string(),
                        })
                    }
                    Ok(f) => {
                        st.behind = self.clock.latest().map(|l| f.position.behind(l));
                        let lag = self.lag_of(f, now);
                        judge(&observed(f, lag), (&p.host, p.port), r.state, cfg.max_lag)
                    }
                };
                st.health.update(judged, cfg.max_lag, cfg.requalify_checks);
            }
        }
        if was != st.health.qualified() {
            let why = st.health.why_not.as_ref().map(|w| format!("{w:?}"));
            tracing::info!(replica = %slot.name, qualified = st.health.qualified(),
                reason = why.as_deref().unwrap_or("checks pass"), "replica qualification changed");
        }
    }

    /// The larger of the GTID lag and `Seconds_Behind_Master`.
    fn lag_of(&self, f: &ReplicaFacts, now: Instant) -> Duration {
        let gtid = self.clock.lag(&f.position, now);
        let sbm = Duration::from_secs(f.seconds_behind.unwrap_or(0));
        gtid.max(sbm)
    }

    /// Publish the qualified list, then point every slot's table at its target.
    fn publish(&self, route: &Route) {
        let slots = self.router.slots();
        let mut qualified = Vec::new();
        for slot in &slots {
            let st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.health.qualified() && !st.removed {
                qualified.push(Candidate {
                    slot: slot.clone(),
                    weight: st.record.weight,
                });
            }
        }
        let fallback = route
            .serving()
            .then(|| route.primary.clone())
            .flatten()
            .filter(|_| self.router.cfg.fallback_to_primary);
        for slot in &slots {
            let target = target_of(slot, &qualified, fallback.as_ref());
            repoint(&slot.table, target);
        }
        self.router.set_qualified(qualified);
    }
}

/// Where a slot's sessions should be: the replica itself while it
/// qualifies, else the qualified replica they are on already (no churn
/// between rounds), else the least loaded qualified one, else the fallback.
fn target_of(slot: &Slot, qualified: &[Candidate], fallback: Option<&Primary>) -> Option<Primary> {
    use std::sync::atomic::Ordering::Relaxed;
    let target = |c: &Candidate| {
        let st = c.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        replica_primary(&st.record)
    };
    if let Some(own) = qualified.iter().find(|c| c.slot.name == slot.name) {
        return Some(target(own));
    }
    let now = slot.table.current().primary.as_ref().map(Primary::address);
    let targets: Vec<Primary> = qualified.iter().map(target).collect();
    if let Some(kept) = targets.iter().find(|t| Some(t.address()) == now) {
        return Some(kept.clone());
    }
    let least =
        (0..qualified.len()).min_by_key(|&i| qualified[i].slot.counters.sessions.load(Relaxed));
    match least {
        Some(i) => Some(targets[i].clone()),
        None => fallback.cloned(),
    }
}

/// Publish `target` into `table` unless it already names it.
fn repoint(table: &RouteTable, target: Option<Primary>) {
    let _ = table.update(|cur| {
        if cur.primary == target {
            return None;
        }
        Some(Route {
            primary: target,
            pending: None,
            state: RecordState::Serving,
            ..cur.clone()
        })
    });
}

/// A replica as a route target.
pub(crate) fn replica_primary(r: &ReplicaRecord) -> Primary {
    Primary {
        host: r.host.clone(),
        port: r.port,
        epoch: r.epoch,
        server_id: None,
        server_uuid: None,
    }
}

fn observed(f: &ReplicaFacts, lag: Duration) -> Observed {
    Observed {
        source: f.source.clone(),
        io_running: f.io_running,
        sql_running: f.sql_running,
        lag,
    }
}

/// A slot's session environment: the primary's, with its own route table,
/// KILL map, buffers, failover timeline, ledger and causal hook.
fn slot_env(
    primary: &Env,
    table: Arc<RouteTable>,
    before_read: Option<Arc<dyn crate::session::causal::BeforeRead>>,
) -> Env {
    Env {
        config: primary.config.clone(),
        tls: primary.tls.clone(),
        table,
        stats: primary.stats.clone(),
        discovery: primary.discovery.clone(),
        credentials: primary.credentials.clone(),
        timeline: crate::timeline::Timeline::new(primary.stats.clone()),
        cancel: primary.cancel.clone(),
        drain: primary.drain.clone(),
        kills: Default::default(),
        buffers: crate::session::buffers::BufferPool::for_relays(),
        before_read,
        on_replica: true,
        // replicas acknowledge no commits and have no gate: a ledger of their own
        ledger: crate::acknowledged::Ledger::new(0, None).0,
    }
}
