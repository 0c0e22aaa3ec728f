//! A session whose route moved (or whose backend died) at a rest point:
//! migrated to the new primary, or closed with the documented error.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::live::{Live, Next};
use super::login::LoginRecord;
use super::relay::StopPoint;
use super::stream::Stream;
use super::{migrate, switch};
use crate::listener::Context;
use crate::metrics::ConnOutcome;
use crate::protocol::errors::ProxyErrorCode;
use crate::protocol::Tracker;

/// The session reached `point` because the route moved (or its backend died):
/// migrate it, or close it with the documented error.
pub(super) async fn failover(
    point: StopPoint,
    client: &mut Stream,
    live: &mut Live<'_>,
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
    let mut held_since = live
        .held_since
        .take()
        .or((!live.early.0.is_empty()).then_some(stopped));
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
    let cfg = ctx.config.get();
    let tls = ctx.tls.backend();
    match migrate::migrate(
        &next,
        record,
        &live.state,
        &password,
        &cfg.backend,
        tls.as_deref(),
    )
    .await
    {
        Ok(m) => {
            let caps = m.greeting.caps & record.client_caps;
            let mariadb = m.greeting.mariadb_caps & record.client_mariadb_caps;
            tracing::info!(%from, to = %next, backend_thread = m.greeting.connection_id, "session migrated");
            ctx.stats.sessions_migrated.fetch_add(1, Relaxed);
            live.backend = m.stream;
            live.tracker = Tracker::logged_in(caps, mariadb, m.status);
            live.state.stmts.moved();
            for (client_id, backend_id) in m.statements {
                live.state.stmts.reprepared(client_id, backend_id);
            }
            live.kill.moved(&next.address(), m.greeting.connection_id);
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
pub(super) fn held_for(ctx: &Context, since: Option<Instant>) {
    if let Some(since) = since {
        ctx.stats.ops.statement_hold.observe(since.elapsed());
    }
}

pub(super) async fn close_by_failover(
    client: &mut Stream,
    live: &mut Live<'_>,
    msg: &str,
    ctx: &Context,
) -> ConnOutcome {
    ctx.stats.sessions_closed_by_failover.fetch_add(1, Relaxed);
    close_with_9005(client, live, msg, ctx).await;
    ConnOutcome::FailoverClosed
}

/// An idle session's backend died and no new primary was published within
/// `hold_timeout`: error 9005 at its next command, counted as a lost
/// backend (no failover happened).
pub(super) async fn close_after_loss(
    client: &mut Stream,
    live: &mut Live<'_>,
    msg: &str,
    ctx: &Context,
) -> ConnOutcome {
    close_with_9005(client, live, msg, ctx).await;
    ConnOutcome::BackendLost
}

async fn close_with_9005(client: &mut Stream, live: &mut Live<'_>, msg: &str, ctx: &Context) {
    tracing::warn!(backend = %live.primary, "{msg}");
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
}
