//! Operator lifecycle against real servers: a graceful stop under load loses
//! nothing (/ready 503 first, every commit the client saw is there, every
//! other transaction got an error), and SIGHUP reloads of the binary (a good
//! config changes limits live, a bad one is rejected and /status says why).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_sandbox::Cluster;

use common::binary::Running;
use common::poll::until_count;

const CLIENTS: u64 = 6;

/// One client: short transactions until the proxy closes it. Returns the
/// ids whose COMMIT succeeded.
async fn writer(opts: mysql_async::OptsBuilder, client: u64) -> BTreeSet<u64> {
    let mut committed = BTreeSet::new();
    let Ok(mut c) = Conn::new(opts).await else {
        return committed;
    };
    for n in 0.. {
        let id = client * 1_000_000 + n;
        let tx = async {
            c.query_drop("BEGIN").await?;
            c.exec_drop("INSERT INTO t (id, v) VALUES (?, 1)", (id,))
                .await?;
            c.exec_drop("UPDATE t SET v = v + 1 WHERE id = ?", (id,))
                .await?;
            c.query_drop("COMMIT").await
        };
        match tx.await {
            Ok(()) => {
                committed.insert(id);
            }
            Err(_) => return committed,
        }
    }
    committed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_under_load_loses_nothing() {
    let env = common::start_with(false, |c| {
        c.shutdown.ready_delay = Duration::from_secs(3);
        c.shutdown.timeout = Duration::from_secs(16);
    })
    .await;
    let mut direct = Conn::new(env.direct()).await.unwrap();
    direct
        .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    let admin = env.proxy.admin_addr().unwrap();
    let writers: Vec<_> = (1..=CLIENTS)
        .map(|i| tokio::spawn(writer(env.via_proxy(), i)))
        .collect();
    // let the load run
    until_count(
        &mut direct,
        "SELECT COUNT(*) FROM t",
        Duration::from_secs(20),
        "load never got going",
        |n| n >= 50,
    )
    .await;
    let opts = env.via_proxy();
    let listen = env.proxy.listen_addr();
    let stop = tokio::spawn(env.proxy.stop());
    let mut ready = 0;
    for _ in 0..100 {
        ready = common::http::get(admin, "/ready").await.map_or(0, |r| r.0);
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 503, "/ready turns 503 at once");
    // during the ready delay new clients are still served
    let mut late = Conn::new(opts).await.expect("accepted during ready_delay");
    let _: Option<i64> = late.query_first("SELECT 1").await.unwrap();
    assert!(
        stop.await.unwrap(),
        "every session ended before shutdown.timeout"
    );
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "the listener is closed"
    );

    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let rows: Vec<(u64, i32)> = direct
        .query("SELECT id, v FROM t ORDER BY id")
        .await
        .unwrap();
    let stored: BTreeSet<u64> = rows.iter().map(|r| r.0).collect();
    assert!(committed.len() >= 50, "{} commits", committed.len());
    assert_eq!(
        stored, committed,
        "exactly the transactions the clients saw commit"
    );
    assert!(rows.iter().all(|r| r.1 == 2), "no half-applied transaction");
}

fn write_config(path: &std::path::Path, cfg: &mysql_zk_proxy_core::config::Config, extra: &str) {
    let mut text = toml::to_string(cfg).unwrap();
    text.push_str(extra);
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_config_and_rejects_a_bad_one() {
    let cluster = Cluster::builder().without_replica().start().await.unwrap();
    let mut cfg = common::test_config(&cluster);
    cfg.listen.max_connections = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    write_config(&path, &cfg, "");
    let run = Running::start(&["run", "--config", path.to_str().unwrap()]);
    let admin = run.admin_addr(Instant::now() + Duration::from_secs(30));
    let port = common::http::ready_listen_addr(admin).await;
    let opts = || common::app_opts(port.port());
    let mut a = Conn::new(opts()).await.unwrap();
    let mut b = Conn::new(opts()).await.unwrap();

    // good: a lower limit applies at once; a new listen address is reported
    cfg.listen.max_connections = 2;
    cfg.listen.address = "127.0.0.1:1".into();
    write_config(&path, &cfg, "");
    run.signal(libc::SIGHUP);
    let r = common::http::next_reload(admin, &serde_json::Value::Null).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["restart_required"][0], "listen.address", "{r}");
    let e = Conn::new(opts()).await.unwrap_err().to_string();
    assert!(e.contains("Too many connections"), "{e}");
    let _: Option<i64> = a.query_first("SELECT 1").await.unwrap();

    // bad: rejected, the running config (limit 2) is kept, /status says why
    write_config(&path, &cfg, "[bogus]\nkey = 1\n");
    run.signal(libc::SIGHUP);
    let bad = common::http::next_reload(admin, &r).await;
    assert_eq!(bad["ok"], false, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("bogus"), "{bad}");
    let e = Conn::new(opts()).await.unwrap_err().to_string();
    assert!(e.contains("Too many connections"), "{e}");
    let (_, metrics) = common::http::get(admin, "/metrics").await.unwrap();
    assert!(
        metrics.contains("mysql_zk_proxy_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    let _: Option<i64> = b.query_first("SELECT 1").await.unwrap();

    // stop: a transaction left open keeps the proxy draining (/ready 503);
    // a second signal exits at once
    a.query_drop("BEGIN").await.unwrap();
    run.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::http::get(admin, "/ready").await.map_or(0, |r| r.0) != 503 {
        assert!(Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut run = run;
    assert!(run.child.try_wait().unwrap().is_none(), "still draining");
    let t0 = Instant::now();
    run.signal(libc::SIGTERM);
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "second signal ignored"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(a.query_drop("COMMIT").await.is_err(), "the client is told");
    drop(b);
}
