//! One client connection: wait for a primary (bounded), connect to it, forward
//! its greeting, then relay. Every session runs in its own tracing span and
//! ends with exactly one counted outcome.

pub(crate) mod buffers;
pub mod causal;
mod ending;
mod env;
pub mod kill;
mod live;
pub mod login;
pub mod migrate;
mod moved;
mod oks;
mod pipe;
pub mod query;
mod quiet;
pub mod relay;
mod replies;
pub mod rewrite;
pub mod secure;
pub mod snapshot;
pub mod state;
pub mod stmts;
pub mod stream;
pub mod switch;
pub mod timers;
mod tracking;

#[cfg(test)]
mod backend_loss_tests;
#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod fake_state;
#[cfg(test)]
mod moved_success_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod switchover_kit;
#[cfg(test)]
mod testkit;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{field, Instrument};

use crate::backend::{self, OpenError};
use crate::metrics::{ConnOutcome, SessionGauge, SessionState};
use crate::routing::Primary;
pub(crate) use ending::send_error;
use ending::{login_failure, unreachable};
pub use env::Env;
use live::{serve_logged_in, Live};
use login::{LoginOutcome, LoginTls};
use mysql_zk_proxy_protocol::errors::{Phase, ProxyErrorCode};
use mysql_zk_proxy_protocol::handshake::offer_ssl;
use mysql_zk_proxy_protocol::packet_io::frame;
use mysql_zk_proxy_protocol::Tracker;
use state::CarriedState;
use stream::Stream;
use timers::SessionTimers;

/// Serve one accepted client until it ends or the proxy shuts down. `peer`
/// is the client's address (from the PROXY header when `via`, the load
/// balancer, sent one).
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    id: u64,
    ctx: Arc<Env>,
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
            biased;
            o = serve(client, id, &ctx) => o,
            // polled only when the shutdown fires, not on every packet
            _ = quiet::Quiet::new(cancel.cancelled()) => ConnOutcome::Shutdown,
        };
        ctx.stats.connection_closed(outcome);
        tracing::debug!(outcome = outcome.label(), "session ended");
    }
    .instrument(span)
    .await
}

async fn serve(mut client: TcpStream, id: u64, ctx: &Env) -> ConnOutcome {
    let accepted = Instant::now();
    let mut gauge = ctx.stats.session(SessionState::WaitingForPrimary);
    let Some(route) = ctx.serving_route().await else {
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
    ctx.through_gate(primary).await;
    gauge.set(SessionState::Handshake);
    connect_and_relay(client, (primary, id), ctx, &mut gauge, accepted).await
}

async fn connect_and_relay(
    mut client: TcpStream,
    (primary, id): (&Primary, u64),
    ctx: &Env,
    gauge: &mut SessionGauge,
    accepted: Instant,
) -> ConnOutcome {
    let cfg = ctx.config.get();
    let t0 = Instant::now();
    let opened = backend::open(primary, &cfg.backend).await;
    if !matches!(opened, Err(OpenError::Connect(_))) {
        ctx.stats.ops.backend_connect.observe(t0.elapsed());
    }
    let (mut be, mut greeting) = match opened {
        Ok(o) => (o.backend, o.greeting),
        Err(OpenError::Refused(be)) => {
            // The server's own refusal (e.g. 1040 Too many connections), as it is.
            let _ = client
                .write_all(&frame(be.greeting_seq, &be.greeting))
                .await;
            return ConnOutcome::BackendUnreachable;
        }
        Err(OpenError::Connect(e)) => {
            let msg = format!("cannot connect to primary {primary}: {e}");
            return unreachable(&mut client, &ctx.stats, &msg).await;
        }
        Err(OpenError::Greeting { source, .. }) => {
            let msg = format!("primary {primary} sent an unusable greeting: {source}");
            return unreachable(&mut client, &ctx.stats, &msg).await;
        }
    };
    tracing::Span::current().record("backend_thread", greeting.connection_id);
    let acceptor = ctx.tls.acceptor();
    if acceptor.is_some() {
        offer_ssl(&mut be.greeting, &mut greeting);
    }
    if let Err(e) = client
        .write_all(&frame(be.greeting_seq, &be.greeting))
        .await
    {
        tracing::debug!(error = %e, "client gone before the greeting");
        return ConnOutcome::ClientError;
    }
    if crate::proxy_header::stray_header(&client, &cfg.listen).await {
        return ConnOutcome::ProxyProtocol;
    }
    let tls = LoginTls {
        acceptor,
        require: cfg.listen.tls.require,
        backend: ctx.tls.backend().map(|b| (b, primary.host.clone())),
        backend_timeout: cfg.backend.connect_timeout,
    };
    let mut client = Stream::Plain(client);
    let mut backend = Stream::Plain(be.stream);
    let ledger = cfg.failover.ledger;
    let login = login::login(&mut client, &mut backend, &greeting, &tls, ledger);
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
        backend,
        primary: primary.clone(),
        tracker: Tracker::logged_in(caps, mariadb_caps, record.status),
        state: CarriedState::new(&record.user, record.db.clone()),
        early: (client_early.to_vec(), backend_early.to_vec()),
        timers: Some(timers),
        held_since: None,
        kill: ctx
            .kills
            .register(greeting.connection_id, &primary.address()),
        acks: live::Acks {
            session: id,
            user: Arc::from(record.user.as_str()),
            tracking: record.tracking,
        },
    };
    serve_logged_in(&mut client, &mut live, &record, ctx, gauge).await
}
