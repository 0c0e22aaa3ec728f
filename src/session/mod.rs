//! One client connection: wait for a primary (bounded), connect to it, forward
//! its greeting, then relay. Every session runs in its own tracing span and
//! ends with exactly one counted outcome.

pub mod login;
pub mod migrate;
mod pipe;
pub mod relay;
pub mod state;
pub mod switch;
pub mod timers;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{field, Instrument};

use crate::backend;
use crate::listener::Context;
use crate::metrics::{ConnOutcome, SessionGauge, SessionState, Stats};
use crate::protocol::errors::{err_packet, Phase, ProxyErrorCode};
use crate::protocol::handshake::adjust_greeting;
use crate::protocol::packet_io::frame;
use crate::protocol::Tracker;
use crate::routing::{Primary, Route};
use login::{LoginOutcome, LoginRecord};
use relay::{Relay, RelayEnd, StopPoint, StopSignals};
use state::CarriedState;
use timers::{Expired, SessionTimers};

/// Serve one accepted client until it ends or the proxy shuts down. `peer`
/// is the client's address (from the PROXY header when `via`, the load
/// balancer, sent one).
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    id: u64,
    ctx: Arc<Context>,
) {
    let span = tracing::info_span!(
        "session",
        id,
        client = %peer,
        via = via.map(field::display),
        backend = field::Empty,
        epoch = field::Empty,
        backend_thread = field::Empty
    );
    async move {
        let cancel = ctx.cancel.clone();
        let outcome = tokio::select! {
            o = serve(client, &ctx) => o,
            _ = cancel.cancelled() => ConnOutcome::Shutdown,
        };
        ctx.stats.connection_closed(outcome);
        tracing::debug!(outcome = outcome.label(), "session ended");
    }
    .instrument(span)
    .await
}

async fn serve(mut client: TcpStream, ctx: &Context) -> ConnOutcome {
    let accepted = Instant::now();
    let mut gauge = ctx.stats.session(SessionState::WaitingForPrimary);
    let Some(route) = route_with_primary(ctx).await else {
        if ctx.drain.at_rest.is_cancelled() {
            let msg = "the proxy is shutting down; reconnect";
            send_error(
                &mut client,
                &ctx.stats,
                0,
                ProxyErrorCode::ShuttingDown,
                Phase::BeforeGreeting,
                msg,
            )
            .await;
            return ConnOutcome::Shutdown;
        }
        let msg = format!(
            "no primary known for {} after waiting {} (ZooKeeper: {:?})",
            ctx.config.load().zookeeper.primary_path,
            humantime::format_duration(ctx.config.load().failover.hold_timeout),
            ctx.discovery.status.borrow().state,
        );
        tracing::warn!("{msg}");
        send_error(
            &mut client,
            &ctx.stats,
            0,
            ProxyErrorCode::NoPrimary,
            Phase::BeforeGreeting,
            &msg,
        )
        .await;
        return ConnOutcome::NoPrimary;
    };
    let primary = route.primary.as_ref().expect("route has a primary");
    let span = tracing::Span::current();
    span.record("backend", primary.address());
    span.record("epoch", primary.epoch);
    gauge.set(SessionState::Handshake);
    connect_and_relay(client, primary, ctx, &mut gauge, accepted).await
}

/// The current route if it has a primary, else wait up to `hold_timeout`.
async fn route_with_primary(ctx: &Context) -> Option<Arc<Route>> {
    let route = ctx.table.current();
    if route.serving() {
        return Some(route);
    }
    let deadline = Instant::now() + ctx.config.load().failover.hold_timeout;
    tracing::debug!("no primary known; holding the greeting");
    tokio::select! {
        r = ctx.table.wait_for_primary(deadline) => r,
        _ = ctx.drain.at_rest.cancelled() => None,
    }
}

async fn connect_and_relay(
    mut client: TcpStream,
    primary: &Primary,
    ctx: &Context,
    gauge: &mut SessionGauge,
    accepted: Instant,
) -> ConnOutcome {
    let cfg = ctx.config.get();
    let t0 = Instant::now();
    let mut be = match backend::connect(primary, cfg.backend.connect_timeout).await {
        Ok(be) => {
            ctx.stats.ops.backend_connect.observe(t0.elapsed());
            crate::listener::admission::set_keepalive(&be.stream, cfg.backend.keepalive);
            be
        }
        Err(e) => {
            let msg = format!("cannot connect to primary {primary}: {e}");
            return unreachable(&mut client, &ctx.stats, &msg).await;
        }
    };
    if be.refused() {
        // The server's own refusal (e.g. 1040 Too many connections), as it is.
        let _ = client
            .write_all(&frame(be.greeting_seq, &be.greeting))
            .await;
        return ConnOutcome::BackendUnreachable;
    }
    let greeting = match adjust_greeting(&mut be.greeting) {
        Ok(g) => g,
        Err(e) => {
            let msg = format!("primary {primary} sent an unusable greeting: {e}");
            return unreachable(&mut client, &ctx.stats, &msg).await;
        }
    };
    tracing::Span::current().record("backend_thread", greeting.connection_id);
    if let Err(e) = client
        .write_all(&frame(be.greeting_seq, &be.greeting))
        .await
    {
        tracing::debug!(error = %e, "client gone before the greeting");
        return ConnOutcome::ClientError;
    }
    if crate::listener::proxy_protocol::stray_header(&client, &cfg.listen).await {
        return ConnOutcome::ProxyProtocol;
    }
    let login = login::login(&mut client, &mut be.stream, &greeting);
    let (record, client_early, backend_early) =
        match tokio::time::timeout(cfg.listen.handshake_timeout, login).await {
            Err(_) => {
                tracing::info!("no login within listen.handshake_timeout; closing");
                return ConnOutcome::HandshakeTimeout;
            }
            Ok(LoginOutcome::LoggedIn {
                record,
                client_leftover,
                backend_leftover,
            }) => (record, client_leftover, backend_leftover),
            Ok(other) => return login_failure(other, &mut client, &ctx.stats).await,
        };
    tracing::debug!(user = %record.user, plugin = %record.plugin, "logged in");
    let caps = greeting.caps & record.client_caps;
    let mariadb_caps = greeting.mariadb_caps & record.client_mariadb_caps;
    gauge.set(SessionState::Idle);
    let timers = SessionTimers::new(
        accepted,
        cfg.listen.handshake_timeout,
        cfg.listen.idle_timeout(),
    );
    let mut live = Live {
        backend: be.stream,
        primary: primary.clone(),
        tracker: Tracker::logged_in(caps, mariadb_caps, record.status),
        state: CarriedState::new(record.db.clone()),
        early: (client_early.to_vec(), backend_early.to_vec()),
        timers: Some(timers),
    };
    loop {
        let end = relay_until_moved(&mut client, &mut live, ctx, gauge).await;
        match after_relay(end, &mut client, &mut live, &record, ctx).await {
            Next::Relay => continue,
            Next::Done(outcome) => return outcome,
        }
    }
}

/// A session's current backend and what the protocol tracker knows of it.
struct Live {
    backend: TcpStream,
    primary: Primary,
    tracker: Tracker,
    state: CarriedState,
    /// Bytes read past the login (or held by the fence), relayed first.
    early: (Vec<u8>, Vec<u8>),
    /// Idle timeout (and the handshake latency sample), across relays.
    timers: Option<SessionTimers>,
}

/// Relay until the session ends, or until the route moved away from its
/// primary and the session reached a rest point (or, past the drain timeout,
/// at least no reply outstanding).
async fn relay_until_moved(
    client: &mut TcpStream,
    live: &mut Live,
    ctx: &Context,
    gauge: &mut SessionGauge,
) -> RelayEnd {
    let stop = StopSignals {
        at_rest: ctx.drain.at_rest.child_token(),
        when_idle: ctx.drain.when_idle.child_token(),
    };
    let mut routes = ctx.table.subscribe();
    let (up, down) = std::mem::take(&mut live.early);
    let current = live.primary.clone();
    let seen = std::sync::atomic::AtomicU64::new(ctx.table.generation());
    // For the failover timeline: the first statement answered on this backend.
    let answered = || ctx.timeline.answered(current.epoch);
    // Before a command leaves rest: has the route moved since we last looked?
    let fence = |/* per command at rest */| {
        let g = ctx.table.generation();
        g != seen.swap(g, Relaxed) && switch::moved(ctx, &current)
    };
    let mut relay = Relay::new(
        client,
        &mut live.backend,
        &mut live.tracker,
        &mut live.state,
        &ctx.stats,
        gauge,
    )
    .with_fence(&fence)
    .with_timers(live.timers.take())
    .on_first_reply(&answered);
    relay.preload(&up, &down);
    let drain_deadline = tokio::time::sleep(Duration::from_secs(86400 * 365));
    tokio::pin!(drain_deadline);
    let mut moving = false;
    let end = {
        let run = relay.run(&stop);
        tokio::pin!(run);
        loop {
            if !moving && switch::moved(ctx, &current) {
                moving = true;
                stop.at_rest.cancel();
                let at = tokio::time::Instant::now() + ctx.config.load().failover.drain_timeout;
                drain_deadline.as_mut().reset(at);
            }
            tokio::select! {
                end = &mut run => break end,
                r = routes.changed(), if !moving => {
                    if r.is_err() {
                        stop.at_rest.cancel();
                    }
                }
                _ = &mut drain_deadline, if moving => stop.when_idle.cancel(),
            }
        }
    };
    live.early.0 = relay.unsent_client_bytes();
    live.timers = relay.take_timers();
    end
}

/// What follows a relay that ended.
enum Next {
    /// Relay again: the session moved to the new primary (or kept its backend).
    Relay,
    Done(ConnOutcome),
}

/// What follows a relay that ended.
async fn after_relay(
    end: RelayEnd,
    client: &mut TcpStream,
    live: &mut Live,
    record: &LoginRecord,
    ctx: &Context,
) -> Next {
    let draining = ctx.drain.at_rest.is_cancelled();
    match end {
        RelayEnd::Stopped(point) if !draining => failover(point, client, live, record, ctx).await,
        // The backend died while the session was at rest: its primary may be gone.
        RelayEnd::BackendClosed | RelayEnd::BackendError(_)
            if !draining && live.tracker.at_rest() && !live.tracker.quit_sent() =>
        {
            tracing::info!(backend = %live.primary, "backend lost while idle; waiting for a new primary");
            failover(StopPoint::AtRest, client, live, record, ctx).await
        }
        other => Next::Done(outcome_of(other, live.tracker.quit_sent(), client).await),
    }
}

/// The session reached `point` because the route moved (or its backend died):
/// migrate it, or close it with the documented error.
async fn failover(
    point: StopPoint,
    client: &mut TcpStream,
    live: &mut Live,
    record: &LoginRecord,
    ctx: &Context,
) -> Next {
    let wait = ctx.config.load().failover.drain_timeout;
    let stopped = Instant::now();
    if point == StopPoint::Idle && live.tracker.in_transaction() {
        ctx.stats.transactions_aborted.fetch_add(1, Relaxed);
        let msg = format!(
            "transaction aborted by failover: primary {} changed and the transaction did not end within {}; it was rolled back, retry it",
            live.primary,
            humantime::format_duration(wait)
        );
        tracing::warn!("{msg}");
        let held = std::mem::take(&mut live.early.0);
        switch::close_at_next_command(
            client,
            &ctx.stats,
            &held,
            ProxyErrorCode::TransactionAborted,
            &msg,
            wait,
        )
        .await;
        return Next::Done(ConnOutcome::FailoverClosed);
    }
    // A statement is held from when it arrives: already read by the fence,
    // or arriving while we wait for the new primary.
    let mut held_since = (!live.early.0.is_empty()).then_some(stopped);
    let next = if held_since.is_some() {
        switch::next_primary(ctx).await
    } else {
        tokio::select! {
            n = switch::next_primary(ctx) => n,
            _ = client.readable() => {
                held_since = Some(Instant::now());
                switch::next_primary(ctx).await
            }
        }
    };
    let Some(next) = next else {
        let hold = humantime::format_duration(ctx.config.load().failover.hold_timeout);
        let msg =
            format!("connection closed by failover: no primary known after {hold}; reconnect");
        return Next::Done(close_by_failover(client, live, &msg, ctx).await);
    };
    if next.address() == live.primary.address() {
        live.primary = next; // same server (e.g. an epoch bump): keep the backend
        held_for(ctx, held_since);
        return Next::Relay;
    }
    let from = live.primary.clone();
    let password = match switch::blocker(&live.state)
        .map_or_else(|| switch::credential(ctx, record), Err)
    {
        Ok(p) => p,
        Err(why) => {
            let msg =
                format!("connection closed by failover from {from} to {next}: {why}; reconnect");
            return Next::Done(close_by_failover(client, live, &msg, ctx).await);
        }
    };
    let timeout = ctx.config.load().backend.connect_timeout;
    match migrate::migrate(&next, record, &live.state, &password, timeout).await {
        Ok(m) => {
            let caps = m.greeting.caps & record.client_caps;
            let mariadb = m.greeting.mariadb_caps & record.client_mariadb_caps;
            tracing::info!(%from, to = %next, backend_thread = m.greeting.connection_id, "session migrated");
            ctx.stats.sessions_migrated.fetch_add(1, Relaxed);
            live.backend = m.stream;
            live.tracker = Tracker::logged_in(caps, mariadb, m.status);
            live.primary = next;
            held_for(ctx, held_since);
            Next::Relay
        }
        Err(e) => {
            let msg = format!("connection closed by failover from {from} to {next}: migration failed: {e}; reconnect");
            Next::Done(close_by_failover(client, live, &msg, ctx).await)
        }
    }
}

/// A held statement goes out now: record how long it waited.
fn held_for(ctx: &Context, since: Option<Instant>) {
    if let Some(since) = since {
        ctx.stats.ops.statement_hold.observe(since.elapsed());
    }
}

async fn close_by_failover(
    client: &mut TcpStream,
    live: &mut Live,
    msg: &str,
    ctx: &Context,
) -> ConnOutcome {
    tracing::warn!(backend = %live.primary, "{msg}");
    ctx.stats.sessions_closed_by_failover.fetch_add(1, Relaxed);
    let wait = ctx.config.load().failover.drain_timeout;
    let held = std::mem::take(&mut live.early.0);
    switch::close_at_next_command(
        client,
        &ctx.stats,
        &held,
        ProxyErrorCode::FailoverClosed,
        msg,
        wait,
    )
    .await;
    ConnOutcome::FailoverClosed
}

/// Error 9002 in place of the greeting.
async fn unreachable(client: &mut TcpStream, stats: &Stats, msg: &str) -> ConnOutcome {
    tracing::warn!("{msg}");
    let code = ProxyErrorCode::BackendUnreachable;
    send_error(client, stats, 0, code, Phase::BeforeGreeting, msg).await;
    ConnOutcome::BackendUnreachable
}

async fn login_failure(
    outcome: LoginOutcome,
    client: &mut TcpStream,
    stats: &Stats,
) -> ConnOutcome {
    match outcome {
        LoginOutcome::LoggedIn { .. } => unreachable!("handled by the caller"),
        LoginOutcome::Failed => ConnOutcome::AuthFailed,
        LoginOutcome::SslRequested => {
            let msg = "TLS is not enabled on this proxy; connect without TLS";
            send_error(
                client,
                stats,
                2,
                ProxyErrorCode::TlsUnsupported,
                Phase::AfterGreeting,
                msg,
            )
            .await;
            ConnOutcome::ClientError
        }
        LoginOutcome::ClientGone(e) => {
            tracing::debug!(error = %e, "client left during login");
            ConnOutcome::ClientError
        }
        LoginOutcome::BackendGone(e) => {
            tracing::info!(error = %e, "backend failed during login");
            ConnOutcome::BackendLost
        }
        LoginOutcome::Malformed(why) => {
            tracing::info!(%why, "unusable handshake response");
            ConnOutcome::ClientError
        }
    }
}

async fn outcome_of(end: RelayEnd, quit: bool, client: &mut TcpStream) -> ConnOutcome {
    match end {
        RelayEnd::ClientClosed => ConnOutcome::Closed,
        RelayEnd::BackendClosed if quit => ConnOutcome::Closed,
        RelayEnd::BackendClosed => {
            tracing::info!("backend closed the connection");
            ConnOutcome::BackendLost
        }
        RelayEnd::BackendError(e) => {
            tracing::info!(error = %e, "backend connection failed");
            ConnOutcome::BackendLost
        }
        RelayEnd::ClientError(e) => {
            tracing::debug!(error = %e, "client connection failed");
            ConnOutcome::ClientError
        }
        RelayEnd::Stopped(point) => {
            tracing::info!(
                ?point,
                "closing the session at a safe point (proxy draining)"
            );
            let _ = client.shutdown().await;
            ConnOutcome::Shutdown
        }
        RelayEnd::TimedOut(Expired::Handshake) => {
            tracing::info!("no login within listen.handshake_timeout; closing");
            ConnOutcome::HandshakeTimeout
        }
        RelayEnd::TimedOut(Expired::Idle) => {
            tracing::info!("idle longer than listen.idle_timeout; closing");
            let _ = client.shutdown().await;
            ConnOutcome::IdleTimeout
        }
    }
}

/// Send one of the proxy's own errors (counted by code) and close.
pub(crate) async fn send_error(
    client: &mut TcpStream,
    stats: &Stats,
    seq: u8,
    code: ProxyErrorCode,
    phase: Phase,
    msg: &str,
) {
    stats.ops.count_error(code);
    let packet = err_packet(seq, code, phase, msg);
    if let Err(e) = client.write_all(&packet).await {
        tracing::debug!(error = %e, "could not send the error to the client");
    }
    let _ = client.shutdown().await;
}
