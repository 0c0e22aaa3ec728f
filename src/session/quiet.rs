//! Futures a session polls only after they woke it: stop signals and route
//! changes are rare, but the session's task wakes for every packet it relays.
//!
//! Polling a `CancellationToken::cancelled()` or a `watch::Receiver::changed()`
//! takes a mutex or two each time. Doing that on every wake cost the relay
//! 6-7 % of its user-space CPU (docs/performance.md). [`Quiet`] polls the
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
    use std::sync::atomic::AtomicUsize;
    use tokio_util::sync::CancellationToken;

    /// A task waker that counts its wake-ups.
    struct Task(AtomicUsize);
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Task>, Waker) {
        let t = Arc::new(Task(AtomicUsize::new(0)));
        (t.clone(), Waker::from(t))
    }

    fn poll<F: Future>(q: &mut Quiet<F>, waker: &Waker) -> Poll<F::Output> {
        Pin::new(q).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_cancel_wakes_the_task_and_the_next_poll_sees_it() {
        let token = CancellationToken::new();
        let mut quiet = Quiet::new(token.cancelled());
        let (woken, waker) = task();
        assert!(poll(&mut quiet, &waker).is_pending());
        // polls for other reasons (packets): still pending, nothing woken
        for _ in 0..3 {
            assert!(poll(&mut quiet, &waker).is_pending());
        }
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        token.cancel();
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the cancel woke the task"
        );
        assert!(poll(&mut quiet, &waker).is_ready());
    }

    #[test]
    fn the_latest_task_waker_is_the_one_woken() {
        let token = CancellationToken::new();
        let mut quiet = Quiet::new(token.cancelled());
        let (first, w1) = task();
        let (second, w2) = task();
        assert!(poll(&mut quiet, &w1).is_pending());
        assert!(poll(&mut quiet, &w2).is_pending());
        token.cancel();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut quiet, &w2).is_ready());
    }

    #[test]
    fn a_route_change_wakes_a_quiet_watch() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        let mut changed = Quiet::new(rx.changed());
        let (woken, waker) = task();
        assert!(poll(&mut changed, &waker).is_pending());
        assert!(poll(&mut changed, &waker).is_pending());
        tx.send(1).unwrap();
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "the change woke the task"
        );
        assert!(matches!(poll(&mut changed, &waker), Poll::Ready(Ok(()))));
        drop(changed);
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
