//! Session deadlines the relay checks when it has nothing else to do: the
//! login deadline (`listen.handshake_timeout`) and the idle timeout
//! (`listen.idle_timeout`), and the handshake latency sample at login.
//! Cost on the data path: nothing per packet; with an idle timeout, one
//! timer reset per rest period (per command).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::metrics::Stats;

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No login OK within the handshake timeout.
    Handshake,
    /// At rest longer than the idle timeout.
    Idle,
}

/// The deadlines of one session.
#[derive(Debug)]
pub(crate) struct SessionTimers {
    accepted: Instant,
    login: Option<Pin<Box<Sleep>>>,
    idle_after: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
    /// The client read count the idle timer was armed at.
    armed_at: Option<u64>,
}

impl SessionTimers {
    /// `accepted`: when the connection was accepted (for the latency
    /// histogram); the login deadline runs from now.
    pub fn new(accepted: Instant, handshake: Duration, idle: Option<Duration>) -> Self {
        SessionTimers {
            accepted,
            login: Some(Box::pin(tokio::time::sleep(handshake))),
            idle_after: idle,
            idle: None,
            armed_at: None,
        }
    }

    /// Called when the relay would wait. `reads` counts client reads so far
    /// (a new value means activity since the last call).
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        logged_in: bool,
        at_rest: bool,
        reads: u64,
        stats: &Stats,
    ) -> Poll<Expired> {
        if !logged_in {
            let expired = match self.login.as_mut() {
                Some(login) => login.as_mut().poll(cx).is_ready(),
                None => false,
            };
            return if expired {
                Poll::Ready(Expired::Handshake)
            } else {
                Poll::Pending
            };
        }
        if self.login.take().is_some() {
            stats.ops.handshake.observe(self.accepted.elapsed());
        }
        let Some(after) = self.idle_after.filter(|_| at_rest) else {
            return Poll::Pending;
        };
        let deadline = Instant::now() + after;
        let sleep = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if self.armed_at != Some(reads) {
            sleep.as_mut().reset(deadline);
            self.armed_at = Some(reads);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Expired::Idle),
            Poll::Pending => Poll::Pending,
        }
    }
}
