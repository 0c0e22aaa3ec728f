//! A session whose route moved (or whose backend died) at a rest point:
//! migrated to the new primary, or closed with the documented error.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::live::{Live, Next};
use super::login::LoginRecord;
use super::stream::Stream;
use super::{ending, migrate, switch};
use crate::metrics::ConnOutcome;
use crate::routing::Primary;
use crate::session::query::{Backend, QueryError};
use crate::session::snapshot::Snapshot;
use crate::session::Env;
use mysql_zk_proxy_protocol::errors::ProxyErrorCode;
use mysql_zk_proxy_protocol::Tracker;

/// Why a session stopped at a command boundary to fail over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The route moved away from its backend (or the drain timeout passed).
    RouteMoved,
    /// Its backend connection was lost, then the route moved.
    BackendLost,
}

/// The session stopped at a command boundary because the route moved (or its backend died):
/// migrate it, or close it with the documented error.
pub(super) async fn failover(
    client: &mut Stream,
    live: &mut Live<'_>,
    record: &LoginRecord,
    ctx: &Env,
    cause: Cause,
) -> Next {
    let stopped = Instant::now();
    if !live.tracker.at_rest() && !live.tracker.in_transaction() {
        let msg = format!(
            "connection closed by failover: primary {} changed while a server-side cursor was open; reconnect",
            live.primary
        );
        return Next::Done(close_by_failover(client, live, &msg, ctx).await);
    }
    if !live.tracker.at_rest() {
        ctx.stats.transactions_aborted.fetch_add(1, Relaxed);
        let msg = format!(
            "transaction aborted by failover: primary {} changed and {}; it was rolled back, retry it",
            live.primary,
            why_aborted(ctx, &live.primary, cause)
        );
        let code = ProxyErrorCode::TransactionAborted;
        close_at_next_command(client, live, code, &msg, ctx).await;
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
    ctx.through_gate(&next).await;
    let cfg = ctx.config.get();
    let moved = tokio::time::timeout(
        cfg.failover.migrate_timeout,
        move_to(&next, live, record, ctx),
    );
    let why = match moved.await {
        Ok(Ok(())) => {
            tracing::info!(%from, to = %next, "session migrated");
            ctx.stats.sessions_migrated.fetch_add(1, Relaxed);
            held_for(ctx, held_since);
            return Next::Relay;
        }
        Ok(Err(why)) => why,
        Err(_) => format!(
            "moving it took longer than failover.migrate_timeout ({})",
            humantime::format_duration(cfg.failover.migrate_timeout)
        ),
    };
    let msg = format!("connection closed by failover from {from} to {next}: {why}; reconnect");
    Next::Done(close_by_failover(client, live, &msg, ctx).await)
}

/// Read the session's state where it is, log in on `next`, carry it there.
/// `Err` says why the session cannot be the same session on `next`.
async fn move_to(
    next: &Primary,
    live: &mut Live<'_>,
    record: &LoginRecord,
    ctx: &Env,
) -> Result<(), String> {
    if let Some(why) = live.state.why_not_migratable() {
        return Err(format!(
            "the session holds state that cannot be moved ({why})"
        ));
    }
    let password = switch::credential(ctx, record)?;
    let state = current_state(live, record, ctx).await?;
    let cfg = ctx.config.get();
    let tls = ctx.tls.backend();
    let carried = (&state, &live.state.stmts);
    let m = migrate::migrate(
        next,
        record,
        carried,
        &password,
        &cfg.backend,
        tls.as_deref(),
    )
    .await
    .map_err(|e| format!("migration failed: {e}"))?;
    let caps = m.greeting.caps & record.client_caps;
    let mariadb = m.greeting.mariadb_caps & record.client_mariadb_caps;
    tracing::debug!(backend_thread = m.greeting.connection_id, "state carried");
    live.backend = m.stream;
    live.tracker = Tracker::logged_in(caps, mariadb, m.status);
    live.state.stmts.moved();
    for (client_id, backend_id) in m.statements {
        live.state.stmts.reprepared(client_id, backend_id);
    }
    live.state.known_now(state);
    live.kill.moved(&next.address(), m.greeting.connection_id);
    live.primary = next.clone();
    Ok(())
}

/// What ended a transaction that was open when the session stopped.
fn why_aborted(ctx: &Env, primary: &Primary, cause: Cause) -> String {
    match (cause, switch::route_for(ctx, primary)) {
        (Cause::BackendLost, _) => "the connection to it was lost".to_string(),
        (Cause::RouteMoved, switch::RouteFor::Draining) => format!(
            "the transaction did not end within {}",
            humantime::format_duration(ctx.config.load().failover.drain_timeout)
        ),
        (Cause::RouteMoved, _) => "the record moved while the transaction was open".to_string(),
    }
}

/// Why a session whose state is not known cannot move when its old
/// primary cannot tell: `cause` says what the read met.
fn unknown(from: &Primary, cause: &str) -> String {
    format!(
        "its state cannot be read on {from} ({cause}) and it ran statements since its state was last known"
    )
}

/// The session's state: read from the server it is on, or, when that
/// server cannot answer (it crashed), what is known without it. The read
/// may take half of `failover.migrate_timeout`; the login and carry the rest.
async fn current_state(
    live: &mut Live<'_>,
    record: &LoginRecord,
    ctx: &Env,
) -> Result<Snapshot, String> {
    let wait = ctx.config.load().failover.migrate_timeout / 2;
    let from = live.primary.clone();
    let mut be = Backend::new(&mut live.backend, live.tracker.clone());
    let read = tokio::time::timeout(wait, Snapshot::read(&mut be)).await;
    let known = || live.state.known.clone();
    let state = match read {
        Ok(Ok(state)) => state,
        Ok(Err(QueryError::Server(e))) => {
            return Err(format!("its state could not be read on {from}: {e}"))
        }
        Ok(Err(e)) => known().ok_or_else(|| unknown(&from, &e.to_string()))?,
        Err(_) => {
            let cause = format!("no answer within {}", humantime::format_duration(wait));
            known().ok_or_else(|| unknown(&from, &cause))?
        }
    };
    if let Some(why) = &state.blocker {
        return Err(format!(
            "the session holds state that cannot be moved ({why})"
        ));
    }
    if state.user != record.user {
        return Err(format!(
            "the session runs as user {:?} (COM_CHANGE_USER), not as its login user {:?}",
            state.user, record.user
        ));
    }
    Ok(state)
}

/// A held statement goes out now: record how long it waited.
pub(super) fn held_for(ctx: &Env, since: Option<Instant>) {
    if let Some(since) = since {
        ctx.stats.ops.statement_hold.observe(since.elapsed());
    }
}

pub(super) async fn close_by_failover(
    client: &mut Stream,
    live: &mut Live<'_>,
    msg: &str,
    ctx: &Env,
) -> ConnOutcome {
    ctx.stats.sessions_closed_by_failover.fetch_add(1, Relaxed);
    close_at_next_command(client, live, ProxyErrorCode::FailoverClosed, msg, ctx).await;
    ConnOutcome::FailoverClosed
}

/// An idle session's backend died and no new primary was published within
/// `hold_timeout`: error 9005 at its next command, counted as a lost
/// backend (no failover happened).
pub(super) async fn close_after_loss(
    client: &mut Stream,
    live: &mut Live<'_>,
    msg: &str,
    ctx: &Env,
) -> ConnOutcome {
    close_at_next_command(client, live, ProxyErrorCode::FailoverClosed, msg, ctx).await;
    ConnOutcome::BackendLost
}

/// Let the backend go, then answer the client's next command with `code`
/// (9005 or 9006) and close.
async fn close_at_next_command(
    client: &mut Stream,
    live: &mut Live<'_>,
    code: ProxyErrorCode,
    msg: &str,
    ctx: &Env,
) {
    tracing::warn!(backend = %live.primary, "{msg}");
    release_backend(live);
    let wait = refusal_wait(ctx);
    let held = std::mem::take(&mut live.early.0);
    ending::close_at_next_command(client, &ctx.stats, &held, code, msg, wait).await;
}

/// A refused session closes its backend connection at once, not when its
/// client next speaks: it holds no backend while it waits (an open
/// transaction there is rolled back now).
fn release_backend(live: &mut Live<'_>) {
    live.backend = Stream::Closed;
}

/// How long a refused session waits for its next command, to answer it
/// with the error that says why: the idle timeout (an hour when there is
/// none). The session holds no backend meanwhile.
fn refusal_wait(ctx: &Env) -> std::time::Duration {
    let cfg = ctx.config.load();
    cfg.listen
        .idle_timeout()
        .unwrap_or(std::time::Duration::from_secs(3600))
}

#[cfg(test)]
#[path = "moved_tests.rs"]
mod tests;
