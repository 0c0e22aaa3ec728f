//! Futures a session polls only after they woke it: stop signals and route
//! changes are rare, but the session's task wakes for every packet it relays.
//!
//! Polling a `CancellationToken::cancelled()` or a `watch::Receiver::changed()`
//! takes a mutex or two each time. Doing that on every wake cost the relay
//! 6-7 % of its user-space CPU (docs/performance.md). [`Quiet`] polls the
//! inner future with a waker of its own that raises a flag and then wakes the
//! task. On any other wake it checks the flag and returns `Pending` at once:
//! one atomic load, and no atomic write unless the task's waker changed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A future polled only when it signalled readiness (and on its first poll).
pub(crate) struct Quiet<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// Wakes `flag`; the inner future only ever sees this waker.
    waker: Waker,
    /// The task waker last stored in `flag.task` (stays there: a wake-up
    /// wakes it by reference).
    registered: Option<Waker>,
}

/// Set by the inner future's wake-up; holds the task to wake in turn.
struct Flag {
    woken: AtomicBool,
    /// Locked only when the task's waker changes and on a wake-up (rare).
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Raised before the task is woken: the task's next poll sees it.
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = task.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<F: Future> Quiet<F> {
    pub fn new(fut: F) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true), // the first poll polls the inner future
            task: Mutex::new(None),
        });
        Quiet {
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
            registered: None,
        }
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Register first: a wake-up after the check below reaches this task.
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let w = cx.waker().clone();
            *this.flag.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
            this.registered = Some(w);
        }
        if !this.flag.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // cleared before the inner poll, which sees whatever raised it; a
        // wake-up after this raises it again
        this.flag.woken.store(false, Ordering::Release);
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

    /// Ready after `n` ticks; each tick wakes the waker it was polled with.
    #[derive(Default)]
    struct Ticks {
        count: AtomicUsize,
        waker: Mutex<Option<Waker>>,
    }
    impl Ticks {
        fn tick(&self) {
            self.count.fetch_add(1, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
        async fn reach(&self, n: usize) {
            std::future::poll_fn(|cx| {
                *self.waker.lock().unwrap() = Some(cx.waker().clone());
                if self.count.load(Ordering::SeqCst) >= n {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
    }

    #[test]
    fn every_wake_up_reaches_the_task_not_only_the_first() {
        let ticks = Ticks::default();
        let mut quiet = Quiet::new(ticks.reach(3));
        let (woken, waker) = task();
        for n in 1..=3 {
            assert!(poll(&mut quiet, &waker).is_pending());
            assert!(poll(&mut quiet, &waker).is_pending(), "a packet's wake");
            ticks.tick();
            assert_eq!(woken.0.load(Ordering::SeqCst), n, "tick {n} woke the task");
        }
        assert!(poll(&mut quiet, &waker).is_ready());
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
