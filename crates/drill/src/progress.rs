//! The progress line on stderr while a drill runs: rewritten in place
//! (`\r`) on a terminal, a plain line every few seconds otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::load::LoadCtx;

/// Which switchover is running (0 = warm-up) and how many there are.
#[derive(Debug, Default)]
pub struct Phase {
    pub current: AtomicU32,
    pub total: AtomicU32,
}

/// How the progress line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Rewrite one line (stderr is a terminal).
    Inline,
    /// A line every few seconds (logs, pipes).
    Lines,
    Off,
}

impl ProgressMode {
    /// `Inline` when stderr is a terminal, else `Lines`.
    pub(crate) fn detect() -> ProgressMode {
        match std::io::stderr().is_terminal() {
            true => ProgressMode::Inline,
            false => ProgressMode::Lines,
        }
    }
}

/// One line of progress.
pub fn line(ctx: &LoadCtx, phase: &Phase) -> String {
    let t = ctx.t0.elapsed().as_secs_f64();
    let ops = ctx.live.ops.load(Relaxed);
    let (cur, total) = (phase.current.load(Relaxed), phase.total.load(Relaxed));
    let stage = match cur {
        0 => "warm-up".to_owned(),
        c if c > total => "cool-down".to_owned(),
        c => format!("switchover {c}/{total}"),
    };
    format!(
        "drill {t:6.1}s  {stage:<16} ops {ops} ({:.0}/s)  errors {}  dropped {}  acked writes {}",
        ops as f64 / t.max(0.001),
        ctx.live.errors.load(Relaxed),
        ctx.live.dropped.load(Relaxed),
        ctx.live.acked.load(Relaxed),
    )
}

/// Print progress until `stop`; the inline line is cleared at the end.
pub async fn run(
    mode: ProgressMode,
    ctx: Arc<LoadCtx>,
    phase: Arc<Phase>,
    stop: CancellationToken,
) {
    let every = match mode {
        ProgressMode::Off => return,
        ProgressMode::Inline => Duration::from_millis(250),
        ProgressMode::Lines => Duration::from_secs(5),
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let text = line(&ctx, &phase);
        let mut err = std::io::stderr().lock();
        let _ = match mode {
            ProgressMode::Inline => write!(err, "\r\x1b[2K{text}"),
            _ => writeln!(err, "{text}"),
        };
        let _ = err.flush();
    }
    if mode == ProgressMode::Inline {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}
