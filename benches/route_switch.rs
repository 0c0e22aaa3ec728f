//! Route switch latency: ZooKeeper record written -> first statement answered
//! by the new primary through the proxy, over N record changes, on a real
//! sandbox cluster (ZooKeeper + MariaDB primary/replica) with the proxy in
//! process. A client session of a user in the credential store polls
//! `SELECT @@port` (it is migrated at each change); a second series measures
//! fresh connections. Each switch is timed from the write issued and from the
//! write acknowledged by ZooKeeper (its commit, including the server's log
//! fsync, is not the proxy's time); the commit time itself is reported too.
//! Run: `cargo bench --bench route_switch` (N = SWITCHES, default 50).

#[path = "../tests/common/login.rs"]
mod login;

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::config::Config;
use mysql_zk_proxy_core::native_password::StoredHash;
use mysql_zk_proxy_core::proxy::Proxy;
use mysql_zk_proxy_sandbox::Cluster;

use login::app_login;

fn config(cluster: &Cluster) -> Config {
    let hex: String = StoredHash::of_password(b"app")
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let users = format!("[[users]]\nname = \"app\"\nmysql_native_password = \"*{hex}\"\n");
    let mut cfg: Config = toml::from_str(&users).expect("users");
    cfg.listen.address = "127.0.0.1:0".into();
    cfg.admin.address = "".into();
    cfg.zookeeper.connect = cluster.zk_connect();
    cfg.zookeeper.primary_path = cluster.primary_path().to_string();
    cfg
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.9)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap())
    );
}

/// `SELECT @@port` on `c` (None on any error).
async fn port_of(c: &mut Conn) -> Option<u16> {
    c.query_first::<u16, _>("SELECT @@port")
        .await
        .ok()
        .flatten()
}

/// Poll with `probe` until it answers `port`; time since `t0`.
async fn until_port(
    t0: Instant,
    port: u16,
    mut probe: impl AsyncFnMut() -> Option<u16>,
) -> Duration {
    let deadline = t0 + Duration::from_secs(10);
    loop {
        if probe().await == Some(port) {
            return t0.elapsed();
        }
        assert!(Instant::now() < deadline, "never reached port {port}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("route_switch: run with `cargo bench --bench route_switch`");
        return;
    }
    let n: usize = std::env::var("SWITCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let cluster = Cluster::builder().start().await.expect("cluster");
    let proxy = Proxy::start(config(&cluster)).await.expect("proxy");
    let pport = proxy.listen_addr().port();
    let ports = [
        cluster.primary().port(),
        cluster.replica().expect("replica").port(),
    ];
    let mut session = Conn::new(app_login(pport)).await.expect("session");
    let writer = mysql_zk_proxy_sandbox::zk_connect(&cluster.zk_connect())
        .await
        .expect("zk writer");
    let path = cluster.primary_path().to_string();
    let (mut migrated, mut fresh, mut commits) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n * 2 {
        let target = ports[(i + 1) % 2];
        let epoch = i as u64 + 2;
        let record = mysql_zk_proxy_sandbox::cluster::primary_json(target, epoch);
        let t0 = Instant::now();
        mysql_zk_proxy_sandbox::zkclient::write_with(&writer, &path, record.as_bytes())
            .await
            .expect("publish");
        let commit = t0.elapsed();
        commits.push(commit);
        if i % 2 == 0 {
            let d = until_port(t0, target, async || port_of(&mut session).await).await;
            migrated.push((d, d - commit));
        } else {
            let d = until_port(t0, target, async || {
                let mut c = Conn::new(app_login(pport)).await.ok()?;
                let p = port_of(&mut c).await;
                let _ = c.disconnect().await;
                p
            })
            .await;
            fresh.push((d, d - commit));
            // keep the polling session in step with the record for the next round
            until_port(Instant::now(), target, async || port_of(&mut session).await).await;
        }
    }
    println!("route switch latency, record write issued -> first statement answered by the new primary ({} cores)", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let (issued, acked): (Vec<_>, Vec<_>) = migrated.into_iter().unzip();
    report("  idle session (migrated), from write issued", issued);
    report("  idle session (migrated), from write acked ", acked);
    let (issued, acked): (Vec<_>, Vec<_>) = fresh.into_iter().unzip();
    report("  new connection,          from write issued", issued);
    report("  new connection,          from write acked ", acked);
    report("  ZooKeeper write (issued -> acked)         ", commits);
    proxy.shutdown(Duration::from_secs(5)).await;
}
