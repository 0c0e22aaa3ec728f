//! Shared set-up for integration tests: a real cluster (ZooKeeper + MariaDB)
//! from the sandbox harness and a proxy in this process pointed at it.
#![allow(dead_code)]

pub mod binary;
pub mod http;
pub mod login;
pub mod pki;
pub mod query;
pub mod raw;

use std::time::Duration;

use mysql_async::{Opts, OptsBuilder};
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_sandbox::Cluster;

pub const APP_USER: &str = "app";
pub const APP_PASS: &str = "app";

pub struct Env {
    pub cluster: Cluster,
    pub proxy: Proxy,
}

impl Env {
    pub fn proxy_addr(&self) -> String {
        self.proxy.listen_addr().to_string()
    }
    pub fn primary_addr(&self) -> String {
        format!("127.0.0.1:{}", self.cluster.primary().port())
    }
    /// mysql_async options for the app user through the proxy.
    pub fn via_proxy(&self) -> OptsBuilder {
        app_opts(self.proxy.listen_addr().port())
    }
    pub fn direct(&self) -> OptsBuilder {
        app_opts(self.cluster.primary().port())
    }
    /// A direct connection to the primary, after it created `app.t`
    /// (`id INT PRIMARY KEY`).
    pub async fn direct_with_table(&self) -> mysql_async::Conn {
        use mysql_async::prelude::Queryable;
        let mut admin = mysql_async::Conn::new(self.direct()).await.unwrap();
        admin
            .query_drop("CREATE TABLE app.t (id INT PRIMARY KEY)")
            .await
            .unwrap();
        admin
    }
    /// A client through the proxy inside a transaction that inserted 1
    /// into `app.t`.
    pub async fn client_in_transaction(&self) -> mysql_async::Conn {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::new(self.via_proxy()).await.unwrap();
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
        c
    }
}

/// [`login::app_login`] with a 64 MiB packet limit.
pub fn app_opts(port: u16) -> OptsBuilder {
    login::app_login(port).max_allowed_packet(Some(64 << 20))
}

/// mysql_async options for the sandbox's admin user (all privileges), no schema.
pub fn admin_opts(port: u16) -> OptsBuilder {
    use mysql_zk_proxy_sandbox::cluster::{ADMIN_PASS, ADMIN_USER};
    app_opts(port)
        .user(Some(ADMIN_USER))
        .pass(Some(ADMIN_PASS))
        .db_name(None::<String>)
}

pub fn conn_opts(b: OptsBuilder) -> Opts {
    Opts::from(b)
}

/// A proxy config for `cluster` with short timeouts suited to tests.
pub fn test_config(cluster: &Cluster) -> Config {
    let mut cfg = Config::default();
    cfg.listen.address = "127.0.0.1:0".into();
    cfg.admin.address = "127.0.0.1:0".into();
    cfg.zookeeper.connect = cluster.zk_connect();
    cfg.zookeeper.primary_path = cluster.primary_path().to_string();
    cfg.zookeeper.session_timeout = Duration::from_secs(4);
    cfg.failover.hold_timeout = Duration::from_secs(5);
    cfg.backend.connect_timeout = Duration::from_secs(2);
    cfg
}

/// Start a cluster (primary only unless `replica`) and a proxy that has
/// learnt the primary from ZooKeeper.
pub async fn start(replica: bool) -> Env {
    start_with(replica, |_| {}).await
}

pub async fn start_with(replica: bool, tweak: impl FnOnce(&mut Config)) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let mut builder = Cluster::builder();
    if !replica {
        builder = builder.without_replica();
    }
    let cluster = builder.start().await.expect("cluster starts");
    let mut cfg = test_config(&cluster);
    tweak(&mut cfg);
    let proxy = Proxy::start(cfg).await.expect("proxy starts");
    let env = Env { cluster, proxy };
    env.wait_for_primary_port(env.cluster.primary().port())
        .await;
    env
}

impl Env {
    /// Wait (bounded) until the proxy routes to a primary on `port`.
    pub async fn wait_for_primary_port(&self, port: u16) {
        let table = self.proxy.route_table().clone();
        let mut rx = table.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if table.current().primary.as_ref().map(|p| p.port) == Some(port) {
                    return;
                }
                rx.changed().await.expect("route table alive");
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "proxy never routed to port {port}: {:?}",
            table.current()
        );
    }
}

/// Wait (bounded) until the proxy knows no primary.
pub async fn wait_for_no_primary(proxy: &Proxy) {
    let table = proxy.route_table().clone();
    let mut rx = table.subscribe();
    while table.current().primary.is_some() {
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("route change in time")
            .expect("route table alive");
    }
}

/// Wait (bounded) until no backend session of the app user is left on the
/// server `direct` talks to (other than `direct` itself); the rows of `table`.
pub async fn rows_once_app_sessions_ended(direct: &mut mysql_async::Conn, table: &str) -> i64 {
    use mysql_async::prelude::Queryable;
    let open_sessions = "SELECT COUNT(*) FROM information_schema.processlist \
                         WHERE user = 'app' AND id <> CONNECTION_ID()";
    let within = Duration::from_secs(10);
    poll::until_count(
        direct,
        open_sessions,
        within,
        "backend session never ended",
        |n| n == 0,
    )
    .await;
    direct
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
        .unwrap()
}

/// The sandbox's app user as a `[[users]]` entry (its sessions can migrate).
pub fn app_user() -> mysql_zk_proxy_core::config::UserConfig {
    user_entry(APP_USER, APP_PASS)
}

/// A `[[users]]` entry for a mysql_native_password user (its sessions can migrate).
pub fn user_entry(name: &str, pass: &str) -> mysql_zk_proxy_core::config::UserConfig {
    let hex: String =
        mysql_zk_proxy_core::native_password::StoredHash::of_password(pass.as_bytes())
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
    toml::from_str(&format!(
        "name = \"{name}\"\nmysql_native_password = \"*{hex}\"\n"
    ))
    .unwrap()
}

/// Config tweak: the app user is migratable; a short drain timeout.
pub fn with_app_user(c: &mut Config) {
    c.users = vec![app_user()];
    c.failover.drain_timeout = Duration::from_secs(2);
}

/// Config tweak: the proxy's control-plane login is the sandbox's admin,
/// which turns on verification of new primaries (and the ledger's loss
/// reports).
#[allow(dead_code)] // not every test binary uses every helper
pub fn with_monitor(c: &mut Config) {
    c.monitor.user = mysql_zk_proxy_sandbox::cluster::ADMIN_USER.into();
    c.monitor.password =
        mysql_zk_proxy_core::config::Secret::new(mysql_zk_proxy_sandbox::cluster::ADMIN_PASS);
}

/// Wait (up to 10 s) until `n` connections ended with `outcome`. A session
/// counts its outcome when its task ends, just after the client was sent
/// its error, so a client that saw the error may look a moment too early.
#[allow(dead_code)] // not every test binary uses every helper
pub async fn outcome_counted(
    stats: &mysql_zk_proxy_core::metrics::Stats,
    outcome: mysql_zk_proxy_core::metrics::ConnOutcome,
    n: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = stats.connections_with_outcome(outcome);
        if seen == n {
            return;
        }
        assert!(
            seen < n && tokio::time::Instant::now() < deadline,
            "connections with outcome {outcome:?}: {seen}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Assertions on the `--json` document of the ops commands.
pub mod outcome;

/// Bounded polling of a server.
pub mod poll;
