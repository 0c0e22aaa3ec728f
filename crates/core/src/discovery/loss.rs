//! The `zookeeper.fail_closed_after` clock: how long discovery has been
//! without a usable ZooKeeper session, and whether routing was stopped for
//! it. Owned by the session loop, which arms it when the session becomes
//! unusable (disconnected, expired) and resets it when one is usable again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Usable,
    LostSince(Instant),
    /// Routing was stopped; stays so until a session is usable again.
    Closed,
}

pub(crate) struct LossClock {
    after: Option<Duration>,
    clock: Mutex<Clock>,
}

impl LossClock {
    pub(crate) fn new(after: Option<Duration>) -> LossClock {
        LossClock {
            after,
            clock: Mutex::new(Clock::Usable),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Clock) -> T) -> T {
        f(&mut self.clock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The session became unusable: start counting, unless already counting.
    pub(crate) fn lost(&self) {
        self.with(|c| {
            if *c == Clock::Usable {
                *c = Clock::LostSince(Instant::now());
            }
        });
    }

    /// A session is usable again; true if routing had been stopped.
    pub(crate) fn usable(&self) -> bool {
        self.with(|c| std::mem::replace(c, Clock::Usable) == Clock::Closed)
    }

    /// When routing must stop, if the clock is running and the policy is on.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let after = self.after?;
        self.with(|c| match *c {
            Clock::LostSince(t) => Some(t + after),
            Clock::Usable | Clock::Closed => None,
        })
    }

    /// The deadline passed: stop routing. Returns the reason the first time.
    pub(crate) fn fire(&self) -> Option<String> {
        let after = self.after?;
        self.with(|c| match *c {
            Clock::LostSince(t) if t + after <= Instant::now() => {
                *c = Clock::Closed;
                Some(format!(
                    "no usable ZooKeeper session for {after:?} (zookeeper.fail_closed_after)"
                ))
            }
            _ => None,
        })
    }
}

/// Sleep until `deadline`, or forever when there is none.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_first_loss_and_waits_for_the_delay() {
        let c = LossClock::new(Some(Duration::from_secs(5)));
        assert_eq!(c.deadline(), None);
        c.lost();
        let d = c.deadline().unwrap();
        c.lost();
        assert_eq!(c.deadline(), Some(d), "the first loss counts");
        assert_eq!(c.fire(), None, "not yet");
        assert!(!c.usable(), "was not closed");
        assert_eq!(c.deadline(), None);
    }

    #[tokio::test]
    async fn fires_once_then_resets_when_usable() {
        let c = LossClock::new(Some(Duration::ZERO));
        c.lost();
        until(c.deadline()).await;
        assert!(c.fire().unwrap().contains("fail_closed_after"));
        assert_eq!((c.fire(), c.deadline()), (None, None));
        assert!(c.usable());
        assert!(!c.usable());
    }

    #[test]
    fn off_by_default() {
        let c = LossClock::new(None);
        c.lost();
        assert_eq!((c.deadline(), c.fire()), (None, None));
    }
}
