//! netbench: new connections per second, a 1 GiB result streamed through,
//! and the RSS of 5,000 idle connections, for direct vs HAProxy (TCP mode)
//! vs the release proxy binary, interleaved in one run on a sandbox cluster
//! (ZooKeeper + MariaDB). Only the ratios mean anything on a shared machine.
//!
//! Run: `cargo build --release && cargo bench --bench netbench`. Env:
//! NB_ROUNDS (3) rounds, target order rotated; NB_SECS (10) per rate run;
//! NB_CLIENTS (8) parallel connecting clients; NB_STREAM_MIB (1024);
//! NB_IDLE (5000) idle connections; NB_PROXY_CONFIG (TOML text appended to
//! the proxy's config, e.g. `[runtime]\nmode = "shared"`); NB_ONLY
//! ("conn stream idle"): which measurements; NB_PROXY_BIN: another proxy
//! binary to measure (default target/release/mysql-zk-proxy).

#[path = "../../tests/common/login.rs"]
mod login;
mod measure;
mod procs;

use std::time::Duration;

use mysql_zk_proxy_sandbox::Cluster;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    name: &'static str,
    port: u16,
    /// The middlebox process (none for direct).
    pid: Option<u32>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("netbench: run with `cargo bench --bench netbench`");
        return;
    }
    let (rounds, secs, clients) = (
        env("NB_ROUNDS", 3),
        env("NB_SECS", 10),
        env("NB_CLIENTS", 8),
    );
    let (mib, idle) = (env("NB_STREAM_MIB", 1024u64), env("NB_IDLE", 5000usize));
    let only: String = env("NB_ONLY", "conn stream idle".to_string());
    let cluster = Cluster::builder()
        .without_replica()
        .start()
        .await
        .expect("cluster");
    let db = cluster.primary();
    db.sql_async(&format!("SET GLOBAL max_connections = {}", idle + 500))
        .await
        .expect("max_connections");
    let dir = tempfile::tempdir().expect("tempdir");
    let hap = procs::haproxy(db.port(), 1, &dir.path().join("haproxy.log"));
    let extra: String = env("NB_PROXY_CONFIG", String::new()).replace("\\n", "\n");
    let config = format!("[listen]\nmax_connections = {}\n{extra}\n", idle + 500);
    let proxy = procs::proxy(
        &cluster.zk_connect(),
        cluster.primary_path(),
        &config,
        dir.path(),
    );
    let targets = [
        Target {
            name: "direct",
            port: db.port(),
            pid: None,
        },
        Target {
            name: "haproxy",
            port: hap.port,
            pid: Some(hap.pid()),
        },
        Target {
            name: "proxy",
            port: proxy.port,
            pid: Some(proxy.pid()),
        },
    ];
    for t in &targets {
        procs::wait_for(Duration::from_secs(30), t.name, async || {
            mysql_async::Conn::new(measure::opts(t.port)).await.is_ok()
        })
        .await;
    }
    println!(
        "netbench: {} cores, load {}, proxy config: {config:?}",
        cores(),
        load()
    );
    if only.contains("conn") {
        conn_rates(&targets, rounds, secs, clients).await;
    }
    if only.contains("stream") {
        streams(&targets, rounds, mib).await;
    }
    if only.contains("idle") {
        // the proxy only: HAProxy's maxconn (benches/haproxy.cfg) is 4096
        idle_rss(&targets[2..], idle).await;
    }
    drop((proxy, hap));
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Target order for round `r`: rotated so none always runs first.
fn order(targets: &[Target], r: usize) -> impl Iterator<Item = &Target> {
    (0..targets.len()).map(move |i| &targets[(i + r) % targets.len()])
}

async fn conn_rates(targets: &[Target], rounds: usize, secs: u64, clients: usize) {
    println!(
        "\n## new connections/s ({clients} clients x {secs} s: connect, login, SELECT 1, quit)"
    );
    println!("| round | target | conn/s | errors | middlebox CPU us/conn | load |");
    println!("| ---: | --- | ---: | ---: | ---: | --- |");
    for r in 0..rounds {
        let mut rate = [0.0; 3];
        for t in order(targets, r) {
            let c0 = t.pid.map(procs::cpu_secs);
            let (cps, errors) = measure::conn_rate(t.port, clients, secs).await;
            let us = c0
                .zip(t.pid)
                .map(|(c0, p)| (procs::cpu_secs(p) - c0) * 1e6 / (cps * secs as f64));
            let i = targets.iter().position(|x| x.name == t.name).unwrap_or(0);
            rate[i] = cps;
            let us = us.map_or("-".into(), |u| format!("{u:.0}"));
            println!(
                "| {} | {} | {cps:.0} | {errors} | {us} | {} |",
                r + 1,
                t.name,
                load()
            );
        }
        println!(
            "| {} | ratios | proxy/direct {:.2}, haproxy/direct {:.2}, proxy/haproxy {:.2} | | | |",
            r + 1,
            rate[2] / rate[0],
            rate[1] / rate[0],
            rate[2] / rate[1]
        );
    }
}

async fn streams(targets: &[Target], rounds: usize, mib: u64) {
    println!(
        "\n## {mib} MiB result (SELECT REPEAT('x', 1048576) FROM seq_1_to_{mib}), rows discarded"
    );
    println!(
        "| round | target | MiB/s | middlebox peak RSS growth (sampled) KiB | VmHWM growth KiB |"
    );
    println!("| ---: | --- | ---: | ---: | ---: |");
    for r in 0..rounds {
        let mut rate = [0.0; 3];
        for t in order(targets, r) {
            let s = measure::stream(t.port, mib, t.pid).await;
            let i = targets.iter().position(|x| x.name == t.name).unwrap_or(0);
            rate[i] = s.mib_per_s;
            let (g, h) = match t.pid {
                Some(_) => (s.rss_growth_kib.to_string(), s.hwm_growth_kib.to_string()),
                None => ("-".into(), "-".into()),
            };
            println!(
                "| {} | {} | {:.0} | {g} | {h} |",
                r + 1,
                t.name,
                s.mib_per_s
            );
        }
        println!(
            "| {} | ratios | proxy/direct {:.2}, haproxy/direct {:.2} | | |",
            r + 1,
            rate[2] / rate[0],
            rate[1] / rate[0]
        );
    }
}

async fn idle_rss(middleboxes: &[Target], n: usize) {
    println!("\n## {n} idle logged-in client connections held open");
    println!("| target | RSS before KiB | RSS with {n} open KiB | KiB per connection |");
    println!("| --- | ---: | ---: | ---: |");
    for t in middleboxes {
        let pid = t.pid.expect("middlebox pid");
        let before = procs::status_kib(pid, "VmRSS");
        let conns = measure::open_idle(t.port, n).await;
        // let the sessions settle (every login finished, nothing in flight)
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = procs::status_kib(pid, "VmRSS");
        let per = with.saturating_sub(before) as f64 / n as f64;
        println!("| {} | {before} | {with} | {per:.1} |", t.name);
        measure::close_all(conns).await;
    }
}
