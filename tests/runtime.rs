//! `[runtime]`: sessions served by per-core worker threads and by the shared
//! multi-thread runtime relay the same bytes, including results far larger
//! than a relay buffer (whose memory comes and goes while it streams).

mod common;

use mysql_async::prelude::*;
use mysql_async::Conn;
use mysql_zk_proxy_core::config::RuntimeMode;

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// Several sessions at once: each sees its own backend connection, a 3 MiB
/// value arrives whole, and every session still answers afterwards.
async fn sessions_relay_faithfully(env: &common::Env) {
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Conn::new(env.via_proxy()).await.expect("connect"));
    }
    for c in &mut conns {
        let id: u32 = c
            .query_first("SELECT CONNECTION_ID()")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, c.id(), "each session has its own backend connection");
    }
    let big: Vec<u8> = conns[0]
        .query_first("SELECT REPEAT('ab', 1572864)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(big.len(), 3 << 20);
    assert!(
        big.chunks(2).all(|p| p == b"ab"),
        "bytes changed in transit"
    );
    let rows: Vec<(u32, String)> = conns[1]
        .query("SELECT seq, REPEAT('r', 1000) FROM seq_1_to_2000")
        .await
        .unwrap();
    assert_eq!(rows.len(), 2000);
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, (n, s))| *n == i as u32 + 1 && s.len() == 1000));
    for c in &mut conns {
        let one: u8 = c.query_first("SELECT 1").await.unwrap().unwrap();
        assert_eq!(one, 1);
    }
    for c in conns {
        c.disconnect().await.expect("quit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_workers_serve_sessions() {
    let env = common::start_with(false, |c| {
        c.runtime.mode = RuntimeMode::PerCore;
        c.runtime.threads = 2;
    })
    .await;
    let names = thread_names();
    for w in ["mzp-worker-0", "mzp-worker-1"] {
        assert!(names.iter().any(|n| n == w), "no thread {w} in {names:?}");
    }
    sessions_relay_faithfully(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_runtime_serves_sessions() {
    let env = common::start_with(false, |c| {
        c.runtime.mode = RuntimeMode::Shared;
    })
    .await;
    sessions_relay_faithfully(&env).await;
}
