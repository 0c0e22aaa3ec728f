//! The three netbench measurements against one target port: new connections
//! per second (connect, log in, SELECT 1, quit), a large result streamed and
//! discarded, and N idle logged-in connections held open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

use crate::procs;

/// Client options: no socket probe, no settings query at connect.
pub fn opts(port: u16) -> Opts {
    crate::login::app_login(port)
        .max_allowed_packet(Some(64 << 20))
        .wait_timeout(Some(28800))
        .into()
}

/// `clients` loops of connect + SELECT 1 + quit for `secs`: connections per
/// second and the errors seen.
pub async fn conn_rate(port: u16, clients: usize, secs: u64) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (done, errors, stop) = (done.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    match one_connection(port).await {
                        Ok(()) => done.fetch_add(1, Relaxed),
                        Err(_) => errors.fetch_add(1, Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    let n = done.load(Relaxed) as f64;
    (n / t0.elapsed().as_secs_f64(), errors.load(Relaxed))
}

async fn one_connection(port: u16) -> mysql_async::Result<()> {
    let mut c = Conn::new(opts(port)).await?;
    let one: Option<u8> = c.query_first("SELECT 1").await?;
    assert_eq!(one, Some(1));
    c.disconnect().await
}

/// Result of streaming `mib` rows of 1 MiB.
pub struct Stream {
    pub mib_per_s: f64,
    /// Largest RSS growth of `watch` (the middlebox) seen while streaming, KiB.
    pub rss_growth_kib: u64,
    /// VmHWM after minus VmRSS before, KiB (kernel-tracked peak).
    pub hwm_growth_kib: u64,
}

/// `SELECT REPEAT('x', 1 MiB) FROM seq_1_to_<mib>`, rows read and dropped,
/// while sampling the RSS of `watch` every 2 ms.
pub async fn stream(port: u16, mib: u64, watch: Option<u32>) -> Stream {
    let mut c = Conn::new(opts(port)).await.expect("connect");
    let base = watch.map_or(0, |p| procs::status_kib(p, "VmRSS"));
    if let Some(p) = watch {
        procs::reset_peak(p);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = watch.map(|pid| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Relaxed) {
                peak = peak.max(procs::status_kib(pid, "VmRSS"));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    });
    let sql = format!("SELECT REPEAT('x', 1048576) FROM seq_1_to_{mib}");
    let t0 = Instant::now();
    let mut bytes = 0u64;
    let mut result = c.query_iter(sql).await.expect("query");
    while let Some(row) = result.next().await.expect("row") {
        let v: Vec<u8> = mysql_async::from_row(row);
        bytes += v.len() as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(result);
    stop.store(true, Relaxed);
    let peak = sampler.map_or(0, |s| s.join().expect("sampler"));
    assert_eq!(bytes, mib << 20, "short result");
    let hwm = watch.map_or(0, |p| procs::status_kib(p, "VmHWM"));
    c.disconnect().await.expect("quit");
    Stream {
        mib_per_s: mib as f64 / secs,
        rss_growth_kib: peak.saturating_sub(base),
        hwm_growth_kib: hwm.saturating_sub(base),
    }
}

/// Open `n` logged-in connections (64 at a time), each checked with SELECT 1;
/// returns them open.
pub async fn open_idle(port: u16, n: usize) -> Vec<Conn> {
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire().await.expect("semaphore");
                let connect = tokio::time::timeout(Duration::from_secs(60), Conn::new(opts(port)));
                let mut c = connect
                    .await
                    .expect("idle connect timed out")
                    .expect("idle connect");
                let one: Option<u8> = c.query_first("SELECT 1").await.expect("SELECT 1");
                assert_eq!(one, Some(1));
                c
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await.expect("idle task"));
    }
    conns
}

/// Close connections opened by [`open_idle`].
pub async fn close_all(conns: Vec<Conn>) {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(async move { c.disconnect().await }))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}
