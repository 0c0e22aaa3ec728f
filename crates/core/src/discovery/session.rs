//! The ZooKeeper session loop as an explicit state machine ([`Step`]):
//! create a session, read + watch the record, follow connection loss and
//! session expiry, stop on cancel. Each step is one function; none holds a
//! lock across `.await`.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use zookeeper_client::{Client, EventType, OneshotWatcher, SessionState, Stat, StateWatcher};

use super::apply::Publisher;
use super::children::ChildrenSync;
use super::loss::{self, LossClock};
use super::register::Registration;
use super::{DiscoveryError, ZkState};
use crate::config::ZookeeperConfig;

/// A usable session: the client plus its state watcher.
pub(crate) struct Connected {
    client: Client,
    states: StateWatcher,
    /// Session id, hex (`0x...`).
    id: String,
    /// Stops this session's users task (`zookeeper.users_path`) when dropped.
    users: Option<DropGuard>,
    /// Stops this session's replica-set task when dropped.
    replicas: Option<DropGuard>,
    /// Stops this session's registration task when dropped.
    registration: Option<DropGuard>,
}

/// Where the session loop is.
enum Step {
    /// No session: create one, retrying; `shown` is the status meanwhile.
    Connect { shown: ZkState, pause_first: bool },
    /// Session usable: read the record and arm a watch on it.
    Read(Connected),
    /// Watch armed: wait for it to fire or for the session state to move.
    Watch(Connected, OneshotWatcher),
    /// Connection lost, session maybe alive: wait to reconnect within it.
    Disconnected(Connected),
    /// The session is over (expired, auth failed, closed): drop it.
    Ended(Connected, SessionState),
    /// `cancel` fired: close the session, if any, and end.
    Stop(Option<Connected>),
}

/// The record as read, with the watch that follows it.
enum Observed {
    Data(Vec<u8>, Stat, OneshotWatcher),
    Absent(OneshotWatcher),
}

/// What woke a [`Step::Watch`].
enum Woke {
    Cancel,
    Node(zookeeper_client::WatchedEvent),
    State(SessionState),
}

/// The discovery task: configuration, sink and cancellation.
pub(crate) struct Discovery {
    pub(crate) cfg: ZookeeperConfig,
    pub(crate) out: Publisher,
    pub(crate) cancel: CancellationToken,
    /// `zookeeper.fail_closed_after`: runs while no session is usable.
    pub(crate) loss: LossClock,
    /// Follows `zookeeper.users_path` on each session, when configured.
    pub(crate) users: Option<ChildrenSync>,
    /// Follows `<cluster>/replicas/` on each session, when the read-only
    /// listener is on.
    pub(crate) replicas: Option<ChildrenSync>,
    /// Registers this proxy and acknowledges drains on each session.
    pub(crate) registration: Option<Registration>,
    /// `[zookeeper.tls]` material shared with the proxy's reloads.
    pub(crate) tls: Option<std::sync::Arc<crate::tls::ZkTls>>,
}

impl Discovery {
    /// Run until `cancel` fires; the session is closed on the way out.
    pub(crate) async fn run(self) {
        tracing::info!(connect = %self.cfg.connect, path = %self.cfg.primary_path, "discovery starting");
        let mut step = Step::Connect {
            shown: ZkState::Connecting,
            pause_first: false,
        };
        loop {
            step = match step {
                Step::Connect { shown, pause_first } => self.connect(shown, pause_first).await,
                Step::Read(conn) => self.read(conn).await,
                Step::Watch(conn, watcher) => self.watch(conn, watcher).await,
                Step::Disconnected(conn) => self.disconnected(conn).await,
                Step::Ended(conn, state) => self.ended(conn, state),
                Step::Stop(conn) => {
                    close(conn).await;
                    break;
                }
            };
        }
        self.out.status.set_state(ZkState::Closed, None);
        tracing::info!("discovery stopped");
    }

    /// `fut`, unless `cancel` fires first (then `None`). Stops routing
    /// meanwhile if the session stays unusable past `fail_closed_after`.
    async fn or_cancel<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                v = &mut fut => return Some(v),
                _ = loss::until(self.loss.deadline()) => {
                    if let Some(why) = self.loss.fire() {
                        self.out.fail_closed(why);
                    }
                }
            }
        }
    }

    /// A session is usable again: lift a fail-closed stop (the record is re-read next).
    fn session_usable(&self) {
        if self.loss.usable() {
            tracing::info!("ZooKeeper usable again; re-reading the record to resume routing");
            self.out.status.set_fail_closed(None);
        }
    }

    /// Sleep `retry_backoff` (at least [`MIN_BACKOFF`]); false if cancelled meanwhile.
    async fn backoff(&self) -> bool {
        let pause = self.cfg.retry_backoff.max(MIN_BACKOFF);
        self.or_cancel(tokio::time::sleep(pause)).await.is_some()
    }

    async fn connect(&self, shown: ZkState, pause_first: bool) -> Step {
        self.out.status.set_state(shown, None);
        if pause_first && !self.backoff().await {
            return Step::Stop(None);
        }
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            match self.or_cancel(self.try_connect()).await {
                None => return Step::Stop(None),
                Some(Ok(conn)) => return self.established(conn),
                // Warn on the first failure and every tenth, not every backoff.
                Some(Err(e)) if attempt % 10 == 1 => {
                    tracing::warn!(error = %e, attempt, retry_in = ?self.cfg.retry_backoff, "no ZooKeeper session");
                    self.out.status.set_zk_error(e.to_string());
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, attempt, "no ZooKeeper session");
                    self.out.status.set_zk_error(e.to_string());
                }
            }
            if !self.backoff().await {
                return Step::Stop(None);
            }
        }
    }

    /// One attempt, bounded by `connect_timeout`.
    async fn try_connect(&self) -> Result<Connected, DiscoveryError> {
        let client = super::connect::open_discovery(&self.cfg, self.tls.as_ref()).await?;
        let states = client.state_watcher();
        let id = client.session_id().to_string();
        Ok(Connected {
            client,
            states,
            id,
            users: None,
            replicas: None,
            registration: None,
        })
    }

    fn established(&self, mut conn: Connected) -> Step {
        self.session_usable();
        conn.users = self
            .users
            .as_ref()
            .map(|u| u.start(&conn.client, &self.cancel));
        conn.replicas = self
            .replicas
            .as_ref()
            .map(|r| r.start(&conn.client, &self.cancel));
        conn.registration = self
            .registration
            .as_ref()
            .map(|r| r.start(&conn.client, &self.cancel));
        self.out.stats.zk_sessions_established.fetch_add(1, Relaxed);
        tracing::info!(
            session = %conn.id,
            timeout = ?conn.client.session_timeout(),
            "ZooKeeper session established"
        );
        self.out
            .status
            .set_state(ZkState::Connected, Some(conn.id.clone()));
        Step::Read(conn)
    }

    async fn read(&self, conn: Connected) -> Step {
        let path = &self.cfg.primary_path;
        match self.or_cancel(read_and_watch(&conn.client, path)).await {
            None => Step::Stop(Some(conn)),
            Some(Ok(Observed::Data(data, stat, watcher))) => {
                self.out.data(&data, stat.mzxid);
                Step::Watch(conn, watcher)
            }
            Some(Ok(Observed::Absent(watcher))) => {
                self.out.absent();
                Step::Watch(conn, watcher)
            }
            Some(Err(source)) => self.read_failed(conn, source).await,
        }
    }

    async fn read_failed(&self, conn: Connected, source: zookeeper_client::Error) -> Step {
        use zookeeper_client::Error as E;
        // In-flight requests fail with the connection's own error (e.g. "no
        // response in 800ms"), so the session state decides first.
        match conn.client.state() {
            SessionState::Disconnected => return Step::Disconnected(conn),
            s if s.is_terminated() => return Step::Ended(conn, s),
            _ => {}
        }
        match source {
            E::ConnectionLoss => Step::Disconnected(conn),
            E::SessionExpired | E::SessionMoved => Step::Ended(conn, SessionState::Expired),
            E::AuthFailed => Step::Ended(conn, SessionState::AuthFailed),
            E::ClientClosed => Step::Ended(conn, SessionState::Closed),
            source => {
                let path = &self.cfg.primary_path;
                let e = DiscoveryError::denied("read", path, source.clone()).unwrap_or(
                    DiscoveryError::Read {
                        path: path.clone(),
                        source,
                    },
                );
                // Logged when it changes; the route is kept and the read retried.
                if self.out.status.set_zk_error(e.to_string()) {
                    tracing::warn!(error = %e, retry_in = ?self.cfg.retry_backoff, "cannot read the primary record; keeping the current route");
                } else {
                    tracing::debug!(error = %e, "cannot read the primary record");
                }
                match self.backoff().await {
                    true => Step::Read(conn),
                    false => Step::Stop(Some(conn)),
                }
            }
        }
    }

    async fn watch(&self, mut conn: Connected, watcher: OneshotWatcher) -> Step {
        let woke = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Woke::Cancel,
            state = conn.states.changed() => Woke::State(state),
            event = watcher.changed() => Woke::Node(event),
        };
        match woke {
            Woke::Cancel => Step::Stop(Some(conn)),
            Woke::Node(event) if event.event_type == EventType::Session => {
                Step::Ended(conn, event.session_state)
            }
            Woke::Node(event) => {
                tracing::debug!(event = ?event.event_type, zxid = event.zxid, "primary znode changed");
                Step::Read(conn)
            }
            Woke::State(state) => self.state_moved(conn, state),
        }
    }

    /// The session state moved while the watch was armed.
    fn state_moved(&self, conn: Connected, state: SessionState) -> Step {
        match state {
            SessionState::Disconnected => Step::Disconnected(conn),
            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                // Disconnected and reconnected between two polls: still a
                // loss, and changes may have been missed.
                self.out.stats.zk_disconnects.fetch_add(1, Relaxed);
                tracing::warn!(session = %conn.id, "ZooKeeper connection was lost and recovered; re-reading");
                Step::Read(conn)
            }
            terminal => Step::Ended(conn, terminal),
        }
    }

    async fn disconnected(&self, mut conn: Connected) -> Step {
        self.loss.lost();
        self.out.stats.zk_disconnects.fetch_add(1, Relaxed);
        self.out.status.set_state(ZkState::Disconnected, None);
        tracing::warn!(session = %conn.id, "ZooKeeper connection lost; keeping the current route");
        let mut state = conn.states.state();
        loop {
            match state {
                SessionState::Disconnected => match self.or_cancel(conn.states.changed()).await {
                    None => return Step::Stop(Some(conn)),
                    Some(next) => state = next,
                },
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    tracing::info!(session = %conn.id, "ZooKeeper connection recovered; re-reading the record");
                    self.session_usable();
                    self.out
                        .status
                        .set_state(ZkState::Connected, Some(conn.id.clone()));
                    return Step::Read(conn);
                }
                terminal => return Step::Ended(conn, terminal),
            }
        }
    }

    /// Drop the finished session and decide how to create the next one.
    fn ended(&self, conn: Connected, state: SessionState) -> Step {
        let Connected { client, id, .. } = conn;
        drop(client);
        self.loss.lost();
        match state {
            SessionState::Expired => {
                self.out.stats.zk_sessions_expired.fetch_add(1, Relaxed);
                tracing::warn!(session = %id, "ZooKeeper session expired; keeping the current route, creating a new session");
                Step::Connect {
                    shown: ZkState::Expired,
                    pause_first: false,
                }
            }
            SessionState::AuthFailed => {
                tracing::error!(session = %id, "ZooKeeper authentication failed; retrying");
                self.out
                    .status
                    .set_zk_error(format!("session {id}: authentication failed"));
                Step::Connect {
                    shown: ZkState::AuthFailed,
                    pause_first: true,
                }
            }
            other => {
                tracing::warn!(session = %id, state = %other, "ZooKeeper session ended; creating a new one");
                Step::Connect {
                    shown: ZkState::Connecting,
                    pause_first: true,
                }
            }
        }
    }
}

/// Floor for `retry_backoff`, so a zero in the config cannot spin.
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// How long a stop waits for the server to confirm the session's close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Close the session: dropping the last client sends CloseSession; wait
/// (bounded) until the session reports a terminal state, so the ephemeral
/// state on the server is gone when discovery has stopped.
async fn close(conn: Option<Connected>) {
    let Some(Connected {
        client,
        mut states,
        id,
        users,
        replicas,
        registration,
    }) = conn
    else {
        return;
    };
    drop(users);
    drop(replicas);
    drop(registration);
    let connected = client.state() == SessionState::SyncConnected;
    drop(client);
    if !connected {
        return;
    }
    let closed = tokio::time::timeout(CLOSE_WAIT, async {
        while !states.changed().await.is_terminated() {}
    });
    match closed.await {
        Ok(()) => tracing::info!(session = %id, "ZooKeeper session closed"),
        Err(_) => {
            tracing::warn!(session = %id, "ZooKeeper session close not confirmed in {CLOSE_WAIT:?}")
        }
    }
}

/// Read the record and arm the matching watch: a data watch when the znode
/// exists, an exists-watch (fires on creation) when it does not.
async fn read_and_watch(client: &Client, path: &str) -> Result<Observed, zookeeper_client::Error> {
    loop {
        match client.get_and_watch_data(path).await {
            Ok((data, stat, watcher)) => return Ok(Observed::Data(data, stat, watcher)),
            Err(zookeeper_client::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
        match client.check_and_watch_stat(path).await? {
            (None, watcher) => return Ok(Observed::Absent(watcher)),
            // Created between the two reads: read it (the watch is dropped).
            (Some(_), _) => continue,
        }
    }
}
