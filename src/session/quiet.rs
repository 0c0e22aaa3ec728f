//! Futures a session polls only after they woke it: stop signals and route
//! changes are rare, but the session's task wakes for every packet it relays.
//!
//! Polling a `CancellationToken::cancelled()` or a `watch::Receiver::changed()`
//! takes a mutex or two each time. Doing that on every wake cost the relay
//! about a tenth of its user-space CPU (docs/performance.md). [`Quiet`] polls the
//! inner future with a waker of its own that raises a flag and then wakes the
//! task. On any other wake it checks the flag and returns `Pending` at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// A future polled only when it signalled readiness (and on its first poll).
pub struct Quiet<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// Wakes `flag`; the inner future only ever sees this waker.
    waker: Waker,
}

/// Set by the inner future's wake-up; holds the task to wake in turn.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Raised before the task is woken: the task's next poll sees it.
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> Quiet<F> {
    pub fn new(fut: F) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true), // the first poll registers the waker
            task: AtomicWaker::new(),
        });
        Quiet {
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Register first: a wake-up after the check below still reaches this task.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.fut
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_cancel_after_many_idle_polls_is_seen() {
        let token = CancellationToken::new();
        let mut quiet = Quiet::new(token.cancelled());
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut quiet).poll(&mut cx).is_pending());
        // wakes for other reasons: the inner future is not polled, still pending
        for _ in 0..3 {
            assert!(Pin::new(&mut quiet).poll(&mut cx).is_pending());
        }
        token.cancel();
        assert!(Pin::new(&mut quiet).poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn the_task_is_woken_when_the_inner_future_is_ready() {
        let token = CancellationToken::new();
        let t = token.clone();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            t.cancel();
        });
        // awaited: only the inner future's wake-up can finish this
        tokio::time::timeout(Duration::from_secs(10), Quiet::new(token.cancelled()))
            .await
            .expect("the cancel woke the task");
        canceller.await.unwrap();
    }

    #[tokio::test]
    async fn a_route_change_wakes_a_quiet_watch() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(1).unwrap();
            tx
        });
        let changed = Quiet::new(rx.changed());
        tokio::time::timeout(Duration::from_secs(10), changed)
            .await
            .expect("the change woke the task")
            .unwrap();
        drop(sender.await.unwrap());
        assert_eq!(*rx.borrow(), 1);
    }

    fn futures_noop_waker() -> Waker {
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        Waker::from(Arc::new(Noop))
    }
}
