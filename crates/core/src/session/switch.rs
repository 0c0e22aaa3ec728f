//! What a session does when its primary changes (docs/architecture.md, failover): at a
//! rest point it is migrated to the new primary when it can be, otherwise its
//! next command is answered with a failover error and it is closed; a
//! transaction past `failover.drain_timeout` is aborted.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::failover::native::{derive, DerivedPassword};
use crate::metrics::Stats;
use crate::routing::Primary;
use crate::session::login::LoginRecord;
use crate::session::stream::Stream;
use crate::session::Env;
use mysql_zk_proxy_protocol::command;
use mysql_zk_proxy_protocol::errors::{err_packet, Phase, ProxyErrorCode};
use mysql_zk_proxy_protocol::packet_io::PacketReader;

/// Where the route stands for a session on `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteFor {
    /// It still names `current`, serving.
    Same,
    /// It names `current` but says `draining` (a planned switchover):
    /// transactions finish there, new work is held at rest.
    Draining,
    /// No primary, or another server: no command may reach `current`.
    Elsewhere,
}

/// Where the route stands for a session on `current`.
pub(crate) fn route_for(ctx: &Env, current: &Primary) -> RouteFor {
    let route = ctx.table.current();
    match &route.primary {
        Some(p) if p.address() == current.address() => {
            if route.serving() {
                RouteFor::Same
            } else {
                RouteFor::Draining
            }
        }
        _ => RouteFor::Elsewhere,
    }
}

/// The route moved away from `current`: no primary, another address, or the
/// record says `draining` (a planned switchover: hold new work at rest).
pub fn moved(ctx: &Env, current: &Primary) -> bool {
    route_for(ctx, current) != RouteFor::Same
}

/// Wait (bounded by `hold_timeout`) for a serving primary; `None` on timeout
/// or drain. Statements held meanwhile stay unread (or in the held buffer).
pub(crate) async fn next_primary(ctx: &Env) -> Option<Primary> {
    let deadline = tokio::time::Instant::now() + ctx.config.load().failover.hold_timeout;
    tokio::select! {
        r = ctx.table.wait_for_primary(deadline) => r.and_then(|r| r.primary.clone()),
        _ = ctx.drain.at_rest.cancelled() => None,
    }
}

/// The credential to log in again as this client, or why there is none.
pub fn credential(ctx: &Env, record: &LoginRecord) -> Result<DerivedPassword, String> {
    if record.plugin != "mysql_native_password" {
        return Err(format!("user logged in with {}", record.plugin));
    }
    let Some(stored) = ctx.credentials.lookup(&record.user) else {
        return Err(format!(
            "user {:?} is not in the credential store",
            record.user
        ));
    };
    derive(&record.scramble, &record.auth_response, &stored).map_err(|e| {
        format!(
            "stored hash for {:?} does not match its login ({e})",
            record.user
        )
    })
}

/// Answer the client's next command (possibly already read: `held`) with
/// `code` and close; a client that stays silent for `wait` is closed without a word.
pub(crate) async fn close_at_next_command(
    client: &mut Stream,
    stats: &Stats,
    held: &[u8],
    code: ProxyErrorCode,
    msg: &str,
    wait: Duration,
) {
    let mut reader = PacketReader::with_initial(16 * 1024 * 1024, held);
    let next = tokio::time::timeout(wait, reader.read(client)).await;
    if let Ok(Ok(p)) = next {
        if p.payload.first() != Some(&command::QUIT) {
            stats.ops.count_error(code);
            let packet = err_packet(p.seq.wrapping_add(1), code, Phase::AfterGreeting, msg);
            if client.write_all(&packet).await.is_ok() {
                let _ = client.flush().await;
            }
        }
    }
    let _ = client.shutdown().await;
}
