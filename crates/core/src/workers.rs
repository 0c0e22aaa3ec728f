//! Per-core session workers (`runtime.mode = "per_core"`): N threads, each
//! driving its own single-threaded tokio runtime. The acceptor hands every
//! admitted socket to the next worker in turn; the session then lives on that
//! thread, so its client socket, backend socket and timers are polled by one
//! event loop and a reply never needs a wake-up across threads.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// The worker threads; dropping this stops them (tasks still on them are dropped).
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
}

impl Workers {
    /// Start `n` (at least 1) worker threads named `mzp-worker-<i>`.
    pub fn start(n: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            // sessions need sockets and timers only (no process or signal
            // driver, whose bookkeeping would run at every park)
            let rt = Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            handles.push(rt.handle().clone());
            let stopped = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("mzp-worker-{i}"))
                .spawn(move || rt.block_on(stopped.cancelled()));
            if let Err(e) = spawned {
                stop.cancel();
                return Err(e);
            }
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// The next worker's runtime, round-robin.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Relaxed) % self.handles.len();
        &self.handles[i]
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Run `f` on the next worker (test and tooling helper).
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.next().spawn(f)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn tasks_run_on_distinct_named_threads_in_turn() {
        let w = Workers::start(2).unwrap();
        assert_eq!(w.len(), 2);
        let mut names = HashSet::new();
        for _ in 0..4 {
            let name = w
                .spawn(async { std::thread::current().name().map(str::to_string) })
                .await
                .unwrap()
                .unwrap();
            names.insert(name);
        }
        let want: HashSet<String> = ["mzp-worker-0", "mzp-worker-1"].map(String::from).into();
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn drop_stops_the_workers() {
        let w = Workers::start(1).unwrap();
        let h = w.next().clone();
        drop(w);
        // the runtime is shut down once its thread leaves block_on
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let ran = h.spawn(async {}).await;
            if ran.is_err() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "worker still running");
            tokio::task::yield_now().await;
        }
    }
}
