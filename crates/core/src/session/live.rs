//! A logged-in session's backend and the loop around its relay: relay until
//! the route moves (or the session ends), then decide what follows.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::ending::outcome_of;
use super::login::{LoginRecord, Tracking};
use super::moved::{close_after_loss, failover, Cause};
use super::oks::OkTap;
use super::quiet::Quiet;
use super::relay::{Hold, Relay, RelayEnd, StopSignals};
use super::state::CarriedState;
use super::stream::Stream;
use super::switch::RouteFor;
use super::timers::SessionTimers;
use super::{kill, rewrite, switch};
use tokio::time::Instant;

use crate::metrics::{ConnOutcome, SessionGauge, SessionState};
use crate::routing::Primary;
use crate::session::Env;
use mysql_zk_proxy_protocol::Tracker;

/// A session's current backend and what the protocol tracker knows of it.
pub(super) struct Live<'a> {
    pub(super) backend: Stream,
    pub(super) primary: Primary,
    pub(super) tracker: Tracker,
    pub(super) state: CarriedState,
    /// Bytes read past the login (or held by the fence), relayed first.
    pub(super) early: (Vec<u8>, Vec<u8>),
    /// Idle timeout (and the handshake latency sample), across relays.
    pub(super) timers: Option<SessionTimers>,
    /// Since when the client's next command waits, when it arrived while
    /// the session had no usable backend (a statement-hold sample).
    pub(super) held_since: Option<Instant>,
    /// The connection id the client knows, and where it runs now (KILL).
    pub(super) kill: kill::Registered<'a>,
    /// Who the ledger records this session's commits for.
    pub(super) acks: Acks,
}

/// Who the ledger records a session's commits for, and how its OKs are read.
pub(super) struct Acks {
    pub(super) session: u64,
    pub(super) user: std::sync::Arc<str>,
    pub(super) tracking: Tracking,
}

/// Relay, following the route from primary to primary, until the session
/// ends.
pub(super) async fn serve_logged_in(
    client: &mut Stream,
    live: &mut Live<'_>,
    record: &LoginRecord,
    ctx: &Env,
    gauge: &mut SessionGauge,
) -> ConnOutcome {
    loop {
        let end = relay_until_moved(client, live, ctx, gauge).await;
        match after_relay(end, client, live, record, ctx, gauge).await {
            Next::Relay => continue,
            Next::Done(outcome) => return outcome,
        }
    }
}

/// Relay until the session ends, or until the route moved away from its
/// primary and the session reached a rest point (or, past the drain timeout,
/// at least no reply outstanding).
async fn relay_until_moved(
    client: &mut Stream,
    live: &mut Live<'_>,
    ctx: &Env,
    gauge: &mut SessionGauge,
) -> RelayEnd {
    let wait = ctx.config.load().failover.drain_timeout;
    let backend = live.primary.address();
    let rewritten = rewrite::held_command(
        client,
        &mut live.early.0,
        &live.state,
        &backend,
        &ctx.kills,
        wait,
    );
    if let Err(e) = rewritten.await {
        return RelayEnd::ClientError(e);
    }
    if let Some(hook) = &ctx.before_read {
        let waited = super::causal::held_read(
            client,
            &mut live.early.0,
            &live.primary,
            hook.as_ref(),
            &ctx.stats,
            wait,
        );
        if let Err(e) = waited.await {
            return RelayEnd::ClientError(e);
        }
    }
    let stop = StopSignals {
        at_rest: ctx.drain.at_rest.child_token(),
        when_idle: ctx.drain.when_idle.child_token(),
    };
    let mut routes = ctx.table.subscribe();
    let (up, down) = std::mem::take(&mut live.early);
    let current = live.primary.clone();
    // The route generation the fence last found naming this backend;
    // none yet, so the first command looks.
    let seen = std::sync::atomic::AtomicU64::new(u64::MAX);
    // For the failover timeline: the first statement answered on this backend.
    let answered = || ctx.timeline.answered(current.epoch);
    // Before every command leaves: may it still go to this backend? Once
    // the route names another server, none may (a transaction open there
    // is aborted), but for a session on a replica, whose transaction
    // finishes there; while it drains, only a session in a transaction
    // goes on. And does a KILL name a session that moved?
    let fence = |bytes: &[u8], at_rest: bool| {
        let g = ctx.table.generation();
        if g != seen.load(Relaxed) {
            match switch::route_for(ctx, &current) {
                RouteFor::Same => seen.store(g, Relaxed),
                RouteFor::Draining if !at_rest => {}
                RouteFor::Elsewhere if !at_rest && ctx.on_replica => {}
                RouteFor::Draining | RouteFor::Elsewhere => return Some(Hold::Moved),
            }
        }
        let causal = ctx.before_read.is_some() && super::causal::is_read(bytes, at_rest);
        (causal || (ctx.kills.any_moved() && kill::is_kill(bytes))).then_some(Hold::Rewrite)
    };
    let mut relay = Relay::new(
        client,
        &mut live.backend,
        &mut live.tracker,
        &mut live.state,
        &ctx.stats,
        gauge,
        &ctx.buffers,
    )
    .with_fence(&fence)
    .with_timers(live.timers.take())
    .on_first_reply(&answered);
    if live.acks.tracking != Tracking::Off {
        relay = relay.with_oks(OkTap {
            ledger: &ctx.ledger,
            stats: &ctx.stats,
            server: &backend,
            epoch: current.epoch,
            session: live.acks.session,
            user: &live.acks.user,
            strip: live.acks.tracking == Tracking::Proxy,
        });
    }
    relay.preload(&up, &down);
    let mut drain = Drain::Watching;
    let end = {
        let run = relay.run(&stop);
        tokio::pin!(run);
        loop {
            if drain == Drain::Watching && switch::moved(ctx, &current) {
                stop.at_rest.cancel();
                let wait = ctx.config.load().failover.drain_timeout;
                drain = Drain::Until(Instant::now() + wait);
            }
            let deadline = match drain {
                Drain::Until(at) => Some(at),
                Drain::Watching | Drain::Forced => None,
            };
            tokio::select! {
                biased;
                end = &mut run => break end,
                // polled only when a route change woke it, not on every packet
                r = Quiet::new(routes.changed()), if drain == Drain::Watching => {
                    if r.is_err() {
                        stop.at_rest.cancel();
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    stop.when_idle.cancel();
                    drain = Drain::Forced;
                }
            }
        }
    };
    live.early.0 = relay.unsent_client_bytes();
    live.timers = relay.take_timers();
    end
}

/// Where a relay stands once its route moved away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// The route still names this backend: watch it.
    Watching,
    /// It moved: stop at the next rest point, or when idle after this.
    Until(Instant),
    /// The drain timeout passed: stop as soon as no reply is outstanding.
    Forced,
}

/// What follows a relay that ended.
pub(super) enum Next {
    /// Relay again: the session moved to the new primary (or kept its backend).
    Relay,
    Done(ConnOutcome),
}

/// What follows a relay that ended.
async fn after_relay(
    end: RelayEnd,
    client: &mut Stream,
    live: &mut Live<'_>,
    record: &LoginRecord,
    ctx: &Env,
    gauge: &mut SessionGauge,
) -> Next {
    let draining = ctx.drain.at_rest.is_cancelled();
    match end {
        RelayEnd::Held => Next::Relay, // rewritten before the next relay sends it
        RelayEnd::Stopped(_) if !draining => {
            failover(client, live, record, ctx, Cause::RouteMoved).await
        }
        // The backend died with no reply outstanding: its primary may be
        // gone (a session inside a transaction then gets 9006, not a bare close).
        RelayEnd::BackendClosed | RelayEnd::BackendError(_)
            if !draining && live.tracker.outstanding() == 0 && !live.tracker.quit_sent() =>
        {
            tracing::info!(backend = %live.primary, "backend lost while idle; waiting for a new primary");
            let spoke = !live.early.0.is_empty();
            gauge.set(SessionState::WaitingForPrimary);
            let after = route_changes(ctx, &live.primary, client, spoke).await;
            gauge.set(SessionState::Idle);
            match after {
                AfterLoss::Moved(spoke_at) => {
                    live.held_since = spoke_at;
                    failover(client, live, record, ctx, Cause::BackendLost).await
                }
                // As a direct client would see it: the connection closes now.
                AfterLoss::SessionClosed => Next::Done(outcome_of(end, false, client).await),
                AfterLoss::TimedOut => {
                    let hold = humantime::format_duration(ctx.config.load().failover.hold_timeout);
                    let msg = format!("connection closed: backend {} closed the connection and no new primary was published within {hold}; reconnect", live.primary);
                    Next::Done(close_after_loss(client, live, &msg, ctx).await)
                }
            }
        }
        other => Next::Done(outcome_of(other, live.tracker.quit_sent(), client).await),
    }
}

/// What ended the wait after an idle session lost its backend.
pub(super) enum AfterLoss {
    /// The route moved or changed: fail over (with when the client's
    /// next command arrived, if it did while waiting).
    Moved(Option<Instant>),
    /// Its server still answers: the server closed this session
    /// (wait_timeout, KILL), not itself; close the client, as direct.
    SessionClosed,
    /// `hold_timeout` passed, or the proxy is draining.
    TimedOut,
}

/// The backend died but the route may still name it. When its server
/// still accepts connections, it closed this session only: the client is
/// told at once. Otherwise (a crash: an unplanned failover under way) wait,
/// bounded by `hold_timeout`, until the route changes; a command that
/// arrives meanwhile is held until the record moves, so it runs on the new
/// primary.
pub(super) async fn route_changes(
    ctx: &Env,
    from: &Primary,
    client: &Stream,
    spoke: bool,
) -> AfterLoss {
    let mut changes = ctx.table.subscribe();
    let deadline = tokio::time::Instant::now() + ctx.config.load().failover.hold_timeout;
    let timeout = ctx.config.load().backend.connect_timeout;
    if !switch::moved(ctx, from) && server_answers(from, timeout).await {
        return if switch::moved(ctx, from) {
            AfterLoss::Moved(spoke.then(Instant::now))
        } else {
            AfterLoss::SessionClosed
        };
    }
    let mut spoke_at = spoke.then(Instant::now);
    loop {
        if switch::moved(ctx, from) {
            return AfterLoss::Moved(spoke_at);
        }
        tokio::select! {
            biased;
            r = tokio::time::timeout_at(deadline, changes.changed()) => match r {
                Ok(Ok(())) => continue,
                _ => return AfterLoss::TimedOut,
            },
            _ = ctx.drain.at_rest.cancelled() => return AfterLoss::TimedOut,
            _ = client.readable(), if spoke_at.is_none() => spoke_at = Some(Instant::now()),
        }
    }
}

/// Does the server at `p` still answer: greet a new connection? (A TCP
/// connect alone is not enough: a server being killed can still complete
/// one in the kernel.)
async fn server_answers(p: &Primary, timeout: Duration) -> bool {
    crate::backend::connect(p, timeout).await.is_ok()
}
