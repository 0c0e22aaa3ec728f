//! One client connection: wait for a primary (bounded), connect to it, forward
//! its greeting, then relay. Every session runs in its own tracing span and
//! ends with exactly one counted outcome.

pub mod relay;
pub mod timers;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{field, Instrument};

use crate::backend::{self, frame};
use crate::listener::Context;
use crate::metrics::{ConnOutcome, SessionGauge, SessionState};
use crate::protocol::errors::{err_packet, Phase, ProxyErrorCode};
use crate::protocol::handshake::adjust_greeting;
use crate::protocol::Tracker;
use crate::routing::{Primary, Route};
use relay::{Relay, RelayEnd};
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
    if route.primary.is_some() {
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
            tracing::warn!(error = %e, "backend unreachable");
            let msg = format!("cannot connect to primary {primary}: {e}");
            send_error(
                &mut client,
                0,
                ProxyErrorCode::BackendUnreachable,
                Phase::BeforeGreeting,
                &msg,
            )
            .await;
            return ConnOutcome::BackendUnreachable;
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
            tracing::warn!(error = %e, "bad greeting from backend");
            let msg = format!("primary {primary} sent an unusable greeting: {e}");
            send_error(
                &mut client,
                0,
                ProxyErrorCode::BackendUnreachable,
                Phase::BeforeGreeting,
                &msg,
            )
            .await;
            return ConnOutcome::BackendUnreachable;
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
    let timers = SessionTimers::new(
        accepted,
        cfg.listen.handshake_timeout,
        cfg.listen.idle_timeout(),
    );
    if crate::listener::proxy_protocol::stray_header(&client, &cfg.listen).await {
        return ConnOutcome::ProxyProtocol;
    }
    let tracker = Tracker::new(greeting.caps, greeting.mariadb_caps);
    let mut relay =
        Relay::new(&mut client, &mut be.stream, tracker, &ctx.stats, gauge).with_timers(timers);
    let end = relay.run(&ctx.drain).await;
    let (auth_failed, quit) = (relay.auth_failed(), relay.tracker.quit_sent());
    outcome_of(end, auth_failed, quit, &mut client).await
}

async fn outcome_of(
    end: RelayEnd,
    auth_failed: bool,
    quit: bool,
    client: &mut TcpStream,
) -> ConnOutcome {
    match end {
        RelayEnd::ClientClosed => ConnOutcome::Closed,
        RelayEnd::BackendClosed if auth_failed => ConnOutcome::AuthFailed,
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
        RelayEnd::SslRequested => {
            let msg = "TLS is not enabled on this proxy; connect without TLS";
            send_error(
                client,
                2,
                ProxyErrorCode::TlsUnsupported,
                Phase::AfterGreeting,
                msg,
            )
            .await;
            ConnOutcome::ClientError
        }
    }
}

async fn send_error(
    client: &mut TcpStream,
    seq: u8,
    code: ProxyErrorCode,
    phase: Phase,
    msg: &str,
) {
    let packet = err_packet(seq, code, phase, msg);
    if let Err(e) = client.write_all(&packet).await {
        tracing::debug!(error = %e, "could not send the error to the client");
    }
    let _ = client.shutdown().await;
}
