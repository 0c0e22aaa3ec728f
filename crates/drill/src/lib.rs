//! `mysql-zk-proxy-drill`: drive a mixed load through a proxy while the
//! primary is switched N times, then report what clients saw (errors by
//! kind, dropped connections, added latency and write-unavailable window per
//! switchover, route switch latency, sessions migrated/closed) and whether
//! every acknowledged write is on the final primary. Docs: docs/drill.md.
//!
//! * [`options`]: flags and defaults; [`load`]: the workers;
//!   [`switcher`]: how a switchover is made; [`admin`]: the proxy's
//!   /metrics and /status; [`verify`]: acknowledged writes on the final
//!   primary; [`timeline`] + [`analyze`]: the numbers; [`report`]: the JSON
//!   document; [`summary`]: the text summary; [`html`]: the self-contained HTML page.
//!
//! Layer: an operator's tool above `mysql-zk-proxy-ops` (ZooKeeper reads,
//! the ZooKeeper flags) and `mysql-zk-proxy-core`; its own binary, so the
//! deployed proxy carries no load generator. The sandbox drives it with
//! the sandbox's values (`mysql-zk-proxy-sandbox drill`).

pub mod admin;
pub(crate) mod analyze;
pub mod html;
pub mod load;
pub mod options;
pub mod progress;
pub mod report;
pub mod summary;
pub mod switcher;
pub mod timeline;
pub mod tool;
pub mod unplanned;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio_util::sync::CancellationToken;

pub use options::{DrillArgs, DrillOptions};
pub use report::Report;
pub use switcher::Switcher;

use admin::LastFailover;
use load::{LoadCtx, WorkerResult};
use progress::{Phase, ProgressMode};
use switcher::SwitchRun;

/// Exit code of a drill that ran but whose verdict failed.
pub const EXIT_DRILL_FAILED: u8 = 3;

/// Why a drill could not run (a failed verdict is not an error).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{0}")]
    Options(String),
    #[error("cannot set up the drill through the proxy {proxy}: {source}")]
    Setup {
        proxy: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("admin {addr}{path}: {reason}")]
    Admin {
        addr: String,
        path: String,
        reason: String,
    },
    #[error("verification failed: {reason}")]
    Verify { reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// One switchover as it happened.
#[derive(Debug, Clone)]
pub struct Switched {
    pub start: Duration,
    pub end: Duration,
    pub run: SwitchRun,
    /// The proxy's `last_failover` for it (admin only).
    pub failover: Option<LastFailover>,
    /// When the last record of the switchover was written in ZooKeeper.
    pub record_written: Option<SystemTime>,
    /// `--unplanned`: the proxy's loss report and the drill's ground truth.
    pub loss: Option<unplanned::FailoverLoss>,
}

/// What a drill collected, before the numbers are worked out.
#[derive(Debug)]
pub struct Collected {
    pub started: SystemTime,
    pub run: u64,
    pub duration: Duration,
    pub workers: Vec<WorkerResult>,
    pub switches: Vec<Switched>,
    pub metrics_delta: std::collections::BTreeMap<String, f64>,
    pub verification: Result<verify::Verification, String>,
    pub warnings: Vec<String>,
}

fn client_opts(o: &DrillOptions) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(o.proxy.0.clone())
        .tcp_port(o.proxy.1)
        .user(Some(o.user.clone()))
        .pass(Some(o.password.clone()))
        .db_name(Some(o.database.clone()))
        .prefer_socket(false)
        .into()
}

/// Run a drill and work out its report.
pub async fn run(
    o: &DrillOptions,
    switcher: &mut Switcher,
    mode: ProgressMode,
) -> Result<Report, DrillError> {
    let c = collect(o, switcher, mode).await?;
    Ok(report::build(o, &switcher.describe(), c))
}

/// Create the table, run the load and the switchovers, verify.
pub async fn collect(
    o: &DrillOptions,
    switcher: &mut Switcher,
    mode: ProgressMode,
) -> Result<Collected, DrillError> {
    let opts = client_opts(o);
    let proxy = format!("{}:{}", o.proxy.0, o.proxy.1);
    let setup = |source| DrillError::Setup {
        proxy: proxy.clone(),
        source,
    };
    let mut conn = Conn::new(opts.clone()).await.map_err(setup)?;
    conn.query_drop(load::create_table_sql())
        .await
        .map_err(setup)?;
    let _ = conn.disconnect().await;
    let mut warnings = Vec::new();
    let before = match &o.admin {
        Some(a) => admin::metrics(a)
            .await
            .map_err(|e| warnings.push(e.to_string()))
            .ok(),
        None => None,
    };
    let started = SystemTime::now();
    let run = o.run.unwrap_or_else(|| {
        started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    let ctx = Arc::new(LoadCtx {
        opts,
        run,
        t0: Instant::now(),
        think: o.think,
        idle_every: o.idle_every,
        op_timeout: o.op_timeout,
        next_seq: 1.into(),
        live: Default::default(),
        stop: CancellationToken::new(),
        unplanned: o.unplanned,
        acked_log: Default::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (&kind, &n) in &o.workers {
        for _ in 0..n {
            tasks.spawn(load::worker(ctx.clone(), kind));
        }
    }
    let phase = Arc::new(Phase::default());
    phase
        .total
        .store(o.switchovers, std::sync::atomic::Ordering::Relaxed);
    let progress_stop = CancellationToken::new();
    let progress = tokio::spawn(progress::run(
        mode,
        ctx.clone(),
        phase.clone(),
        progress_stop.clone(),
    ));
    let switches = switch_loop(o, switcher, &ctx, &phase).await;
    ctx.stop.cancel();
    let mut workers = Vec::new();
    while let Some(r) = tasks.join_next().await {
        workers.push(r.map_err(|e| DrillError::Options(format!("a load worker failed: {e}")))?);
    }
    let duration = ctx.t0.elapsed();
    progress_stop.cancel();
    let _ = progress.await;
    let metrics_delta = match (&o.admin, before) {
        (Some(a), Some(before)) => match admin::metrics(a).await {
            Ok(after) => admin::delta(&before, &after),
            Err(e) => {
                warnings.push(e.to_string());
                Default::default()
            }
        },
        _ => Default::default(),
    };
    let acked: Vec<_> = workers
        .iter()
        .flat_map(|w| w.acked.iter().copied())
        .collect();
    let verification = match &o.verify {
        Some(t) => verify::verify(t, run, &acked)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no ZooKeeper to read the final primary from (--zk, --primary-path)".into()),
    };
    Ok(Collected {
        started,
        run,
        duration,
        workers,
        switches,
        metrics_delta,
        verification,
        warnings,
    })
}

/// Warm up, then each switchover followed by `interval`; stops at the first
/// switchover that fails.
async fn switch_loop(
    o: &DrillOptions,
    switcher: &mut Switcher,
    ctx: &LoadCtx,
    phase: &Phase,
) -> Vec<Switched> {
    use std::sync::atomic::Ordering::Relaxed;
    tokio::time::sleep(o.warmup).await;
    let mut done: Vec<Switched> = Vec::new();
    // unplanned: the acknowledged writes checked so far, the last report seen
    let mut checked = 0;
    let mut last_report = match &o.admin {
        Some(a) => unplanned::last_report_epoch(a).await,
        None => 0,
    };
    for i in 1..=o.switchovers {
        phase.current.store(i, Relaxed);
        let epoch = match &o.admin {
            Some(a) => admin::last_failover(a)
                .await
                .ok()
                .flatten()
                .map_or(0, |f| f.epoch),
            None => 0,
        };
        let start = ctx.t0.elapsed();
        let run = switcher.run().await;
        let end = ctx.t0.elapsed();
        let failover = match (&o.admin, run.ok) {
            (Some(a), true) => admin::wait_failover(a, epoch, Duration::from_secs(10)).await,
            _ => None,
        };
        let record_written = match (&o.verify, run.ok) {
            (Some(t), true) => verify::record_written(t).await.ok(),
            _ => None,
        };
        // planned switchovers are compared too when the proxy's /status is read
        let loss = match (o.unplanned || o.admin.is_some()) && run.ok {
            true => {
                let l = unplanned::check(o, ctx, last_report, &mut checked, start).await;
                last_report = l.epoch.unwrap_or(last_report);
                Some(l)
            }
            false => None,
        };
        let ok = run.ok;
        done.push(Switched {
            start,
            end,
            run,
            failover,
            record_written,
            loss,
        });
        if !ok {
            break;
        }
        tokio::time::sleep(o.interval.saturating_sub(ctx.t0.elapsed() - end)).await;
        // the session counts of the last failover go on growing until the next one
        if let (Some(a), Some(last)) = (&o.admin, done.last_mut()) {
            if let (Ok(Some(now)), Some(f)) =
                (admin::last_failover(a).await, last.failover.as_mut())
            {
                if now.epoch == f.epoch {
                    *f = now;
                }
            }
        }
    }
    phase.current.store(o.switchovers + 1, Relaxed);
    done
}

/// `mysql-zk-proxy-drill`: run, print the summary, write the files; `Ok(true)` when the verdict passed.
pub async fn cli(args: DrillArgs) -> Result<bool, DrillError> {
    let (json, html) = (args.json.clone(), args.html.clone());
    let (o, switcher) = args.resolve()?;
    cli_with(o, switcher, &json, &html).await
}

/// A drill with resolved options and switcher, as [`cli`] runs it: the
/// summary on stdout, the JSON and HTML reports into `json` and `html`
/// (an empty path: none).
pub async fn cli_with(
    o: DrillOptions,
    mut switcher: Switcher,
    json: &std::path::Path,
    html: &std::path::Path,
) -> Result<bool, DrillError> {
    eprintln!(
        "drill: {} switchovers every {:?} through {}:{} ({}), load {:?}",
        o.switchovers,
        o.interval,
        o.proxy.0,
        o.proxy.1,
        switcher.describe(),
        o.workers
            .iter()
            .map(|(k, n)| format!("{}={n}", k.label()))
            .collect::<Vec<_>>()
    );
    let report = run(&o, &mut switcher, ProgressMode::detect()).await?;
    print!("{}", summary::summary(&report));
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|source| DrillError::Io {
            what: format!("write {}", path.display()),
            source,
        })
    };
    if !json.as_os_str().is_empty() {
        let text = serde_json::to_string_pretty(&report).expect("the report serialises");
        write(json, text + "\n")?;
        println!("JSON report: {}", json.display());
    }
    if !html.as_os_str().is_empty() {
        write(html, html::page(&report))?;
        println!("HTML report: {}", html.display());
    }
    Ok(report.verdict.pass)
}
