//! One client connection: wait for a primary (bounded), connect to it, forward
//! its greeting, then relay. Every session runs in its own tracing span and
//! ends with exactly one counted outcome.

pub mod login;
pub mod relay;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{field, Instrument};

use crate::backend::{self, frame};
use crate::listener::Context;
use crate::metrics::{ConnOutcome, SessionGauge, SessionState};
use crate::protocol::errors::{err_packet, Phase, ProxyErrorCode};
use crate::protocol::handshake::adjust_greeting;
use crate::protocol::Tracker;
use crate::routing::{Primary, Route};
use login::LoginOutcome;
use relay::{Relay, RelayEnd};

/// Serve one accepted client until it ends or the proxy shuts down.
pub async fn run(client: TcpStream, peer: SocketAddr, id: u64, ctx: Arc<Context>) {
    let span = tracing::info_span!(
        "session",
        id,
        client = %peer,
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
            ctx.config.zookeeper.primary_path,
            humantime::format_duration(ctx.config.failover.hold_timeout),
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
    connect_and_relay(client, primary, ctx, &mut gauge).await
}

/// The current route if it has a primary, else wait up to `hold_timeout`.
async fn route_with_primary(ctx: &Context) -> Option<Arc<Route>> {
    let route = ctx.table.current();
    if route.primary.is_some() {
        return Some(route);
    }
    let deadline = tokio::time::Instant::now() + ctx.config.failover.hold_timeout;
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
) -> ConnOutcome {
    let mut be = match backend::connect(primary, ctx.config.backend.connect_timeout).await {
        Ok(be) => be,
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
    let (record, client_early, backend_early) =
        match login::login(&mut client, &mut be.stream, &greeting).await {
            LoginOutcome::LoggedIn {
                record,
                client_leftover,
                backend_leftover,
            } => (record, client_leftover, backend_leftover),
            other => return login_failure(other, &mut client).await,
        };
    tracing::debug!(user = %record.user, plugin = %record.plugin, "logged in");
    let caps = greeting.caps & record.client_caps;
    let mariadb_caps = greeting.mariadb_caps & record.client_mariadb_caps;
    let tracker = Tracker::logged_in(caps, mariadb_caps, record.status);
    gauge.set(SessionState::Idle);
    let mut relay = Relay::new(&mut client, &mut be.stream, tracker, &ctx.stats, gauge);
    relay.preload(&client_early, &backend_early);
    let end = relay.run(&ctx.drain).await;
    let quit = relay.tracker.quit_sent();
    outcome_of(end, quit, &mut client).await
}

async fn login_failure(outcome: LoginOutcome, client: &mut TcpStream) -> ConnOutcome {
    match outcome {
        LoginOutcome::LoggedIn { .. } => unreachable!("handled by the caller"),
        LoginOutcome::Failed => ConnOutcome::AuthFailed,
        LoginOutcome::SslRequested => {
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
