//! The persistent sandbox behind `mysql-zk-proxy-sandbox`: the same
//! `Cluster`, but its processes are detached (own session, not killed when
//! the CLI exits) and found again through `state.json`.

use super::cluster::{blocking, Cluster, DEFAULT_PRIMARY_PATH};
use super::mariadb::{DbSpec, MariaDb};
use super::process::PortChoice;
use super::state::{DbState, DirLock, SandboxState};
use super::zookeeper::ZkServer;
use super::{Result, SandboxError};
use std::path::{Path, PathBuf};

/// Fixed ports used when free: ZooKeeper, db1, db2.
pub(crate) const DEFAULT_PORTS: [u16; 3] = [22181, 23306, 23307];

/// Absolute form of `dir` (state and cmdline checks compare paths).
pub fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| SandboxError::io(format!("resolve {}", dir.display()), e))
}

/// Ports are kept once bootstrapped; before that the defaults are only preferred.
fn port_choice(st: &SandboxState, port: u16) -> PortChoice {
    match st.bootstrapped {
        true => PortChoice::Fixed(port),
        false => PortChoice::Preferred(port),
    }
}

/// A new sandbox: db1 primary, `replicas` replicas db2, db3, ... on the
/// default ports and the ones after them.
fn fresh_state(dir: &Path, replicas: usize) -> SandboxState {
    let [zk_port, p1, _] = DEFAULT_PORTS;
    let db = |i: usize| DbState {
        name: format!("db{}", i + 1),
        server_id: i as u32 + 1,
        port: p1 + i as u16,
        pid: None,
    };
    SandboxState {
        dir: dir.to_owned(),
        zk_port,
        zk_pid: None,
        zk_connect: format!("127.0.0.1:{zk_port}"),
        primary_path: DEFAULT_PRIMARY_PATH.to_owned(),
        dbs: (0..=replicas.max(1)).map(db).collect(),
        primary: "db1".to_owned(),
        bootstrapped: false,
    }
}

fn spec(st: &SandboxState, db: &DbState) -> DbSpec {
    DbSpec {
        name: db.name.clone(),
        server_id: db.server_id,
        read_only: db.name != st.primary,
    }
}

/// Adopt the recorded processes (dead ones are simply not running): ZooKeeper,
/// the primary, and the replicas in the recorded order.
fn adopt_all(st: &SandboxState) -> Result<(ZkServer, MariaDb, Vec<MariaDb>)> {
    let zk = ZkServer::adopt(&st.dir.join("zk"), st.zk_port, st.zk_pid)?;
    let adopt = |name: &str| -> Result<MariaDb> {
        let db = st.db(name)?;
        MariaDb::adopt(&st.dir.join(name), spec(st, db), db.port, db.pid)
    };
    st.replica_name()?;
    let replicas = st
        .dbs
        .iter()
        .filter(|d| d.name != st.primary)
        .map(|d| adopt(&d.name))
        .collect::<Result<Vec<_>>>()?;
    Ok((zk, adopt(&st.primary)?, replicas))
}

/// The cluster of adopted parts.
fn cluster(
    st: &SandboxState,
    zk: ZkServer,
    primary: MariaDb,
    mut replicas: Vec<MariaDb>,
) -> Cluster {
    let first = replicas.remove(0);
    Cluster::from_parts(zk, primary, Some(first), st.primary_path.clone())
        .with_more_replicas(replicas)
}

/// Whether `up` found the cluster already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    AlreadyUp,
    Started,
}

/// Start (or restart, keeping data, ports and roles) the persistent cluster
/// (one replica when it is new).
pub async fn up(dir: &Path) -> Result<(Cluster, SandboxState, UpOutcome)> {
    up_with_replicas(dir, 1).await
}

/// [`up`]; `replicas` is how many a new sandbox gets (an existing one keeps its own).
pub async fn up_with_replicas(
    dir: &Path,
    replicas: usize,
) -> Result<(Cluster, SandboxState, UpOutcome)> {
    let dir = absolute(dir)?;
    let _lock = DirLock::acquire(&dir)?;
    let mut st = match SandboxState::load(&dir)? {
        Some(st) => st,
        None => fresh_state(&dir, replicas),
    };
    let (zk, primary, replicas) = adopt_all(&st)?;
    let all_up =
        zk.is_running() && primary.is_running() && replicas.iter().all(MariaDb::is_running);
    if all_up && st.bootstrapped {
        return Ok((
            cluster(&st, zk, primary, replicas),
            st,
            UpOutcome::AlreadyUp,
        ));
    }
    let primary_port = primary.port();
    let zk = match zk.is_running() {
        true => zk,
        false => {
            let (d, port) = (dir.join("zk"), port_choice(&st, st.zk_port));
            blocking(move || ZkServer::start_persistent(&d, port)).await?
        }
    };
    let primary = ensure_db(primary, port_choice(&st, primary_port)).await?;
    let mut started = Vec::with_capacity(replicas.len());
    for r in replicas {
        let port = port_choice(&st, r.port());
        started.push(ensure_db(r, port).await?);
    }
    let replicas = started;
    st.zk_pid = zk.pid();
    st.zk_port = zk.port();
    st.zk_connect = zk.connect_string();
    for db in std::iter::once(&primary).chain(&replicas) {
        if let Some(s) = st.db_mut(db.name()) {
            (s.pid, s.port) = (db.pid(), db.port());
        }
    }
    st.save()?;
    let c = cluster(&st, zk, primary, replicas);
    if !st.bootstrapped {
        c.bootstrap(true).await?;
        st.bootstrapped = true;
        st.save()?;
    } else {
        if c.published().await?.is_none() {
            c.publish_json(c.primary().port(), 1).await?;
        }
        c.ensure_replica_records().await?;
    }
    Ok((c, st, UpOutcome::Started))
}

async fn ensure_db(db: MariaDb, port: PortChoice) -> Result<MariaDb> {
    if db.is_running() {
        return Ok(db);
    }
    let (d, spec) = (db.dir().to_owned(), db.spec().clone());
    drop(db);
    blocking(move || MariaDb::start_persistent(&d, spec, port)).await
}

/// Re-attach to the persistent cluster in `dir` (whatever is still running).
pub fn attach(dir: &Path) -> Result<(Cluster, SandboxState)> {
    let dir = absolute(dir)?;
    let st = SandboxState::load(&dir)?.ok_or_else(|| SandboxError::StateFile {
        path: SandboxState::path(&dir),
        reason: "no sandbox here: run `mysql-zk-proxy-sandbox up` first".into(),
    })?;
    let (zk, primary, replicas) = adopt_all(&st)?;
    let c = cluster(&st, zk, primary, replicas);
    Ok((c, st))
}

/// Stop exactly the recorded processes (SIGTERM, SIGKILL after a bound);
/// `wipe` also deletes the dir. Returns a line per stopped process.
pub fn down(dir: &Path, wipe: bool) -> Result<Vec<String>> {
    let dir = absolute(dir)?;
    if !SandboxState::path(&dir).exists() {
        if wipe && dir.exists() {
            return Err(SandboxError::State(format!(
                "refusing to wipe {}: it has no sandbox state.json",
                dir.display()
            )));
        }
        return Ok(vec![format!(
            "nothing to do (no sandbox in {})",
            dir.display()
        )]);
    }
    let lock = DirLock::acquire(&dir)?;
    let mut done = Vec::new();
    if let Some(mut st) = SandboxState::load(&dir)? {
        let (mut zk, mut primary, mut replicas) = adopt_all(&st)?;
        for db in replicas.iter_mut().chain([&mut primary]) {
            if let Some(pid) = db.pid() {
                db.stop()?;
                done.push(format!("stopped {} (pid {pid})", db.name()));
            }
        }
        if let Some(pid) = zk.pid() {
            zk.stop()?;
            done.push(format!("stopped zookeeper (pid {pid})"));
        }
        st.zk_pid = None;
        st.dbs.iter_mut().for_each(|d| d.pid = None);
        st.save()?;
    }
    if done.is_empty() {
        done.push("nothing was running".into());
    }
    if wipe {
        drop(lock);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| SandboxError::io(format!("remove {}", dir.display()), e))?;
        done.push(format!("wiped {}", dir.display()));
    }
    Ok(done)
}

/// Every server of the cluster is up: a role change needs them all.
fn all_running(c: &Cluster) -> Result<()> {
    for (what, up) in [
        ("zookeeper", c.zk().is_running()),
        ("primary", c.primary().is_running()),
        ("replica", c.replica().is_some_and(MariaDb::is_running)),
    ] {
        if !up {
            return Err(SandboxError::State(format!(
                "{what} is not running (run `sandbox up`)"
            )));
        }
    }
    Ok(())
}

/// Planned switchover of the persistent cluster; records the new roles.
pub async fn switchover(dir: &Path) -> Result<super::SwitchoverReport> {
    let dir = absolute(dir)?;
    let _lock = DirLock::acquire(&dir)?;
    let (mut c, mut st) = attach(&dir)?;
    all_running(&c)?;
    let report = c.switchover().await?;
    st.primary = c.primary().name().to_owned();
    st.save()?;
    Ok(report)
}

/// Unplanned failover of the persistent cluster (`crash.rs`); records the
/// new roles and the rebuilt server's process.
pub async fn crash_failover(
    dir: &Path,
    lag: std::time::Duration,
) -> Result<super::crash::CrashReport> {
    let dir = absolute(dir)?;
    let _lock = DirLock::acquire(&dir)?;
    let (mut c, mut st) = attach(&dir)?;
    all_running(&c)?;
    let report = c.crash_failover(lag).await;
    st.primary = c.primary().name().to_owned();
    for db in [Some(c.primary()), c.replica()].into_iter().flatten() {
        if let Some(s) = st.db_mut(db.name()) {
            s.pid = db.pid();
        }
    }
    st.save()?;
    report
}
