//! Set-up for the read-only listener's tests: a sandbox cluster with two
//! GTID replicas (db2, db3) and their records, a proxy with `[read_only]`
//! on, and waits on the router's state (every wait has a deadline).

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use mysql_zk_proxy_core::config::{Config, Consistency};
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_core::replicas::status::ReplicaView;
use mysql_zk_proxy_sandbox::Cluster;

use crate::common::{self, admin_opts, app_opts, query};

pub struct RoEnv {
    pub cluster: Cluster,
    pub proxy: Proxy,
}

/// Check interval of the tests: one "check interval" in the assertions.
pub const CHECK: Duration = Duration::from_millis(200);

/// Cluster with two replicas and a proxy whose read-only listener uses
/// `consistency`; `tweak` adjusts the config further.
pub async fn start(consistency: Consistency, tweak: impl FnOnce(&mut Config)) -> RoEnv {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let cluster = Cluster::builder()
        .replicas(2)
        .start()
        .await
        .expect("cluster starts");
    let mut cfg = common::test_config(&cluster);
    common::with_monitor(&mut cfg);
    cfg.read_only.listen = "127.0.0.1:0".into();
    cfg.read_only.consistency = consistency;
    cfg.read_only.check_interval = CHECK;
    cfg.read_only.check_timeout = Duration::from_secs(1);
    cfg.read_only.max_lag = Duration::from_secs(2);
    cfg.read_only.requalify_checks = 2;
    cfg.read_only.fallback_to_primary = false;
    cfg.users = vec![common::app_user()];
    cfg.failover.drain_timeout = Duration::from_secs(2);
    tweak(&mut cfg);
    let proxy = Proxy::start(cfg).await.expect("proxy starts");
    RoEnv { cluster, proxy }
}

/// [`start`] with no read consistency, once both replicas qualify.
pub async fn start_both_qualified() -> RoEnv {
    let env = start(Consistency::None, |_| {}).await;
    env.qualified(&["db2", "db3"], Duration::from_secs(5)).await;
    env
}

/// Why `replica` is kept out, by its label (`None`: it qualifies).
pub fn why_not(replica: &ReplicaView) -> Option<&'static str> {
    replica.why_not.as_ref().map(|w| w.label())
}

impl RoEnv {
    pub fn ro_opts(&self) -> Opts {
        Opts::from(app_opts(
            self.proxy.read_only_addr().expect("ro listener").port(),
        ))
    }
    pub fn rw_opts(&self) -> Opts {
        Opts::from(app_opts(self.proxy.listen_addr().port()))
    }

    /// The replicas as `/status` shows them, by name.
    pub fn replicas(&self) -> BTreeMap<String, ReplicaView> {
        let router = self.proxy.read_router().expect("ro listener");
        let view = router.view(String::new());
        view.replicas
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect()
    }

    /// Wait (up to `within`) until `cond` holds for the replica views: the
    /// first views seen that satisfy it.
    pub async fn until(
        &self,
        what: &str,
        within: Duration,
        cond: impl Fn(&BTreeMap<String, ReplicaView>) -> bool,
    ) -> BTreeMap<String, ReplicaView> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let r = self.replicas();
            if cond(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reached within {within:?}: {what}; replicas: {r:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until exactly `names` qualify.
    pub async fn qualified(&self, names: &[&str], within: Duration) {
        let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        self.until(&format!("qualified = {want:?}"), within, |r| {
            let q: Vec<String> = r
                .values()
                .filter(|v| v.qualified)
                .map(|v| v.name.clone())
                .collect();
            q == want
        })
        .await;
    }

    /// `@@server_id` of `n` new read-only sessions (all kept open until
    /// the end, so least-connections spreads them).
    pub async fn server_ids(&self, n: usize) -> (Vec<u64>, Vec<Conn>) {
        let mut ids = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..n {
            let mut c = Conn::new(self.ro_opts()).await.expect("ro connect");
            let id: u64 = query::one(&mut c, "SELECT @@server_id").await;
            ids.push(id);
            conns.push(c);
        }
        (ids, conns)
    }

    /// Wait until the replica `name` is kept out for `reason` (its label).
    pub async fn kept_out(&self, name: &str, reason: &str) {
        self.until(
            &format!("{name} kept out: {reason}"),
            Duration::from_secs(5),
            |r| why_not(&r[name]) == Some(reason),
        )
        .await;
    }

    /// `@@server_id` of `n` new read-only sessions, opened together (so
    /// least-connections spreads them) and closed again.
    pub async fn server_ids_closed(&self, n: usize) -> Vec<u64> {
        let (ids, conns) = self.server_ids(n).await;
        close_all(conns).await;
        ids
    }

    /// Run `sql` through the primary listener.
    pub async fn on_primary(&self, sql: &str) {
        let mut c = Conn::new(self.rw_opts()).await.unwrap();
        c.query_drop(sql).await.unwrap();
    }

    /// An admin connection straight to the replica `name`.
    pub async fn admin_on(&self, name: &str) -> Conn {
        let port = self
            .cluster
            .replicas()
            .iter()
            .find(|r| r.name() == name)
            .expect("replica")
            .port();
        Conn::new(Opts::from(admin_opts(port)))
            .await
            .expect("admin")
    }
}

/// Close every connection (best effort).
pub async fn close_all(conns: Vec<Conn>) {
    for c in conns {
        let _ = c.disconnect().await;
    }
}
