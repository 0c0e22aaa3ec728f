//! The gate (`failover.wait_for_acknowledged`): when the route moves to
//! another server and the old term has acknowledged commits, sessions
//! reaching the new server wait, before their backend connection is opened
//! (so before their first command, reads included), until the reporter saw
//! the new server apply every one of them (`MASTER_GTID_WAIT`) or the wait
//! timed out. Closed on the route writer's thread, before any session can
//! load the new route; opened by the reporter (docs/ledger.md, The gate).

use std::time::Duration;

use tokio::sync::watch;

use super::Term;

/// Where the gate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateState {
    Open,
    /// Sessions for `server` wait.
    Closed {
        server: String,
        epoch: u64,
    },
}

/// The gate of one proxy.
#[derive(Debug)]
pub struct Gate {
    /// `failover.wait_for_acknowledged`; `None`: never closed.
    wait: Option<Duration>,
    state: watch::Sender<GateState>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(None)
    }
}

impl Gate {
    pub fn new(wait: Option<Duration>) -> Gate {
        Gate {
            wait,
            state: watch::channel(GateState::Open).0,
        }
    }

    /// The configured bound, if the gate is on.
    pub fn wait(&self) -> Option<Duration> {
        self.wait
    }

    pub fn state(&self) -> GateState {
        self.state.borrow().clone()
    }

    /// The route moved to `server` at `epoch` after `old`: close the gate
    /// when it is on and `old` acknowledged anything; open it otherwise.
    pub(super) fn close_for(&self, old: &Term, server: &str, epoch: u64) {
        let next = if self.wait.is_some() && !old.position.is_empty() {
            GateState::Closed {
                server: server.to_string(),
                epoch,
            }
        } else {
            GateState::Open
        };
        self.state.send_replace(next);
    }

    /// Open the gate closed for `epoch` (a later move may have closed it
    /// again for another epoch: that one stays closed).
    pub fn open(&self, epoch: u64) {
        self.state.send_if_modified(|s| match s {
            GateState::Closed { epoch: e, .. } if *e == epoch => {
                *s = GateState::Open;
                true
            }
            _ => false,
        });
    }

    /// Wait while the gate is closed for `server`; bounded by the configured
    /// wait plus `grace` (the reporter opens it at the wait's end; the grace
    /// covers its login). Returns how long this waited.
    pub async fn pass(&self, server: &str, grace: Duration) -> Duration {
        let Some(wait) = self.wait else {
            return Duration::ZERO;
        };
        let closed =
            |s: &GateState| matches!(s, GateState::Closed { server: x, .. } if x == server);
        if !closed(&self.state.borrow()) {
            return Duration::ZERO;
        }
        let t0 = tokio::time::Instant::now();
        let mut rx = self.state.subscribe();
        let _ = tokio::time::timeout(wait + grace, rx.wait_for(|s| !closed(s))).await;
        t0.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(pos: &str) -> Term {
        Term {
            position: pos.parse().unwrap(),
            ..Term::new("a:1".into(), 1)
        }
    }

    #[tokio::test]
    async fn an_off_gate_never_closes() {
        let g = Gate::new(None);
        g.close_for(&term("0-1-5"), "b:1", 2);
        assert_eq!(g.state(), GateState::Open);
        assert_eq!(g.pass("b:1", Duration::ZERO).await, Duration::ZERO);
    }

    #[tokio::test]
    async fn nothing_acknowledged_leaves_it_open() {
        let g = Gate::new(Some(Duration::from_secs(5)));
        g.close_for(&term(""), "b:1", 2);
        assert_eq!(g.state(), GateState::Open);
    }

    #[tokio::test]
    async fn sessions_for_the_new_server_wait_until_opened() {
        let g = std::sync::Arc::new(Gate::new(Some(Duration::from_secs(20))));
        g.close_for(&term("0-1-5"), "b:1", 2);
        assert_eq!(
            g.pass("c:1", Duration::ZERO).await,
            Duration::ZERO,
            "another server"
        );
        let (stale, opened) = (
            tokio::sync::oneshot::channel(),
            tokio::sync::oneshot::channel(),
        );
        let g2 = g.clone();
        let opener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            g2.open(1); // a stale epoch changes nothing
            let _ = stale.0.send(g2.state());
            tokio::time::sleep(Duration::from_millis(100)).await;
            g2.open(2);
            let _ = opened.0.send(());
        });
        let waited = g.pass("b:1", Duration::ZERO).await;
        assert!(matches!(
            stale.1.await.unwrap(),
            GateState::Closed { epoch: 2, .. }
        ));
        opened.1.await.unwrap();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(20), "{waited:?}");
        opener.await.unwrap();
        assert_eq!(g.state(), GateState::Open);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let g = Gate::new(Some(Duration::from_millis(150)));
        g.close_for(&term("0-1-5"), "b:1", 2);
        let waited = g.pass("b:1", Duration::from_millis(50)).await;
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_ne!(g.state(), GateState::Open, "only the reporter opens it");
    }
}
